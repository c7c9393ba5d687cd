import keras
import numpy as np
import pytest
import tensorflow as tf

import mindgap
from mindgap.engine import graph as _graph
from mindgap.saliency import causal, excitation, scores
from mindgap.saliency.rise import rise


def _images(count, size, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (count, size, size, 3)).astype("float32")


# ------------------------------------------------------------------ EB / cEB
@pytest.mark.parametrize("name,size,bottom", [("Tiny-GAP5", 48, "tiny_block1"), ("Inception-GAP5", 75, None),
                                              ("GoogLeNet-GAP-Zhou", 64, "conv1_7x7")])
def test_eb_mwp_sums_to_one_at_every_layer(name, size, bottom):
    model = mindgap.build_model(name, 4, input_shape=(size, size, 3))
    images = _images(2, size)
    graph = _graph.flat_graph(model)
    if bottom is None:  # Keras numbers InceptionV3's layers per process: take its first activation by position
        bottom = next(layer for layer in graph.names if layer.startswith("activation"))
    logits = model.get_layer("probabilities").input
    class_index = int(np.argmax(keras.Model(model.input, logits)(images)[0]))
    mwp = excitation.marginal_winning_probabilities(model, images, class_index, layer=bottom)
    ceb = excitation.marginal_winning_probabilities(model, images, class_index, layer=bottom, contrastive=True)
    names = {key: layer for layer, key in graph.names.items()}
    cuts = [names[key] for key in _graph.cut_keys(graph) if names.get(key) in mwp]
    assert bottom in cuts and "gap_maps" in cuts and len(cuts) >= (10 if name.startswith("Tiny") else 12)
    for layer in cuts:
        totals = mwp[layer].reshape(len(images), -1).sum(axis=1)
        np.testing.assert_allclose(totals, 1.0, rtol=1e-4, err_msg=layer)
        assert mwp[layer].min() >= 0
    below = cuts[:cuts.index("gap") + 1] if "Zhou" in name else cuts[:cuts.index("gap_maps")]  # cuts: input first
    for layer in below:  # the two distributions of cEB cancel: their difference sums to 0
        np.testing.assert_allclose(ceb[layer].reshape(len(images), -1).sum(axis=1), 0.0, atol=1e-4, err_msg=layer)
        assert np.abs(ceb[layer]).max() > 0


def test_eb_at_gap_maps_of_a_gapm_head_is_the_normalised_cam():
    """Closed form (excitation module docstring): EB_c = CAM_c / sum(CAM_c) at gap_maps."""
    model = mindgap.build_model("Tiny-GAP3", 4, input_shape=(40, 40, 3))
    images = _images(3, 40)
    eb = mindgap.saliency.compute(model, images, [0, 2, 3], method="eb", layer="gap_maps")
    cam = mindgap.saliency.compute(model, images, [0, 2, 3], method="cam")
    np.testing.assert_allclose(eb, cam / cam.sum(axis=(1, 2), keepdims=True), rtol=1e-4, atol=1e-7)
    with pytest.raises(ValueError, match="not below it"):
        mindgap.saliency.compute(model, images, [0], method="ceb", layer="gap_maps")


def test_eb_names_a_layer_it_cannot_pass():
    inputs = keras.Input((16, 16, 3))
    low = keras.layers.Conv2D(8, 3, activation="relu", name="low")(inputs)
    features = keras.layers.Conv2D(8, 3, activation="tanh", name="odd_tanh")(low)
    features = keras.layers.ReLU(name="after")(features)
    model = keras.Model(inputs, mindgap.heads.gapm_head(features, 3, 2))
    maps = mindgap.saliency.compute(model, _images(1, 16), 0, method="eb", layer="after")  # fine above it
    np.testing.assert_allclose(maps.sum(), 1.0, rtol=1e-4)
    with pytest.raises(ValueError, match="can't pass layer 'odd_tanh'"):
        mindgap.saliency.compute(model, _images(1, 16), 0, method="eb", layer="low")
    with pytest.raises(ValueError, match="non-negative"):
        excitation.excitation_backprop(model, _images(1, 16), np.zeros((1, 1), int), layer=model.layers[0].name)


