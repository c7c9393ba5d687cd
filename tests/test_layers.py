import numpy as np
import pytest

from mindgap.layers import ClassProbabilities, GroupedClassMaps, GroupedSumGAP


def _maps():
    rng = np.random.default_rng(1)
    return rng.uniform(0, 2, size=(2, 3, 4, 6)).astype("float32")  # c=3 classes, m=2


def test_grouped_sum_gap_is_eq1_then_eq2(layer_test):
    maps = _maps()
    g = maps.sum(axis=(1, 2)) / (3 * 4)  # eq. (1)
    expected = np.stack([g[:, 0] + g[:, 1], g[:, 2] + g[:, 3], g[:, 4] + g[:, 5]], axis=1)  # eq. (2), a sum
    layer_test(GroupedSumGAP, {"maps_per_class": 2}, maps, expected)


def test_grouped_class_maps_is_eq4_class_major(layer_test):
    maps = _maps()
    expected = np.stack([maps[..., 0] + maps[..., 1], maps[..., 2] + maps[..., 3], maps[..., 4] + maps[..., 5]], -1)
    cams = layer_test(GroupedClassMaps, {"maps_per_class": 2}, maps, expected)
    np.testing.assert_allclose(cams.mean(axis=(1, 2)), GroupedSumGAP(2)(maps).numpy(), rtol=1e-5)


def test_class_probabilities_is_softmax_and_keeps_names(layer_test):
    logits = np.array([[1.0, 2.0, 3.0]], "float32").reshape(1, 1, 1, 3)
    expected = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    layer_test(ClassProbabilities, {"class_names": ["a", "b", "c"]}, logits, expected)


@pytest.mark.parametrize("bad", [0, -1, 2.5, None])
def test_bad_maps_per_class(bad):
    with pytest.raises(ValueError, match="maps_per_class"):
        GroupedSumGAP(bad)


def test_channels_not_multiple_of_m():
    with pytest.raises(ValueError, match="not a multiple"):
        GroupedSumGAP(4)(np.ones((1, 2, 2, 6), "float32"))


def test_wrong_number_of_class_names():
    with pytest.raises(ValueError, match="2 class names were given for 3 classes"):
        ClassProbabilities(["a", "b"])(np.ones((1, 3), "float32"))
