"""Every image decoded and every box checked before training: each bad input ends with exit 2 naming the file, before epoch 1."""

import json
import os
import shutil
import sys

import numpy as np
import pytest

import mindgap
from mindgap.cli import main
from mindgap.data import DatasetError, check_images, load_dataset, read_folders
from mindgap.data.check import box_problem, check_dataset, default_cache_path
from mindgap.data.digits import generate_digits_dataset

sys.path.insert(0, os.path.dirname(__file__))
from test_layouts import write_folders  # noqa: E402

TINY = ["--image-size", "32", "--epochs", "1", "--batch-size", "8", "--freeze-epochs", "0", "--no-tensorboard",
        "--verbose", "0", "--localization-images", "8", "--snapshot-images", "1"]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MINDGAP_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    root = generate_digits_dataset(tmp_path_factory.mktemp("digits") / "d", train_per_class=2, test_per_class=2,
                                   canvas_size=32, digit_size=(10, 20))
    known = {}
    for split, records in zip(("train", "val", "test"), _stanford_splits(root)):
        for record in records:
            known[record.name] = (split, record.label, tuple(float(v) for v in record.boxes[0]))
    return root, known


def _stanford_splits(root):
    dataset = mindgap.data.read_stanford40(root, test_per_class=1)
    return dataset.train, dataset.val, dataset.test


@pytest.fixture
def folders(digits, tmp_path):
    return write_folders(digits, tmp_path / "folders")


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _set_box(root, image, box):
    rows = (root / "boxes.csv").read_text().splitlines()
    rows = [row if not row.startswith(image + ",") else f"{image},{box}" for row in rows]
    (root / "boxes.csv").write_text("\n".join(rows) + "\n")


def _add_line(root, split, line):
    with open(root / "splits" / f"{split}.txt", "a") as handle:
        handle.write(line + "\n")


