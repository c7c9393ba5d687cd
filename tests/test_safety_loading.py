"""Issue 33, what is read: refiner folders, model files, clips, and data that changes after its check.

Each case ends in one line naming the file and the fix (or a warning saying what was done), never a
traceback and never a silently wrong answer: bad manifests, corrupted and foreign ``.keras`` files,
models given to the wrong command, clips with bad frames, a frame corrupted after the check.
"""

import json
import os
import shutil
import subprocess
import sys

import cv2
import keras
import numpy as np
import pytest

import mindgap
from mindgap import guided_zoom as gz
from mindgap.cli import main
from mindgap.data import video
from mindgap.data.digits import generate_digits_dataset


def _one_error_line(capsys):
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    return lines[0]


# --- refiner folders ---------------------------------------------------------------------------------------------

NAMES = ["cat", "dog", "owl", "yak"]


@pytest.fixture(scope="module")
def refiner_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("refiner") / "refiner"
    model = mindgap.build_model("Tiny-GAP1", 4, input_shape=(16, 16, 3), class_names=NAMES)
    evidence = mindgap.build_model("Tiny-GAP1", 4, input_shape=(16, 16, 3), class_names=NAMES)
    gz.Refiner(model, evidence, weights=(0.5, 0.3, 0.2), methods=("cam",), rounds=1, top_k=3, source_size=16).save(folder)
    return folder


def _copy(refiner_dir, tmp_path, **changes):
    folder = tmp_path / "copy"
    shutil.copytree(refiner_dir, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    for key, value in changes.items():
        if value is None:
            del manifest[key]
        else:
            manifest[key] = value
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.mark.parametrize("changes,message", [
    (dict(class_names=NAMES[::-1]), "lists the classes [yak, owl, dog, cat] but conventional.keras holds [cat, dog, owl, "
                                    "yak]; the manifest disagrees with its models"),
    (dict(weights=None), "'weights' is missing (it must be a list (w, w_0, ..., w_L)"),
    (dict(methods=5), "'methods' must be a non-empty list of grounding methods from ceb, gradcam, rise, cam, got 5"),
    (dict(class_names=NAMES[:3]), "lists the classes [cat, dog, owl] but conventional.keras holds"),
    (dict(top_k="3", rounds=-1), "'rounds' must be an integer >= 0 (L), got -1; 'top_k' must be an integer >= 1, got '3'"),
    (dict(weights=[0.5, 0.5]), "2 weights were given for L = 1"),
])
def test_a_bad_manifest_is_refused_before_any_model_loads_naming_the_key(refiner_dir, tmp_path, changes, message):
    folder = _copy(refiner_dir, tmp_path, **changes)
    if "weights" not in changes or changes["weights"] is None:
        (folder / "evidence.keras").write_text("not even a zip")  # never reached: the manifest is refused first
    with pytest.raises(ValueError) as caught:
        gz.Refiner.load(folder)
    assert message in str(caught.value) and str(folder / "manifest.json") in str(caught.value)


def test_class_names_come_from_the_models(refiner_dir):
    model = keras.saving.load_model(refiner_dir / "conventional.keras", compile=False)
    nameless = mindgap.build_model("Tiny-GAP1", 4, input_shape=(16, 16, 3))
    with pytest.raises(ValueError, match=r"class_names \[owl, .*\] disagree with the models' own \[cat, dog, owl, yak\]"):
        gz.Refiner(model, nameless, weights=(0.5, 0.5), rounds=0, top_k=2, class_names=["owl", "cat", "dog", "yak"])
    with pytest.raises(ValueError, match="3 class names were given for 4 classes"):
        gz.Refiner(nameless, nameless, weights=(0.5, 0.5), rounds=0, top_k=2, class_names=["a", "b", "c"])
    assert gz.Refiner(model, nameless, weights=(0.5, 0.5), rounds=0, top_k=2).class_names == tuple(NAMES)


def test_damaged_text_or_foreign_model_files_are_named_with_the_fix(refiner_dir, tmp_path, capsys):
    folder = _copy(refiner_dir, tmp_path)
    evidence = folder / "evidence.keras"
    data = bytearray(evidence.read_bytes())
    start = data.index(b"model.weights.h5")  # the weights member: its bytes damaged, the zip still whole
    data[start + 200:start + 4000] = b"\0" * 3800
    evidence.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"Refiner model '.*evidence.keras' could not be loaded \(.*\); save the refiner"):
        gz.Refiner.load(folder)
    (folder / "conventional.keras").write_text("hello")
    with pytest.raises(ValueError, match=r"conventional.keras' is not a .keras model file \(5 bytes, not a zip archive: cut "
                                         r"short by an interrupted save, or another kind of file\); save the refiner again"):
        gz.Refiner.load(folder)

    @keras.saving.register_keras_serializable(package="elsewhere")
    class Foreign(keras.layers.Layer):
        def call(self, inputs):
            return inputs

    inputs = keras.Input((4,))
    keras.Model(inputs, Foreign()(inputs)).save(tmp_path / "foreign.keras")
    code = ("import sys; from mindgap.models import load_model_file\ntry: load_model_file(sys.argv[1])\n"
            "except ValueError as error: print(error)")
    printed = subprocess.run([sys.executable, "-c", code, str(tmp_path / "foreign.keras")], capture_output=True, text=True,
                             check=True).stdout.strip()
    assert "it needs class 'elsewhere>Foreign' of module" in printed and "which is not mindgap's" in printed
    shutil.copy(refiner_dir / "conventional.keras", folder / "conventional.keras")  # in the CLI: one line, exit 2
    assert main(["explain", str(tmp_path), "--refiner", str(folder), "--out", str(tmp_path / "out")]) == 2
    assert "evidence.keras' could not be loaded (BadZipFile: Bad CRC-32 for file 'model.weights.h5')" in _one_error_line(capsys)


