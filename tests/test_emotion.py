"""Thesis §3.6: the FER2013/FER+ and AFEW readers, the stand-in, Probabilistic Label Drawing, and the pipeline's steps."""

import csv
import json
import os

import cv2
import numpy as np
import pytest

import mindgap  # noqa: F401
from mindgap.data import load_dataset, make_dataset
from mindgap.data.emotions import EMOTIONS
from mindgap.data.labels import vote_distributions
from mindgap.data.records import DatasetError, Record, no_boxes
from mindgap.emotion import (crop_face, encode_videos, equalize_histogram, fit_video_classifier, l2_normalize, largest_face,
                             linear_svm, preprocess_face, signed_square_root, ssr_l2, to_grayscale, video_statistics)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MINDGAP_CACHE_DIR", str(tmp_path / "cache"))


# ---------------------------------------------------------------- FER2013 + FER+ (fixtures written by hand in their formats)

def _pixels(value, side=48):
    return " ".join([str(value)] * (side * side))


def _write_fer(root, rows, plus_rows=None):
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "fer2013.csv", "w", newline="") as handle:
        handle.write("emotion,pixels,Usage\n")
        for emotion, value, usage in rows:
            handle.write(f"{emotion},{_pixels(value)},{usage}\n")
    if plus_rows is not None:
        with open(root / "fer2013new.csv", "w", newline="") as handle:
            handle.write("Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n")
            for row in plus_rows:
                handle.write(",".join(str(cell) for cell in row) + "\n")


FER_ROWS = [(3, 10, "Training"), (0, 20, "Training"), (6, 30, "Training"), (5, 40, "PublicTest"), (2, 50, "PrivateTest"),
            (4, 60, "Training")]
PLUS_ROWS = [
    ["Training", "fer0000000.png", 0, 10, 0, 0, 0, 0, 0, 0, 0, 0],   # happy, unanimous
    ["Training", "fer0000001.png", 1, 0, 0, 0, 6, 3, 0, 0, 0, 0],    # anger 6, disgust 3, one neutral vote (an outlier)
    ["Training", "", 0, 0, 0, 0, 0, 0, 0, 0, 0, 10],                 # not a face: no image name
    ["PublicTest", "fer0000003.png", 0, 0, 6, 0, 0, 0, 4, 0, 0, 0],  # surprise 6, fear 4
    ["PrivateTest", "fer0000004.png", 2, 0, 0, 0, 0, 0, 2, 0, 6, 0],  # most voted: unknown → left out
    ["Training", "fer0000005.png", 4, 0, 0, 5, 0, 0, 0, 1, 0, 0],    # sad 5, neutral 4, contempt 1 (outlier)
]


def test_fer2013_alone_labels_from_the_emotion_column(tmp_path):
    _write_fer(tmp_path / "fer", FER_ROWS)
    dataset, summary = load_dataset(tmp_path / "fer")
    assert dataset.layout == "fer2013" and summary["layout"] == "fer2013"
    assert dataset.class_names == EMOTIONS
    # FER2013's 3 = Happy, 0 = Angry, 6 = Neutral, 4 = Sad; 5 = Surprise in PublicTest; 2 = Fear in PrivateTest
    assert [EMOTIONS[record.label] for record in dataset.train] == ["happy", "angry", "neutral", "sad"]  # the rows' order
    assert [EMOTIONS[record.label] for record in dataset.val] == ["surprise"]
    assert [EMOTIONS[record.label] for record in dataset.test] == ["fear"]
    assert all(record.votes is None for record in dataset.train)
    by_label = {EMOTIONS[record.label]: record for record in dataset.train}
    image = cv2.imread(by_label["neutral"].path, cv2.IMREAD_UNCHANGED)
    assert image.shape == (48, 48) and image.dtype == np.uint8 and np.all(image == 30)


