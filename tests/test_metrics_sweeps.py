"""The one-pass threshold sweeps against the per-threshold OpenCV reference, threads, and hit conventions."""

import cv2
import numpy as np
import pytest

from mindgap import metrics

THRESHOLDS = np.linspace(0, 1, 11)


@pytest.fixture(autouse=True)
def _always_sweep(monkeypatch):
    """Use the one-pass sweep for any number of thresholds, so the tests compare it with the reference."""
    monkeypatch.setattr(metrics, "_SWEEP_MIN_THRESHOLDS", dict.fromkeys(metrics._SWEEP_MIN_THRESHOLDS, 1))


def _random_map(rng, kind):
    height, width = (int(side) for side in rng.integers(1, 13, 2))
    if kind == "levels":  # few distinct values: many ties between pixels
        return rng.integers(0, 4, (height, width)).astype(np.float32)
    if kind == "noise":
        return rng.random((height, width)).astype(np.float32)
    if kind == "binary":  # holes, nested components, equal components, border
        return (rng.random((height, width)) < rng.uniform(0.3, 0.8)).astype(np.float32)
    if kind == "signed":  # negative evidence
        return rng.normal(size=(height, width)).astype(np.float32)
    if kind == "smooth":
        return cv2.resize(rng.random((3, 3)).astype(np.float32), (width, height))
    if kind == "flat":
        return np.full((height, width), rng.choice([0.0, 2.0]), np.float32)
    raise AssertionError(kind)


def _random_gt(rng, cam):
    height, width = cam.shape
    x0, y0 = rng.integers(0, width), rng.integers(0, height)
    return np.array([[x0, y0, rng.integers(x0 + 1, width + 1), rng.integers(y0 + 1, height + 1)],
                     [0, 0, width, height]], np.float64)[: rng.integers(1, 3)]


def _maps(seed, count):
    rng = np.random.default_rng(seed)
    kinds = ("levels", "noise", "binary", "signed", "smooth", "flat")
    cams = [_random_map(rng, kinds[index % len(kinds)]) for index in range(count)]
    return cams, [_random_gt(rng, cam) for cam in cams]


@pytest.mark.parametrize("method", ["largest_component", "largest_contour"])
def test_sweep_boxes_equal_the_per_threshold_reference_on_random_maps(method):
    cams, _ = _maps(0, 1500)
    for cam in cams:
        np.testing.assert_array_equal(metrics.cam_boxes(cam, THRESHOLDS, method),
                                      metrics._reference_cam_boxes(cam, THRESHOLDS, method))


def test_all_contours_sweep_equals_the_reference_on_random_maps():
    cams, gts = _maps(1, 1500)
    np.testing.assert_array_equal(metrics.all_contours_iou_over_thresholds(cams, gts, THRESHOLDS, workers=1),
                                  metrics._all_contours_rows(cams, gts, THRESHOLDS, 1, reference=True))


def test_sweep_with_unsorted_repeated_and_out_of_range_thresholds():
    cams, gts = _maps(2, 120)
    thresholds = np.array([0.7, -0.5, 0.2, 0.2, 1.0, 1.5, 0.0, 0.55])
    for method in ("largest_component", "largest_contour"):
        np.testing.assert_array_equal(metrics.iou_over_thresholds(cams, gts, thresholds, method),
                                      metrics._iou_rows(cams, gts, thresholds, method, 1, reference=True))
    np.testing.assert_array_equal(metrics.all_contours_iou_over_thresholds(cams, gts, thresholds),
                                  metrics._all_contours_rows(cams, gts, thresholds, 1, reference=True))


def test_equal_components_follow_opencv_label_order_on_large_maps():
    # many components of equal size on maps large enough for OpenCV's parallel labelling
    rng = np.random.default_rng(3)
    for _ in range(4):
        cam = np.zeros((120, 301), np.float32)
        for y, x in zip(rng.integers(0, 118, 60), rng.integers(0, 299, 60)):
            cam[y:y + 2, x:x + 2] = rng.choice([0.5, 1.0])
        for method in ("largest_component", "largest_contour"):
            np.testing.assert_array_equal(metrics.cam_boxes(cam, THRESHOLDS, method),
                                          metrics._reference_cam_boxes(cam, THRESHOLDS, method))