def test_a_refiner_saved_over_an_earlier_one_on_a_full_disk_keeps_the_earlier_one(refiner_dir, tmp_path, monkeypatch):
    folder = _copy(refiner_dir, tmp_path)
    before = {name: (folder / name).read_bytes() for name in os.listdir(folder)}
    refiner = gz.Refiner.load(folder)

    def full_disk(self, path, *args, **kwargs):
        open(path, "wb").write(b"PK half a model")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keras.Model, "save", full_disk)
    with pytest.raises(mindgap.storage.StorageError, match=r"cannot write .*copy: No space left on device"):
        refiner.save(folder)
    assert {name: (folder / name).read_bytes() for name in os.listdir(folder)} == before
    assert sorted(os.listdir(tmp_path)) == ["copy"]


# --- models given to the wrong command ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def other_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    mindgap.build_model("Tiny-LSTM", 3, input_shape=(16, 16, 3), fc_units=4, lstm_units=4,
                        class_names=["a", "b", "c"]).save(folder / "lstm.keras")
    mindgap.build_model("Tiny-Frames", 3, input_shape=(16, 16, 3), fc_units=4).save(folder / "frames.keras")
    from mindgap.dropout import architectures

    architectures.build_cnn2(3, input_shape=(16, 16, 3), filters=(4, 4, 4), units=8).save(folder / "dropout.keras")
    mindgap.build_model("Tiny-GAP5", 3, input_shape=(16, 16, 3)).save(folder / "gap5.keras")
    return folder


