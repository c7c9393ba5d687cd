"""Each layout read from a tiny set written here, with a known answer per record; detection; the WSOL box conversion."""

import os
import shutil

import numpy as np
import pytest

from mindgap.data import DatasetError, detect_layout, read_dataset, read_folders, read_stanford40, read_wsol
from mindgap.data.digits import CLASS_NAMES, generate_digits_dataset
from mindgap.data.wsol import wsol_box_to_pixel_edges

CANVAS = 32


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """A tiny digits set (Stanford 40 layout) and its known records: {file name: (split, label, box)}."""
    root = generate_digits_dataset(tmp_path_factory.mktemp("digits") / "d", train_per_class=2, test_per_class=2,
                                   canvas_size=CANVAS, digit_size=(10, 20))
    dataset = read_stanford40(root, test_per_class=1)
    known = {}
    for split in ("train", "val", "test"):
        for record in getattr(dataset, split):
            known[record.name] = (split, record.label, tuple(float(v) for v in record.boxes[0]))
    return root, known


def write_folders(digits, target, *, boxes=True, splits=True):
    """The digits set re-laid out as ROOT/<class>/<image>, with boxes.csv and splits/*.txt."""
    root, known = digits
    lines = {"train": [], "val": [], "test": []}
    rows = ["image,x_min,y_min,x_max,y_max"]
    for name, (split, label, box) in sorted(known.items()):
        relative = f"{CLASS_NAMES[label]}/{name}"
        os.makedirs(target / CLASS_NAMES[label], exist_ok=True)
        shutil.copy(os.path.join(root, "JPEGImages", name), target / relative)
        lines[split].append(relative)
        rows.append(f"{relative},{box[0]:g},{box[1]:g},{box[2]:g},{box[3]:g}")
    if boxes:
        (target / "boxes.csv").write_text("\n".join(rows) + "\n")
    if splits:
        (target / "splits").mkdir()
        for split, split_lines in lines.items():
            (target / "splits" / f"{split}.txt").write_text("\n".join(split_lines) + "\n")
    return target


def write_wsol(digits, metadata, images):
    """The digits set as wsolevaluation metadata (inclusive boxes) with the images under ``images``."""
    root, known = digits
    files = {split: {"image_ids": [], "class_labels": [], "image_sizes": [], "localization": []} for split in ("train", "val", "test")}
    for name, (split, label, box) in sorted(known.items()):
        image_id = f"{label:03d}.{CLASS_NAMES[label]}/{name}"
        os.makedirs(images / os.path.dirname(image_id), exist_ok=True)
        shutil.copy(os.path.join(root, "JPEGImages", name), images / image_id)
        x0, y0, x1, y1 = (int(v) for v in box)
        files[split]["image_ids"].append(image_id)
        files[split]["class_labels"].append(f"{image_id},{label}")
        files[split]["image_sizes"].append(f"{image_id},{CANVAS},{CANVAS}")
        files[split]["localization"].append(f"{image_id},{x0},{y0},{x1 - 1},{y1 - 1}")  # wsolevaluation: inclusive ends
    for split, contents in files.items():
        os.makedirs(metadata / split)
        for stem, lines in contents.items():
            (metadata / split / f"{stem}.txt").write_text("\n".join(lines) + "\n")
    return metadata


def _by_name(dataset):
    return {record.name: (split, record) for split in ("train", "val", "test") for record in getattr(dataset, split)}


def _assert_matches_known(dataset, known):
    found = _by_name(dataset)
    assert sorted(found) == sorted(known)
    for name, (split, label, box) in known.items():
        found_split, record = found[name]
        assert (found_split, record.label) == (split, label), name
        np.testing.assert_array_equal(record.boxes, [box])


def test_folders_layout_with_boxes_and_splits(digits, tmp_path):
    root = write_folders(digits, tmp_path / "folders")
    assert detect_layout(root) == "folders"
    dataset = read_folders(root)
    assert dataset.class_names == tuple(sorted(CLASS_NAMES))  # sorted folder names, as Keras does
    # labels index the sorted folder names; compare through the class name
    remapped = {name: (split, dataset.class_names.index(CLASS_NAMES[label]), box) for name, (split, label, box) in digits[1].items()}
    _assert_matches_known(dataset, remapped)
    assert dataset.split_note == "from splits/train.txt, val.txt, test.txt"


def test_folders_several_boxes_and_a_hand_box(digits, tmp_path):
    root = write_folders(digits, tmp_path / "folders", splits=False)
    with open(root / "boxes.csv", "a") as handle:
        handle.write("three/three_001.jpg,0,0,32,32\n")
    record = _by_name(read_folders(root))["three_001.jpg"][1]
    assert len(record.boxes) == 2 and record.boxes[1].tolist() == [0, 0, 32, 32]