BAD_INPUTS = {
    "truncated JPEG": (lambda root: _truncate(root / "zero" / "zero_001.jpg"), "zero/zero_001.jpg", "unreadable images"),
    "zero-byte file": (lambda root: (root / "one" / "one_001.jpg").write_bytes(b""), "one/one_001.jpg", "Input is empty"),
    "text named .jpg": (lambda root: (root / "two" / "two_001.jpg").write_text("not an image"), "two/two_001.jpg",
                        "Unknown image file format"),
    "xmin > xmax": (lambda root: _set_box(root, "three/three_001.jpg", "20,2,10,9"), "three/three_001.jpg", "x_min >= x_max"),
    "nan": (lambda root: _set_box(root, "four/four_001.jpg", "nan,2,10,9"), "four/four_001.jpg", "not finite"),
    "box far outside": (lambda root: _set_box(root, "five/five_001.jpg", "100,100,200,200"), "five/five_001.jpg",
                        "outside the 32x32 image"),
    "duplicate": (lambda root: _add_line(root, "train", "six/six_001.jpg"), "six/six_001.jpg", "listed 2 times in train"),
    "leak": (lambda root: _add_line(root, "train", "seven/seven_004.jpg"), "seven/seven_004.jpg", "is in both train and val"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_each_bad_input_exits_2_before_the_first_epoch_naming_the_file(folders, tmp_path, capsys, case):
    damage, name, reason = BAD_INPUTS[case]
    damage(folders)
    out = tmp_path / "run"
    assert main(["train", "Tiny-GAP5", "--data-dir", str(folders), "--out", str(out), *TINY]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: folders dataset at") and "1 problem(s) found before starting" in error
    assert name in error and reason in error, error
    assert not (out / "history.csv").exists() and not (out / "config.json").exists()


def test_stanford_boxes_with_nan_and_swapped_ends_are_named(digits, tmp_path, capsys):
    root = shutil.copytree(digits[0], tmp_path / "stanford")
    for stem, (x_min, x_max) in (("zero_001", ("nan", "20")), ("one_001", ("25", "3"))):
        path = root / "XMLAnnotations" / f"{stem}.xml"
        text = path.read_text()
        start, end = text.index("<xmin>") + 6, text.index("</xmin>")
        text = text[:start] + x_min + text[end:]
        start, end = text.index("<xmax>") + 6, text.index("</xmax>")
        path.write_text(text[:start] + x_max + text[end:])
    assert main(["train", "Tiny-GAP5", "--data-dir", str(root), "--out", str(tmp_path / "run"), "--test-per-class", "1", *TINY]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "2 bad boxes" in error and "zero_001.jpg box 1 (nan, " in error and "one_001.jpg box 1 (24, " in error
    assert "--skip-bad-images" in error


def test_many_problems_in_one_error_first_few_and_count(folders):
    for name in ("zero", "one", "two", "three", "four", "five", "six"):
        (folders / name / f"{name}_001.jpg").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"7 problem\(s\).*7 unreadable images: .*\(and 2 more\)"):
        load_dataset(folders)


def test_duplicates_within_train_may_be_allowed_but_leaks_never(folders):
    _add_line(folders, "train", "six/six_001.jpg")
    dataset, _ = load_dataset(folders, allow_train_duplicates=True)
    assert sum(record.name == "six_001.jpg" for record in dataset.train) == 2
    _add_line(folders, "test", "six/six_001.jpg")
    with pytest.raises(DatasetError, match="six_001.jpg is in both train and test"):
        load_dataset(folders, allow_train_duplicates=True, skip_bad_images=True)


def test_boxes_are_clipped_by_at_most_a_pixel():
    clipped, reason = box_problem((-0.5, -1.0, 32.5, 33.0), 32, 32)
    assert reason is None and clipped.tolist() == [0, 0, 32, 32]
    assert box_problem((0, 0, 33.5, 32), 32, 32)[1] == "outside the 32x32 image by more than 1 pixel"
    assert box_problem((32.5, 0, 33, 5), 32, 32)[1] == "empty once clipped to the 32x32 image"
    assert box_problem((3, 9, 8, 9), 32, 32)[1] == "y_min >= y_max"
    assert box_problem((3, 2, 8, np.inf), 32, 32)[1] == "a coordinate is not finite"


def test_second_check_decodes_nothing_until_a_file_changes(folders):
    paths = sorted(str(path) for path in folders.glob("*/*.jpg"))
    first = check_images(paths)
    assert (first.decoded, first.from_cache, len(first.sizes)) == (40, 0, 40)
    assert os.path.isfile(default_cache_path()) and first.sizes[paths[0]] == (32, 32)
    second = check_images(paths)
    assert (second.decoded, second.from_cache, second.sizes) == (0, 40, first.sizes)
    _truncate(folders / "zero" / "zero_001.jpg")  # new size: decoded again, and now bad
    third = check_images(paths)
    assert third.decoded == 1 and list(third.errors) == [str(folders / "zero" / "zero_001.jpg")]


def test_wsol_size_mismatch_is_named(digits, tmp_path):
    from test_layouts import write_wsol

    metadata = write_wsol(digits, tmp_path / "meta", tmp_path / "meta" / "images")
    sizes = metadata / "val" / "image_sizes.txt"
    sizes.write_text(sizes.read_text().replace(",32,32", ",64,48", 1))
    with pytest.raises(DatasetError, match="images whose size disagrees with the metadata: .*the metadata says 64x48 but the file is 32x32"):
        load_dataset(metadata)


def test_skip_bad_images_trains_on_the_rest_and_records_the_drops(folders, tmp_path, capsys):
    _truncate(folders / "zero" / "zero_001.jpg")
    _set_box(folders, "four/four_004.jpg", "nan,2,10,9")
    out = tmp_path / "run"
    assert main(["train", "Tiny-GAP5", "--data-dir", str(folders), "--out", str(out), "--skip-bad-images", *TINY]) == 0
    captured = capsys.readouterr()
    assert "dropped 1 unreadable images: " in captured.err and "zero/zero_001.jpg" in captured.err
    assert "dropped 1 bad boxes: " in captured.err and "four/four_004.jpg box 1" in captured.err
    config = json.loads((out / "config.json").read_text())
    check = config["data"]["check"]
    assert config["skip_bad_images"] is True and config["data"]["layout"] == "folders"
    assert [(item["path"].endswith("zero_001.jpg"), item["split"]) for item in check["dropped_images"]] == [(True, "train")]
    assert [(item["path"].endswith("four_004.jpg"), item["reason"]) for item in check["dropped_boxes"]] == [(True, "a coordinate is not finite")]
    assert config["data"]["train_images"] == 19 and config["data"]["val_images_with_boxes"] == 9
    assert len((out / "history.csv").read_text().splitlines()) == 2  # header and epoch 1


def test_without_boxes_training_works_and_localization_says_skipped(digits, tmp_path, capsys):
    root = write_folders(digits, tmp_path / "plain", boxes=False, splits=False)
    out = tmp_path / "run"
    assert main(["train", "Tiny-GAP5", "--data-dir", str(root), "--out", str(out), *TINY]) == 0
    assert "localization measures skipped: no validation image has a ground-truth box" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["split"].startswith("stratified seeded split (seed 0)") and config["data"]["val_images"] == 10
    header = (out / "history.csv").read_text().splitlines()[0]
    assert "val_accuracy" in header and "val_loc_gt" not in header

    # evaluate splits the folder as the run did (config.json beside the model) and skips localization
    assert main(["evaluate", "--model", str(out / "best.keras"), "--data-dir", str(root), "--out", str(tmp_path / "eval")]) == 0
    printed = capsys.readouterr().out
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["num_images"] == 10 and "no image of this split has a ground-truth box" in printed
    assert list(report["localization"]) == ["cam_mass_on_true_class"] and not (tmp_path / "eval" / "iou_curve.png").exists()


def test_evaluate_checks_the_split_it_reads(folders, tmp_path, capsys):
    model = mindgap.build_model("Tiny-GAP5", 10, input_shape=(32, 32, 3))
    model.save(tmp_path / "model.keras")
    (folders / "nine" / "nine_003.jpg").write_text("text")  # a test image
    arguments = ["evaluate", "--model", str(tmp_path / "model.keras"), "--data-dir", str(folders), "--out", str(tmp_path / "e")]
    assert main(arguments) == 2
    assert "nine/nine_003.jpg (Unknown image file format" in capsys.readouterr().err
    assert main(arguments + ["--skip-bad-images"]) == 0
    assert json.loads((tmp_path / "e" / "report.json").read_text())["num_images"] == 9


def test_explain_checks_a_folder_first(folders, tmp_path, capsys):
    model = mindgap.build_model("Tiny-GAP5", 10, input_shape=(32, 32, 3))
    model.save(tmp_path / "model.keras")
    _truncate(folders / "zero" / "zero_002.jpg")
    arguments = ["explain", str(folders / "zero"), "--model", str(tmp_path / "model.keras"), "--out", str(tmp_path / "x")]
    assert main(arguments) == 2
    assert "1 unreadable images: " in capsys.readouterr().err
    assert main(arguments + ["--skip-bad-images"]) == 0
    assert "dropped 1 unreadable images" in capsys.readouterr().err
    assert len(list((tmp_path / "x").glob("*_overlay.png"))) == 3


def test_experiments_check_their_data(folders):
    import argparse

    from experiments.common import prepare_data, resolve_mode

    (folders / "one" / "one_002.jpg").write_bytes(b"")
    mode = resolve_mode(argparse.Namespace(full=True, extra_small=False, data_dir=str(folders), runs_dir="runs", weights=None,
                                           googlenet_weights=None, epochs=None, alpha=None, format="folders", image_root=None))
    with pytest.raises(DatasetError, match="one/one_002.jpg"):
        prepare_data(mode)


def test_check_dataset_keeps_good_records_untouched(folders):
    dataset = read_folders(folders)
    checked, report = check_dataset(dataset)
    assert report.images == 40 and report.dropped_images == [] and report.clipped_boxes == 0
    for split in ("train", "val", "test"):
        for before, after in zip(getattr(dataset, split), getattr(checked, split)):
            assert before.path == after.path and before.label == after.label
            np.testing.assert_array_equal(before.boxes, after.boxes)


def test_a_broken_cache_file_only_costs_the_cache(folders, tmp_path):
    broken = tmp_path / "broken.sqlite"
    broken.write_text("this is not a database")
    paths = sorted(str(path) for path in folders.glob("zero/*.jpg"))
    result = check_images(paths, cache_path=str(broken))
    assert (result.decoded, len(result.sizes)) == (4, 4)


def test_skipping_that_empties_a_split_is_an_error(folders):
    for path in (folders / "splits" / "val.txt").read_text().split():
        (folders / path).write_bytes(b"")
    with pytest.raises(DatasetError, match="No readable val image is left"):
        load_dataset(folders, require=("train", "val"), skip_bad_images=True, print_fn=lambda line: None)
