import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


def run_layer_test(layer_class, init_kwargs, input_data, tmp_path, expected_output=None):
    """The keras-hub way: config round trip, symbolic and eager calls, one fit step, .keras round trip."""
    layer = layer_class(**init_kwargs)
    config = layer.get_config()
    for key, value in init_kwargs.items():
        assert config[key] == value, f"get_config lost {key}"
    clone = layer_class.from_config(config)
    assert clone.get_config() == config

    symbolic = layer(keras.KerasTensor(input_data.shape, dtype="float32"))
    eager = keras.ops.convert_to_numpy(layer(input_data))
    assert tuple(symbolic.shape) == eager.shape
    if expected_output is not None:
        np.testing.assert_allclose(eager, expected_output, rtol=1e-5, atol=1e-6)

    inputs = keras.Input(input_data.shape[1:])
    features = keras.layers.Conv2D(input_data.shape[-1], 1, name="trainable")(inputs)
    outputs = layer_class(**init_kwargs)(features)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="mse")
    model.fit(input_data, np.zeros(eager.shape, "float32"), epochs=1, verbose=0)

    path = tmp_path / "layer.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(input_data)), keras.ops.convert_to_numpy(model(input_data)), rtol=1e-6
    )
    return eager


@pytest.fixture
def layer_test(tmp_path):
    def _run(layer_class, init_kwargs, input_data, expected_output=None):
        return run_layer_test(layer_class, init_kwargs, input_data, tmp_path, expected_output)

    return _run


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


# The longest files first, so that the two xdist workers (--dist=loadfile) end together instead of one waiting for
# the other's last long file (measured with --durations; the rest keep their alphabetical order).
LONGEST_FILES_FIRST = ("test_notebooks.py", "test_experiments.py", "test_training.py", "test_spatiotemporal.py",
                       "test_thesis_experiments.py", "test_emotion.py", "test_run_folder.py", "test_captions.py")


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.path.name
        return LONGEST_FILES_FIRST.index(name) if name in LONGEST_FILES_FIRST else len(LONGEST_FILES_FIRST)

    items.sort(key=rank)  # stable: each file's tests keep their order
