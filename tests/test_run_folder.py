"""The run folder of ``mindgap train`` and the outputs of ``mindgap explain`` under misuse and failure.

One test per row of issue 14's table: a second writer, a damaged backup or
metadata file, other settings on a finished or interrupted run, a full disk
(on a small tmpfs, as root), colliding and unsafe explain outputs, bad
argument ranges.  Training is tiny (Tiny-GAP5, 32 px, 20 images, 2 epochs).
"""

import csv
import json
import math
import os
import shutil
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest

import mindgap
from mindgap.cli import explain, main
from mindgap.data.digits import generate_digits_dataset
from mindgap.training import AtomicBestCheckpoint, run_folder
from mindgap.training.callbacks import AtomicBackup

RUN_FOLDER_FILE = run_folder.__file__


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    return str(generate_digits_dataset(tmp_path_factory.mktemp("digits") / "d", train_per_class=2, test_per_class=3,
                                       canvas_size=32, digit_size=(12, 24)))


def _train_args(data_dir, out, model="Tiny-GAP5", epochs=2, *extra):
    return ["train", model, "--data-dir", data_dir, "--out", str(out), "--epochs", str(epochs), "--image-size", "32",
            "--batch-size", "8", "--freeze-epochs", "0", "--test-per-class", "2", "--localization-images", "4",
            "--snapshot-images", "1", "--verbose", "0", *extra]


@pytest.fixture(scope="module")
def finished_run(digits_dir, tmp_path_factory):
    """A finished 2-epoch Tiny-GAP5 run; tests copy it."""
    out = tmp_path_factory.mktemp("template") / "run"
    assert main(_train_args(digits_dir, out)) == 0
    return out


