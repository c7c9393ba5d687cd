import json
import os

import cv2
import numpy as np
import pytest

from mindgap import pretrain
from mindgap.data.digits import RENDERER_VERSION


@pytest.mark.parametrize("recipe, floor",
                         [("centred-digits", 0.9), ("scenes", 0.8), ("scenes-96k", 0.9), ("printed-scenes", 0.9)])
def test_shipped_weights_match_the_renderer_and_recipe(recipe, floor):
    # A renderer or recipe change makes the shipped file stale: remake it with `python -m mindgap.pretrain --recipe R`.
    assert pretrain.shipped_record_mismatches(recipe=recipe) == []
    assert pretrain.pretrained_tiny_weights(cache_dir="/nonexistent", verbose=0, recipe=recipe) == pretrain.shipped_weights_path(recipe)
    record = pretrain.pretraining_report(recipe=recipe)
    assert str(record["renderer"]).startswith(str(RENDERER_VERSION)) and record["command"].startswith("python -m mindgap.pretrain")
    assert record["test_half_accuracy"] > floor  # what the quick mode's start reached on digits it never saw


def test_a_record_names_its_recipe_and_other_settings_their_kind():
    assert pretrain._recipe_of(dict(pretrain.RECIPES["scenes-96k"])) == "scenes-96k"
    assert pretrain._recipe_of(dict(pretrain.RECIPES["scenes"])) == "scenes"
    assert pretrain._recipe_of(dict(pretrain.RECIPES["scenes"], samples=10)) == "scenes"  # a sweep: its renders' kind
    assert pretrain._recipe_of(dict(pretrain.RECIPES["centred-digits"], samples=10)) == "centred-digits"


def test_an_unknown_recipe_is_named():
    with pytest.raises(ValueError, match="Unknown pretraining recipe 'imagenet'"):
        pretrain.pretrained_tiny_weights(recipe="imagenet")


def test_a_stale_record_is_detected(tmp_path):
    weights = tmp_path / os.path.basename(pretrain.shipped_weights_path())
    weights.write_bytes(open(pretrain.shipped_weights_path(), "rb").read())
    record = json.loads(open(pretrain.shipped_weights_path().replace(".weights.h5", ".json")).read())
    record["fingerprint"]["means"][0] += 3.0  # as if the renderer drew other pixels
    record["epochs"] += 1
    (tmp_path / weights.name.replace(".weights.h5", ".json")).write_text(json.dumps(record))
    problems = pretrain.shipped_record_mismatches(str(weights))
    assert len(problems) == 1 and "settings" in problems[0]
    record["epochs"] -= 1
    (tmp_path / weights.name.replace(".weights.h5", ".json")).write_text(json.dumps(record))
    assert pretrain.shipped_record_mismatches(str(weights)) == [
        "the renders of the recipe are not the ones the weights were trained on (renderer changed)"]


def test_distortion_keeps_the_ink_and_moves_it():
    rng = np.random.default_rng(0)
    digit = np.zeros((8, 8)); digit[1:7, 3:5] = 16.0  # a vertical bar
    distorted = pretrain.distort_digit(rng, digit)
    assert distorted.shape == (32, 32) and 0.0 <= distorted.min() and distorted.max() <= 16.0 + 1e-4
    upright = pretrain.distort_digit(rng, digit, rotation=0.0, shear=0.0, aspect=(1.0, 1.0))
    assert np.abs(upright - cv2.resize(digit.astype(np.float32), (32, 32))).max() < 1e-3  # identity warp
    assert 0.4 * upright.sum() <= distorted.sum() <= 1.05 * upright.sum()  # ink kept, up to the shrink that keeps it inside
    assert not np.allclose(distorted, upright)


def test_a_small_pretraining_learns(tmp_path):
    settings = dict(pretrain.PRETRAIN_SETTINGS, image_size=32, samples=1500, epochs=3, batch_size=32, digit_size=(18, 30))
    path = pretrain.pretrain_tiny(str(tmp_path / "small.weights.h5"), settings, held_out_samples=300, verbose=0)
    record = json.loads((tmp_path / "small.json").read_text())
    assert os.path.isfile(path) and record["samples"] == 1500
    assert record["test_half_accuracy"] > 0.3  # chance is 0.1; unseen digits
