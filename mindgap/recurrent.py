"""Video models (thesis ch. 7): the per-frame CNN and the CNN-LSTM, in the model registry.

* ``<Backbone>-Frames`` (the thesis's spatial CNN of §3.2 / §7.4.1, VGG-16 of Ma et al.): the
  backbone on one frame, flattened, two fully-connected ReLU layers ``fc1`` and ``fc2``
  (VGG's fc6 and fc7), the classifier ``logits`` and ``probabilities``.
* ``<Backbone>-LSTM`` (§7.2, Donahue et al.'s LRCN as the thesis uses it): the same layers on
  every frame (the backbone in a ``TimeDistributed`` named ``"backbone"``, so the freeze of
  ``mindgap.train`` applies to it), then one LSTM layer ``lstm`` with ReLU activation (§7.1:
  EB needs non-negative activations; ``-tanh`` gives Keras' default), and a class output at every time step
  (``logits``, ``probabilities``: (batch, T, c)).  The CNN stops at ``fc2``, as the thesis's VGG-16 at fc7.

The video model takes clips (batch, T, H, W, 3) of any length T, scaled to [-1, 1] as the
images.  ``weights`` may be a ``.keras`` file of a ``-Frames`` model (the thesis fine-tunes the
CNN-LSTM from the frame CNN): its backbone, ``fc1`` and ``fc2`` are copied.
"""

import os

import keras

from mindgap import registry
from mindgap.backbones import BACKBONE_LAYER, build_backbone
from mindgap.layers import ClassProbabilities
from mindgap.models import BACKBONE_NAMES, BACKBONE_PATTERN, backbone_prefix, load_model

VIDEO_INPUT = "video"
FC_LAYERS = ("fc1", "fc2")
FEATURE_LAYER = "fc2"  # the LSTM's input (the thesis's fc7)
LSTM_LAYER = "lstm"
LOGITS_LAYER = "logits"
PROBABILITIES_LAYER = "probabilities"
FC_UNITS = 256
LSTM_UNITS = 128
ACTIVATIONS = ("relu", "tanh")


def _fully_connected(features, fc_units):
    for name in FC_LAYERS:
        features = keras.layers.Dense(fc_units, activation="relu", name=name)(features)
    return features


def build_frame_cnn(backbone, num_classes, *, input_shape, weights=None, fc_units=FC_UNITS, class_names=None, name=None):
    """The per-frame CNN: backbone → flatten → ``fc1`` → ``fc2`` → ``logits`` → ``probabilities``."""
    cnn = build_backbone(backbone, input_shape=tuple(input_shape)[-3:], weights=weights)
    inputs = keras.Input(tuple(input_shape)[-3:], name="image")
    features = keras.layers.Flatten(name="flatten")(cnn(inputs))
    logits = keras.layers.Dense(num_classes, name=LOGITS_LAYER)(_fully_connected(features, fc_units))
    probabilities = ClassProbabilities(class_names, name=PROBABILITIES_LAYER, dtype="float32")(logits)
    return keras.Model(inputs, probabilities, name=name or f"{backbone}-Frames")