@pytest.fixture
def run_copy(finished_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    return out


def _epochs_logged(out):
    with open(out / "history.csv", newline="") as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


def _listing(folder, skip=()):
    """{relative path: (size, mtime)} of every file: what "changes nothing" compares."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            if name in skip:
                continue
            path = os.path.join(root, name)
            stat = os.stat(path)
            found[os.path.relpath(path, folder)] = (stat.st_size, stat.st_mtime_ns)
    return found


def _temporaries(folder):
    return [path for path in _listing(folder) if run_folder.TEMPORARY_MARK in path or ".pending." in path or path.endswith(".tmp")]


def _one_error_line(capsys):
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    return lines[0]


# --- one writer ---------------------------------------------------------------------------------------------

HOLDER = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("run_folder", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
module.RunLock(sys.argv[2]).acquire()
print("locked", flush=True)
sys.stdin.read()
"""


def test_a_second_writer_is_refused_naming_the_holder_and_changes_nothing(run_copy, digits_dir, capsys):
    (run_copy / "done.json").unlink()  # an unfinished run: the second process would train into it
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, RUN_FOLDER_FILE, str(run_copy)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = _listing(run_copy)
        assert main(_train_args(digits_dir, run_copy, "Tiny-GAP5", 4)) == 2
        line = _one_error_line(capsys)
        assert f"in use by another mindgap train (pid {holder.pid})" in line
        assert _listing(run_copy) == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # kill -9 released the lock: the folder can be written again.
    with run_folder.RunLock(run_copy):
        assert (run_copy / "run.lock").read_text().strip() == str(os.getpid())


# --- a resume that always works or says why not -----------------------------------------------------------------

def test_unreadable_newest_backup_falls_back_to_the_previous_one(run_copy, digits_dir, capsys):
    (run_copy / "done.json").unlink()
    newest = run_copy / "backup" / "epoch-000002.weights.h5"
    newest.write_bytes(newest.read_bytes()[:5000])  # as left by a crash mid-write without the atomic rename
    text = (run_copy / "history.csv").read_text()
    (run_copy / "history.csv").write_text(text[: len(text) - 40])  # and the last history row cut mid-number
    assert main(_train_args(digits_dir, run_copy)) == 0
    err = capsys.readouterr().err
    assert "the backup of epoch 2" in err and "unreadable" in err and "Traceback" not in err
    assert _epochs_logged(run_copy) == [0, 1]  # epoch 1 ran again from the state of epoch 0's end, once
    assert json.loads((run_copy / "backup" / "training_metadata.json").read_text())["epoch"] == 2
    assert not _temporaries(run_copy)


def test_truncated_first_backup_restarts_cleanly_with_a_warning(run_copy, digits_dir, capsys):
    # The first (and only) backup cut short, e.g. by kill -9 during the write of an older version.
    (run_copy / "done.json").unlink()
    (run_copy / "backup" / "epoch-000002.weights.h5").unlink()
    first = run_copy / "backup" / "epoch-000001.weights.h5"
    first.write_bytes(first.read_bytes()[:3000])
    assert main(_train_args(digits_dir, run_copy, "Tiny-GAP5", 1)) == 0  # an unfinished run may end sooner
    err = capsys.readouterr().err
    assert "no readable backup left" in err and "restarts from epoch 0" in err and "Traceback" not in err
    assert _epochs_logged(run_copy) == [0]  # the old epochs' rows, best model and snapshots are gone
    assert sorted(os.listdir(run_copy / "cam_snapshots")) == ["epoch_001.png"]
    record = json.loads((run_copy / "best.keras.json").read_text())
    assert record["sha256"] == run_folder.file_sha256(run_copy / "best.keras")


def test_best_keras_and_its_record_are_one_commit(tmp_path, capsys):
    model = mindgap.build_model("Tiny-GAP5", 3, input_shape=(32, 32, 3))
    path = tmp_path / "best.keras"
    checkpoint = AtomicBestCheckpoint(path)
    checkpoint.set_model(model)
    checkpoint.on_epoch_end(0, {"val_loss": 1.0})
    record = json.loads((tmp_path / "best.keras.json").read_text())
    assert record["best"] == 1.0 and record["epoch"] == 1 and record["sha256"] == run_folder.file_sha256(path)
    assert AtomicBestCheckpoint(path).best == 1.0

    # A crash after the record but before the rename: the next start finishes the commit.
    model.get_layer("gap_maps").kernel.assign(model.get_layer("gap_maps").kernel + 1.0)
    pending = tmp_path / ".best.keras.pending.keras"
    model.save(pending)
    run_folder.write_json(tmp_path / "best.keras.json", {"best": 0.5, "epoch": 2, "monitor": "val_loss",
                                                         "sha256": run_folder.file_sha256(pending)})
    resumed = AtomicBestCheckpoint(path)
    assert resumed.best == 0.5 and not pending.exists()
    assert run_folder.file_sha256(path) == json.loads((tmp_path / "best.keras.json").read_text())["sha256"]

    # A crash before the record: the pending model is dropped, the committed pair stays.
    model.save(pending)
    assert AtomicBestCheckpoint(path).best == 0.5 and not pending.exists()

    # A record that does not describe best.keras (or an emptied one) never lets its score stand.
    (tmp_path / "best.keras.json").write_text("")
    capsys.readouterr()
    assert AtomicBestCheckpoint(path).best == math.inf
    assert "its score is unknown" in capsys.readouterr().err


# --- settings that must match ---------------------------------------------------------------------------------

@pytest.mark.parametrize("model,epochs,extra,shown", [
    ("Tiny-GAP10", 2, [], "model_name 'Tiny-GAP5' → 'Tiny-GAP10'"),
    ("Tiny-GAP5-L1", 2, [], "model_name 'Tiny-GAP5' → 'Tiny-GAP5-L1'"),
    ("Tiny-GAP5", 2, ["--image-size", "48"], "image_size 32 → 48"),
    ("Tiny-GAP5", 1, [], "finished 2-epoch run, not a 1-epoch one"),
    ("Tiny-GAP5", 2, ["--learning-rate", "0.01", "--seed", "3"], "learning_rate 0.002 → 0.01; seed 0 → 3"),
    ("Tiny-GAP5", 2, ["--allow-empty-classes"], "allow_empty_classes False → True"),  # a data option, like the others
])
def test_finished_run_with_other_settings_is_refused(run_copy, digits_dir, capsys, model, epochs, extra, shown):
    before = _listing(run_copy, skip=["run.lock"])  # the refusing process holds the lock, so it writes its pid there
    args = _train_args(digits_dir, run_copy, model, epochs)
    if "--image-size" in extra:
        args[args.index("--image-size") + 1] = extra[1]
    else:
        args += extra
    assert main(args) == 2
    line = _one_error_line(capsys)
    assert shown in line, line
    assert _listing(run_copy, skip=["run.lock"]) == before


def test_interrupted_run_resumed_with_other_settings_is_refused(run_copy, digits_dir, capsys):
    (run_copy / "done.json").unlink()
    before = _listing(run_copy, skip=["run.lock"])
    assert main(_train_args(digits_dir, run_copy, "Tiny-GAP5-L1")) == 2
    assert "model_name 'Tiny-GAP5' → 'Tiny-GAP5-L1'" in _one_error_line(capsys)
    args = _train_args(digits_dir, run_copy)
    args[args.index("--image-size") + 1] = "48"
    assert main(args) == 2
    assert "image_size 32 → 48" in _one_error_line(capsys)
    assert _listing(run_copy, skip=["run.lock"]) == before


def test_other_data_is_refused(run_copy, tmp_path, capsys):
    other = generate_digits_dataset(tmp_path / "other", train_per_class=2, test_per_class=3, canvas_size=32,
                                    digit_size=(12, 24), seed=5)
    assert main(_train_args(other, run_copy)) == 2
    assert "data (other images, labels or boxes)" in _one_error_line(capsys)


def test_a_finished_run_is_returned_when_only_safe_settings_change(run_copy, digits_dir, capsys):
    before = _listing(run_copy, skip=["run.lock"])
    assert main(_train_args(digits_dir, run_copy, "Tiny-GAP5", 2, "--no-tensorboard", "--snapshot-images", "2")) == 0
    assert "holds this finished run" in capsys.readouterr().out
    assert {path: value for path, value in _listing(run_copy, skip=["run.lock"]).items() if path != "config.json"} == \
           {path: value for path, value in before.items() if path != "config.json"}


def test_more_epochs_extend_a_finished_run_even_with_an_emptied_metadata_file(run_copy, digits_dir, capsys):
    (run_copy / "backup" / "training_metadata.json").write_text("")
    assert main(_train_args(digits_dir, run_copy, "Tiny-GAP5", 3)) == 0
    captured = capsys.readouterr()
    assert "extending the finished 2-epoch run" in captured.out and "Traceback" not in captured.err
    assert _epochs_logged(run_copy) == [0, 1, 2]
    assert json.loads((run_copy / "done.json").read_text())["epochs"] == 3
    assert json.loads((run_copy / "config.json").read_text())["epochs"] == 3
    assert json.loads((run_copy / "backup" / "training_metadata.json").read_text())["epoch"] == 3
    assert main(_train_args(digits_dir, run_copy, "Tiny-GAP5", 2)) == 2  # the 3-epoch run cannot become 2 again


# --- full disk and unwritable places ---------------------------------------------------------------------------

class SmallDisk:
    def __init__(self, path):
        self.path = path

    def mount(self, size):
        options = f"size={size}" if not os.path.ismount(self.path) else f"remount,size={size}"
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(self.path)], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs here: {result.stderr.strip()}")


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the full-disk cases need root to mount a small tmpfs")
    disk = SmallDisk(tmp_path / "disk")
    disk.path.mkdir()
    yield disk
    if os.path.ismount(disk.path):
        subprocess.run(["umount", str(disk.path)], check=False)


