import subprocess
import sys

import keras
import numpy as np
import pytest

import mindgap
from mindgap.backbones import build_backbone


def test_list_models_starts_with_table1():
    names = mindgap.list_models()
    assert names[:7] == [
        "Inception-GAP5", "Inception-GAP5-L1", "Inception-GAP5-L2",
        "Inception-GAP-Zhou", "Inception-GAP-Zhou-L1", "Inception-GAP-Zhou-L2", "GoogLeNet-GAP-Zhou",
    ]
    for name in ["Inception-GAP10", "Inception-GAP1", "GoogLeNet-GAP5", "Tiny-GAP5", "Tiny-GAP-Zhou-L1"]:
        assert name in names


@pytest.mark.parametrize(
    "name,expected",
    [
        ("Inception-GAP5-L1", ("inception_v3", "gapm", 5, "l1")),
        ("Inception-GAP10", ("inception_v3", "gapm", 10, None)),
        ("GoogLeNet-GAP-Zhou", ("googlenet", "zhou", None, None)),
        ("Tiny-GAP-Zhou-L2", ("tiny", "zhou", None, "l2")),
        ("Tiny-GAP3", ("tiny", "gapm", 3, None)),
    ],
)
def test_parse_name(name, expected):
    spec = mindgap.parse_model_name(name)
    assert (spec.backbone, spec.head, spec.maps_per_class, spec.penalty) == expected
    assert spec.name == name


def test_full_size_inception_shapes():
    gap5 = mindgap.build_model("Inception-GAP5", 40)
    assert gap5.get_layer("backbone").get_layer("mixed7").output.shape[1:] == (17, 17, 768)
    assert gap5.get_layer("gap_maps").input.shape[1:] == (17, 17, 768)
    assert gap5.get_layer("gap_maps").output.shape[1:] == (17, 17, 200)
    assert gap5.get_layer("gap_maps").kernel.shape == (3, 3, 768, 200)
    assert gap5.output.shape[1:] == (40,)
    zhou = mindgap.build_model("Inception-GAP-Zhou", 40)
    assert zhou.get_layer("gap_maps").output.shape[1:] == (17, 17, 1024)
    assert zhou.get_layer("dense").kernel.shape == (1024, 40)


def test_googlenet_cut_after_inception_4e():
    model = mindgap.build_model("GoogLeNet-GAP-Zhou", 40, input_shape=(224, 224, 3))
    assert model.get_layer("backbone").output.shape[1:] == (14, 14, 832)
    assert model.get_layer("gap_maps").output.shape[1:] == (14, 14, 1024)


def _images(size=32, count=4, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (count, size, size, 3)).astype("float32")


