import os
import shutil

import cv2
import numpy as np
import pytest
import tensorflow as tf

import mindgap
from mindgap.data import DatasetError, hide_and_seek_mask, make_dataset, read_stanford40, valid_boxes
from mindgap.data.digits import INK_THRESHOLD, generate_digits_dataset, render_canvas

# Class order of actions.txt is not alphabetical, and names hold underscores, as in Stanford 40.
ACTIONS = ["writing_on_a_board", "applauding", "blowing_bubbles"]
TRAIN_PER_CLASS, TEST_PER_CLASS = 3, 5


def _annotation(file_name, action, boxes, width=40, height=30):
    objects = "".join(
        f"  <object>\n    <name>person</name>\n    <action>{action}</action>\n    <bndbox>\n"
        f"      <xmax>{x1}</xmax>\n      <xmin>{x0}</xmin>\n      <ymax>{y1}</ymax>\n      <ymin>{y0}</ymin>\n"
        "    </bndbox>\n  </object>\n"
        for x0, y0, x1, y1 in boxes
    )
    return (f"<annotation>\n  <filename>{file_name}</filename>\n  <folder>Stanford40</folder>\n{objects}"
            f"  <size>\n    <depth>3</depth>\n    <height>{height}</height>\n    <width>{width}</width>\n  </size>\n</annotation>\n")


def make_stanford_tree(root):
    """A tiny tree laid out and written exactly like the real archives."""
    for folder in ("JPEGImages", "XMLAnnotations", "ImageSplits"):
        os.makedirs(root / folder)
    lines = {"train": [], "test": []}
    for action in ACTIONS:
        per_class = {"train": [], "test": []}
        for number in range(1, TRAIN_PER_CLASS + TEST_PER_CLASS + 1):
            name = f"{action}_{number:03d}.jpg"
            split = "train" if number <= TRAIN_PER_CLASS else "test"
            gray = action == "applauding" and number == 1
            image = np.full((30, 40) if gray else (30, 40, 3), 90, np.uint8)
            cv2.imwrite(str(root / "JPEGImages" / name), image)
            boxes = [(1, 1, 40, 30)] if number != 2 else [(2, 3, 20, 15), (21, 4, 40, 30)]
            (root / "XMLAnnotations" / name.replace(".jpg", ".xml")).write_text(_annotation(name, action, boxes))
            per_class[split].append(name)
        for split in per_class:
            (root / "ImageSplits" / f"{action}_{split}.txt").write_bytes("".join(f"{n}\r\n" for n in per_class[split]).encode())
            lines[split] += per_class[split]
    for split in lines:
        (root / "ImageSplits" / f"{split}.txt").write_bytes("".join(f"{n}\r\n" for n in sorted(lines[split])).encode())
    actions = "Action name\tNumber of Images\r\n" + "".join(f"{a}\t{TRAIN_PER_CLASS + TEST_PER_CLASS}\r\n" for a in ACTIONS)
    (root / "ImageSplits" / "actions.txt").write_bytes(actions.encode())
    return root


@pytest.fixture
def stanford(tmp_path):
    return make_stanford_tree(tmp_path / "stanford40")


def test_reader_labels_order_boxes_and_split(stanford):
    dataset = read_stanford40(stanford, test_per_class=2)
    assert dataset.class_names == tuple(ACTIONS)
    assert (len(dataset.train), len(dataset.val), len(dataset.test)) == (9, 9, 6)
    by_name = {record.name: record for record in dataset.train + dataset.val + dataset.test}
    assert by_name["blowing_bubbles_001.jpg"].label == 2
    assert by_name["writing_on_a_board_004.jpg"].label == 0
    # 1-based inclusive (2, 3, 20, 15) → pixel edges (1, 2, 20, 15); both boxes read
    np.testing.assert_array_equal(by_name["applauding_002.jpg"].boxes, [[1, 2, 20, 15], [20, 3, 40, 30]])
    np.testing.assert_array_equal(by_name["applauding_001.jpg"].boxes, [[0, 0, 40, 30]])
    # per class, the first test_per_class images of the test list are test, the rest val
    assert sorted(r.name for r in dataset.test if r.label == 1) == ["applauding_004.jpg", "applauding_005.jpg"]
    assert sorted(r.name for r in dataset.val if r.label == 1) == ["applauding_006.jpg", "applauding_007.jpg", "applauding_008.jpg"]


