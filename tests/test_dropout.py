import keras
import numpy as np
import pytest
import tensorflow as tf

import mindgap
from mindgap import dropout
from mindgap.dropout import utilization
from mindgap.saliency import excitation


def _images(count, size, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (count, size, size, 3)).astype("float32")


def _small_cnn2(method="excitation", classes=3, **arguments):
    return dropout.build_cnn2(classes, input_shape=(16, 16, 3), filters=(4, 4, 4), units=12, dropout=method, seed=3,
                              **arguments)


# ------------------------------------------------------------------ eq. 5.1 and the schedules
@pytest.mark.parametrize("num_neurons,base_retain", [(10, 0.5), (2048, 0.5), (4096, 0.25), (7, 0.75), (3, 0.9)])
def test_eq_5_1_at_its_three_anchors(num_neurons, base_retain):
    p = dropout.retaining_probability(np.array([1.0, 0.0, 1.0 / num_neurons]), num_neurons, base_retain)
    np.testing.assert_allclose(p, [0.0, 1.0, base_retain], atol=1e-12)


def test_eq_5_1_is_figure_5_2_at_points_computed_by_hand():
    # N = 10, P = 0.5: p = 1 - 4.5 q / (4 q + 0.5); q = 0.05 -> 1 - 0.225/0.7 = 19/28, q = 0.2 -> 1 - 0.9/1.3 = 4/13,
    # q = 0.5 -> 1 - 2.25/2.5 = 1/10; decreasing in between.
    q = np.array([0.05, 0.2, 0.5])
    np.testing.assert_allclose(dropout.retaining_probability(q, 10, 0.5), [19 / 28, 4 / 13, 1 / 10], rtol=1e-12)
    curve = dropout.retaining_probability(np.linspace(0, 1, 101), 10, 0.5)
    assert np.all(np.diff(curve) < 0)


def test_eq_5_1_on_tensors_and_its_mirror():
    q = tf.constant([0.0, 0.1, 1.0])
    np.testing.assert_allclose(dropout.retaining_probability(q, 10, 0.5).numpy(), [1.0, 0.5, 0.0], atol=1e-6)
    np.testing.assert_allclose(dropout.mirrored_retaining_probability(np.array([0.0, 0.1, 1.0]), 10, 0.25), [0.0, 0.25, 1.0],
                               atol=1e-12)
    q = np.linspace(0, 1, 11)  # at P = 0.5 the mirror keeps what eq. 5.1 drops, with the same probability
    np.testing.assert_allclose(dropout.mirrored_retaining_probability(q, 10, 0.5),
                               1 - dropout.retaining_probability(q, 10, 0.5), atol=1e-12)
    np.testing.assert_allclose(dropout.retaining_probability(q, 10, 1.0), 1.0)


def test_curriculum_schedule_by_hand():
    # theta(t) = (1 - P) exp(-gamma t) + P, P = 0.5, gamma = 5e-4: 1 at t = 0; 0.5 e^-0.5 + 0.5 at t = 1000;
    # 0.5 e^-5 + 0.5 at t = 10,000
    values = dropout.curriculum_retaining_probability(np.array([0, 1000, 10000]), 0.5)
    np.testing.assert_allclose(np.asarray(values), [1.0, 0.80326533, 0.50336897], rtol=1e-6)
    layer = dropout.GuidedDropout("curriculum", base_retain=0.5)
    retain, shape = layer.retaining_probabilities(tf.ones((4, 6)), step=tf.constant(1000))
    assert shape == (1, 6)
    np.testing.assert_allclose(retain.numpy(), np.full((1, 6), 0.80326533), rtol=1e-6)


