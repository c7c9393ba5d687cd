import subprocess
import sys

import keras
import numpy as np
import pytest

import mindgap
from mindgap.cli import main
from mindgap.data.digits import generate_digits_dataset


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    model = mindgap.build_model("Tiny-GAP5", 3, input_shape=(32, 32, 3), class_names=["cat", "dog", "owl"])
    model.save(folder / "model.keras")
    return folder / "model.keras"


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = generate_digits_dataset(tmp_path_factory.mktemp("digits") / "d", train_per_class=1, test_per_class=1, canvas_size=40, digit_size=(10, 20))
    return root + "/JPEGImages"


def test_explain_prints_top_k_and_writes_pngs(saved_model, images, tmp_path, capsys):
    image = images + "/three_001.jpg"
    assert main(["explain", image, "--model", str(saved_model), "--top", "2", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and printed[0].startswith(image + ": ") and printed[0].count(",") == 1
    names = sorted(path.name for path in tmp_path.iterdir())
    assert len(names) == 2 and names[0] == "three_001.jpg_all_cams.png" and names[1].endswith("_overlay.png")
    for name in names:
        assert keras.utils.img_to_array(keras.utils.load_img(tmp_path / name)).std() > 1.0


def test_explain_named_class_and_folder(saved_model, images, tmp_path, capsys):
    assert main(["explain", images, "--model", str(saved_model), "--class", "owl", "--out", str(tmp_path)]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 20
    assert len(list(tmp_path.glob("*_owl_overlay.png"))) == 20


def test_explain_probabilities_match_the_model(saved_model, images, tmp_path, capsys):
    main(["explain", images + "/zero_001.jpg", "--model", str(saved_model), "--top", "3", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    image, _ = mindgap.data.load_image(images + "/zero_001.jpg", 32)
    probs = keras.saving.load_model(saved_model, compile=False).predict(image[None], verbose=0)[0]
    best = int(np.argmax(probs))
    assert f"{['cat', 'dog', 'owl'][best]} {probs[best]:.3f}" in printed


@pytest.mark.parametrize(
    "arguments,message",
    [
        (["{images}/missing.jpg"], "does not exist"),
        (["{text}"], "is not an image"),
        (["{empty}"], "holds no image"),
        (["{images}/one_001.jpg", "--class", "horse"], "Unknown class 'horse'; this model knows: cat, dog, owl"),
        (["{images}/one_001.jpg", "--model-override", "{text}"], "is not a .keras model file"),
        (["{images}/one_001.jpg", "--model-override", "{foreign}"], "is not a mindgap model"),
        (["{images}/one_001.jpg", "--model-override", "{nowhere}"], "Model file .* does not exist"),
    ],
)
def test_explain_bad_input_one_line_and_exit_2(saved_model, images, tmp_path, arguments, message):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "empty").mkdir()
    foreign_input = keras.Input((4,))
    keras.Model(foreign_input, keras.layers.Dense(2)(foreign_input)).save(tmp_path / "foreign.keras")
    places = dict(images=images, text=str(tmp_path / "notes.txt"), empty=str(tmp_path / "empty"),
                  foreign=str(tmp_path / "foreign.keras"), nowhere=str(tmp_path / "nowhere.keras"))
    arguments = [argument.format(**places) for argument in arguments]
    model = str(saved_model)
    if "--model-override" in arguments:
        position = arguments.index("--model-override")
        model = arguments[position + 1]
        del arguments[position:position + 2]
    result = subprocess.run([sys.executable, "-m", "mindgap", "explain", *arguments, "--model", model, "--out", str(tmp_path / "out")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    import re
    assert re.search(message, lines[0])


def test_train_command_rejects_a_broken_dataset(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mindgap", "train", "Tiny-GAP5", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and "Could not tell the layout" in result.stderr


def test_evaluate_command_writes_report_and_curve(tmp_path, capsys):
    import json

    root = generate_digits_dataset(tmp_path / "d", train_per_class=1, test_per_class=2, canvas_size=32, digit_size=(10, 20))
    model = mindgap.build_model("Tiny-GAP-Zhou", 10, input_shape=(32, 32, 3), class_names=list(mindgap.data.DIGIT_CLASS_NAMES))
    model.save(tmp_path / "model.keras")
    code = main(["evaluate", "--model", str(tmp_path / "model.keras"), "--data-dir", root, "--out", str(tmp_path / "eval"),
                 "--test-per-class", "1"])
    assert code == 0
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["num_images"] == 10 and len(report["iou_curve_true"]) == 101
    assert set(report["localization"]) >= {"com_ground_truth", "com_prediction", "gt_known_loc", "top1_loc", "max_box_acc",
                                           "max_box_acc_v2", "pointing_game"}
    assert (tmp_path / "eval" / "iou_curve.png").stat().st_size > 1000
    assert "| accuracy (top-1) |" in capsys.readouterr().out


def test_evaluate_rejects_a_model_for_another_class_count(saved_model, tmp_path):
    root = generate_digits_dataset(tmp_path / "d", train_per_class=1, test_per_class=1, canvas_size=32, digit_size=(10, 20))
    code = main(["evaluate", "--model", str(saved_model), "--data-dir", root, "--out", str(tmp_path / "e"), "--test-per-class", "1"])
    assert code == 2
