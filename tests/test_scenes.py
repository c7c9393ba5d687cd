import hashlib
import os

import numpy as np
import pytest
from sklearn.datasets import load_digits

from mindgap.data import scenes
from mindgap.data.digits import CLASS_NAMES
from mindgap.data.layouts import load_dataset

DIGITS = load_digits()


def _grey(size=96):
    return np.full((size, size, 3), 128, np.uint8)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_the_class_box_is_the_digits_ink_and_no_letter_overlaps_it(seed):
    digit = DIGITS.images[seed]
    alone, alone_box, none = scenes.render_scene(np.random.default_rng(seed), digit, _grey(), distractors=(0, 0))
    scene, box, letters = scenes.render_scene(np.random.default_rng(seed), digit, _grey(), distractors=(4, 4))
    assert none == [] and len(letters) >= 3 and box == alone_box
    x0, y0, x1, y1 = box
    # The digit's square and its 1 px outline are untouched by the letters ...
    assert np.array_equal(scene[max(y0 - 1, 0):y1 + 1, max(x0 - 1, 0):x1 + 1], alone[max(y0 - 1, 0):y1 + 1, max(x0 - 1, 0):x1 + 1])
    # ... no letter's ink box comes within the margin of the class box, and the letters changed the scene elsewhere.
    for lx0, ly0, lx1, ly1 in letters:
        assert lx0 >= x1 + scenes.MARGIN or lx1 + scenes.MARGIN <= x0 or ly0 >= y1 + scenes.MARGIN or ly1 + scenes.MARGIN <= y0
    assert not np.array_equal(scene, alone)


def test_the_class_digit_is_small_and_anywhere():
    rng = np.random.default_rng(0)
    boxes = np.array([scenes.render_scene(rng, DIGITS.images[i], _grey())[1] for i in range(300)], np.float64)
    sides = boxes[:, 2:] - boxes[:, :2]
    area = sides.prod(axis=1) / 96**2
    assert area.max() <= (27 / 96) ** 2 and 0.02 < np.median(area) < 0.05  # the ink box is at most the 27 px square
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    assert centres.min() < 15 and centres.max() > 81  # reaches the borders on both axes
    assert abs(centres.mean() - 48) < 4  # uniform: centred on average


def test_letters_come_from_an_alphabet_disjoint_from_the_digits_and_are_drawn_like_them():
    assert not set(scenes.LETTERS) & set("OQDIJLTZESAGBPYV0123456789")  # no shape shared with a digit
    for letter in scenes.LETTERS:
        glyph = scenes.letter_glyph(letter)
        assert glyph.shape == (8, 8) and glyph.min() >= 0 and abs(glyph.max() - 16) < 1e-4
        assert 3 <= (glyph > 4).any(axis=0).sum() <= 7 and (glyph > 4).any(axis=1).sum() >= 7  # digit proportions
    # Average ink of a letter and of a digit are of one order (the contrast baseline cannot pick by ink alone).
    letters = np.mean([scenes.letter_glyph(letter, font).mean() for letter in scenes.LETTERS for font in scenes.FONTS])
    assert 0.7 < letters / DIGITS.images.mean() < 1.6


def _digest(folder):
    digest = hashlib.sha256()
    for root, _, files in sorted(os.walk(folder)):
        for name in sorted(files):
            digest.update(name.encode())
            digest.update(open(os.path.join(root, name), "rb").read())
    return digest.hexdigest()


def test_the_set_is_deterministic_reads_as_stanford40_and_refuses_other_settings(tmp_path):
    settings = dict(train_per_class=2, test_per_class=3, canvas_size=48, digit_size=(12, 18), distractors=(1, 2))
    first = scenes.generate_scenes_dataset(tmp_path / "a", seed=3, **settings)
    second = scenes.ensure_scenes_dataset(str(tmp_path / "b"), seed=3, **settings)
    assert _digest(first) == _digest(second)
    assert scenes.ensure_scenes_dataset(str(tmp_path / "b"), seed=3, **settings) == str(tmp_path / "b")  # reused
    with pytest.raises(FileExistsError, match="other settings"):
        scenes.ensure_scenes_dataset(str(tmp_path / "b"), seed=4, **settings)
    dataset, _ = load_dataset(str(tmp_path / "a"), test_per_class=2)
    assert list(dataset.class_names) == list(CLASS_NAMES) and len(dataset.train) == 20 and len(dataset.test) == 20
    with pytest.raises(ValueError, match="Bad scenes settings"):
        scenes.generate_scenes_dataset(tmp_path / "c", digit_size=(30, 40), canvas_size=48)


def test_a_pair_has_two_boxes_apart_and_its_class_needs_both_digits(tmp_path):
    rng = np.random.default_rng(0)
    canvas, boxes, letters = scenes.render_pair(rng, [DIGITS.images[0], DIGITS.images[1]], _grey())
    assert len(boxes) == 2
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = boxes
    assert ax0 >= bx1 or bx0 >= ax1 or ay0 >= by1 or by0 >= ay1  # the two parts do not overlap
    # Every digit of PAIR_DIGITS is in 4 of the 10 classes: one part alone leaves four classes open.
    assert len(scenes.PAIR_CLASS_NAMES) == 10 and scenes.PAIR_CLASS_NAMES[0] == "zero-one"
    assert all(sum(digit in pair for pair in scenes.PAIRS) == 4 for digit in scenes.PAIR_DIGITS)
    scenes.generate_pairs_dataset(tmp_path / "pairs", train_per_class=1, test_per_class=2, canvas_size=64, digit_size=(12, 16))
    dataset, _ = load_dataset(str(tmp_path / "pairs"), test_per_class=1)
    assert list(dataset.class_names) == list(scenes.PAIR_CLASS_NAMES)
    assert all(len(record.boxes) == 2 for record in dataset.train)