def test_ferplus_votes_follow_the_reference_reader(tmp_path):
    _write_fer(tmp_path / "fer", FER_ROWS, PLUS_ROWS)
    dataset, _ = load_dataset(tmp_path / "fer")
    votes = {os.path.basename(record.path): (EMOTIONS[record.label], record.votes) for record in dataset.train + dataset.val + dataset.test}
    assert set(votes) == {"fer0000000.png", "fer0000001.png", "fer0000003.png", "fer0000005.png"}  # not a face / unknown: out
    order = {name: index for index, name in enumerate(EMOTIONS)}

    def expected(**counts):
        return tuple(float(counts.get(name, 0)) for name in EMOTIONS)

    assert votes["fer0000000.png"] == ("happy", expected(happy=10))
    assert votes["fer0000001.png"] == ("angry", expected(angry=6, disgust=3))  # the single neutral vote is dropped
    assert votes["fer0000003.png"] == ("surprise", expected(surprise=6, fear=4))
    assert votes["fer0000005.png"] == ("sad", expected(sad=5, neutral=4))
    assert [os.path.basename(record.path) for record in dataset.val] == ["fer0000003.png"]
    assert order["angry"] == 0 and not dataset.test
    distributions = vote_distributions(dataset.val, len(EMOTIONS))
    np.testing.assert_allclose(distributions[0], np.array(expected(surprise=0.6, fear=0.4)), atol=1e-7)


def test_fer_parsers_name_every_bad_row(tmp_path):
    _write_fer(tmp_path / "bad", [(9, 10, "Training"), (1, 10, "Elsewhere")])
    with pytest.raises(DatasetError, match=r"2 bad rows: line 2: emotion '9'.*line 3: Usage 'Elsewhere'"):
        load_dataset(tmp_path / "bad")
    _write_fer(tmp_path / "short", FER_ROWS, PLUS_ROWS[:3])
    with pytest.raises(DatasetError, match="has 3 rows but fer2013.csv has 6"):
        load_dataset(tmp_path / "short")


# ---------------------------------------------------------------- AFEW folders (video files and frame folders)

def _frames(count, value, size=(40, 32)):
    return np.stack([np.full((size[1], size[0], 3), value + 10 * index, np.uint8) for index in range(count)])


def _write_avi(path, frames):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (frames.shape[2], frames.shape[1]))
    for frame in frames:
        writer.write(frame)
    writer.release()


def test_afew_reads_video_files_and_frame_folders(tmp_path):
    root = tmp_path / "afew"
    (root / "Train_AFEW" / "Happy").mkdir(parents=True)
    (root / "Train_AFEW" / "AlignedFaces_LBPTOP_Points").mkdir()  # not an emotion: not read
    _write_avi(root / "Train_AFEW" / "Happy" / "000001.avi", _frames(5, 50))
    folder = root / "Train_AFEW" / "Sad" / "000002"
    folder.mkdir(parents=True)
    for index, frame in enumerate(_frames(3, 100)):
        cv2.imwrite(str(folder / f"{index:03d}.png"), frame)
    with open(root / "Train_AFEW" / "Sad" / "000002.json", "w") as handle:
        json.dump({"boxes": [[1, 2, 30, 31], [2, 2, 31, 31], [3, 2, 32, 31]]}, handle)
    (root / "Val_AFEW" / "Surprise").mkdir(parents=True)
    _write_avi(root / "Val_AFEW" / "Surprise" / "000003.avi", _frames(4, 20))

    dataset, summary = load_dataset(root)
    assert dataset.layout == "afew" and dataset.class_names == EMOTIONS
    assert summary["train_images"] == 8 and summary["val_images"] == 4 and summary["test_images"] == 0
    from mindgap.data.afew import group_clips

    clips = group_clips(dataset.train)
    assert list(clips) == ["Train_AFEW/Happy/000001.avi", "Train_AFEW/Sad/000002"]
    happy, sad = clips.values()
    assert [record.label for record in happy] == [EMOTIONS.index("happy")] * 5
    assert [len(record.boxes) for record in happy] == [0] * 5
    np.testing.assert_array_equal(sad[2].boxes, [[3, 2, 32, 31]])
    decoded = [cv2.imread(record.path).mean() for record in happy]
    np.testing.assert_allclose(decoded, [50, 60, 70, 80, 90], atol=3)  # MJPG is lossy; the order is the video's

    sampled, _ = load_dataset(root, frames_per_clip=2)
    assert [os.path.basename(record.path) for record in group_clips(sampled.train)["Train_AFEW/Happy/000001.avi"]] == \
        ["000000.jpg", "000004.jpg"]


