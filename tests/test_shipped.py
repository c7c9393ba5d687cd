"""The shipped models: each file matches its record, loads by name and classifies the shipped examples."""

import json
import os
import shutil

import numpy as np
import pytest

import mindgap
from mindgap import shipped
from mindgap.cli import main

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "examples")


def test_every_shipped_file_matches_its_record_and_the_whole_is_a_few_mb():
    # A file changed without its record (or the reverse): remake it with the record's command and
    # `python -m mindgap.shipping add ...`, which rewrites the record.
    assert shipped.mismatches() == []
    models = shipped.shipped_models()
    assert {"scenes-gap5-l1", "scenes-gap-zhou-l1", "pairs-guided-zoom", "video-lstm"} <= set(models)
    for model in models.values():
        assert model.kind in shipped.KINDS and model.command.startswith("python -m ") and 0.3 < model.test_accuracy <= 1  # ten classes: chance is 0.1
        path = shipped.shipped_path(model)  # a .keras file, or a refiner's folder
        assert model.size_bytes == (os.path.getsize(path) if os.path.isfile(path) else
                                    sum(os.path.getsize(os.path.join(path, name)) for name in os.listdir(path)))
    backbones = [os.path.join(shipped.SHIPPED_DIR, name) for name in shipped.BACKBONE_FILES.values()]
    total = sum(model.size_bytes for model in models.values()) + sum(os.path.getsize(path) for path in backbones)
    assert total < 13e6  # four Tiny backbones of 1.0 MB each and the four models