@pytest.mark.parametrize("command,model,message", [
    ("export", "dropout", "'mindgap export' writes image models with a CAM head (GAPm or GAP-Zhou: probabilities and CAMs); "
                          "'{path}' is an Excitation Dropout classifier (no CAM head), measured by 'python -m "
                          "experiments.excitation_dropout'; keras' model.export(PATH) writes its probabilities alone."),
    ("export", "lstm", "'{path}' is a CNN-LSTM (Tiny-LSTM: clips in, a class per frame): ground it with 'mindgap "
                       "explain-video CLIP_FOLDER --model {path}'"),
    ("export", "frames", "'{path}' is a frame CNN (Tiny-Frames, no CAM head): it starts a CNN-LSTM, 'mindgap train "
                         "Tiny-LSTM --data-dir VIDEO_SET --weights {path}'"),
    ("explain", "lstm", "'mindgap explain --model' takes image models with a CAM head (GAPm or GAP-Zhou, e.g. Tiny-GAP5); "
                        "'{path}' is a CNN-LSTM"),
    ("explain-video", "gap5", "'{path}' is not a CNN-LSTM, which 'mindgap explain-video' takes (Tiny-LSTM: clips in, a "
                              "class per frame; train one with 'mindgap train Tiny-LSTM --data-dir VIDEO_SET'); '{path}' is "
                              "an image model with a CAM head: use 'mindgap explain IMAGE --model {path}'."),
])
def test_each_command_says_what_it_takes_and_which_command_fits(other_models, tmp_path, capsys, command, model, message):
    path = str(other_models / f"{model}.keras")
    arguments = {"export": ["export", path], "explain": ["explain", path, "--model", path],
                 "explain-video": ["explain-video", str(tmp_path), "--model", path]}[command]
    assert main([*arguments, "--out", str(tmp_path / "out")]) == 2
    assert message.format(path=path) in _one_error_line(capsys)


def test_training_says_which_data_a_model_takes(tmp_path, capsys):
    images = generate_digits_dataset(tmp_path / "d", train_per_class=1, test_per_class=2, canvas_size=32, digit_size=(12, 20))
    assert main(["train", "Tiny-LSTM", "--data-dir", images, "--out", str(tmp_path / "run")]) == 2
    assert (f"Tiny-LSTM takes clips (a video set of mindgap.data.video: mindgap_video.json, clips/, splits/) but {images} "
            "is not one; pass a video set") in _one_error_line(capsys)
    clips = _video_set(tmp_path / "v")
    for model in ("Tiny-GAP5", "Tiny-Frames"):
        assert main(["train", model, "--data-dir", clips, "--out", str(tmp_path / model)]) == 2
        assert (f"{model} takes images (batch, H, W, 3) but {clips} is a video set (clips); train a CNN-LSTM on it "
                "(mindgap train Tiny-LSTM)") in _one_error_line(capsys)
    assert not os.path.exists(tmp_path / "Tiny-GAP5" / "config.json")


def _video_set(folder):
    return video.generate_video_set(folder, frame_size=16, short_frames=2, long_frames=8, train_per_class=1, val_per_class=1,
                                    test_per_class=1, untrimmed_per_class=1, digit_size=(6, 12))


def test_load_model_file_names_the_missing_mindgap_class():
    error = TypeError("... Exception encountered: Could not locate class 'Functional'. Make sure custom classes ... Full "
                      "object config: {'module': 'mindgap.backbones', 'class_name': 'Functional', 'config': {}, "
                      "'registered_name': 'mindgap>Backbone'}")
    assert mindgap.models.describe_load_error(error) == ("it needs mindgap's class 'mindgap>Backbone', which is registered "
                                                        "by `import mindgap`")


# --- clips: the training check's rules in explain-video -------------------------------------------------------------