def test_afew_problems_come_together(tmp_path):
    root = tmp_path / "afew"
    (root / "Train_AFEW" / "Fear" / "empty_clip").mkdir(parents=True)
    (root / "Train_AFEW" / "Fear" / "broken.avi").write_bytes(b"not a video")
    with pytest.raises(DatasetError, match=r"2 problems: .*broken.avi could not be read.*empty_clip holds no frame"):
        load_dataset(root)


# ---------------------------------------------------------------- the stand-in in both formats

def test_standin_is_read_by_the_real_readers(tmp_path):
    from mindgap.data.faces import ensure_emotion_set

    web_dir, video_dir = ensure_emotion_set(tmp_path / "standin", web_per_class=(2, 1, 0), clips_per_class=(1, 1, 0), frames=3)
    web, _ = load_dataset(web_dir)
    video, _ = load_dataset(video_dir)
    assert (web.layout, video.layout) == ("fer2013", "afew")
    assert len(web.train) + len(web.val) == 21 and all(record.votes is not None for record in web.train)
    assert all(sum(record.votes) <= 10 for record in web.train)
    assert len(video.train) == 7 * 3 and all(len(record.boxes) == 1 for record in video.train)
    for record in video.train:  # every known box lies inside its frame
        height, width = cv2.imread(record.path).shape[:2]
        x0, y0, x1, y1 = record.boxes[0]
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height


def test_crowd_votes_confuse_the_thesis_pairs():
    from mindgap.data.faces import crowd_votes

    rng = np.random.default_rng(0)
    totals = sum(crowd_votes(rng, "fear", "surprise", 0.4, 1.0, annotators=10, noise=0.0) for _ in range(2000))
    shares = totals / totals.sum()
    assert shares[EMOTIONS.index("fear")] == pytest.approx(0.6, abs=0.02)
    assert shares[EMOTIONS.index("surprise")] == pytest.approx(0.4, abs=0.02)


# ---------------------------------------------------------------- Probabilistic Label Drawing

def test_label_drawing_frequencies_follow_the_votes(tmp_path):
    """Over 400 epochs of one image with votes (6, 3, 1, 0, …), the drawn labels' shares are within 0.05 of (0.6, 0.3, 0.1)."""
    path = tmp_path / "face.png"
    cv2.imwrite(str(path), np.zeros((8, 8), np.uint8))
    votes = (6.0, 3.0, 1.0, 0.0, 0.0, 0.0, 0.0)
    records = [Record(str(path), 0, no_boxes(), votes=votes)] * 4
    data = make_dataset(records, num_classes=7, image_size=8, batch_size=4, training=True, seed=3, label_drawing="probabilistic")
    drawn = np.concatenate([np.argmax(labels.numpy(), 1) for _ in range(100) for _, labels in data])
    shares = np.bincount(drawn, minlength=7) / len(drawn)
    np.testing.assert_allclose(shares[:3], [0.6, 0.3, 0.1], atol=0.05)
    assert shares[3:].sum() == 0  # a class without votes is never drawn
    def five_epochs():
        again = make_dataset(records, num_classes=7, image_size=8, batch_size=4, training=True, seed=3,
                             label_drawing="probabilistic")
        return [tuple(np.argmax(labels.numpy(), 1)) for _ in range(5) for _, labels in again]

    epochs = [five_epochs(), five_epochs()]
    assert epochs[0] == epochs[1]  # the same seed draws the same labels, epoch after epoch
    assert len({tuple(epoch) for epoch in epochs[0]}) > 1  # and a new draw every epoch
    majority = make_dataset(records, num_classes=7, image_size=8, batch_size=4, training=True, seed=3)
    assert all(np.all(np.argmax(labels.numpy(), 1) == 0) for _, labels in majority)
    evaluation = make_dataset(records, num_classes=7, image_size=8, batch_size=4, label_drawing="probabilistic")
    assert all(np.all(np.argmax(labels.numpy(), 1) == 0) for _, labels in evaluation)  # only training draws


