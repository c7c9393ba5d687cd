import os
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
def test_explain_bad_input_one_line_and_exit_2(saved_model, images, tmp_path, capsys, arguments, message):
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
    command = ["explain", *arguments, "--model", model, "--out", str(tmp_path / "out")]
    if message == "does not exist":  # one case through the real entry point: nothing but the line reaches stderr
        result = subprocess.run([sys.executable, "-m", "mindgap", *command], capture_output=True, text=True)
        returncode, stderr = result.returncode, result.stderr
    else:  # the rest in this process (each subprocess costs a TensorFlow import)
        capsys.readouterr()
        returncode = main(command)
        stderr = capsys.readouterr().err
    assert returncode == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
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


def test_help_and_version_answer_without_tensorflow():
    program = ("import sys; sys.argv = ['mindgap', 'train', '--help']; import mindgap, mindgap.cli; "
               "print('tensorflow' in sys.modules, mindgap.__version__); sys.exit(mindgap.cli.main(sys.argv[1:]))")
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith(f"False {mindgap.__version__}\n"), result.stderr
    for flag, shown in [("--dropout", "{none,standard,"), ("--precision", "{float32,mixed_bfloat16}"),
                        ("--unfreeze-optimizer", "{fresh,per_variable}"), ("--reduction", "{sum,mean}"),
                        ("--strategy", "{auto,default,mirrored,multi_worker}"), ("--out", "OUT")]:
        assert f"{flag} {shown}" in result.stdout, flag
    assert "--out OUT             output folder" in result.stdout
    version = subprocess.run([sys.executable, "-m", "mindgap", "--version"], capture_output=True, text=True)
    assert version.stdout == f"mindgap {mindgap.__version__}\n"
    assert mindgap._command_only_prints_help(["/venv/bin/mindgap", "explain", "--help"])
    assert not mindgap._command_only_prints_help(["/venv/bin/mindgap", "explain", "x.png"])
    assert not mindgap._command_only_prints_help(["pytest", "--help"])


def test_the_help_choices_are_the_owners():
    from mindgap.data.labels import LABEL_DRAWINGS
    from mindgap.data.layouts import FORMATS
    from mindgap.regularizers import REDUCTIONS
    from mindgap.training.config import CHOICES

    assert CHOICES["dropout"] == mindgap.dropout.METHODS and CHOICES["reduction"] == REDUCTIONS
    assert CHOICES["label_drawing"] == LABEL_DRAWINGS and CHOICES["format"] == FORMATS


def test_a_misspelled_flag_shows_the_command_usage_and_the_closest_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "Tiny-GAP5", "--data-dir", "d", "--out", "o", "--epohcs", "3"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("usage: mindgap train ") and error.strip().endswith(
        "mindgap train: error: unrecognized arguments: --epohcs 3 (did you mean --epochs?)")


@pytest.mark.parametrize("place, message", [
    ("file", "--out '{file}' is a file; pass a folder (the export writes savedmodel/"),
    ("under_file", "--out '{under_file}' lies under a file, not a folder; pass a folder."),
    ("/proc/mindgap-export", "--out '/proc/mindgap-export' cannot be made in '/proc' (No such file or directory); pass a folder"),
    ("denied", "--out '{denied}' cannot be made in '{tmp}' (Permission denied); pass a folder you can write to."),
])
def test_export_refuses_an_out_it_cannot_write_in_one_line(saved_model, tmp_path, monkeypatch, capsys, place, message):
    (tmp_path / "a_file").write_text("x")
    places = dict(file=str(tmp_path / "a_file"), under_file=str(tmp_path / "a_file" / "out"), denied=str(tmp_path / "denied"),
                  tmp=str(tmp_path))
    if place == "denied":  # root may write anywhere: the OS's refusal, as a user gets it
        real = os.makedirs

        def refuse(path, *args, **kwargs):
            if str(path) == places["denied"]:
                raise PermissionError(13, "Permission denied", str(path))
            return real(path, *args, **kwargs)
        monkeypatch.setattr(os, "makedirs", refuse)
    assert main(["export", str(saved_model), "--out", places.get(place, place)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("error: " + message.format(**places)), error


def test_explain_video_on_a_video_set_root_names_a_clip_folder(saved_model, tmp_path, capsys):
    for clip in ("a_000", "b_001"):
        (tmp_path / "set" / "clips" / clip).mkdir(parents=True)
    (tmp_path / "set" / "splits").mkdir()
    assert main(["explain-video", str(tmp_path / "set"), "--model", str(saved_model), "--out", str(tmp_path / "o")]) == 2
    expected = (f"error: '{tmp_path / 'set'}' is a video set's root, not a clip: pass one clip's folder of frames, e.g. "
                f"'{tmp_path / 'set' / 'clips' / 'a_000'}' (2 clips in '{tmp_path / 'set' / 'clips'}').\n")
    assert capsys.readouterr().err == expected


def test_an_empty_validation_split_names_the_flag(tmp_path):
    for name in ("cat", "dog"):
        (tmp_path / name).mkdir()
        for index in range(2):
            keras.utils.save_img(tmp_path / name / f"{index}.png", np.full((20, 20, 3), 100 * index, np.uint8))
    with pytest.raises(mindgap.data.DatasetError, match=r"has no val image .*; raise --val-fraction \(val_fraction\) so that"):
        mindgap.data.load_dataset(str(tmp_path), require=("train", "val"))
    dataset, _ = mindgap.data.load_dataset(str(tmp_path), require=("train", "val"), val_fraction=0.5, test_fraction=0.0)
    assert (len(dataset.train), len(dataset.val), len(dataset.test)) == (2, 2, 0)  # round(0.5 x 2) = 1 a class, as it says