def test_eb_runs_below_the_backbone_output_on_inception():
    model = mindgap.build_model("Inception-GAP5", 3, input_shape=(75, 75, 3))
    maps = mindgap.saliency.compute(model, _images(2, 75), [1], method="eb", layer="mixed1")
    assert maps.shape == (2, 7, 7, 1)
    np.testing.assert_allclose(maps.sum(axis=(1, 2, 3)), 1.0, rtol=1e-4)


# ------------------------------------------------------------------ Grad-CAM
def test_grad_cam_at_the_backbone_output_matches_a_hand_computation():
    model = mindgap.build_model("Tiny-GAP2", 3, input_shape=(32, 32, 3))
    images = _images(2, 32)
    activations = model.get_layer("backbone")(images, training=False).numpy()  # (2, 4, 4, 128)
    conv = model.get_layer("gap_maps")
    kernel, bias = conv.kernel.numpy(), conv.bias.numpy()  # (3, 3, 128, 6)
    maps = conv(activations).numpy()
    height, width = maps.shape[1:3]
    expected = np.zeros((2, height, width, 3), np.float32)
    for image in range(2):
        for class_index in range(3):
            gradient = np.zeros_like(activations[image])
            for k in range(class_index * 2, class_index * 2 + 2):  # d g_c / d A = (1/XY) sum_k W_k * 1[f_k > 0]
                for y in range(height):
                    for x in range(width):
                        if maps[image, y, x, k] <= 0:
                            continue
                        for dy in range(3):
                            for dx in range(3):
                                yy, xx = y + dy - 1, x + dx - 1
                                if 0 <= yy < height and 0 <= xx < width:
                                    gradient[yy, xx] += kernel[dy, dx, :, k] / (height * width)
            alpha = gradient.mean(axis=(0, 1))
            expected[image, ..., class_index] = np.maximum((activations[image] * alpha).sum(axis=-1), 0)
    assert np.abs(bias).max() == 0 and expected.max() > 0
    found = mindgap.saliency.compute(model, images, None, method="gradcam")
    np.testing.assert_allclose(found, expected, rtol=1e-4, atol=1e-7)


def test_grad_cam_inside_the_backbone_matches_the_layers_composed_by_hand():
    model = mindgap.build_model("Tiny-GAP2", 3, input_shape=(32, 32, 3))
    images = _images(2, 32)
    backbone = model.get_layer("backbone")
    lower = keras.Model(backbone.input, backbone.get_layer("tiny_block3").output)
    activations = tf.constant(lower(images, training=False))
    with tf.GradientTape() as tape:
        tape.watch(activations)
        features = backbone.get_layer("tiny_block4_conv")(activations)
        features = backbone.get_layer("tiny_block4")(backbone.get_layer("tiny_block4_bn")(features, training=False))
        logits = model.get_layer("grouped_gap")(model.get_layer("gap_maps")(features))[:, 1]
    alpha = tf.reduce_mean(tape.gradient(logits, activations), axis=(1, 2))
    expected = np.maximum(np.einsum("bk,bhwk->bhw", alpha.numpy(), activations.numpy()), 0)
    found = mindgap.saliency.compute(model, images, [1], method="gradcam", layer="tiny_block3")
    assert found.shape == (2, 4, 4, 1) and expected.max() > 0
    np.testing.assert_allclose(found[..., 0], expected, rtol=1e-4, atol=1e-7)