def _assert_storage_error(result, path_part):
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot write ") and path_part in lines[0], result.stderr[-2000:]
    assert " free there" in lines[0]


def test_full_disk_during_the_first_backup_stops_cleanly_and_resumes(small_disk, digits_dir):
    small_disk.mount("5m")  # best.keras (3.7 MB) fits, the first backup does not
    out = small_disk.path / "run"
    command = [sys.executable, "-m", "mindgap", *_train_args(digits_dir, out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    _assert_storage_error(result, "backup")
    assert not _temporaries(out)
    keras.saving.load_model(out / "best.keras", compile=False)  # the committed best model is whole
    assert not list((out / "backup").glob("*.weights.h5"))

    small_disk.mount("20m")  # space freed: the same command restarts the run and finishes it (here in-process: one
    assert main(_train_args(digits_dir, out)) == 0  # TensorFlow start fewer than a second subprocess)
    assert _epochs_logged(out) == [0, 1] and (out / "done.json").exists()
    assert not _temporaries(out)


def test_full_disk_during_a_best_keras_write_keeps_the_previous_best(small_disk):
    small_disk.mount("6m")
    model = mindgap.build_model("Tiny-GAP5", 3, input_shape=(32, 32, 3))
    checkpoint = AtomicBestCheckpoint(small_disk.path / "best.keras")
    checkpoint.set_model(model)
    checkpoint.on_epoch_end(0, {"val_loss": 1.0})
    committed = run_folder.file_sha256(small_disk.path / "best.keras")
    size = os.path.getsize(small_disk.path / "best.keras")
    with open(small_disk.path / "filler", "wb") as handle:  # leave half a model's size free
        handle.write(b"x" * (run_folder.free_bytes(small_disk.path) - size // 2))
    with pytest.raises(run_folder.StorageError, match=r"cannot write .*best.keras: about .* needed, .* MB free there"):
        checkpoint.on_epoch_end(1, {"val_loss": 0.5})
    assert run_folder.file_sha256(small_disk.path / "best.keras") == committed
    assert json.loads((small_disk.path / "best.keras.json").read_text())["best"] == 1.0
    assert sorted(os.listdir(small_disk.path)) == ["best.keras", "best.keras.json", "filler"]
    # The same for a backup state: the older state stays, nothing half-written is left.
    backup = AtomicBackup(small_disk.path / "backup")
    backup.set_model(model)
    with pytest.raises(run_folder.StorageError, match="epoch-000001.weights.h5"):
        backup.save(1)
    assert os.listdir(small_disk.path / "backup") == []


# --- explain ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def odd_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("odd")
    model = mindgap.build_model("Tiny-GAP5", 3, input_shape=(32, 32, 3), class_names=["a/b", "../up", "ok"])
    model.save(folder / "model.keras")
    return folder / "model.keras"


def _image(path, height, width, seed):
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3)).astype("uint8")
    keras.utils.save_img(path, pixels)
    return path


def test_explain_outputs_never_collide_and_keep_each_images_size(odd_model, tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    _image(images / "cat.jpg", 64, 96, 0)
    _image(images / "cat.png", 40, 40, 1)
    written = explain(str(images), str(odd_model), str(tmp_path / "out"), top=1)
    names = sorted(os.path.basename(path) for path in written)
    assert len(set(names)) == 5 and sorted(os.listdir(tmp_path / "out")) == names and "predictions.csv" in names  # a folder's
    assert {name for name in names if name.endswith("_all_cams.png")} == {"cat.jpg_all_cams.png", "cat.png_all_cams.png"}
    for source, (height, width) in (("cat.jpg", (64, 96)), ("cat.png", (40, 40))):
        overlay = [name for name in names if name.startswith(source) and name.endswith("_overlay.png")]
        assert len(overlay) == 1
        pixels = keras.utils.img_to_array(keras.utils.load_img(tmp_path / "out" / overlay[0]))
        assert pixels.shape == (height, width, 3)


def test_explain_box_is_moved_back_from_the_models_frame(odd_model, tmp_path):
    source = _image(tmp_path / "wide.png", 48, 128, 2)  # 32 px model input: x × 4, y × 1.5
    written = explain(str(source), str(odd_model), str(tmp_path / "out"), top=1, threshold=0.5)
    overlay = keras.utils.img_to_array(keras.utils.load_img(written[0])).astype(int)
    image, _ = mindgap.data.load_image(source, 32)
    probabilities, cams = mindgap.cam_model(keras.saving.load_model(odd_model, compile=False)).predict(image[None], verbose=0)
    chosen = int(probabilities[0].argmax())
    x_min, y_min, x_max, y_max = mindgap.metrics.cam_to_box(mindgap.upsample_map(cams[0, ..., chosen], (32, 32)), 0.5)
    red = np.argwhere((overlay[..., 0] == 255) & (overlay[..., 1] == 0) & (overlay[..., 2] == 0))
    assert len(red) > 0
    # The rectangle's outer edge is the box's (pixel-edge, exclusive ends) scaled to the image, within rounding and
    # the 2-pixel line's one pixel outward.
    (top, left), (bottom, right) = red.min(axis=0), red.max(axis=0)
    assert abs(left - x_min * 4) <= 2 and abs(right - (x_max * 4 - 1)) <= 2
    assert abs(top - y_min * 1.5) <= 2 and abs(bottom - (y_max * 1.5 - 1)) <= 2


@pytest.mark.parametrize("class_name,expected", [("a/b", "a-b"), ("../up", "up")])
def test_explain_class_names_with_slashes_stay_inside_the_output_folder(odd_model, tmp_path, class_name, expected):
    source = _image(tmp_path / "x.jpg", 32, 32, 3)
    out = tmp_path / "deep" / "out"
    written = explain(str(source), str(odd_model), str(out), class_name=class_name)
    assert os.path.basename(written[0]) == f"x.jpg_{expected}_overlay.png" and os.path.isfile(written[0])
    assert sorted(os.listdir(tmp_path / "deep")) == ["out"]
    assert sorted(os.listdir(out)) == sorted(os.path.basename(path) for path in written)


@pytest.mark.parametrize("arguments,message", [
    (["--top", "-3"], "--top must be an integer >= 1, got -3"),
    (["--top", "0"], "--top must be an integer >= 1, got 0"),
    (["--threshold", "2"], r"--threshold must be a fraction of the CAM's max in \[0, 1\], got 2.0"),
    (["--threshold", "nan"], "got nan"),
    (["--threshold", "-0.1"], "got -0.1"),
])
def test_explain_rejects_bad_ranges(odd_model, tmp_path, capsys, arguments, message):
    import re

    source = _image(tmp_path / "x.jpg", 32, 32, 4)
    assert main(["explain", str(source), "--model", str(odd_model), "--out", str(tmp_path / "out"), *arguments]) == 2
    assert re.search(message, _one_error_line(capsys))
    assert not (tmp_path / "out").exists()


def test_explain_caps_top_at_the_class_count_with_a_note(odd_model, tmp_path, capsys):
    source = _image(tmp_path / "x.jpg", 32, 32, 5)
    assert main(["explain", str(source), "--model", str(odd_model), "--out", str(tmp_path / "out"), "--top", "9"]) == 0
    captured = capsys.readouterr()
    assert "note: --top 9 is more than the model's 3 classes; showing 3." in captured.err
    assert captured.out.count(",") == 2  # three classes listed


def test_explain_model_folder_gets_a_correct_message(finished_run, tmp_path, capsys):
    source = _image(tmp_path / "x.jpg", 32, 32, 6)
    assert main(["explain", str(source), "--model", str(finished_run), "--out", str(tmp_path / "out")]) == 2
    line = _one_error_line(capsys)
    assert "is a folder, not a .keras file; pass" in line and str(finished_run / "best.keras") in line


def test_explain_into_an_unwritable_place_is_one_line(odd_model, tmp_path, capsys):
    source = _image(tmp_path / "x.jpg", 32, 32, 7)
    (tmp_path / "file").write_text("not a folder")
    assert main(["explain", str(source), "--model", str(odd_model), "--out", str(tmp_path / "file" / "out")]) == 1
    line = _one_error_line(capsys)
    assert f"cannot write {tmp_path / 'file' / 'out'}" in line and "free there" in line


def test_explain_on_a_full_disk_leaves_no_partial_png(small_disk, odd_model, tmp_path, capsys):
    small_disk.mount("64k")
    source = _image(tmp_path / "big.png", 256, 256, 8)  # its overlay PNG (~190 kB) cannot fit
    assert main(["explain", str(source), "--model", str(odd_model), "--out", str(small_disk.path / "out")]) == 1
    line = _one_error_line(capsys)
    assert "cannot write" in line and "big.png" in line and "free there" in line
    assert os.listdir(small_disk.path / "out") == []