def test_a_changed_file_or_a_missing_one_is_named(tmp_path):
    for name in (shipped.REGISTRY_FILE, "scenes-gap5-l1.keras"):
        shutil.copy(os.path.join(shipped.SHIPPED_DIR, name), tmp_path / name)
    records = json.loads((tmp_path / shipped.REGISTRY_FILE).read_text())
    records = {name: record for name, record in records.items() if name.startswith("scenes-")}
    (tmp_path / shipped.REGISTRY_FILE).write_text(json.dumps(records))
    assert shipped.mismatches(str(tmp_path)) == ["scenes-gap-zhou-l1: " + str(tmp_path / "scenes-gap-zhou-l1.keras") + " is missing"]
    data = bytearray((tmp_path / "scenes-gap5-l1.keras").read_bytes())
    data[len(data) // 2] ^= 1  # one bit
    (tmp_path / "scenes-gap5-l1.keras").write_bytes(bytes(data))
    del records["scenes-gap-zhou-l1"]
    (tmp_path / shipped.REGISTRY_FILE).write_text(json.dumps(records))
    problems = shipped.mismatches(str(tmp_path))
    assert len(problems) == 1 and "SHA-256" in problems[0] and "python -m experiments.quickstart" in problems[0]


def test_a_folder_digest_covers_names_and_bytes(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.json").write_text("1")
    first = shipped.file_sha256(tmp_path / "a")
    (tmp_path / "a" / "x.json").rename(tmp_path / "a" / "y.json")
    assert shipped.file_sha256(tmp_path / "a") != first
    import hashlib

    assert first == hashlib.sha256(b"x.json" + b"1").hexdigest()


def test_names_resolve_in_any_case_paths_pass_and_unknown_names_get_the_closest(tmp_path):
    path = shipped.resolve("Scenes-GAP5-L1")
    assert path == os.path.join(shipped.SHIPPED_DIR, "scenes-gap5-l1.keras")
    assert shipped.resolve(str(tmp_path / "mine.keras")) == str(tmp_path / "mine.keras")  # a path: the caller says it is missing
    with pytest.raises(ValueError, match="did you mean 'scenes-gap5-l1'\\? the shipped models are pairs-guided-zoom, scenes-gap-zhou-l1, scenes-gap5-l1"):
        shipped.resolve("scenes-gap5")
    with pytest.raises(ValueError, match="\\(Tiny-GAP5-L1\\) is of kind 'image'; here 'refiner' is taken"):
        shipped.resolve("scenes-gap5-l1", kinds=("refiner",))


def test_pretrained_names_the_shipped_tiny_weights_and_checks_them(tmp_path):
    assert shipped.backbone_weights("pretrained") == os.path.join(shipped.SHIPPED_DIR, shipped.BACKBONE_FILES["scenes-96k"])
    assert shipped.backbone_weights("pretrained:scenes").endswith("tiny_scenes_seed0_r2_v1.weights.h5")
    assert shipped.backbone_weights("pretrained:centred-digits").endswith("tiny_centred_digits_seed0_r2.weights.h5")
    assert shipped.backbone_weights("imagenet") == "imagenet" and shipped.backbone_weights(None) is None
    with pytest.raises(ValueError, match="use 'pretrained' \\(the scenes-96k recipe\\) or one of pretrained:scenes-96k"):
        shipped.backbone_weights("pretrained:imagenet")
    with pytest.raises(ValueError, match="No pretrained weights ship for the inception_v3 backbone"):
        mindgap.build_model("Inception-GAP5", 3, weights="pretrained", input_shape=(75, 75, 3))
    name = shipped.BACKBONE_FILES[shipped.DEFAULT_BACKBONE_RECIPE]
    shutil.copy(os.path.join(shipped.SHIPPED_DIR, name.replace(".weights.h5", ".json")), tmp_path)
    (tmp_path / name).write_bytes(b"not the weights")
    with pytest.raises(ValueError, match="do not match their record's SHA-256"):
        shipped.backbone_weights("pretrained", directory=str(tmp_path))
    by_name = mindgap.build_model("Tiny-GAP5", 3, weights="pretrained", input_shape=(48, 48, 3))
    by_path = mindgap.build_model("Tiny-GAP5", 3, weights=shipped.backbone_weights("pretrained"), input_shape=(48, 48, 3))
    for named, pathed in zip(by_name.get_layer("backbone").get_weights(), by_path.get_layer("backbone").get_weights()):
        np.testing.assert_array_equal(named, pathed)
    assert np.abs(by_name.get_layer("backbone").get_weights()[0]).sum() > 0


def test_a_shipped_model_loads_by_name_and_explains_the_examples(tmp_path, capsys):
    model = mindgap.load_model("scenes-gap5-l1")
    assert model.name == "Tiny-GAP5-L1" and model.input_shape == (None, 64, 64, 3) and not getattr(model, "optimizer", None)
    assert main(["explain", EXAMPLES, "--model", "SCENES-GAP5-L1", "--top", "1", "--out", str(tmp_path)]) == 0
    printed = sorted(capsys.readouterr().out.strip().splitlines())
    # each example's file name is its true class; the shipped model gets all three
    assert [line.split(": ")[1].split()[0] for line in printed] == ["seven", "three", "zero"]
    assert len(list(tmp_path.glob("*_overlay.png"))) == 3


def test_the_shipped_cnn_lstm_grounds_the_example_clip(tmp_path, capsys):
    assert mindgap.load_model("video-lstm").name == "Tiny-LSTM"
    assert main(["explain-video", os.path.join(EXAMPLES, "clip_seven"), "--model", "Video-LSTM", "--out", str(tmp_path)]) == 0
    # the clip's folder name is its true class; its digit is drawn in every frame
    assert capsys.readouterr().out.startswith("clip_seven: seven (")
    assert (tmp_path / "clip-seven_ceb_r.png").is_file()


def test_serve_without_a_model_serves_the_shipped_ones(monkeypatch, capsys):
    import uvicorn

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.update(app=app, **options))
    assert main(["serve", "--port", "8123"]) == 0
    assert served["port"] == 8123
    assert "serving scenes-gap-zhou-l1, scenes-gap5-l1 on http://127.0.0.1:8123/" in capsys.readouterr().out