def test_grad_cam_at_gap_maps_of_a_gapm_head_is_the_cam_over_xy():
    model = mindgap.build_model("Tiny-GAP5", 4, input_shape=(40, 40, 3))
    images = _images(2, 40)
    grad = mindgap.saliency.compute(model, images, None, method="gradcam", layer="gap_maps")
    cam = mindgap.saliency.compute(model, images, None, method="cam")
    np.testing.assert_allclose(grad, cam / (cam.shape[1] * cam.shape[2]), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(grad, mindgap.grad_cam(model, images), rtol=1e-4, atol=1e-7)


# ---------------------------------------------------------------------- toys
class RegionScore(keras.layers.Layer):
    """Probabilities [s, 1 - s] with s the mean of channel 0 over rows/columns ``box`` (a toy black box)."""

    def __init__(self, box, **kwargs):
        super().__init__(**kwargs)
        self.box = box

    def call(self, inputs):
        y0, y1, x0, x1 = self.box
        score = keras.ops.mean(inputs[:, y0:y1, x0:x1, 0], axis=(1, 2))[:, None]
        return keras.ops.concatenate([score, 1.0 - score], axis=-1)


def _toy(size, box):
    inputs = keras.Input((size, size, 3))
    return keras.Model(inputs, RegionScore(box)(inputs))


def test_rise_peaks_in_the_region_and_converges():
    size, box = 16, (2, 6, 9, 13)
    model, image = _toy(size, box), np.ones((1, size, size, 3), np.float32)
    reference = rise(model, image, [[0]], num_masks=6000, grid_size=4, seed=1, batch_size=500)[0, ..., 0]
    errors = {}
    for count in (100, 1600):
        maps = rise(model, image, [[0]], num_masks=count, grid_size=4, seed=2, batch_size=200)[0, ..., 0]
        errors[count] = float(np.abs(maps - reference).mean())
        y, x = np.unravel_index(np.argmax(maps), maps.shape)
        assert box[0] <= y < box[1] and box[2] <= x < box[3]
    assert errors[1600] < 0.5 * errors[100]
    inside, far = reference[box[0]:box[1], box[2]:box[3]].mean(), reference[12:, :5].mean()
    assert inside > far + 0.1 and abs(far - 0.5) < 0.02  # far from the region: E[s] E[M] / p = E[s] = 1/2


def test_rise_memory_does_not_depend_on_the_number_of_masks():
    model = _toy(8, (0, 4, 0, 4))
    seen = []
    from mindgap.saliency import rise as rise_module

    original = rise_module.generate_masks

    def spy(rng, count, *args):
        seen.append(count)
        return original(rng, count, *args)

    rise_module.generate_masks = spy
    try:
        rise(model, np.ones((1, 8, 8, 3), np.float32), [[0]], num_masks=130, batch_size=32)
    finally:
        rise_module.generate_masks = original
    assert max(seen) == 32 and sum(seen) == 130


def test_insertion_deletion_on_a_toy_with_a_known_answer():
    """8x8 image of ones, score = mean of a 16-pixel region, 4 pixels per step (16 steps):

    the perfect map deletes the region in the first 4 steps: curve 1, .75, .5, .25, 0, ... 0,
    AUC = (1 + .75 + .5 + .25 - 1/2) / 16 = 0.125; insertion the mirror, 0.875.  The worst
    map (region last) gives the reverse.
    """
    box = (2, 6, 3, 7)
    model = _toy(8, box)
    images = np.ones((2, 8, 8, 3), np.float32)
    perfect = np.zeros((8, 8), np.float32)
    perfect[box[0]:box[1], box[2]:box[3]] = 1.0
    result = causal.insertion_deletion(model, images, np.stack([perfect, 1 - perfect]), [0, 0], steps=16,
                                       insertion_start=0.0)
    np.testing.assert_allclose(result["deletion"], [0.125, 0.875], atol=1e-6)
    np.testing.assert_allclose(result["insertion"], [0.875, 0.125], atol=1e-6)
    np.testing.assert_allclose(result["deletion_curve"][0, :6], [1, 0.75, 0.5, 0.25, 0, 0], atol=1e-6)
    blurred = causal.insertion_deletion(model, images[:1], perfect[None], [0], steps=16)  # blur of ones is ones
    np.testing.assert_allclose(blurred["insertion"], 1.0, atol=1e-5)


# -------------------------------------------------------------------- scores
def test_localization_scores():
    maps = np.zeros((2, 40, 40), np.float32)
    maps[0, 10:20, 10:20] = 1.0
    maps[1, 30:34, 30:34] = 1.0
    maps += 5.0  # an offset (as RISE's) must not change the box scores
    boxes = [np.array([[10, 10, 20, 20]]), np.array([[0, 0, 10, 10]])]
    result = scores.localization_scores(maps, boxes)
    assert result["pointing"].tolist() == [True, False]
    assert result["box_iou50"].tolist() == [True, False]
    assert result["centre_of_mass"].tolist() == [True, False]
    assert result["max_box_acc_v2"] == pytest.approx(0.5)
    near = np.zeros((1, 40, 40), np.float32)
    near[0, 24, 10] = 1.0  # centre (10.5, 24.5): 4.5 px below the box [10, 20)
    assert scores.localization_scores(near, [np.array([[5, 5, 20, 20]])], tolerance="fixed")["pointing"][0]
    assert not scores.localization_scores(near, [np.array([[5, 5, 20, 20]])], tolerance=4)["pointing"][0]
    assert not scores.localization_scores(near, [np.array([[5, 5, 20, 20]])])["pointing"][0]  # 15 · 40 / 224 = 2.7 px


# --------------------------------------------------------------- interface
def test_compute_interface():
    model = mindgap.build_model("Tiny-GAP-Zhou", 3, input_shape=(32, 32, 3))
    images = _images(3, 32)
    assert mindgap.saliency.list_methods() == ["cam", "gradcam", "rise", "eb", "ceb", "bp", "eb_r", "ceb_r", "bp_r",
                                                "word_eb_r", "word_ceb_r", "caption_guided"]
    assert mindgap.saliency_maps is mindgap.saliency.compute
    assert mindgap.saliency.compute(model, images).shape == (3, 4, 4, 3)
    up = mindgap.saliency.compute(model, images, "predicted", method="ceb", upsample=True, batch_size=2)
    assert up.shape == (3, 32, 32, 1)
    per_image = mindgap.saliency.compute(model, images, np.array([[0], [1], [2]]), method="gradcam")
    every = mindgap.saliency.compute(model, images, None, method="gradcam")
    np.testing.assert_allclose(per_image[..., 0], every[np.arange(3), ..., [0, 1, 2]], rtol=1e-5, atol=1e-7)
    for count in (1, 2, 3):  # a new number of classes retraces the compiled functions
        eb = mindgap.saliency.compute(model, images, list(range(count)), method="eb")
        assert eb.shape == (3, 4, 4, count)
        np.testing.assert_allclose(eb.sum(axis=(1, 2)), 1.0, rtol=1e-4)
    with pytest.raises(ValueError, match="Unknown saliency method 'lime'"):
        mindgap.saliency.compute(model, images, method="lime")
    with pytest.raises(ValueError, match=r"classes must be in \[0, 2\]"):
        mindgap.saliency.compute(model, images, [5])
    with pytest.raises(ValueError, match="has no layer 'nope'"):
        mindgap.saliency.compute(model, images, [0], method="gradcam", layer="nope")
    with pytest.raises(ValueError, match="not a mindgap model"):
        mindgap.saliency.compute(_toy(32, (0, 4, 0, 4)), images, [0], method="eb")


def test_cli_explain_method(tmp_path, capsys):
    from mindgap.cli import main
    from mindgap.plots import save_rgb

    model = mindgap.build_model("Tiny-GAP5", 3, input_shape=(32, 32, 3), class_names=["cat", "dog", "owl"])
    model.save(tmp_path / "m.keras")
    save_rgb(np.random.default_rng(0).integers(0, 255, (40, 40, 3)).astype(np.uint8), tmp_path / "x.png")
    overlays = {}
    for method in ("cam", "eb", "rise"):
        out = tmp_path / method
        assert main(["explain", str(tmp_path / "x.png"), "--model", str(tmp_path / "m.keras"), "--class", "dog",
                     "--method", method, "--out", str(out)]) == 0
        (overlay,) = out.glob("*_dog*_overlay.png")  # non-CAM methods add _<method>
        overlays[method] = keras.utils.img_to_array(keras.utils.load_img(overlay))
    assert np.abs(overlays["cam"] - overlays["eb"]).max() > 0 and np.abs(overlays["cam"] - overlays["rise"]).max() > 0
    with pytest.raises(SystemExit):
        main(["explain", str(tmp_path / "x.png"), "--model", str(tmp_path / "m.keras"), "--method", "lime", "--out", "o"])
    assert "invalid choice: 'lime'" in capsys.readouterr().err


# ------------------------------------------------------------------ Keras idioms and tf-keras-vis on mindgap models
def _keras_example_grad_cam(model, images, class_index):
    """Keras' Grad-CAM example (keras.io/examples/vision/grad_cam), per image, at the backbone's output."""
    grad_model = keras.Model(model.inputs, [model.get_layer("backbone").output, model.output])
    with tf.GradientTape() as tape:
        features, predictions = grad_model(images)
        class_channel = predictions[:, class_index]
    gradients = tape.gradient(class_channel, features)
    pooled = tf.reduce_mean(gradients, axis=(1, 2))  # the example pools over (0, 1, 2) for its one image
    return tf.nn.relu(tf.einsum("bhwk,bk->bhw", features, pooled)).numpy()


@pytest.mark.parametrize("name", ["Tiny-GAP5-L1", "Tiny-GAP-Zhou"])
def test_keras_grad_cam_example_matches_mindgap_gradcam(tmp_path, name):
    model = mindgap.build_model(name, 3, input_shape=(32, 32, 3))
    images = _images(2, 32)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    loaded.layers[-1].activation = None  # the example's way to reach the logits
    for class_index in range(3):
        expected = mindgap.saliency.compute(model, images, class_index, method="gradcam")[..., 0]
        assert expected.max() > 0
        np.testing.assert_allclose(_keras_example_grad_cam(loaded, images, class_index), expected,
                                   rtol=1e-5, atol=1e-5 * expected.max())
        np.testing.assert_allclose(_keras_example_grad_cam(mindgap.logits_model(model), images, class_index), expected,
                                   rtol=1e-5, atol=1e-5 * expected.max())
    loaded.layers[-1].activation = keras.activations.softmax
    np.testing.assert_array_equal(loaded.predict(images, verbose=0), model.predict(images, verbose=0))


def test_logits_model_gives_the_softmax_inputs():
    model = mindgap.build_model("Tiny-GAP-Zhou", 3, input_shape=(32, 32, 3), zhou_units=8)
    images = _images(2, 32)
    logits = mindgap.logits_model(model).predict(images, verbose=0)
    np.testing.assert_allclose(tf.nn.softmax(logits).numpy(), model.predict(images, verbose=0), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="not a mindgap model"):
        mindgap.logits_model(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))


