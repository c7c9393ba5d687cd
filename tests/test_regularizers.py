import keras
import numpy as np
import pytest

import mindgap
from mindgap.regularizers import MapActivityPenalty, map_penalty

ALPHA = 1e-7


def _known_maps():
    # 2 images, 2x2 maps, 3 kernels; ReLU outputs so non-negative, one dead map.
    maps = np.zeros((2, 2, 2, 3), "float32")
    maps[0, :, :, 0] = [[1.0, 2.0], [3.0, 4.0]]
    maps[0, :, :, 1] = [[0.0, 0.5], [0.0, 0.0]]
    maps[1, :, :, 0] = [[2.0, 0.0], [0.0, 0.0]]
    maps[1, :, :, 2] = [[3.0, 4.0], [0.0, 0.0]]
    return maps


def test_l1_is_eq5():
    # image 0: |10| + |0.5| + |0| ; image 1: |2| + |0| + |7|
    per_image = np.array([10.5, 9.0])
    maps = _known_maps()
    assert float(map_penalty(maps, "l1", ALPHA, "sum")) == pytest.approx(ALPHA * per_image.sum(), rel=1e-6)
    assert float(map_penalty(maps, "l1", ALPHA, "mean")) == pytest.approx(ALPHA * per_image.mean(), rel=1e-6)


def test_group_l2_is_eq6_not_squared_l2():
    # image 0: sqrt(1+4+9+16) + sqrt(0.25) + 0 ; image 1: sqrt(4) + 0 + sqrt(9+16)
    per_image = np.array([np.sqrt(30.0) + 0.5, 2.0 + 5.0])
    maps = _known_maps()
    assert float(map_penalty(maps, "l2", ALPHA, "sum")) == pytest.approx(ALPHA * per_image.sum(), rel=1e-6)
    assert float(map_penalty(maps, "l2", ALPHA, "mean")) == pytest.approx(ALPHA * per_image.mean(), rel=1e-6)
    squared = ALPHA * (maps**2).sum()
    assert float(map_penalty(maps, "l2", ALPHA, "sum")) != pytest.approx(squared)


def test_group_l2_gradient_is_finite_on_dead_maps():
    import tensorflow as tf

    maps = tf.Variable(_known_maps())
    with tf.GradientTape() as tape:
        value = map_penalty(maps, "l2", 1.0)
    gradient = tape.gradient(value, maps).numpy()
    assert np.isfinite(gradient).all()
    assert gradient[0, 0, 0, 2] == 0.0  # the dead map gets no push


@pytest.mark.parametrize("penalty", ["l1", "l2"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_layer_round_trip_and_loss(layer_test, penalty, reduction):
    maps = _known_maps()
    layer_test(MapActivityPenalty, {"penalty": penalty, "alpha": ALPHA, "reduction": reduction}, maps, maps)
    layer = MapActivityPenalty(penalty, alpha=ALPHA, reduction=reduction)
    layer(maps)
    assert float(layer.losses[0]) == pytest.approx(float(map_penalty(maps, penalty, ALPHA, reduction)), rel=1e-6)


@pytest.mark.parametrize("name,penalty", [("Tiny-GAP5-L1", "l1"), ("Tiny-GAP-Zhou-L2", "l2")])
def test_model_losses_carry_the_penalty(name, penalty):
    model = mindgap.build_model(name, 3, input_shape=(32, 32, 3), alpha=ALPHA)
    images = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype("float32")
    maps_model = keras.Model(model.input, model.get_layer("gap_maps").output)
    maps = maps_model(images).numpy()
    model(images)
    assert len(model.losses) == 1
    assert float(model.losses[0]) == pytest.approx(float(map_penalty(maps, penalty, ALPHA, "sum")), rel=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="Unknown penalty 'l3'"):
        MapActivityPenalty("l3")
    with pytest.raises(ValueError, match="Unknown reduction 'avg'"):
        MapActivityPenalty("l1", reduction="avg")
    with pytest.raises(ValueError, match="alpha"):
        MapActivityPenalty("l1", alpha=-1.0)
