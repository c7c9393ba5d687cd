"""Spatiotemporal grounding (thesis ch. 7, issue 22): the video set, the CNN-LSTM, EB-R / cEB-R, localization."""

import json
import os

import numpy as np
import pytest

from mindgap.data import video
from mindgap.data.records import DatasetError

TINY_SET = dict(frame_size=32, short_frames=4, long_frames=8, digit_size=(10, 20), train_per_class=1, val_per_class=1,
                test_per_class=1, untrimmed_per_class=1)


@pytest.fixture(scope="module")
def video_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("video") / "set"
    video.generate_video_set(root, **TINY_SET)
    return video.load_video_set(root, cache_path=None)


# ---------------------------------------------------------------- the set

def test_scaled_lengths_keep_the_thesis_proportion():
    assert video.scaled_lengths(128) == (11, 41, 65)
    assert video.scaled_lengths(32) == (3, 10, 16)
    assert video.scaled_lengths(8) == (1, 3, 4)


def test_generator_writes_every_split_with_its_segments(video_set):
    assert set(video_set.splits) == set(video.SPLITS)
    for name in ("train", "val", "test"):
        for clip in video_set.split(name):
            assert clip.num_frames == 4 and clip.segment == (0, 4) and (clip.frame_labels == clip.label).all()
    for clip in video_set.split("gt_rand"):
        assert clip.segment == (0, 2)
    for clip in video_set.split("rand_gt"):
        assert clip.segment == (2, 4)
    lengths = sorted({clip.gt_length for clip in video_set.split("rand_gt_rand")})
    assert lengths == [1, 3, 4]
    for name in ("gt_rand", "rand_gt", "rand_gt_rand"):
        for clip in video_set.split(name):
            inside = np.zeros(clip.num_frames, bool)
            inside[clip.segment[0]:clip.segment[1]] = True
            # the segment is where the GT digit is drawn, and only there
            assert (clip.frame_labels[inside] == clip.label).all()
            assert (clip.frame_labels[~inside] != clip.label).all()


def test_boxes_are_the_ink_of_the_digit_in_every_frame(monkeypatch, tmp_path):
    from mindgap.data import digits

    inks = []
    original = digits.render_canvas

    def recording(*args, **kwargs):
        canvas, ink, box = original(*args, **kwargs)
        inks.append(ink)
        return canvas, ink, box

    monkeypatch.setattr(digits, "render_canvas", recording)
    video.generate_video_set(tmp_path / "set", **{**TINY_SET, "train_per_class": 1})
    dataset = video.read_video_set(tmp_path / "set")
    boxes = [box for name in video.SPLITS for clip in dataset.split(name) for box in clip.boxes]
    assert len(boxes) == len(inks)
    for box, ink in zip(boxes, inks):
        rows = np.flatnonzero((ink > digits.INK_THRESHOLD).any(axis=1))
        columns = np.flatnonzero((ink > digits.INK_THRESHOLD).any(axis=0))
        assert tuple(box) == (columns[0], rows[0], columns[-1] + 1, rows[-1] + 1)
    # and the pixels: inside the box the frame differs from the frame's surroundings (the digit is drawn there)
    clip = dataset.split("train")[0]
    frames = video.load_clip_frames(clip).astype(np.float32)
    assert frames.shape == (4, 32, 32, 3)


def test_the_digit_moves_over_the_clip(video_set):
    moved = [np.abs(clip.boxes[-1] - clip.boxes[0]).max() for clip in video_set.split("train")]
    assert np.mean(moved) > 0


def test_generator_is_deterministic(tmp_path):
    settings = {**TINY_SET, "untrimmed_per_class": 1}
    video.generate_video_set(tmp_path / "a", **settings)
    video.generate_video_set(tmp_path / "b", **settings)
    first = video.read_video_set(tmp_path / "a").split("rand_gt_rand")[3]
    second = video.read_video_set(tmp_path / "b").split("rand_gt_rand")[3]
    assert first.segment == second.segment and np.array_equal(first.boxes, second.boxes)
    assert np.array_equal(video.load_clip_frames(first), video.load_clip_frames(second))


def test_bad_settings_and_bad_clips_give_one_line_errors(tmp_path, video_set):
    with pytest.raises(ValueError, match="gt_lengths"):
        video.resolve_settings(long_frames=8, gt_lengths=(9,))
    with pytest.raises(ValueError, match="Unknown video set setting"):
        video.resolve_settings(frames=3)
    with pytest.raises(DatasetError, match="not a video set"):
        video.read_video_set(tmp_path)
    # a box outside its frame is found by the check, before training
    clip = video_set.split("test")[0]
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(video_set.root, copy)
    record_path = copy / video.CLIPS_DIR / clip.name / video.CLIP_FILE
    record = json.loads(record_path.read_text())
    record["boxes"][1] = [0, 0, 60, 10]
    record_path.write_text(json.dumps(record))
    with pytest.raises(DatasetError, match=f"{clip.name} frame 1: outside") as error:
        video.load_video_set(copy, cache_path=None)
    assert "\n" not in str(error.value)
    record["segment"] = [3, 9]
    record_path.write_text(json.dumps(record))
    with pytest.raises(DatasetError, match="segment"):
        video.read_video_set(copy)