def test_folders_stratified_split_is_seeded_and_stated(digits, tmp_path):
    root = write_folders(digits, tmp_path / "folders", boxes=False, splits=False)
    first, again, other = read_folders(root, seed=0), read_folders(root, seed=0), read_folders(root, seed=1)
    names = lambda dataset, split: sorted(r.name for r in getattr(dataset, split))  # noqa: E731
    assert all(names(first, split) == names(again, split) for split in ("train", "val", "test"))
    assert any(names(first, split) != names(other, split) for split in ("train", "val", "test"))
    # 4 images per class: round(0.4) = 0 but at least one val and one test from 3 images up, the rest train
    for label in range(10):
        counts = [sum(r.label == label for r in getattr(first, split)) for split in ("train", "val", "test")]
        assert counts == [2, 1, 1]
    assert len({r.path for split in ("train", "val", "test") for r in getattr(first, split)}) == 40
    assert "seed 0" in first.split_note and not first.has_boxes()


def test_folders_errors(digits, tmp_path):
    root = write_folders(digits, tmp_path / "folders")
    (root / "boxes.csv").write_text("file,x0,y0,x1,y1\n")
    with pytest.raises(DatasetError, match="must start with the header image,x_min,y_min,x_max,y_max"):
        read_folders(root)
    (root / "boxes.csv").write_text("image,x_min,y_min,x_max,y_max\nzero/nope.jpg,1,1,5,5\none/one_001.jpg,1,a,5,5\n")
    with pytest.raises(DatasetError, match="2 problems: .*line 2 names zero/nope.jpg.*line 3 has a coordinate that is not a number"):
        read_folders(root)
    (root / "boxes.csv").unlink()
    (root / "splits" / "val.txt").write_text("zero/ghost.jpg\n")
    with pytest.raises(DatasetError, match="val.txt lists zero/ghost.jpg, which is not an image of any class folder \\(no such file\\)"):
        read_folders(root)


def test_wsol_box_conversion_on_known_boxes():
    # a 32-pixel-wide image: wsolevaluation's whole-image box is 0..31 inclusive, ours [0, 32)
    assert wsol_box_to_pixel_edges((0, 0, 31, 31)) == (0.0, 0.0, 32.0, 32.0)
    # a single pixel (x0 == x1 in their convention) is one pixel wide in ours
    assert wsol_box_to_pixel_edges((5, 7, 5, 7)) == (5.0, 7.0, 6.0, 8.0)


def test_wsol_layout_in_the_wsolevaluation_arrangement(digits, tmp_path):
    # wsolevaluation/metadata/CUB with the images in wsolevaluation/dataset/CUB: found without --image-root
    metadata = write_wsol(digits, tmp_path / "repo" / "metadata" / "DIGITS", tmp_path / "repo" / "dataset" / "DIGITS")
    assert detect_layout(metadata) == "wsol"
    dataset = read_dataset(metadata)
    _assert_matches_known(dataset, digits[1])  # boxes back in pixel edges, exactly the generator's
    assert dataset.class_names == tuple(f"{label:03d}.{name}" for label, name in enumerate(CLASS_NAMES))
    assert all(record.size == (CANVAS, CANVAS) for record in dataset.train)
    assert str(tmp_path / "repo" / "dataset" / "DIGITS") in dataset.split_note


def test_wsol_image_root_flag_and_its_error(digits, tmp_path):
    metadata = write_wsol(digits, tmp_path / "meta", tmp_path / "elsewhere")
    with pytest.raises(DatasetError, match="Could not find the image .* pass --image-root"):
        read_wsol(metadata)
    dataset = read_dataset(metadata, "wsol", image_root=str(tmp_path / "elsewhere"))
    assert os.path.isfile(dataset.test[0].path)


def test_wsol_masks_give_no_boxes(digits, tmp_path):
    metadata = write_wsol(digits, tmp_path / "meta", tmp_path / "meta" / "images")
    lines = (metadata / "test" / "image_ids.txt").read_text().split()
    (metadata / "test" / "localization.txt").write_text("".join(f"{line},{line[:-4]}_mask.png,\n" for line in lines))
    dataset = read_wsol(metadata)
    assert not dataset.has_boxes("test") and dataset.has_boxes("train") and "holds masks" in dataset.split_note


def test_stanford40_through_the_table(digits):
    dataset = read_dataset(digits[0], test_per_class=1)
    assert dataset.layout == "stanford40"
    _assert_matches_known(dataset, digits[1])


