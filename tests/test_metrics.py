import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from mindgap import metrics


def _blob(height=20, width=30, box=(5, 4, 12, 10), value=1.0, cam=None):
    cam = np.zeros((height, width), np.float32) if cam is None else cam
    x0, y0, x1, y1 = box
    cam[y0:y1, x0:x1] = value
    return cam


# ------------------------------------------------------------ classification
def test_precision_recall_keras1_by_hand():
    labels = np.array([0, 1, 2])
    probs = np.array([[0.7, 0.2, 0.1],   # predicted {0}: TP
                      [0.6, 0.3, 0.1],   # predicted {0}: FP, the positive 1 missed
                      [0.1, 0.2, 0.7]])  # predicted {2}: TP
    assert metrics.precision_recall_keras1(labels, probs) == pytest.approx((2 / 3, 2 / 3))
    probs_none_confident = np.full((3, 3), 1 / 3)
    assert metrics.precision_recall_keras1(labels, probs_none_confident) == (0.0, 0.0)


def test_map_against_sklearn():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 50)
    probs = rng.dirichlet(np.ones(4), 50)
    expected = np.mean([average_precision_score(labels == c, probs[:, c]) for c in range(4)])
    assert metrics.mean_average_precision(labels, probs) == pytest.approx(expected)


def test_top_k_and_confusion():
    labels = np.array([0, 1, 2, 2])
    probs = np.array([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2], [0.1, 0.5, 0.4], [0.1, 0.2, 0.7]])
    assert metrics.top_k_accuracy(labels, probs, 1) == 0.5
    assert metrics.top_k_accuracy(labels, probs, 2) == 1.0
    np.testing.assert_array_equal(metrics.confusion_matrix(labels, probs), [[1, 0, 0], [1, 0, 0], [0, 1, 1]])
    table = metrics.per_class_table(labels, probs, ["a", "b", "c"])
    assert [row["accuracy"] for row in table] == [1.0, 0.0, 0.5]


@pytest.mark.parametrize(
    "labels,probs,message",
    [
        ([], np.zeros((0, 3)), "empty"),
        ([0, 1], np.full((3, 3), 0.3), "one label per row"),
        ([0], np.array([[np.nan, 0.5]]), "NaN"),
        ([5], np.array([[0.5, 0.5]]), r"labels must be in \[0, 1\]"),
    ],
)
def test_classification_degenerate_inputs(labels, probs, message):
    with pytest.raises(ValueError, match=message):
        metrics.precision_recall_keras1(labels, probs)


# -------------------------------------------------------------------- boxes
@pytest.mark.parametrize("method", metrics.BOX_METHODS)
def test_single_blob_box_is_exact(method):
    cam = _blob(box=(5, 4, 12, 10))
    np.testing.assert_array_equal(metrics.cam_to_box(cam, 0.5, method), [5, 4, 12, 10])


def test_two_blobs_paper_spans_both_component_takes_largest():
    cam = _blob(box=(2, 2, 6, 5))            # 4x3 = 12 px
    cam = _blob(box=(15, 10, 25, 18), cam=cam, value=0.8)  # 10x8 = 80 px
    np.testing.assert_array_equal(metrics.cam_to_box(cam, 0.5, "paper"), [2, 2, 25, 18])
    np.testing.assert_array_equal(metrics.cam_to_box(cam, 0.5, "largest_component"), [15, 10, 25, 18])
    np.testing.assert_array_equal(metrics.cam_to_box(cam, 0.5, "largest_contour"), [15, 10, 25, 18])
    # above 80 % of the max only the small, brighter blob is left
    np.testing.assert_array_equal(metrics.cam_to_box(cam, 0.9, "largest_component"), [2, 2, 6, 5])


@pytest.mark.parametrize("method", metrics.BOX_METHODS)
def test_constant_map_is_the_whole_grid(method):
    np.testing.assert_array_equal(metrics.cam_to_box(np.full((8, 6), 3.0), 0.2, method), [0, 0, 6, 8])


@pytest.mark.parametrize("method", metrics.BOX_METHODS)
def test_all_zero_map_has_no_box(method):
    np.testing.assert_array_equal(metrics.cam_to_box(np.zeros((8, 6)), 0.2, method), [0, 0, 0, 0])
    assert metrics.best_iou([metrics.cam_to_box(np.zeros((8, 6)), 0.2, method)], [[0, 0, 6, 8]])[0] == 0


