"""Each export format run in its own runtime against Keras: probabilities and every class's CAM, max abs diff <= 1e-5."""

import os
import warnings

import keras
import numpy as np
import pytest

import mindgap
from mindgap.cli import main
from mindgap.exporting import OUTPUT_NAMES

SIZE = 32
TOLERANCE = 1e-5  # float32 end to end


@pytest.fixture(scope="module")
def saved_model_file(tmp_path_factory):
    model = mindgap.build_model("Tiny-GAP5-L1", 3, input_shape=(SIZE, SIZE, 3), class_names=["a", "b", "c"])
    path = tmp_path_factory.mktemp("model") / "model.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).uniform(-1, 1, (3, SIZE, SIZE, 3)).astype("float32")


def _keras_outputs(path, images):
    probabilities, cams = mindgap.cam_model(mindgap.load_model(path)).predict(images, verbose=0)
    return {"probabilities": probabilities, "cams": cams}


def _run_savedmodel(path, images):
    import tensorflow as tf

    serve = tf.saved_model.load(path).signatures["serving_default"]
    return {name: value.numpy() for name, value in serve(image=tf.constant(images)).items()}


def _run_litert(path, images):
    litert = pytest.importorskip("ai_edge_litert.interpreter", reason="ai-edge-litert is not installed")
    interpreter = litert.Interpreter(model_path=path)
    return interpreter.get_signature_runner()(image=images)  # the batch dimension is dynamic (-1)


def _run_onnx(path, images):
    onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, {session.get_inputs()[0].name: images})))


RUNTIMES = {"savedmodel": _run_savedmodel, "litert": _run_litert, "onnx": _run_onnx}


@pytest.mark.parametrize("format", ["savedmodel", "litert", "onnx"])
def test_export_runs_in_its_runtime_like_keras(saved_model_file, images, tmp_path, capsys, format):
    if format == "onnx":
        pytest.importorskip("tf2onnx", reason="tf2onnx is not installed")
    if format == "litert":
        pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["export", str(saved_model_file), "--format", format, "--out", str(tmp_path / "out")]) == 0
    # a successful export prints nothing but its line (Keras' input-structure UserWarning, numpy's np.object warning)
    assert not [str(warning.message) for warning in caught if issubclass(warning.category, (UserWarning, FutureWarning))]
    path = tmp_path / "out" / {"savedmodel": "savedmodel", "litert": "model.tflite", "onnx": "model.onnx"}[format]
    assert f"wrote {path}" in capsys.readouterr().out
    found = RUNTIMES[format](str(path), images)
    expected = _keras_outputs(saved_model_file, images)
    assert sorted(found) == sorted(OUTPUT_NAMES)
    for name in OUTPUT_NAMES:
        assert found[name].shape == expected[name].shape, name
        np.testing.assert_allclose(found[name], expected[name], rtol=0, atol=TOLERANCE, err_msg=name)
    # the CAMs are eq. 4's: their spatial means are the logits, whose softmax is the probabilities
    logits = found["cams"].mean(axis=(1, 2))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keras.ops.softmax(logits)), found["probabilities"], atol=1e-5)


def test_export_from_python_and_a_bad_format(tmp_path, saved_model_file, capsys):
    model = mindgap.load_model(saved_model_file)
    path = mindgap.export(model, tmp_path / "python", format="savedmodel")
    assert os.path.isdir(path) and path.endswith("savedmodel")
    with pytest.raises(ValueError, match="Unknown export format 'tflite'; use one of savedmodel, litert, onnx"):
        mindgap.export(model, tmp_path / "bad", format="tflite")