def test_nested_component_inside_a_hole_by_hand():
    cam = np.zeros((9, 9), np.float32)
    cam[1:8, 1:8] = 1.0
    cam[3:6, 3:6] = 0.0  # a 3x3 hole: its contour runs on the ring, box [2, 2, 7, 7)
    cam[4, 4] = 0.8      # a component nested in the hole
    thresholds = np.linspace(0, 1, 6)
    ring, hole, dot = [1, 1, 8, 8], [2, 2, 7, 7], [4, 4, 5, 5]
    at_half = 3  # t = 0.6: ring and dot kept
    np.testing.assert_array_equal(metrics.cam_boxes(cam, thresholds, "largest_contour")[at_half], ring)
    for gt in (ring, hole, dot):  # all contours: outer, hole and nested component
        ious = metrics.all_contours_iou_over_thresholds([cam], [[gt]], thresholds)[0]
        assert ious[at_half] == 1.0
        np.testing.assert_array_equal(ious, metrics._all_contours_rows([cam], [[gt]], thresholds, 1, reference=True)[0])
    # above 0.8 the dot is gone
    assert metrics.all_contours_iou_over_thresholds([cam], [[dot]], thresholds)[0][-1] < 1.0


def test_threads_give_the_serial_result():
    cams, gts = _maps(4, 60)
    for method in metrics.BOX_METHODS:
        np.testing.assert_array_equal(metrics.iou_over_thresholds(cams, gts, THRESHOLDS, method, workers=1),
                                      metrics.iou_over_thresholds(cams, gts, THRESHOLDS, method, workers=2))
    assert (metrics.max_box_acc_v2(cams, gts, THRESHOLDS, workers=1)
            == metrics.max_box_acc_v2(cams, gts, THRESHOLDS, workers=2))


# ------------------------------------------------------------ hit conventions
def _top_left_pair():
    cam = np.zeros((4, 4), np.float32)
    cam[0, 0:2] = 1.0  # box [0, 0, 2, 1): area 2 against the top row's 4, IoU exactly 0.5
    return cam, [[[0, 0, 4, 1]]]


@pytest.mark.parametrize("method", metrics.BOX_METHODS)
def test_max_box_acc_counts_iou_equal_to_delta_as_choe_et_al(method):
    cam, gt = _top_left_pair()
    assert metrics.best_iou([metrics.cam_to_box(cam, 0.5, method)], gt[0])[0] == 0.5
    assert metrics.max_box_acc([cam], gt, thresholds=[0.5], method=method)["value"] == 1.0
    assert metrics.max_box_acc([cam], gt, thresholds=[0.5], method=method, inclusive=False)["value"] == 0.0


def test_max_box_acc_v2_counts_iou_equal_to_delta():
    cam, gt = _top_left_pair()
    assert metrics.max_box_acc_v2([cam], gt, thresholds=[0.5])["per_iou"] == {0.3: 1.0, 0.5: 1.0, 0.7: 0.0}


def test_pointing_game_conventions_at_the_rim():
    cam = np.zeros((100, 100), np.float32)
    cam[50, 50] = 1.0  # index (50, 50), centre (50.5, 50.5)
    # box edge at x = 65: 14.5 px from the centre (Zhang: hit); first pixel 65, 15 px from index 50 (TorchRay: miss)
    assert metrics.pointing_game_hit(cam, [[65, 50, 80, 60]], convention="zhang", tolerance="fixed")
    assert not metrics.pointing_game_hit(cam, [[65, 50, 80, 60]], convention="torchray", tolerance="fixed")
    assert metrics.pointing_game_hit(cam, [[64, 50, 80, 60]], convention="torchray", tolerance="fixed")  # 14 px
    assert not metrics.pointing_game_hit(cam, [[66, 50, 80, 60]], convention="zhang", tolerance="fixed")  # 15.5 px
    # diagonal: pixel (59, 62) is at sqrt(81 + 144) = 15 from (50, 50): a TorchRay miss; (59, 61) a hit
    assert not metrics.pointing_game_hit(cam, [[59, 62, 70, 70]], convention="torchray", tolerance="fixed")
    assert metrics.pointing_game_hit(cam, [[59, 61, 70, 70]], convention="torchray", tolerance="fixed")
    # inside the box both hit; a box holding no pixel centre holds nothing for TorchRay
    assert metrics.pointing_game_hit(cam, [[40, 40, 60, 60]], convention="torchray", tolerance="fixed")
    assert not metrics.pointing_game_hit(cam, [[50.6, 50, 51.4, 51]], convention="torchray", tolerance="fixed")


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: metrics.iou_over_thresholds([np.ones((3, 3))], [[[0, 0, 1, 1]]], workers=0), "workers must be"),
        (lambda: metrics.cam_boxes(np.ones((3, 3)), [0.1, np.nan, 0.3, 0.5], "largest_component"), "NaN"),
        (lambda: metrics.pointing_game_hit(np.ones((3, 3)), [[0, 0, 1, 1]], convention="vgg"), "convention"),
    ],
)
def test_sweep_bad_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call()
