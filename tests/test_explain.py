"""The registries (model families, saliency methods) and the one-call explain API."""

import csv

import numpy as np
import pytest
from PIL import Image

import mindgap
from mindgap import registry
from mindgap.cli import main
from mindgap.data.pipeline import model_input
from mindgap.metrics import cam_to_box

SIZE = 32


@pytest.fixture(scope="module")
def model():
    return mindgap.build_model("Tiny-GAP5", 3, input_shape=(SIZE, SIZE, 3), class_names=["cat", "dog", "owl"])


@pytest.fixture(scope="module")
def photo():
    rng = np.random.default_rng(3)
    image = (rng.random((30, 50, 3)) * 80).astype(np.uint8)
    image[8:20, 30:44] = 250  # a bright block the untrained maps may pick up
    return image


def test_every_family_registers_and_names_match_in_any_case():
    assert mindgap.list_models("*LSTM*") == ["Tiny-LSTM", "Tiny-LSTM-tanh"]
    assert mindgap.list_models("*fc") == ["Tiny-FC"] and mindgap.list_models("cnn-?") == ["CNN-2"]
    assert {family.name for family in registry.families()} == {"gap", "cnn-lstm", "frames", "excitation-dropout",
                                                                 "captioner", "captioner-clips"}
    lstm = mindgap.build_model("tiny-lstm", 2, input_shape=(16, 16, 3), fc_units=4, lstm_units=4)
    frames = mindgap.build_model("TINY-FRAMES", 2, input_shape=(16, 16, 3), fc_units=4)
    assert (lstm.name, frames.name) == ("Tiny-LSTM", "Tiny-Frames")
    assert [registry.family_of(built).takes for built in (lstm, frames)] == ["clips", "images"]
    from mindgap import captioning

    vocabulary = captioning.build_vocabulary(["a small seven"])
    captioners = [mindgap.build_model(name, len(vocabulary), input_shape=(16, 16, 3), class_names=vocabulary, fc_units=4,
                                      embedding_units=4, lstm_units=4) for name in ("tiny-captioner", "Tiny-Captioner-Clips")]
    assert [(registry.family_of(built).name, registry.family_of(built).takes) for built in captioners] == [
        ("captioner", "images"), ("captioner-clips", "clips")]
    with pytest.raises(ValueError, match=r"Unknown model name 'Tiny-GAP'; did you mean Tiny-GAP5, Tiny-GAP1 or Tiny-GAP10\?"):
        mindgap.build_model("Tiny-GAP", 3)


def test_models_command_lists_a_filtered_family(capsys):
    assert main(["models", "*lstm*"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == ["  Tiny-LSTM", "  Tiny-LSTM-tanh"]
    assert main(["models", "ResNet*"]) == 2


def test_method_specs_drive_the_callers():
    from mindgap.cli import build_parser
    from mindgap.serve.app import SERVED_METHODS

    assert registry.method_names("clips") == ["eb_r", "ceb_r", "bp_r"]
    assert registry.method_names("words") == ["word_eb_r", "word_ceb_r", "caption_guided"]  # a captioner's words
    assert list(SERVED_METHODS) == ["cam", "gradcam", "rise", "eb", "ceb"]
    explain_parser = next(action for action in build_parser()._actions if action.dest == "command").choices["explain"]
    assert next(action.choices for action in explain_parser._actions if action.dest == "method") == list(SERVED_METHODS)
    assert [name for name, spec in mindgap.saliency.METHODS.items() if spec.signed] == ["cam", "ceb_r", "word_ceb_r"]
    with pytest.raises(ValueError, match="Unknown saliency method 'eb_r' for images; use one of cam, gradcam, rise"):
        mindgap.saliency.method_of("eb_r", takes="images")


def test_explain_gives_the_cam_of_the_top_class_at_the_image_size_and_its_box(model, photo):
    explanation = mindgap.explain(model, photo, top_k=2)
    inputs = model_input(photo, SIZE)[None]
    probabilities, cams = mindgap.cam_model(model).predict(inputs, verbose=0)
    best = int(probabilities[0].argmax())
    assert explanation.class_name == ["cat", "dog", "owl"][best]
    assert [name for name, _ in explanation.top_k] == [["cat", "dog", "owl"][k] for k in np.argsort(-probabilities[0])[:2]]
    np.testing.assert_allclose([value for _, value in explanation.top_k], np.sort(probabilities[0])[::-1][:2], rtol=1e-5)
    np.testing.assert_allclose(explanation.map, mindgap.upsample_map(cams[0, ..., best], (30, 50)), rtol=1e-5, atol=1e-6)
    x_min, y_min, x_max, y_max = cam_to_box(mindgap.upsample_map(cams[0, ..., best], (SIZE, SIZE)), 0.2)
    np.testing.assert_allclose(explanation.box, (x_min * 50 / SIZE, y_min * 30 / SIZE, x_max * 50 / SIZE, y_max * 30 / SIZE))
    overlay = explanation.overlay(with_box=False)
    assert overlay.shape == (30, 50, 3) and overlay.dtype == np.uint8
    assert np.abs(overlay.astype(int) - photo).max() > 0  # the heat map is blended in


def test_explain_takes_a_path_an_array_or_a_pil_image_alike(model, photo, tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(photo).save(path)
    maps = [mindgap.explain(model, image, method="eb").map for image in (str(path), photo, Image.fromarray(photo))]
    np.testing.assert_allclose(maps[0], maps[1])
    np.testing.assert_allclose(maps[0], maps[2])
    assert abs(float(mindgap.explain(model, photo, method="eb").evidence.max()) - 1.0) < 1e-6  # min-max normalised
    written = mindgap.explain(model, str(path), method="eb").save(tmp_path / "out.png")
    np.testing.assert_array_equal(np.asarray(Image.open(written)), mindgap.explain(model, photo, method="eb").overlay())


def test_explain_folder_writes_an_overlay_per_image_and_method_and_predictions_csv(model, photo, tmp_path):
    for index in range(3):
        Image.fromarray(np.roll(photo, 7 * index, axis=1)).save(tmp_path / f"p{index}.png")
    explanations, written = mindgap.explain_folder(model, tmp_path, tmp_path / "out", methods=("cam", "gradcam"),
                                                   progress=False)
    assert len(explanations) == 6 and len(written) == 7
    with open(tmp_path / "out" / "predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["method"] for row in rows] == ["cam"] * 3 + ["gradcam"] * 3
    for row, item in zip(rows, explanations):
        assert row["class"] == item.class_name and row["top_k"].split(";")[0].split(":")[0] == item.top_k[0][0]
        assert float(row["probability"]) == pytest.approx(item.probability, abs=1e-4)
    with pytest.raises(ValueError, match="takes clips, not images; explain it with mindgap.explain_clip"):
        mindgap.explain(mindgap.build_model("Tiny-LSTM", 2, input_shape=(16, 16, 3), fc_units=4, lstm_units=4), photo)


def test_per_model_cache_builds_once_per_model_and_key(model):
    from mindgap.engine.cache import per_model

    made = []
    first = per_model(model, "test key", lambda: made.append(1) or object())
    assert per_model(model, "test key", lambda: made.append(1) or object()) is first and len(made) == 1
    assert per_model(model, "other key", object) is not first