@pytest.mark.parametrize("name", ["Tiny-GAP5", "Tiny-GAP1", "GoogLeNet-GAP5"])  # Inception: the Keras-idiom test
def test_gapm_cam_means_are_the_logits(name):
    size = 75 if name.startswith("Inception") else 32
    model = mindgap.build_model(name, 4, input_shape=(size, size, 3))
    images = _images(size)
    probabilities, cams = mindgap.cam_model(model).predict(images, verbose=0)
    assert cams.shape == (4, *model.get_layer("gap_maps").output.shape[1:3], 4)
    logits = keras.Model(model.input, model.get_layer("grouped_gap").output).predict(images, verbose=0)
    np.testing.assert_allclose(cams.mean(axis=(1, 2)), logits, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(keras.ops.softmax(cams.mean(axis=(1, 2))).numpy(), probabilities, atol=1e-6)


def test_zhou_cam_means_plus_bias_are_the_logits():
    model = mindgap.build_model("Tiny-GAP-Zhou", 5, input_shape=(32, 32, 3))
    dense = model.get_layer("dense")
    dense.bias.assign(np.linspace(-1, 1, 5).astype("float32"))
    images = _images()
    probabilities, cams = mindgap.cam_model(model).predict(images, verbose=0)
    maps = keras.Model(model.input, model.get_layer("gap_maps").output).predict(images, verbose=0)
    np.testing.assert_allclose(cams, np.einsum("bhwk,kc->bhwc", maps, dense.kernel.numpy()), rtol=1e-4, atol=1e-5)
    logits = cams.mean(axis=(1, 2)) + dense.bias.numpy()
    np.testing.assert_allclose(keras.ops.softmax(logits).numpy(), probabilities, atol=1e-6)


def test_upsampled_cams_match_helper():
    model = mindgap.build_model("Tiny-GAP5", 3, input_shape=(32, 32, 3))
    images = _images()
    _, cams = mindgap.cam_model(model).predict(images, verbose=0)
    _, big = mindgap.cam_model(model, upsample=True).predict(images, verbose=0)
    assert big.shape == (4, 32, 32, 3)
    np.testing.assert_allclose(big, mindgap.upsample_cams(cams, (32, 32)), atol=1e-5)


@pytest.mark.parametrize("head", ["GAP5", "GAP-Zhou"])
@pytest.mark.parametrize("penalty", ["", "-L1", "-L2"])
def test_one_fit_step(head, penalty):
    model = mindgap.build_model(f"Tiny-{head}{penalty}", 3, input_shape=(32, 32, 3))
    model.compile(optimizer="nadam", loss="categorical_crossentropy")
    before = model.get_layer("gap_maps").kernel.numpy().copy()
    history = model.fit(_images(), np.eye(3)[[0, 1, 2, 0]], epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert not np.allclose(before, model.get_layer("gap_maps").kernel.numpy())


@pytest.mark.parametrize("name", ["Tiny-GAP5-L1", "Tiny-GAP-Zhou-L2"])
def test_keras_round_trip(tmp_path, name):
    model = mindgap.build_model(name, 3, input_shape=(32, 32, 3), class_names=["a", "b", "c"])
    explainer = mindgap.cam_model(model)
    images = _images()
    for saved, path in [(model, tmp_path / "model.keras"), (explainer, tmp_path / "cam.keras")]:
        saved.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
        for got, want in zip(keras.tree.flatten(loaded.predict(images, verbose=0)),
                             keras.tree.flatten(saved.predict(images, verbose=0))):
            np.testing.assert_array_equal(got, want)
    assert mindgap.model_info(keras.saving.load_model(tmp_path / "model.keras")).class_names == ("a", "b", "c")


def test_round_trip_in_a_fresh_process(tmp_path):
    model = mindgap.build_model("Tiny-GAP5-L2", 3, input_shape=(32, 32, 3))
    images = _images()
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "expected.npy", mindgap.cam_model(model).predict(images, verbose=0)[1])
    mindgap.cam_model(model).save(tmp_path / "cam.keras")
    script = (
        "import sys, numpy as np, keras, mindgap\n"
        "model = keras.saving.load_model(sys.argv[1] + '/cam.keras')\n"
        "cams = model.predict(np.load(sys.argv[1] + '/images.npy'), verbose=0)[1]\n"
        "np.testing.assert_array_equal(cams, np.load(sys.argv[1] + '/expected.npy'))\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_weights_from_a_file(tmp_path):
    source = build_backbone("tiny", (32, 32, 3))
    path = tmp_path / "tiny.weights.h5"
    source.save_weights(path)
    model = mindgap.build_model("Tiny-GAP5", 3, input_shape=(32, 32, 3), weights=str(path))
    for got, want in zip(model.get_layer("backbone").get_weights(), source.get_weights()):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: mindgap.build_model("Inception-GAP", 40), "Unknown model name 'Inception-GAP'; did you mean Inception-GAP5"),
        (lambda: mindgap.build_model("ResNet-GAP5", 40), "Unknown model name"),
        (lambda: mindgap.build_model("Tiny-GAP0", 4), "m must be >= 1"),
        (lambda: mindgap.build_model("Tiny-GAP5", 1), "num_classes must be an integer >= 2, got 1"),
        (lambda: mindgap.build_model("Tiny-GAP5", 4, cut_layer="mixed7"), "no layer 'mixed7' to cut at; candidates: tiny_block1"),
        (lambda: mindgap.build_model("Inception-GAP5", 4, input_shape=(64, 64, 3)), "too small for InceptionV3"),
        (lambda: mindgap.build_model("Inception-GAP5", 4, input_shape=(75, 75, 3), cut_layer="mixed9"), "too small for the cut at 'mixed9'"),
        (lambda: mindgap.build_model("Tiny-GAP5", 4, weights="/nope/w.h5"), "does not exist"),
        (lambda: mindgap.build_model("Tiny-GAP5", 4, weights="imagenet"), "No ImageNet weights"),
        (lambda: mindgap.build_model("Tiny-GAP5", 4, maps=3), "Unknown argument"),
        (lambda: mindgap.build_model("Tiny-GAP5", 2, class_names=["a"]), "1 class names were given"),
    ],
)
def test_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message) as error:
        call()
    assert "\n" not in str(error.value)


