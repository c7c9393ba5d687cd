"""Issue 33, what is written: experiments' models and results, generated sets, exports, and the worker pool.

Fault injection as ``test_run_folder.py`` does: ``kill -9`` during a save or a generation, read-only
and full targets (a read-only tmpfs as root; a full disk by a writer that fails with ENOSPC), and
orphaned workers after their parent is killed.
"""

import errno
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import mindgap
from mindgap import storage
from mindgap.cli import main
from mindgap.data import digits, video

STORAGE_FILE = storage.__file__
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _one_error_line(capsys):
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    return lines[0]


def _everything(folder):
    return sorted(os.path.relpath(os.path.join(root, name), folder)
                  for root, folders, names in os.walk(folder) for name in folders + names)


def _wait_for(predicate, seconds=60.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def read_only(tmp_path):
    """A read-only tmpfs (root ignores file modes, so a mount is the only honest read-only place)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a read-only tmpfs")
    place = tmp_path / "ro"
    place.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(place)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    (place / "earlier").mkdir()
    (place / "earlier" / "keep.txt").write_text("an earlier export")
    subprocess.run(["mount", "-o", "remount,ro", str(place)], check=True)
    yield place
    subprocess.run(["umount", str(place)], check=False)


# --- experiments: a kill during a save never leaves a file that counts as finished --------------------------------

SAVER = """
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("storage", sys.argv[1])
storage = importlib.util.module_from_spec(spec)
spec.loader.exec_module(storage)
with storage.atomic_path(sys.argv[2]) as temporary:
    with open(temporary, "wb") as handle:
        handle.write(b"PK" + b"x" * 1000)
        handle.flush()
        print("writing", flush=True)
        time.sleep(60)
"""


def test_a_kill_during_a_model_save_leaves_nothing_that_counts_and_the_rerun_trains_again(tmp_path, capsys):
    from experiments.common import cached_model

    target = tmp_path / "models" / "Tiny-Frames-x.keras"
    saver = subprocess.Popen([sys.executable, "-c", SAVER, STORAGE_FILE, str(target)], stdout=subprocess.PIPE, text=True)
    assert saver.stdout.readline().strip() == "writing"
    saver.send_signal(signal.SIGKILL)
    saver.wait()
    assert not target.exists()  # only the hidden temporary of the dead writer is there
    assert [name.startswith(".Tiny-Frames-x.keras.tmp-") for name in os.listdir(target.parent)] == [True]
    assert cached_model(str(target)) is None
    # a torn file an older version left (0 bytes) is not taken as finished: removed, with a note
    target.write_bytes(b"")
    assert cached_model(str(target)) is None and not target.exists()
    assert "is not a .keras model file (empty" in capsys.readouterr().err
    # an atomic save replaces the file whole, and then it counts
    model = mindgap.build_model("Tiny-Frames", 3, input_shape=(16, 16, 3), fc_units=4)
    storage.save_model(model, target)
    loaded = cached_model(str(target))
    np.testing.assert_allclose(loaded.get_layer("logits").get_weights()[0], model.get_layer("logits").get_weights()[0])
    storage.remove_temporaries(target.parent)
    assert os.listdir(target.parent) == [target.name]


def test_experiment_outputs_on_a_full_disk_keep_the_earlier_tables(tmp_path, monkeypatch):
    from experiments import common

    mode = common.resolve_mode(common.main_parser("").parse_args(["--extra-small", "--runs-dir", str(tmp_path)]))
    common.write_outputs(str(tmp_path), mode, {"experiment": "x"}, {"a": 1}, "| first |")
    before = {name: (tmp_path / name).read_text() for name in ("config.json", "results.json", "table.md")}
    real_dump = json.dump

    def full_disk(*args, **kwargs):
        real_dump(*args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(json, "dump", full_disk)
    with pytest.raises(storage.StorageError, match=r"cannot write .*config.json: No space left on device, .* free there"):
        common.write_outputs(str(tmp_path), mode, {"experiment": "x"}, {"a": 2}, "| second |")
    assert {name: (tmp_path / name).read_text() for name in before} == before
    assert sorted(os.listdir(tmp_path)) == ["config.json", "results.json", "table.md"]


# --- generated sets: written whole, or not at all ------------------------------------------------------------------

GENERATOR = """
import sys
from mindgap.data import digits
original = digits.cv2.imwrite
def slow(*args, **kwargs):
    print("image", flush=True)
    return original(*args, **kwargs)
digits.cv2.imwrite = slow
digits.generate_digits_dataset(sys.argv[1], train_per_class=3, test_per_class=3, canvas_size=32, digit_size=(12, 24))
"""


def test_a_generation_killed_half_way_leaves_nothing_and_the_rerun_writes_the_whole_set(tmp_path):
    out = tmp_path / "digits"
    generator = subprocess.Popen([sys.executable, "-c", GENERATOR, str(out)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    for _ in range(5):  # five images written, then kill -9
        assert generator.stdout.readline().strip() == "image"
    generator.send_signal(signal.SIGKILL)
    generator.wait()
    assert not out.exists()
    leftovers = os.listdir(tmp_path)
    assert len(leftovers) == 1 and leftovers[0].startswith(".digits.tmp-")
    digits.ensure_digits_dataset(out, train_per_class=3, test_per_class=3, canvas_size=32, digit_size=(12, 24))
    assert os.listdir(tmp_path) == ["digits"]  # the dead generator's temporary folder is gone
    assert len(os.listdir(out / "JPEGImages")) == 60 and (out / digits.SETTINGS_FILE).is_file()


def test_every_generator_writes_whole_and_names_an_unfinished_folder(tmp_path, monkeypatch):
    written = []
    original = video._write_clip

    def dies_after_three(folder, *args):
        if len(written) == 3:
            raise KeyboardInterrupt  # Ctrl-C (a kill leaves the same: see the digits test)
        written.append(folder)
        return original(folder, *args)

    monkeypatch.setattr(video, "_write_clip", dies_after_three)
    settings = dict(frame_size=16, short_frames=2, long_frames=4, train_per_class=1, val_per_class=1, test_per_class=1,
                    untrimmed_per_class=1, digit_size=(6, 12))
    with pytest.raises(KeyboardInterrupt):
        video.ensure_video_set(tmp_path / "clips", **settings)
    assert len(written) == 3 and os.listdir(tmp_path) == []  # three clips were written, in a folder now removed
    # an unfinished folder an older version left: named as such, not "nothing was written" about a full folder
    (tmp_path / "old" / "clips" / "train_zero_000").mkdir(parents=True)
    with pytest.raises(FileExistsError, match=r"is not empty and holds no mindgap_video.json: an unfinished set"):
        video.ensure_video_set(tmp_path / "old", **settings)
    with pytest.raises(FileExistsError, match=r"holds no mindgap_digits.json: an unfinished set"):
        digits.generate_digits_dataset(tmp_path / "old")
    # a generator added later gets the same by one decorator
    from mindgap.data.generated import writes_whole_set

    @writes_whole_set("done.json")
    def generate(out_dir):
        (open(os.path.join(out_dir, "a.txt"), "w")).write("a")
        raise RuntimeError("renderer failed")

    with pytest.raises(RuntimeError, match="renderer failed"):
        generate(tmp_path / "new")
    assert sorted(os.listdir(tmp_path)) == ["old"]


# --- workers die with their parent ----------------------------------------------------------------------------------

PARENT = """
import os, sys, time
sys.path.insert(0, sys.argv[1])
from experiments import workers
workers.map_in_parallel(time.sleep, [(120,), (120,)], 2, print_fn=lambda *a, **k: None)
"""


def _children(pid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead, waiting to be reaped
    except OSError:
        return False


def test_workers_and_the_resource_tracker_die_with_a_killed_parent():
    parent = subprocess.Popen([sys.executable, "-c", PARENT, ROOT])
    try:
        # the two workers (pinned, sleeping in _call_pinned once TensorFlow is imported) and the resource tracker
        assert _wait_for(lambda: len(_children(parent.pid)) >= 3, 60), _children(parent.pid)
        children = _children(parent.pid)
        time.sleep(1.0)  # the workers run their initializer (the parent-death signal is armed there)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    started = time.monotonic()
    assert _wait_for(lambda: not any(_alive(pid) for pid in children), 5), [pid for pid in children if _alive(pid)]
    assert time.monotonic() - started < 5


def test_a_worker_whose_parent_is_gone_before_the_signal_is_armed_ends_by_polling(tmp_path):
    from experiments.workers import die_with_parent

    # The fallback alone: the worker is told a parent pid that is not its parent (as if it had died already).
    code = (f"import sys, time; sys.path.insert(0, {ROOT!r}); from experiments.workers import die_with_parent; "
            "die_with_parent(1, poll_seconds=0.05); time.sleep(30)")
    started = time.monotonic()
    assert subprocess.run([sys.executable, "-c", code], timeout=20).returncode == 1
    assert time.monotonic() - started < 10
    assert callable(die_with_parent)


# --- exports: written beside and renamed; read-only and full targets ----------------------------------------------

@pytest.fixture(scope="module")
def cam_model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "gap5.keras"
    mindgap.build_model("Tiny-GAP5", 3, input_shape=(16, 16, 3), class_names=["a", "b", "c"]).save(path)
    return path


def test_export_into_a_read_only_place_is_one_line_and_writes_nothing(cam_model_file, read_only, capsys):
    out = read_only / "earlier"  # exists: the export itself fails to write
    assert main(["export", str(cam_model_file), "--out", str(out)]) == 1
    line = _one_error_line(capsys)
    assert f"cannot write {out / 'savedmodel'}: Read-only file system" in line and "choose a writable place" in line
    out = read_only / "new"  # cannot be made: refused before the model loads
    assert main(["export", str(cam_model_file), "--out", str(out)]) == 2
    line = _one_error_line(capsys)
    assert f"--out '{out}' cannot be made" in line and "(Read-only file system); pass a folder you can write to" in line
    assert _everything(read_only) == ["earlier", "earlier/keep.txt"]


def test_export_on_a_full_disk_keeps_the_earlier_export_and_leaves_no_variables_temp(cam_model_file, tmp_path, capsys,
                                                                                    monkeypatch):
    out = tmp_path / "out"
    assert main(["export", str(cam_model_file), "--out", str(out)]) == 0
    capsys.readouterr()
    before = {name: os.path.getsize(out / name) for name in _everything(out) if os.path.isfile(out / name)}
    real_export = keras.Model.export

    def fills_the_disk(self, path, *args, **kwargs):  # as TensorFlow's SaveV2 does: variables_temp/ half written
        os.makedirs(os.path.join(path, "variables", "variables_temp"))
        with open(os.path.join(path, "variables", "variables_temp", "part-0"), "wb") as handle:
            handle.write(b"x" * 100)
        raise failure

    monkeypatch.setattr(keras.Model, "export", fills_the_disk)
    for failure in (OSError(errno.ENOSPC, "No space left on device"),
                    tf.errors.ResourceExhaustedError(None, None, "variables_temp/part-0; No space left on device")):
        assert main(["export", str(cam_model_file), "--out", str(out)]) == 1
        line = _one_error_line(capsys)
        assert f"cannot write {out / 'savedmodel'}: No space left on device" in line and "free some space" in line
        assert {name: os.path.getsize(out / name) for name in _everything(out) if os.path.isfile(out / name)} == before
        assert os.listdir(out) == ["savedmodel"]
    monkeypatch.setattr(keras.Model, "export", real_export)
    assert main(["export", str(cam_model_file), "--out", str(out)]) == 0  # replaced whole
    assert os.listdir(out) == ["savedmodel"] and not any("variables_temp" in name for name in _everything(out))