@pytest.mark.parametrize("call,message", [
    (lambda: dropout.retaining_probability(0.1, 10, 0.0), "must be in \\(0, 1\\], got 0.0"),
    (lambda: dropout.GuidedDropout("excitation", base_retain=1.5), "must be in \\(0, 1\\], got 1.5"),
    (lambda: dropout.GuidedDropout("gaussian"), "Unknown dropout 'gaussian'; use one of none, standard"),
    (lambda: mindgap.build_model("Tiny-GAP5", 3, input_shape=(32, 32, 3), dropout="excitation"), "GAP-Zhou heads only"),
    (lambda: mindgap.TrainConfig().replace(dropout="spatial"), "dropout must be one of"),
])
def test_bad_input_gets_one_clear_line(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ------------------------------------------------------------------ masks
def test_masks_are_per_image_and_follow_p():
    layer = dropout.GuidedDropout("excitation", base_retain=0.5, seed=7)
    draws, neurons = 4000, 5
    retain = np.array([[0.05, 0.3, 0.5, 0.8, 1.0]], np.float32)
    features = np.full((draws, neurons), 2.0, np.float32)  # one row per draw of the same image
    out = layer.drop(features, np.repeat(retain, draws, axis=0), (draws, neurons)).numpy()
    kept = out > 0
    # binomial: standard error sqrt(p (1 - p) / 4000) <= 0.0079; 0.03 is 3.8 of them
    np.testing.assert_allclose(kept.mean(axis=0), retain[0], atol=0.03)
    np.testing.assert_allclose(out[kept], (features / retain)[kept], rtol=1e-6)  # inverted: divided by p
    np.testing.assert_allclose(out.mean(axis=0), 2.0, rtol=0.15)  # so the expected value is the input
    # masks differ from image to image: of the 16 patterns with a non-zero probability (the last unit is always
    # kept) the rarest has 0.05 * 0.3 * 0.5 * 0.2 = 0.0015, about 6 of the 4,000 draws
    assert len({row.tobytes() for row in kept}) >= 14


def test_base_scaling_divides_the_kept_units_of_the_evidence_variants_by_p():
    layer = dropout.GuidedDropout("excitation", base_retain=0.5, seed=7, scaling="base")
    out = layer.drop(np.full((400, 2), 3.0, np.float32), np.full((400, 2), 0.2, np.float32), (400, 2)).numpy()
    assert set(np.unique(out)) == {0.0, 6.0}  # 3 / P, not 3 / 0.2
    with pytest.raises(ValueError, match="Unknown scaling 'keras'"):
        dropout.GuidedDropout("excitation", scaling="keras")


def test_standout_keeps_by_sigmoid_of_the_pre_activation_by_hand():
    """Ba & Frey's standout, shared weights: p = sigmoid(alpha (W x + b) + beta); 1 / (1 + e^-x) at hand-picked x."""
    pre = np.array([[-2.0, 0.0, 1.0, 3.0]], np.float32)
    np.testing.assert_allclose(dropout.standout_retaining_probability(pre).numpy(),
                               [[0.119203, 0.5, 0.731059, 0.952574]], rtol=1e-5)  # alpha 1, beta 0
    np.testing.assert_allclose(dropout.standout_retaining_probability(pre, alpha=0.5, beta=-1.0).numpy(),
                               [[0.119203, 0.268941, 0.377541, 0.622459]], rtol=1e-5)  # sigmoid(-2, -1, -0.5, 0.5)
    layer = dropout.GuidedDropout("adaptive", alpha=0.5, beta=-1.0)
    retain, shape = layer.retaining_probabilities(tf.ones((1, 4)), pre_activations=tf.constant(pre))
    np.testing.assert_allclose(retain.numpy(), [[0.119203, 0.268941, 0.377541, 0.622459]], rtol=1e-5)
    assert tuple(shape) == (1, 4)
    with pytest.raises(ValueError, match="needs the pre-activations"):
        layer.retaining_probabilities(tf.ones((1, 4)))
    np.testing.assert_array_equal(layer(tf.ones((2, 4)), training=True).numpy(), np.ones((2, 4)))  # only train_step drops
    assert dropout.GuidedDropout.from_config(layer.get_config()).beta == -1.0


def test_standout_in_train_step_reads_fc1_through_its_own_weights():
    """The keep probability of fc1's unit j is sigmoid(alpha (W x + b)_j + beta) with fc1's own W, b; a kept unit is
    divided by that p: Figure 5.1's forward pass redone by hand with the same Bernoulli draws."""
    model = _small_cnn2("adaptive")
    images, labels = _images(8, 16, seed=5), np.zeros(8, np.int32)
    fc1, layer = model.get_layer("fc1"), model.dropout_layer
    pre = model._parts().below_dense(images).numpy() @ fc1.kernel.numpy() + fc1.bias.numpy()
    state = layer.seed_generator.state.numpy()
    probabilities, largest = model.guided_forward(images, labels, return_largest_scale=True)
    layer.seed_generator.state.assign(state)
    uniform = keras.random.uniform((8, 12), seed=layer.seed_generator).numpy()  # the draws guided_forward made
    retain = 1 / (1 + np.exp(-pre))
    keep = uniform < retain
    dropped = np.where(keep, np.maximum(pre, 0) / retain, 0.0).astype(np.float32)
    np.testing.assert_allclose(probabilities.numpy(), model.probabilities_from_features(dropped).numpy(), rtol=1e-4,
                               atol=1e-6)
    assert float(largest) == pytest.approx((1 / retain)[keep].max(), rel=1e-5)


def test_the_largest_scale_factor_is_one_over_the_smallest_kept_p_or_one_over_p():
    layer = dropout.GuidedDropout("excitation", base_retain=0.5, seed=3)
    retain = np.tile(np.array([[0.02, 0.1, 0.5, 1.0]], np.float32), (2000, 1))
    out, largest = layer.drop(tf.ones((2000, 4)), tf.constant(retain), (2000, 4), return_largest_scale=True)
    kept = out.numpy() > 0
    assert kept[:, 0].any()  # 2,000 draws at p = 0.02: about 40 kept
    assert float(largest) == pytest.approx(50.0)  # 1 / 0.02: the rarest unit kept, scaled the most
    np.testing.assert_allclose(np.unique(out.numpy()[kept]), [1.0, 2.0, 10.0, 50.0], rtol=1e-6)
    base = dropout.GuidedDropout("excitation", base_retain=0.5, seed=3, scaling="base")
    out, largest = base.drop(tf.ones((2000, 4)), tf.constant(retain), (2000, 4), return_largest_scale=True)
    assert float(largest) == pytest.approx(2.0) and set(np.unique(out.numpy())) == {0.0, 2.0}  # 1 / P for every kept unit


def test_fit_logs_the_largest_scale_factor_of_each_step():
    model = _small_cnn2("excitation")
    model.compile("adam", "sparse_categorical_crossentropy")
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(float(logs["largest_scale"]))

    model.fit(_images(8, 16, seed=6), np.arange(8) % 3, batch_size=4, epochs=1, verbose=0, callbacks=[Record()])
    assert len(seen) == 2 and all(value >= 1.0 for value in seen)  # eq. 5.1's p <= 1 so every kept factor is >= 1


def test_standard_draws_one_mask_per_batch_and_per_image_one_per_image():
    features = tf.ones((64, 32))
    batch = dropout.GuidedDropout("standard", seed=1)
    kept = batch(features, training=True).numpy() > 0
    assert (kept == kept[:1]).all() and 0 < kept.mean() < 1
    per_image = dropout.GuidedDropout("standard_per_image", seed=1)
    kept = per_image(features, training=True).numpy() > 0
    assert len({row.tobytes() for row in kept}) > 50
    assert abs(kept.mean() - 0.5) < 0.05  # 2,048 draws: standard error 0.011


def test_evidence_variants_drop_only_in_their_models_train_step():
    layer = dropout.GuidedDropout("excitation")
    with pytest.raises(ValueError, match="needs p_EB of the true class"):
        layer.retaining_probabilities(tf.ones((2, 4)))
    # a plain training call (mindgap.train's BatchNorm statistics pass) has no labels: the input passes unchanged
    np.testing.assert_array_equal(layer(tf.ones((2, 4)), training=True).numpy(), np.ones((2, 4)))


def test_layer_contract(layer_test):
    layer_test(dropout.GuidedDropout, {"method": "standard", "base_retain": 0.75, "gamma": 0.001, "seed": 2},
               np.random.default_rng(0).uniform(0, 1, (2, 4, 4, 3)).astype("float32"))


# ------------------------------------------------------------------ p_EB at the dropout layer
def test_p_eb_sums_to_one_equals_mindgaps_eb_and_a_hand_computation():
    model = _small_cnn2()
    images, labels = _images(4, 16), np.array([0, 1, 2, 1])
    features, p_eb = model.evidence(images, labels)
    np.testing.assert_allclose(p_eb.sum(axis=1), 1.0, rtol=1e-5)
    library = excitation.excitation_backprop(model, images, labels[:, None], layer=dropout.EVIDENCE_LAYER)[..., 0]
    np.testing.assert_allclose(p_eb, library, rtol=1e-5, atol=1e-8)
    # by hand, eq. 4.1-4.2 through fc2 (ReLU) and the classifier: P(a_j) = a_j w+_jc / sum, then down to fc1
    fc2_kernel, fc2_bias = (value.numpy() for value in model.get_layer("fc2").weights)
    top = np.maximum(model.get_layer("logits").kernel.numpy(), 0)
    hidden = np.maximum(features @ fc2_kernel + fc2_bias, 0)
    expected = []
    for image, label in enumerate(labels):
        p_hidden = hidden[image] * top[:, label] / (hidden[image] * top[:, label]).sum()
        contributions = features[image][:, None] * np.maximum(fc2_kernel, 0)  # (N, M)
        totals = contributions.sum(axis=0)
        expected.append((contributions / np.where(totals > 0, totals, 1) * p_hidden).sum(axis=1))
    np.testing.assert_allclose(p_eb, np.array(expected), rtol=1e-4, atol=1e-7)
    retain, shape = model.dropout_layer.retaining_probabilities(tf.constant(features), tf.constant(p_eb))
    np.testing.assert_allclose(retain.numpy(), dropout.retaining_probability(p_eb, 12, 0.5), rtol=1e-5, atol=1e-6)
    assert tuple(shape) == (4, 12)


def test_excitation_prediction_masks_come_from_the_predicted_class_not_the_label():
    model = _small_cnn2("excitation_prediction")
    images = _images(6, 16, seed=4)
    generator = model.dropout_layer.seed_generator
    state = generator.state.numpy()
    with_labels_a = model.guided_forward(images, np.zeros(6, np.int32)).numpy()
    generator.state.assign(state)
    with_labels_b = model.guided_forward(images, np.array([1, 2, 1, 2, 1, 2], np.int32)).numpy()
    np.testing.assert_allclose(with_labels_a, with_labels_b, rtol=1e-6)  # the label does not enter the mask
    features = model.dropout_features(images, training=True)
    predicted = np.argmax(model.probabilities_from_features(features).numpy(), axis=-1)
    model.dropout_layer.method = "excitation"  # eq. 5.1 of the true class, given the predictions as labels
    generator.state.assign(state)
    np.testing.assert_allclose(model.guided_forward(images, predicted).numpy(), with_labels_a, rtol=1e-5, atol=1e-7)
    model.dropout_layer.method = "excitation_prediction"
    masked = model.masked_probabilities(images, predicted)
    assert masked.shape == (6, 3)
    np.testing.assert_allclose(masked.sum(axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="needs an evidence variant"):
        _small_cnn2("standard").masked_probabilities(images, predicted)


# ------------------------------------------------------------------ fit, distribute, save
def test_every_variant_trains_in_fit_and_changes_the_weights():
    images, labels = _images(8, 16), np.arange(8) % 3
    for method in dropout.METHODS:
        model = _small_cnn2(method)
        model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
        before = model.get_layer("fc1").kernel.numpy().copy()
        history = model.fit(images, labels, batch_size=4, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0]), method
        assert not np.allclose(before, model.get_layer("fc1").kernel.numpy()), method


def test_mirrored_strategy_fit_then_keras_file_predicts_like_its_weights(tmp_path):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    images, labels = _images(8, 16), np.eye(3)[np.arange(8) % 3]  # one-hot labels, as mindgap's pipeline gives
    with strategy.scope():
        model = _small_cnn2("excitation")
        model.compile(keras.optimizers.Adam(1e-3), "categorical_crossentropy", metrics=["accuracy"])
    model.fit(tf.data.Dataset.from_tensor_slices((images, labels)).batch(4), epochs=1, verbose=0)
    path = tmp_path / "cnn2.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, dropout.GuidedDropoutModel) and loaded.dropout_layer.method == "excitation"
    rebuilt = _small_cnn2("none")
    rebuilt.set_weights(model.get_weights())  # the same weights without any dropout: inference is the plain model
    expected = rebuilt.predict(images, verbose=0)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), expected, rtol=1e-6)
    np.testing.assert_allclose(model.predict(images, verbose=0), expected, rtol=1e-6)