@pytest.fixture
def clip(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(4):
        cv2.imwrite(str(folder / f"{index:03d}.jpg"), rng.integers(0, 255, (16, 16, 3)).astype(np.uint8))
    return folder


def _explain_video(clip, other_models, tmp_path, out=None):
    return main(["explain-video", str(clip), "--model", str(other_models / "lstm.keras"), "--method", "bp_r",
                 "--out", str(out or tmp_path / "out")])


def test_explain_video_refuses_what_training_refuses(clip, other_models, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert _explain_video(tmp_path / "empty", other_models, tmp_path) == 2
    assert f"Clip '{tmp_path / 'empty'}' holds no frame image" in _one_error_line(capsys)
    data = (clip / "002.jpg").read_bytes()
    (clip / "002.jpg").write_bytes(data[:len(data) // 2])  # truncated: OpenCV alone decodes it as grey
    assert _explain_video(clip, other_models, tmp_path) == 2
    assert f"1 unreadable frame(s) in clip '{clip}': 002.jpg (" in _one_error_line(capsys)
    (clip / "002.jpg").write_bytes(data)
    cv2.imwrite(str(clip / "003.jpg"), np.zeros((24, 16, 3), np.uint8))
    assert _explain_video(clip, other_models, tmp_path) == 2
    assert f"The frames of clip '{clip}' have 2 sizes: 16x16 (from 000.jpg), 16x24 (from 003.jpg)" in _one_error_line(capsys)
    (clip / "003.jpg").unlink()
    (clip / "clip.json").write_text('{"label": 1, "segment": [0,')
    assert _explain_video(clip, other_models, tmp_path) == 2
    assert f"{clip / 'clip.json'} is not a readable clip record (JSONDecodeError" in _one_error_line(capsys)
    assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []


def test_explain_video_names_frames_by_their_files_and_warns_about_gaps(clip, other_models, tmp_path, capsys):
    (clip / "001.jpg").unlink()  # frames 000, 002, 003
    assert _explain_video(clip, other_models, tmp_path) == 0
    captured = capsys.readouterr()
    assert captured.err.strip() == (f"warning: clip '{clip}' lacks frame number(s) 1 between 0 and 3; its 3 frames are "
                                    "used in name order and named by their file numbers.")
    record = json.loads((tmp_path / "out" / "clip_bp_r.json").read_text())
    start, end = record["segment"]
    files = ["000.jpg", "002.jpg", "003.jpg"]
    assert record["frame_files"] == files and record["segment_files"] == [files[start], files[end - 1]]
    assert f"localized in frames {start + 1}-{end} of 3 (files {files[start]}-{files[end - 1]})" in captured.out


def test_explain_video_into_a_read_only_place_is_one_line(clip, other_models, tmp_path, capsys):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a read-only tmpfs")
    place = tmp_path / "ro"
    place.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(place)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        assert _explain_video(clip, other_models, tmp_path, out=place / "new") == 1
        line = _one_error_line(capsys)
        assert f"cannot write {place / 'new'}: Read-only file system" in line and "choose a writable place" in line
    finally:
        subprocess.run(["umount", str(place)], check=False)


def test_a_clip_of_another_length_is_named(tmp_path):
    clips = [video.Clip(str(tmp_path / f"c{index}"), ("f",) * frames, 0, (0, 1), np.zeros((frames, 4)), np.zeros(frames))
             for index, frames in enumerate((4, 4, 300, 4))]
    with pytest.raises(ValueError, match=r"1 clip\(s\) of another length: c2 has 300 frames where the other clips of the "
                                         r"batch have 4; clips of one batch need one length"):
        video.make_video_dataset(clips, num_classes=2, image_size=16)


# --- a training image corrupted after the check (same size, same modification time) ---------------------------------

def test_a_frame_corrupted_after_the_check_is_named_by_training(tmp_path, capsys):
    data = generate_digits_dataset(tmp_path / "d", train_per_class=2, test_per_class=3, canvas_size=32, digit_size=(12, 20))
    arguments = ["train", "Tiny-GAP1", "--data-dir", data, "--out", str(tmp_path / "run"), "--epochs", "1", "--image-size",
                 "16", "--batch-size", "8", "--freeze-epochs", "0", "--test-per-class", "1", "--localization-images", "0",
                 "--snapshot-images", "0", "--precise-bn-batches", "0", "--no-tensorboard", "--verbose", "0"]
    from mindgap.data import check_images

    victim = os.path.join(data, "JPEGImages", "four_002.jpg")
    assert check_images([victim]).errors == {}  # the check has seen it whole (cached by size and mtime)
    stat = os.stat(victim)
    with open(victim, "r+b") as handle:  # same size: the JPEG's markers overwritten
        handle.write(b"\0" * stat.st_size)
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert main(arguments) == 2
    line = _one_error_line(capsys)
    assert f"1 file(s) no longer decode: {victim} (" in line and "they changed after the check before training" in line
    assert check_images([victim]).errors  # the cache now knows: the next check refuses before training
