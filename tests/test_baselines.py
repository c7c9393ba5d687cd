import numpy as np
import pytest

from experiments import grounding
from mindgap import metrics
from mindgap.saliency import baselines


def test_centre_pointing_by_hand():
    # 64 x 64, tolerance 4 px: the centre is (32, 32).
    assert metrics.centre_pointing_hit(np.array([[30, 36, 40, 40]]), (64, 64), tolerance=4.0)  # 4 px below: a hit
    assert not metrics.centre_pointing_hit(np.array([[36, 0, 40, 10]]), (64, 64), tolerance=4.0)  # hypot(4, 22)
    assert metrics.centre_pointing_hit(np.array([[36, 0, 40, 10], [0, 0, 33, 33]]), (64, 64), tolerance=0.0)  # any box


def test_uniform_point_expectation_by_hand():
    box = np.array([[2, 2, 4, 4]])
    assert metrics.uniform_pointing_expectation(box, (10, 10), tolerance=0.0) == pytest.approx(4 / 100)  # centres 2.5, 3.5
    # 1 px of slack adds the centres 1.5 and 4.5 on each axis; the corners are 0.71 px away: 4 x 4 pixels.
    assert metrics.uniform_pointing_expectation(box, (10, 10), tolerance=1.0) == pytest.approx(16 / 100)
    whole = np.array([[0, 0, 10, 10]])
    assert metrics.uniform_pointing_expectation(whole, (10, 10), tolerance=0.0) == 1.0


def test_centre_maps_by_hand():
    cone = baselines.centre_maps(2, (4, 4))
    assert cone.shape == (2, 4, 4)
    assert cone[0, 0, 0] == pytest.approx(-np.hypot(1.5, 1.5)) and cone[1, 1, 2] == pytest.approx(-np.hypot(0.5, 0.5))


def test_contrast_map_finds_the_one_bright_square_and_nothing_on_a_flat_image():
    image = np.zeros((64, 64, 3), np.float32)
    assert np.allclose(baselines.contrast_map(image), 0.0)
    image[40:48, 10:18] = 1.0
    peak_y, peak_x = np.unravel_index(np.argmax(baselines.contrast_map(image)), (64, 64))
    assert 38 <= peak_y < 50 and 8 <= peak_x < 20
    with pytest.raises(ValueError, match="one image"):
        baselines.contrast_map(image[..., 0])


def test_baseline_scores_and_informative_methods_on_hand_made_boxes():
    images = np.zeros((2, 64, 64, 3), np.float32)
    images[0, 4:12, 4:12] = 1.0  # a bright square in the corner, where the box is
    boxes = [np.array([[2, 2, 14, 14]], np.float32), np.array([[28, 28, 36, 36]], np.float32)]
    found = grounding.baseline_scores(images, boxes)
    assert found["centre"]["pointing"] == 0.5  # misses the corner box, hits the central one
    assert found["random"]["pointing"] == pytest.approx(np.mean(
        [metrics.uniform_pointing_expectation(b, (64, 64)) for b in boxes]))
    assert found["contrast"]["pointing"] >= 0.5  # finds the bright square
    best, value, informative = grounding.informative_methods(
        {"model": {"cam": {"pointing": 0.9}, "rise": {"pointing": 0.1}}}, {"centre": {"pointing": 0.5}, "random": {"pointing": 0.2}})
    assert (best, value, informative) == ("centre", 0.5, {"model": ["cam"]})