def test_train_config_takes_label_drawing():
    from mindgap.training import TrainConfig

    assert TrainConfig().label_drawing == "majority"
    assert TrainConfig().replace(label_drawing="probabilistic").label_drawing == "probabilistic"
    with pytest.raises(ValueError, match="label_drawing must be one of majority, probabilistic, got 'soft'"):
        TrainConfig().replace(label_drawing="soft")


def test_votes_csv_of_the_folders_layout(tmp_path):
    root = tmp_path / "set"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for index in range(3):
            cv2.imwrite(str(root / name / f"{index}.png"), np.zeros((8, 8), np.uint8))
    with open(root / "votes.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([["image", "a", "b"], ["a/0.png", 7, 3], ["b/1.png", 0, 5]])
    dataset, _ = load_dataset(root, val_fraction=0.0, test_fraction=0.0)
    votes = {f"{os.path.basename(os.path.dirname(record.path))}/{record.name}": record.votes for record in dataset.train}
    assert votes == {"a/0.png": (7.0, 3.0), "a/1.png": None, "a/2.png": None, "b/0.png": None, "b/1.png": (0.0, 5.0), "b/2.png": None}
    with open(root / "votes.csv", "a", newline="") as handle:
        csv.writer(handle).writerow(["b/2.png", -1, 2])
    with pytest.raises(DatasetError, match="line 4 needs 2 finite counts >= 0"):
        load_dataset(root)


# ---------------------------------------------------------------- the pipeline's steps on hand-made numbers

def test_ssr_l2_on_a_hand_made_vector():
    features = np.array([[4.0, -9.0, 0.0, 16.0], [0.0, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(signed_square_root(features)[0], [2, -3, 0, 4])
    np.testing.assert_allclose(ssr_l2(features)[0], np.array([2, -3, 0, 4]) / np.sqrt(29))
    np.testing.assert_allclose(ssr_l2(features)[1], 0)  # a zero row stays zero
    np.testing.assert_allclose(l2_normalize([[3.0, 4.0]]), [[0.6, 0.8]])


def test_the_four_statistics_of_a_hand_made_sequence():
    frames = np.array([[1.0, -2.0], [3.0, 0.0], [5.0, 2.0]])  # three frames, two dimensions
    statistics = video_statistics(frames)
    np.testing.assert_allclose(statistics, [3, 0, 8 / 3, 8 / 3, 1, -2, 5, 2])  # mean, variance (population), min, max
    encoded = encode_videos([frames])
    np.testing.assert_allclose(encoded[0], statistics / np.linalg.norm(statistics))


def test_face_crop_of_a_known_box():
    frame = np.zeros((60, 80, 3), np.uint8)
    frame[10:30, 20:40] = (0, 0, 255)  # a red 20×20 square
    frame[10:30, 30:40] = (255, 255, 255)  # right half white
    crop = crop_face(frame, (20, 10, 40, 30), size=10)
    assert crop.shape == (10, 10, 3)
    np.testing.assert_array_equal(crop[:, :5], np.tile([0, 0, 255], (10, 5, 1)))
    np.testing.assert_array_equal(crop[:, 5:], 255)
    grey = to_grayscale(crop)
    assert grey.shape == (10, 10) and grey[0, 0] == 76 and grey[0, 9] == 255  # OpenCV's 0.299 R
    equalised = equalize_histogram(grey)
    assert equalised.min() == 0 and equalised.max() == 255  # two levels spread to the ends
    np.testing.assert_array_equal(preprocess_face(frame, (20, 10, 40, 30), size=10), equalised)
    np.testing.assert_array_equal(crop_face(frame, (19.6, 9.5, 40.2, 30.4), size=21).shape, (21, 21, 3))  # rounded outwards
    with pytest.raises(ValueError, match="outside the 80x60 frame"):
        crop_face(frame, (90, 0, 100, 10))
    assert largest_face(np.zeros((0, 4))) is None
    np.testing.assert_array_equal(largest_face([[0, 0, 5, 5], [10, 10, 30, 20], [0, 0, 10, 10]]), [10, 10, 30, 20])


def test_svm_step_reproduces_scikit_learn():
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.svm import LinearSVC

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(7), 8)
    features = rng.normal(size=(56, 12)) + np.eye(7, 12)[labels] * 1.5
    classifier = fit_video_classifier(features, labels, seed=0)
    reference = GridSearchCV(LinearSVC(multi_class="ovr", random_state=0, max_iter=20000), {"C": [0.5, 1.0, 2.0]},
                             cv=StratifiedKFold(5, shuffle=True, random_state=0)).fit(features, labels)
    assert classifier.c == reference.best_params_["C"]
    test = rng.normal(size=(30, 12)) + np.eye(7, 12)[rng.integers(0, 7, 30)] * 1.5
    np.testing.assert_array_equal(classifier.predict(test), reference.predict(test))
    plain = LinearSVC(C=classifier.c, random_state=0, max_iter=20000).fit(features, labels)
    np.testing.assert_allclose(classifier.svm.coef_, plain.coef_, atol=1e-8)
    assert linear_svm(1.0).multi_class == "ovr" and set(classifier.cv_accuracy) == {0.5, 1.0, 2.0}


def test_haar_detection_needs_a_cascade_this_opencv_may_lack():
    from mindgap.emotion import face_boxes, load_cascade

    frames = [np.zeros((20, 20, 3), np.uint8)] * 2
    boxes, found = face_boxes(frames, known=[[1, 2, 10, 12], [2, 2, 11, 12]])
    assert found == 2 and boxes.tolist() == [[1, 2, 10, 12], [2, 2, 11, 12]]
    if not hasattr(cv2, "CascadeClassifier"):
        with pytest.raises(RuntimeError, match="has no CascadeClassifier"):
            load_cascade()


# ---------------------------------------------------------------- the experiment and explain on its CNN

def test_experiment_extra_small_and_explain(tmp_path):
    from experiments import emotion
    from mindgap.cli import main as cli_main

    results = emotion.main(["--extra-small", "--runs-dir", str(tmp_path / "runs")])
    out = tmp_path / "runs" / "emotion-extra-small"
    for name in ("table.md", "results.json", "config.json", "confusion_matrix.png", "samples.png", "saliency.png"):
        assert (out / name).is_file(), name
    rows = results["rows"]
    assert set(rows) == {"baseline", "cnn vote", "frames", "web", "frames+web majority", "frames+web PLD"}
    assert all(0 <= run["test"] <= 1 and run["C"] in (0.5, 1.0, 2.0) for run in rows["frames+web PLD"])
    table = (out / "table.md").read_text()
    assert "59.42 / 56.66" in table and "test the pipeline, not human emotion" in table
    model = next((tmp_path / "runs" / "models").glob("emotion-extra-small-frames+web-probabilistic-*")) / "best.keras"
    face = next((tmp_path / "runs" / "data").glob("emotion-crops-extra-small-*/happy/web*.png"))
    assert cli_main(["explain", str(face), "--model", str(model), "--method", "eb", "--out", str(tmp_path / "explained")]) in (0, None)
    assert any(name.endswith("_overlay.png") for name in os.listdir(tmp_path / "explained"))