def test_reader_default_is_50_per_class(stanford):
    dataset = read_stanford40(stanford)
    assert len(dataset.val) == 0 and len(dataset.test) == 15


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda root: shutil.rmtree(root / "JPEGImages"), "lacks the folder"),
        (lambda root: os.remove(root / "ImageSplits" / "test.txt"), "Missing split file"),
        (lambda root: os.remove(root / "JPEGImages" / "applauding_003.jpg"), "1 missing images: .*applauding_003.jpg"),
        (lambda root: os.remove(root / "XMLAnnotations" / "applauding_003.xml"), "1 missing annotations"),
        (lambda root: (root / "JPEGImages" / "applauding_003.jpg").write_text("not an image"), "1 files that are not images"),
        (lambda root: (root / "XMLAnnotations" / "applauding_003.xml").write_text(_annotation("applauding_003.jpg", "fishing", [(1, 1, 5, 5)])),
         "says 'fishing', expected 'applauding'"),
        (lambda root: (root / "ImageSplits" / "actions.txt").write_text("Action name\tNumber\nwriting_on_a_board 8\napplauding 8\n"),
         "of no class in actions.txt"),
    ],
)
def test_reader_errors(stanford, damage, message):
    damage(stanford)
    with pytest.raises(DatasetError, match=message):
        read_stanford40(stanford)


def test_reader_lists_first_few_of_many_missing(stanford):
    for number in range(1, 9):
        os.remove(stanford / "JPEGImages" / f"applauding_{number:03d}.jpg")
    with pytest.raises(DatasetError, match=r"8 missing images: .*\(and 3 more\)"):
        read_stanford40(stanford)