def test_detection_error_lists_what_it_looked_for(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DatasetError, match="looked for stanford40: JPEGImages/ and ImageSplits/.*wsol: \\{train,val,test\\}/image_ids.txt"
                                           ".*folders: sub-folders holding images.*pass --format"):
        detect_layout(tmp_path)
    (tmp_path / "JPEGImages").mkdir()
    with pytest.raises(DatasetError, match="lacks the folder"):
        detect_layout(tmp_path)


def test_forced_format(digits, tmp_path):
    root = write_folders(digits, tmp_path / "folders")
    with pytest.raises(DatasetError, match="lacks the folder"):
        read_dataset(root, "stanford40")
    with pytest.raises(ValueError, match="Unknown dataset format 'voc'"):
        read_dataset(root, "voc")


def test_an_empty_class_folder_is_an_error_unless_allowed(digits, tmp_path):
    from mindgap.data import load_dataset
    from mindgap.data.layouts import dataset_options
    from mindgap.training import TrainConfig

    root = write_folders(digits, tmp_path / "f")
    (root / "zz_empty").mkdir()
    with pytest.raises(DatasetError, match=r"Class folder\(s\) zz_empty of .* hold no image.*--allow-empty-classes"):
        read_dataset(root)
    dataset = read_dataset(root, allow_empty_classes=True)
    assert dataset.class_names == (*sorted(CLASS_NAMES), "zz_empty")
    remapped = {name: (split, dataset.class_names.index(CLASS_NAMES[label]), box) for name, (split, label, box) in digits[1].items()}
    _assert_matches_known(dataset, remapped)  # the other classes keep their labels
    options = dataset_options(TrainConfig(allow_empty_classes=True))
    assert options["allow_empty_classes"] is True
    checked, _ = load_dataset(root, **options, cache_path=None)
    assert len(checked.class_names) == len(CLASS_NAMES) + 1


def test_a_root_holding_images_and_metadata_is_not_two_classes(digits, tmp_path):
    root = write_folders(digits, tmp_path / "project" / "images", boxes=False, splits=False).parent
    (root / "metadata").mkdir()
    (root / "metadata" / "notes.txt").write_text("not an image\n")
    with pytest.raises(DatasetError, match=r"Class folder\(s\) metadata of .*pass the folder whose sub-folders are the classes"):
        read_dataset(root)


def test_a_wsolevaluation_checkout_passed_by_its_root(digits, tmp_path):
    repo = tmp_path / "wsolevaluation"
    write_wsol(digits, repo / "metadata" / "DIGITS", repo / "dataset" / "DIGITS")
    assert detect_layout(repo) == "wsol"  # not class folders "dataset" and "metadata"
    dataset = read_dataset(repo)
    _assert_matches_known(dataset, digits[1])
    assert str(repo / "dataset" / "DIGITS") in dataset.split_note
    assert read_dataset(repo, format="wsol").class_names == dataset.class_names
    shutil.copytree(repo / "metadata" / "DIGITS", repo / "metadata" / "OTHER")
    with pytest.raises(DatasetError, match=r"checkout with 2 datasets \(DIGITS, OTHER\); pass one metadata folder: "
                                           r".*metadata/DIGITS, .*metadata/OTHER\.$"):
        read_dataset(repo)


def test_the_split_seed_is_apart_from_the_training_seed(digits, tmp_path):
    from mindgap.training import TrainConfig

    root = write_folders(digits, tmp_path / "f", boxes=False, splits=False)
    val = lambda **options: sorted(r.name for r in read_dataset(root, **options).val)  # noqa: E731
    assert val(**TrainConfig(seed=4).dataset_options()) == val(seed=4)  # None: the training seed, as before
    assert val(**TrainConfig(seed=4, split_seed=1).dataset_options()) == val(seed=1) != val(seed=4)


def test_a_video_set_is_a_layout_of_clips(tmp_path):
    from mindgap.data import LAYOUTS, SplitDataset, load_dataset, video

    root = video.generate_video_set(tmp_path / "v", frame_size=16, short_frames=2, long_frames=8, train_per_class=1,
                                    val_per_class=1, test_per_class=1, untrimmed_per_class=1, digit_size=(6, 12))
    assert detect_layout(root) == "video" and LAYOUTS["video"].holds == "clips"  # before "folders": clips hold images
    dataset, summary = load_dataset(root, cache_path=None)
    assert isinstance(dataset, SplitDataset) and dataset.layout == "video"
    assert (len(dataset.train), len(dataset.val), len(dataset.test), len(dataset.split("rand_gt_rand"))) == (10, 10, 10, 30)
    assert summary["check"]["images"] == 30 * 2  # the trimmed splits' frames: 30 clips of 2