def build_cnn_lstm(backbone, num_classes, *, input_shape, weights=None, activation="relu", fc_units=None,
                   lstm_units=LSTM_UNITS, class_names=None, name=None):
    """The CNN-LSTM: per-frame backbone, ``fc1``, ``fc2``, one LSTM (``activation``), a class output per step.

    Args:
        input_shape: (H, W, 3) or (T, H, W, 3); T is left free (any clip length).
        weights: None, a backbone weights file, or a ``.keras`` frame CNN to start from.
        fc_units: width of ``fc1``/``fc2``; default: the frame CNN's, else ``FC_UNITS``.
        activation: ``"relu"`` (thesis §7.1) or ``"tanh"`` of the LSTM's candidate and output.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"Unknown LSTM activation {activation!r}; use one of {', '.join(ACTIVATIONS)}.")
    frame_cnn = None
    if weights is not None and os.fspath(weights).endswith(".keras"):
        frame_cnn = load_model(weights)
        weights = None
        if fc_units is None and FC_LAYERS[0] in {layer.name for layer in frame_cnn.layers}:
            fc_units = frame_cnn.get_layer(FC_LAYERS[0]).units
    fc_units = FC_UNITS if fc_units is None else fc_units
    for label, value in (("fc_units", fc_units), ("lstm_units", lstm_units)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be an integer >= 1, got {value!r}.")
    frame_shape = tuple(int(size) for size in tuple(input_shape)[-3:])
    cnn = build_backbone(backbone, input_shape=frame_shape, weights=weights)
    inputs = keras.Input((None, *frame_shape), name=VIDEO_INPUT)
    features = keras.layers.TimeDistributed(cnn, name=BACKBONE_LAYER)(inputs)
    height, width, channels = cnn.output.shape[1:]
    features = keras.layers.Reshape((-1, height * width * channels), name="flatten")(features)
    features = _fully_connected(features, fc_units)
    hidden = keras.layers.LSTM(lstm_units, activation=activation, return_sequences=True, name=LSTM_LAYER)(features)
    logits = keras.layers.Dense(num_classes, name=LOGITS_LAYER)(hidden)
    probabilities = ClassProbabilities(class_names, name=PROBABILITIES_LAYER, dtype="float32")(logits)
    model = keras.Model(inputs, probabilities, name=name or f"{backbone}-LSTM")
    if frame_cnn is not None:
        _copy_frame_weights(frame_cnn, model)
    return model


def _copy_frame_weights(frame_cnn, model):
    try:
        frame_backbone(model).set_weights(frame_cnn.get_layer(BACKBONE_LAYER).get_weights())
        for name in FC_LAYERS:
            model.get_layer(name).set_weights(frame_cnn.get_layer(name).get_weights())
    except (ValueError, KeyError) as error:
        raise ValueError(f"The frame CNN {frame_cnn.name!r} does not fit this CNN-LSTM ({str(error).splitlines()[0]}); "
                         "pass a -Frames model of the same backbone, input size and fc_units.") from None


def is_cnn_lstm(model):
    """True for a CNN-LSTM of :func:`build_cnn_lstm` (a ``lstm`` layer and a 5-D input)."""
    names = {layer.name for layer in getattr(model, "layers", [])}
    return LSTM_LAYER in names and len(model.inputs) == 1 and len(model.inputs[0].shape) == 5


def _is_frame_cnn(model):
    names = {layer.name for layer in getattr(model, "layers", [])}
    return set(FC_LAYERS) <= names and LOGITS_LAYER in names and LSTM_LAYER not in names


_OVERRIDES = ("class_names", "fc_units", "lstm_units")  # image-head overrides (alpha, reduction, ...) are ignored


@registry.register_family("cnn-lstm", BACKBONE_PATTERN + r"-LSTM(?:-(?P<activation>tanh))?", takes="clips", kind="clips",
                          listed=("Tiny-LSTM", "Tiny-LSTM-tanh"), recognises=is_cnn_lstm, rank=1,
                          description="a CNN-LSTM: <Backbone>-LSTM[-tanh] (thesis ch. 7)")
def _build_cnn_lstm(match, num_classes, *, weights=None, input_shape=(299, 299, 3), **overrides):
    arguments = {key: value for key, value in overrides.items() if key in _OVERRIDES and value is not None}
    activation = (match["activation"] or "relu").lower()
    prefix = backbone_prefix(match["backbone"])
    return build_cnn_lstm(BACKBONE_NAMES[prefix], num_classes, input_shape=input_shape, weights=weights, activation=activation,
                          name=f"{prefix}-LSTM" + ("-tanh" if activation == "tanh" else ""), **arguments)


@registry.register_family("frames", BACKBONE_PATTERN + "-Frames", takes="images", kind="frames", listed=("Tiny-Frames",),
                          recognises=_is_frame_cnn, rank=3, description="a frame CNN: <Backbone>-Frames (a CNN-LSTM starts from it)")
def _build_frame_cnn(match, num_classes, *, weights=None, input_shape=(299, 299, 3), **overrides):
    arguments = {key: value for key, value in overrides.items() if key in _OVERRIDES[:2] and value is not None}
    prefix = backbone_prefix(match["backbone"])
    return build_frame_cnn(BACKBONE_NAMES[prefix], num_classes, input_shape=input_shape, weights=weights,
                           name=f"{prefix}-Frames", **arguments)


def check_cnn_lstm(model):
    return registry.checked(model, is_cnn_lstm, "a CNN-LSTM (no 'lstm' layer and clip input (batch, T, H, W, 3)); build "
                            "one with mindgap.build_model('Tiny-LSTM', ...)")


def frame_backbone(model):
    """The backbone inside the ``TimeDistributed`` of a CNN-LSTM."""
    return check_cnn_lstm(model).get_layer(BACKBONE_LAYER).layer


def frame_encoder(model):
    """A functional model, image → ``fc2`` (the LSTM's input), sharing the CNN-LSTM's layers: the per-frame CNN of
    the CNN-LSTM, for Excitation Backprop below the LSTM (eqs. 7.8–7.9)."""
    return fc_encoder(model, frame_backbone(model))


def fc_encoder(model, cnn):
    """Image → ``cnn`` → flatten → ``model``'s ``fc1`` and ``fc2``, sharing their layers (a CNN-LSTM's or a captioner's)."""
    inputs = keras.Input(tuple(cnn.inputs[0].shape[1:]), name="image")
    features = keras.layers.Flatten(name="frame_flatten")(cnn(inputs))
    for name in FC_LAYERS:
        features = model.get_layer(name)(features)
    return keras.Model(inputs, features, name=f"{model.name}-frames")


def lstm_activation(model):
    layer = check_cnn_lstm(model).get_layer(LSTM_LAYER)
    return getattr(layer.activation, "__name__", str(layer.activation))