def test_missing_root(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        read_stanford40(tmp_path / "nowhere")


def test_boxes_stay_on_the_object_after_resize(tmp_path):
    image = np.zeros((60, 120, 3), np.uint8)
    image[10:30, 70:110] = 255  # pixel-edge box (70, 10, 110, 30)
    path = tmp_path / "rect.png"
    cv2.imwrite(str(path), image)
    record = mindgap.data.Record(str(path), 0, np.array([[70, 10, 110, 30]], np.float32))
    images, _, boxes = next(iter(make_dataset([record], num_classes=2, image_size=48, batch_size=1, with_boxes=True)))
    box = valid_boxes(boxes[0].numpy())[0]
    np.testing.assert_allclose(box, [28, 8, 44, 24])
    white = images[0].numpy().mean(axis=-1) > 0.5
    rows, columns = np.flatnonzero(white.any(axis=1)), np.flatnonzero(white.any(axis=0))
    assert (columns[0], rows[0], columns[-1] + 1, rows[-1] + 1) == (28, 8, 44, 24)


def test_pipeline_decodes_gray_and_batches(stanford):
    dataset = read_stanford40(stanford, test_per_class=2)
    batches = list(make_dataset(dataset.train, num_classes=3, image_size=32, batch_size=4, training=True, seed=1))
    images, labels = batches[0]
    assert images.shape == (4, 32, 32, 3) and labels.shape == (4, 3)
    assert -1.0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 1.0
    assert sum(len(batch[0]) for batch in batches) == 9
    again = list(make_dataset(dataset.train, num_classes=3, image_size=32, batch_size=4, training=True, seed=1))
    np.testing.assert_array_equal(batches[0][1], again[0][1])  # the same seed, the same order


def test_pipeline_rejects_wrong_class_count(stanford):
    dataset = read_stanford40(stanford)
    with pytest.raises(ValueError, match="num_classes is 2"):
        make_dataset(dataset.train, num_classes=2)


def test_hide_and_seek_statistics():
    grid_sizes = (0, 4, 8)
    seen_sizes, hidden_fractions = [], []
    for draw in range(300):
        mask, size = hide_and_seek_mask(16, 16, tf.constant([7, draw]), grid_sizes)
        mask, size = mask.numpy(), int(size)
        seen_sizes.append(size)
        if size:
            cells = mask[::size, ::size]
            # a cell is hidden as a whole
            np.testing.assert_array_equal(np.repeat(np.repeat(cells, size, 0), size, 1)[:16, :16], mask)
            hidden_fractions.append(cells.mean())
        else:
            assert not mask.any()
    assert set(seen_sizes) == set(grid_sizes)
    assert np.mean(hidden_fractions) == pytest.approx(0.5, abs=0.05)


def test_hide_and_seek_fill_and_inference():
    layer = mindgap.data.HideAndSeek(grid_sizes=(4,), fill_value=0.25, seed=3)
    images = np.ones((8, 16, 16, 3), np.float32)
    hidden = layer(images, training=True).numpy()
    changed = hidden != 1.0
    assert changed.any() and np.all(hidden[changed] == 0.25)
    np.testing.assert_array_equal(layer(images, training=False), images)
    np.testing.assert_array_equal(layer(images), images)


def test_hide_and_seek_in_the_pipeline_only_when_training(tmp_path):
    root = generate_digits_dataset(tmp_path / "d", train_per_class=2, test_per_class=1, canvas_size=32, digit_size=(8, 16))
    records = read_stanford40(root).train
    plain = next(iter(make_dataset(records, num_classes=10, image_size=32, batch_size=20)))[0].numpy()
    not_training = next(iter(make_dataset(records, num_classes=10, image_size=32, batch_size=20, hide_and_seek=True)))[0].numpy()
    np.testing.assert_array_equal(plain, not_training)
    hidden = next(iter(make_dataset(records, num_classes=10, image_size=32, batch_size=20, training=True, hide_and_seek=True,
                                    grid_sizes=(8,), fill_value=0.0)))[0].numpy()
    assert (hidden == 0.0).all(axis=-1).mean() > 0.2


def test_digits_deterministic_and_disjoint(tmp_path):
    first = generate_digits_dataset(tmp_path / "a", seed=5, train_per_class=3, test_per_class=2, canvas_size=48)
    second = generate_digits_dataset(tmp_path / "b", seed=5, train_per_class=3, test_per_class=2, canvas_size=48)
    for folder in ("JPEGImages", "XMLAnnotations", "ImageSplits"):
        for name in os.listdir(os.path.join(first, folder)):
            with open(os.path.join(first, folder, name), "rb") as a, open(os.path.join(second, folder, name), "rb") as b:
                assert a.read() == b.read(), name
    dataset = read_stanford40(first, test_per_class=1)
    assert (len(dataset.train), len(dataset.val), len(dataset.test)) == (30, 10, 10)

    def sources(records):
        import xml.etree.ElementTree as ET
        return {ET.parse(r.path.replace("JPEGImages", "XMLAnnotations").replace(".jpg", ".xml")).getroot().findtext("source_index") for r in records}

    assert not sources(dataset.train) & sources(dataset.val + dataset.test)


def test_digits_box_encloses_the_ink():
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(0)
    digits = load_digits()
    for index in range(20):
        canvas, ink, box = render_canvas(rng, digits.images[index], np.full((64, 64, 3), 200, np.uint8), (16, 40))
        x0, y0, x1, y1 = box
        inside = np.zeros_like(ink, bool)
        inside[y0:y1, x0:x1] = True
        assert not ((ink > INK_THRESHOLD) & ~inside).any()
        # tight: every edge row/column of the box holds ink
        assert (ink[y0, x0:x1] > INK_THRESHOLD).any() and (ink[y1 - 1, x0:x1] > INK_THRESHOLD).any()
        assert (ink[y0:y1, x0] > INK_THRESHOLD).any() and (ink[y0:y1, x1 - 1] > INK_THRESHOLD).any()


def test_digits_ink_contrasts_and_is_outlined_in_the_opposite_colour():
    """On a bright background the ink is dark (20 ± 20) and its 1-pixel outline light (235 ± 20) at 80 %
    opacity, and the other way round on a dark one; opaque strokes show the ink colour exactly."""
    from sklearn.datasets import load_digits

    from mindgap.data.digits import OUTLINE_OPACITY

    digits = load_digits()
    for level, ink_is_dark in ((220, True), (30, False)):
        rng = np.random.default_rng(1)
        background = np.full((64, 64, 3), level, np.uint8)
        canvas, ink, _ = render_canvas(rng, digits.images[0], background, (30, 40))
        jitter = np.random.default_rng(1)
        side = int(jitter.integers(30, 41))
        jitter.integers(0, 64 - side + 1), jitter.integers(0, 64 - side + 1)  # top, left: render_canvas's draws
        offsets = jitter.uniform(-20, 20, size=3)
        ink_colour = (20.0 if ink_is_dark else 235.0) + offsets
        outline_colour = (235.0 if ink_is_dark else 20.0) + offsets
        solid = ink >= 1.0
        assert solid.sum() > 20
        np.testing.assert_allclose(canvas[solid].astype(float), np.broadcast_to(np.round(ink_colour), (solid.sum(), 3)), atol=1)
        spread_ink = cv2.dilate(ink, np.ones((3, 3), np.uint8))
        rim = (ink == 0) & (spread_ink > 0)  # the outline only: alpha = 0.8 × the strongest neighbouring ink
        assert rim.sum() > 30
        alpha = OUTLINE_OPACITY * spread_ink[rim][:, None]
        expected = (1 - alpha) * level + alpha * outline_colour
        np.testing.assert_allclose(canvas[rim].astype(float), np.round(expected), atol=1)
        assert np.abs(canvas[solid].astype(float) - level).min() > 150  # the strokes stand out


def test_digits_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        generate_digits_dataset(tmp_path)
    assert (tmp_path / "keep.txt").read_text() == "mine"