def test_tf_keras_vis_on_a_mindgap_model():
    vis = pytest.importorskip("tf_keras_vis", reason="tf-keras-vis is not installed (pip install tf-keras-vis==0.8.7)")
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.saliency import Saliency
    from tf_keras_vis.scorecam import Scorecam
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    assert vis.__version__ == "0.8.7"
    model = mindgap.build_model("Tiny-GAP5", 3, input_shape=(32, 32, 3))
    images = _images(2, 32)
    classes = [1, 2]
    score = CategoricalScore(classes)
    # the backbone is one layer: name it and do not let tf-keras-vis seek a Conv2D inside it
    at_backbone = dict(penultimate_layer="backbone", seek_penultimate_conv_layer=False)
    expected = mindgap.saliency.compute(model, images, np.array(classes)[:, None], method="gradcam")[..., 0]
    for logits_route in (Gradcam(mindgap.logits_model(model)), Gradcam(model, model_modifier=ReplaceToLinear())):
        found = logits_route(score, images, normalize_cam=False, expand_cam=False, **at_backbone)
        np.testing.assert_allclose(found, expected, rtol=0, atol=1e-5)

    # Saliency: |d logit / d pixel|, max over the colour channels (Simonyan et al. 2014), by hand
    found = Saliency(mindgap.logits_model(model))(score, images, normalize_map=False)
    pixels = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(pixels)
        logits = mindgap.logits_model(model)(pixels)
        total = tf.reduce_sum(tf.gather(logits, classes, axis=1, batch_dims=0) * tf.eye(2))
    np.testing.assert_allclose(found, np.abs(tape.gradient(total, pixels).numpy()).max(axis=-1), rtol=1e-5, atol=1e-8)

    # Grad-CAM++ on the logits and Score-CAM on the probabilities: the same through either route, maps in [0, 1]
    plus = [GradcamPlusPlus(route)(score, images, **at_backbone)
            for route in (mindgap.logits_model(model), GradcamPlusPlus(model, model_modifier=ReplaceToLinear()).model)]
    np.testing.assert_allclose(plus[0], plus[1], atol=1e-6)
    score_cam = Scorecam(model)(score, images, **at_backbone)
    for maps in (plus[0], score_cam):
        assert maps.shape == (2, 32, 32) and np.isfinite(maps).all()
        np.testing.assert_allclose(maps.max(axis=(1, 2)), 1, atol=1e-4)  # tf-keras-vis divides by (max - min + eps)
        assert (maps.min(axis=(1, 2)) >= 0).all()