def test_gap_zhou_head_with_excitation_dropout(tmp_path):
    model = mindgap.build_model("Tiny-GAP-Zhou", 3, input_shape=(32, 32, 3), zhou_units=8, dropout="excitation")
    assert isinstance(model, dropout.GuidedDropoutModel) and model.evidence_layer == "gap"
    model.compile("adam", "categorical_crossentropy")
    images = _images(4, 32)
    model.fit(images, np.eye(3)[[0, 1, 2, 0]], epochs=1, verbose=0)
    _, p_eb = model.evidence(images, [0, 1, 2, 0])
    np.testing.assert_allclose(p_eb.sum(axis=1), 1.0, rtol=1e-5)
    model.save(tmp_path / "zhou.keras")
    loaded = mindgap.load_model(tmp_path / "zhou.keras")
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0), rtol=1e-6)
    plain = mindgap.build_model("Tiny-GAP-Zhou", 3, input_shape=(32, 32, 3), zhou_units=8)  # unchanged without it
    assert not isinstance(plain, dropout.GuidedDropoutModel)
    assert "gap_dropout" not in [layer.name for layer in plain.layers]


# ------------------------------------------------------------------ utilization (Table 5.3) and compression (Fig. 5.5)
def test_utilization_measures_on_a_small_layer():
    activations = np.array([[1.0, 1.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    p_eb = np.array([[0.5, 0.5, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]])
    numbers = utilization.utilization(activations, p_eb)
    assert numbers["neurons_on"] == pytest.approx((2 + 1 + 4) / 3)
    assert numbers["peak_p_eb"] == pytest.approx((0.5 + 1.0 + 0.25) / 3)
    assert numbers["p_eb_entropy"] == pytest.approx((np.log(2) + 0 + np.log(4)) / 3)
    assert numbers["activation_entropy"] == pytest.approx((np.log(2) + 0 + np.log(4)) / 3)
    assert utilization.activation_entropy(np.zeros((1, 3))) == 0.0
    initial = np.zeros((2, 3))
    final = np.array([[0.3, 0.0, 1.0], [0.4, 0.1, 0.0]])  # column norms 0.5, 0.1, 1.0
    np.testing.assert_allclose(utilization.weight_changes(initial, final), [0.5, 0.1, 1.0])
    assert utilization.conservative_filters(initial, final, delta=0.25) == 1
    assert utilization.conservative_filters(initial, final, delta=0.75) == 2
    assert utilization.conservative_filters(initial, final, 0.75, np.zeros(3), np.array([0.0, 0.0, 0.6])) == 2
    assert utilization.conservative_filters(initial, final, 0.55, np.zeros(3), np.array([0.3, 0.0, 0.0])) == 1


def test_compression_masks_by_hand():
    p_eb = np.array([[0.5, 0.3, 0.2, 0.0]])
    most = lambda level: utilization.relevance_keep_masks(p_eb, level, most_relevant=True)[0].tolist()  # noqa: E731
    least = lambda level: utilization.relevance_keep_masks(p_eb, level, most_relevant=False)[0].tolist()  # noqa: E731
    assert most(0.0) == [True, True, True, True]
    assert most(0.4) == [False, True, True, True]  # 0.5 reaches 0.4
    assert most(0.6) == [False, False, True, True]
    assert least(0.0) == [True, True, True, True]
    assert least(0.25) == [True, True, False, False]  # 0.0 + 0.2 stays within 0.25
    assert least(0.5) == [True, False, False, False]
    keep = utilization.random_keep_masks(np.random.default_rng(0), 5, 8, 3)
    assert (keep.sum(axis=1) == 5).all()
    assert utilization.COMPRESSION_LEVELS[:3] == (0.0, 0.05, 0.1) and utilization.COMPRESSION_LEVELS[-1] == 0.95