@pytest.mark.parametrize("method", metrics.BOX_METHODS)
def test_blob_touching_the_border(method):
    cam = _blob(height=10, width=10, box=(6, 0, 10, 3))
    np.testing.assert_array_equal(metrics.cam_to_box(cam, 0.5, method), [6, 0, 10, 3])


def test_threshold_sweep_shrinks_the_box():
    cam = np.zeros((10, 10))
    cam[2:8, 2:8] = 0.5
    cam[4:6, 4:6] = 1.0
    boxes = metrics.cam_boxes(cam, [0.0, 0.4, 0.6, 1.0])
    np.testing.assert_array_equal(boxes, [[2, 2, 8, 8], [2, 2, 8, 8], [4, 4, 6, 6], [4, 4, 6, 6]])


def test_negative_zhou_values_are_no_evidence():
    cam = -np.ones((6, 6))
    cam[1:3, 1:4] = 2.0
    np.testing.assert_array_equal(metrics.cam_to_box(cam, 0.0), [1, 1, 4, 3])


def test_box_iou_known_rectangles():
    assert metrics.box_iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert metrics.box_iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)
    assert metrics.box_iou([0, 0, 2, 2], [2, 2, 4, 4]) == 0.0  # exclusive ends: touching is no overlap
    assert metrics.box_iou([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0
    np.testing.assert_allclose(metrics.box_iou(np.array([[0, 0, 4, 4]]), np.array([[0, 0, 2, 2], [0, 0, 4, 4]])), [0.25, 1.0])


# -------------------------------------------------------------- localization
def test_center_of_mass_of_an_asymmetric_map():
    cam = np.zeros((4, 5))
    cam[1, 0] = 1.0
    cam[1, 4] = 3.0
    # x = (1*0.5 + 3*4.5) / 4, y = 1.5
    assert metrics.center_of_mass(cam) == pytest.approx((3.5, 1.5))
    assert np.isnan(metrics.center_of_mass(np.zeros((3, 3)))[0])
    assert metrics.center_of_mass_hit(cam, [[3, 1, 4, 2]])
    assert not metrics.center_of_mass_hit(cam, [[0, 0, 3, 4]])
    assert metrics.center_of_mass_hit(cam, [[0, 0, 1, 1], [3, 0, 5, 4]])  # any box counts


def test_pointing_game_15_px_rule():
    cam = np.zeros((100, 100))
    cam[50, 50] = 1.0  # maximum's centre at (50.5, 50.5)
    assert metrics.pointing_game_hit(cam, [[60, 40, 80, 60]], tolerance=5) is False  # 9.5 px away
    assert metrics.pointing_game_hit(cam, [[60, 40, 80, 60]], tolerance=15)  # 9.5 px
    assert metrics.pointing_game_hit(cam, [[65.5, 50, 80, 60]], tolerance=15)  # exactly 15 px
    assert not metrics.pointing_game_hit(cam, [[66, 50, 80, 60]], tolerance=15)  # 15.5 px


def test_pointing_game_tolerance_scales_with_the_input():
    # 15 px at 224 px, so 15 · 64 / 224 = 4.29 px at 64 px and 30 px at 448 px
    assert metrics.pointing_tolerance("scaled", (64, 64)) == pytest.approx(15 * 64 / 224)
    assert metrics.pointing_tolerance("scaled", (448, 600)) == pytest.approx(30.0)  # the shorter side
    assert metrics.pointing_tolerance("fixed", (64, 64)) == 15.0
    # the thesis's video game (§7.4.1): a 15 px diameter circle on 320 × 240 frames, radius 7.5 · side / 240
    assert metrics.pointing_tolerance("thesis-video", (240, 320)) == pytest.approx(7.5)
    assert metrics.pointing_tolerance("thesis-video", (48, 48)) == pytest.approx(1.5)
    frame = np.zeros((48, 48))
    frame[20, 20] = 1.0  # centre (20.5, 20.5)
    assert metrics.pointing_game_hit(frame, [[22, 10, 30, 30]], tolerance="thesis-video")  # 1.5 px: the circle touches it
    assert not metrics.pointing_game_hit(frame, [[22.5, 10, 30, 30]], tolerance="thesis-video")  # 2 px
    assert metrics.pointing_game_hit(frame, [[22.5, 10, 30, 30]])  # Zhang's scaled 3.2 px still hits
    small = np.zeros((64, 64))
    small[30, 30] = 1.0  # centre (30.5, 30.5)
    assert metrics.pointing_game_hit(small, [[34.5, 20, 50, 40]])  # 4.0 px from the box: within 4.29
    assert not metrics.pointing_game_hit(small, [[35, 20, 50, 40]])  # 4.5 px: a miss at 64 px...
    assert metrics.pointing_game_hit(small, [[35, 20, 50, 40]], tolerance="fixed")  # ... a hit with 15 px
    assert not metrics.pointing_game_hit(small, [[35, 20, 50, 40]], convention="torchray")  # index 35, 5 px away
    assert metrics.pointing_game_hit(small, [[34, 20, 50, 40]], convention="torchray")  # 4 px < 4.29
    large = np.zeros((224, 224))
    large[100, 100] = 1.0  # centre (100.5, 100.5): at 224 px the scaled tolerance is Zhang et al.'s 15 px
    assert metrics.pointing_game_hit(large, [[115.5, 90, 130, 110]])  # exactly 15 px
    assert not metrics.pointing_game_hit(large, [[116, 90, 130, 110]])  # 15.5 px
    wide = np.zeros((448, 448))
    wide[100, 100] = 1.0
    assert metrics.pointing_game_hit(wide, [[130.5, 90, 150, 110]])  # 30 px
    assert not metrics.pointing_game_hit(wide, [[130.5, 90, 150, 110]], tolerance="fixed")


@pytest.mark.parametrize("tolerance", ["15px", -1, float("nan"), True, None])
def test_pointing_game_rejects_a_bad_tolerance(tolerance):
    with pytest.raises(ValueError, match="tolerance"):
        metrics.pointing_game_hit(np.ones((8, 8)), [[0, 0, 4, 4]], tolerance=tolerance)


def test_max_box_acc_chooses_one_threshold_for_the_set():
    # image A is right only at a low threshold, images B and C only at a high one.
    wide = np.full((10, 10), 0.5)
    wide[4:6, 4:6] = 1.0
    cams = [wide, wide, wide]
    boxes = [[[0, 0, 10, 10]], [[4, 4, 6, 6]], [[4, 4, 6, 6]]]
    result = metrics.max_box_acc(cams, boxes, thresholds=[0.3, 0.7])
    np.testing.assert_allclose(result["curve"], [1 / 3, 2 / 3])
    assert result["value"] == pytest.approx(2 / 3)  # per-image choice would give 1.0
    assert result["threshold"] == 0.7


def test_max_box_acc_v2_all_contours():
    cam = _blob(height=20, width=20, box=(1, 1, 5, 5))
    cam = _blob(box=(10, 10, 19, 19), cam=cam, value=1.0)
    # ground truth on the smaller blob: only the all-contours box finds it.
    result = metrics.max_box_acc_v2([cam], [[[1, 1, 5, 5]]], thresholds=[0.5])
    assert result["per_iou"] == {0.3: 1.0, 0.5: 1.0, 0.7: 1.0}
    single = metrics.max_box_acc([cam], [[[1, 1, 5, 5]]], thresholds=[0.5], method="largest_contour")
    assert single["value"] == 0.0


def test_localization_accuracy_counts_prediction_only_when_right():
    result = metrics.localization_accuracy([True, True, False], [True, True, True], labels=[0, 1, 2], predictions=[0, 2, 2])
    assert result == {"ground_truth": pytest.approx(2 / 3), "prediction": pytest.approx(2 / 3)}


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: metrics.cam_to_box(np.array([[np.nan, 1.0]]), 0.2), "NaN"),
        (lambda: metrics.cam_to_box(np.zeros((0, 0)), 0.2), "non-empty 2-D"),
        (lambda: metrics.cam_to_box(np.ones((3, 3)), 0.2, method="blob"), "Unknown box method"),
        (lambda: metrics.max_box_acc([np.ones((3, 3))], []), "1 CAMs but 0 box lists"),
        (lambda: metrics.max_box_acc([], []), "cams is empty"),
        (lambda: metrics.center_of_mass_hit(np.ones((3, 3)), []), "no ground-truth box"),
        (lambda: metrics.box_iou([0, 0, 1], [0, 0, 1, 1]), "4 coordinates"),
    ],
)
def test_localization_degenerate_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call()