def test_mismatched_weights_file(tmp_path):
    path = tmp_path / "other.weights.h5"
    build_backbone("tiny", (32, 32, 3)).save_weights(path)
    with pytest.raises(ValueError, match="does not match the googlenet backbone"):
        mindgap.build_model("GoogLeNet-GAP-Zhou", 4, input_shape=(64, 64, 3), weights=str(path))


def test_model_info_rejects_foreign_models():
    inputs = keras.Input((4,))
    with pytest.raises(ValueError, match="not a mindgap model"):
        mindgap.model_info(keras.Model(inputs, keras.layers.Dense(2)(inputs)))


def test_grad_cam_of_a_gapm_head_is_its_cam():
    # For GAPm the logit is sum_k mean(f_k) over its class's maps: the gradient is 1/(h*w) on them,
    # 0 elsewhere, so Grad-CAM = relu(CAM) / (h*w).
    model = mindgap.build_model("Tiny-GAP5", 3, input_shape=(32, 32, 3))
    images = _images()
    _, cams = mindgap.cam_model(model).predict(images, verbose=0)
    grad = mindgap.grad_cam(model, images)
    height, width = cams.shape[1:3]
    np.testing.assert_allclose(grad, np.maximum(cams, 0) / (height * width), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(mindgap.grad_cam(model, images, [2])[..., 0], grad[..., 2], rtol=1e-5, atol=1e-7)


def _head_layers(model):
    names = [layer.name for layer in model.layers]
    return [name for name in ("gap_maps", "maps_penalty", "grouped_gap", "gap", "dense", "probabilities") if name in names]


def _assert_keras_idiom(model, images):
    """keras.Model(model.inputs, [layer.output, model.output]) for the backbone and every head layer, checked on numbers."""
    want_probabilities = model.predict(images, verbose=0)
    backbone_features = model.get_layer("backbone").predict(images, verbose=0)
    for name in ["backbone"] + _head_layers(model):
        probe = keras.Model(model.inputs, [model.get_layer(name).output, model.output])
        features, probabilities = probe.predict(images, verbose=0)
        np.testing.assert_allclose(probabilities, want_probabilities, rtol=1e-6, atol=1e-7)
        if name == "backbone":
            np.testing.assert_allclose(features, backbone_features, rtol=1e-5, atol=1e-6)
        if name == "probabilities":
            np.testing.assert_allclose(features, want_probabilities, rtol=1e-6, atol=1e-7)
        if name in ("grouped_gap", "dense"):  # the class logits: their softmax is the output
            np.testing.assert_allclose(keras.ops.convert_to_numpy(keras.ops.softmax(features)), want_probabilities,
                                       rtol=1e-5, atol=1e-6)


# Every backbone and both heads: the idiom depends on the backbone's nesting and on the head's layer names.
@pytest.mark.parametrize("name, size", [
    ("Tiny-GAP5-L1", 32), ("Tiny-GAP-Zhou", 32), ("GoogLeNet-GAP5", 64), ("Inception-GAP-Zhou-L1", 75),
])
def test_keras_idiom_on_every_backbone_and_head(tmp_path, name, size):
    overrides = dict(zhou_units=8) if "Zhou" in name else {}
    if name.startswith("Inception"):
        overrides["cut_layer"] = "mixed2"  # the same nesting as mixed7 with a ninth of the weights to save and load
    model = mindgap.build_model(name, 3, input_shape=(size, size, 3), **overrides)
    images = _images(size, count=2)
    _assert_keras_idiom(model, images)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")  # plain Keras: the shared input is restored
    np.testing.assert_array_equal(loaded.predict(images, verbose=0), model.predict(images, verbose=0))
    _assert_keras_idiom(loaded, images)


def _model_as_built_before_issue_19(name, num_classes, size):
    """A plain Keras Functional backbone whose input is named "image", like the model's own."""
    from mindgap import backbones, heads

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(backbones, "INPUT_NAME", "image")
        cut = build_backbone("tiny", (size, size, 3))
    backbone = keras.Model(cut.inputs[0], cut.outputs[0], name="backbone")
    assert not isinstance(backbone, mindgap.backbones.Backbone)
    inputs = keras.Input((size, size, 3), name="image")
    head = heads.gapm_head if "GAP5" in name else heads.zhou_head
    arguments = dict(maps_per_class=5) if "GAP5" in name else dict(units=8)
    return keras.Model(inputs, head(backbone(inputs), num_classes, **arguments), name=name)


@pytest.mark.parametrize("name", ["Tiny-GAP5", "Tiny-GAP-Zhou"])
def test_files_saved_before_issue_19_load_and_support_the_idiom(tmp_path, name):
    old = _model_as_built_before_issue_19(name, 3, 32)
    images = _images(32, count=2)
    with pytest.raises(ValueError, match='"image" is used 2 times'):  # the bug this fixes
        keras.Model(old.inputs, [old.get_layer("backbone").output, old.output])
    old.save(tmp_path / "old.keras")
    loaded = mindgap.load_model(tmp_path / "old.keras")
    assert isinstance(loaded.get_layer("backbone"), mindgap.backbones.Backbone)
    np.testing.assert_array_equal(loaded.predict(images, verbose=0), old.predict(images, verbose=0))
    np.testing.assert_array_equal(keras.saving.load_model(tmp_path / "old.keras").predict(images, verbose=0),
                                  old.predict(images, verbose=0))
    _assert_keras_idiom(loaded, images)
    np.testing.assert_allclose(mindgap.cam_model(loaded).predict(images, verbose=0)[1],
                               mindgap.cam_model(keras.saving.load_model(tmp_path / "old.keras")).predict(images, verbose=0)[1],
                               rtol=1e-6, atol=1e-6)
    loaded.save(tmp_path / "resaved.keras")  # saved again, it is a file of the new kind
    _assert_keras_idiom(keras.saving.load_model(tmp_path / "resaved.keras"), images)


def test_weights_saved_before_issue_19_load_into_a_model_built_now(tmp_path):
    # run backups are model.save_weights files: a run started before must resume after
    old = _model_as_built_before_issue_19("Tiny-GAP5", 3, 32)
    old.save_weights(tmp_path / "old.weights.h5")
    new = mindgap.build_model("Tiny-GAP5", 3, input_shape=(32, 32, 3))
    new.load_weights(tmp_path / "old.weights.h5")
    images = _images(32, count=2)
    np.testing.assert_array_equal(new.predict(images, verbose=0), old.predict(images, verbose=0))
    new.save_weights(tmp_path / "new.weights.h5")  # and back
    old.load_weights(tmp_path / "new.weights.h5")
    np.testing.assert_array_equal(new.predict(images, verbose=0), old.predict(images, verbose=0))
