"""Model registry: a paper name such as ``"Inception-GAP5-L1"`` resolves to arguments.

Grammar: ``<Backbone>-GAP<m>[-L1|-L2]`` or ``<Backbone>-GAP-Zhou[-L1|-L2]`` with
``<Backbone>`` one of ``Inception`` (InceptionV3 cut at ``mixed7``),
``GoogLeNet`` (cut after ``inception_4e``) or ``Tiny`` (a small CPU backbone).
"""

import dataclasses
import os
import re
import zipfile

import keras

from mindgap import backbones, captioning, heads
from mindgap.layers import ClassProbabilities
from mindgap.regularizers import DEFAULT_ALPHA, REDUCTIONS

INPUT_NAME = "image"

BACKBONE_NAMES = {"Inception": "inception_v3", "GoogLeNet": "googlenet", "Tiny": "tiny"}
TABLE1_NAMES = (
    "Inception-GAP5",
    "Inception-GAP5-L1",
    "Inception-GAP5-L2",
    "Inception-GAP-Zhou",
    "Inception-GAP-Zhou-L1",
    "Inception-GAP-Zhou-L2",
    "GoogLeNet-GAP-Zhou",
)
LISTED_MAPS_PER_CLASS = (1, 5, 10)
_NAME_PATTERN = re.compile(r"^(?P<backbone>Inception|GoogLeNet|Tiny)-GAP(?:(?P<m>\d+)|-(?P<zhou>Zhou))(?:-(?P<penalty>L1|L2))?$")
_OVERRIDES = ("cut_layer", "zhou_units", "reduction", "class_names", "dropout", "dropout_retain")
# Video (thesis ch. 7, mindgap.recurrent): the per-frame CNN and the CNN-LSTM (ReLU LSTM; "-tanh" for Keras' default).
_VIDEO_PATTERN = re.compile(r"^(?P<backbone>Inception|GoogLeNet|Tiny)-(?:(?P<frames>Frames)|LSTM(?:-(?P<activation>tanh))?)$")
VIDEO_NAMES = ("Tiny-LSTM", "Tiny-LSTM-tanh", "Tiny-Frames")
_VIDEO_OVERRIDES = ("class_names", "fc_units", "lstm_units")
# Captioners (thesis §7.3, §7.5; mindgap.captioning): num_classes is the vocabulary's size, class_names the vocabulary.
_CAPTION_PATTERN = re.compile(r"^(?P<backbone>Inception|GoogLeNet|Tiny)-Captioner(?:-(?P<clips>Clips))?$")
CAPTION_NAMES = ("Tiny-Captioner", "Tiny-Captioner-Clips")
_CAPTION_OVERRIDES = ("class_names", "fc_units", "embedding_units", "lstm_units")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What a model name means: backbone, head, m and penalty."""

    backbone: str
    head: str  # "gapm" or "zhou"
    maps_per_class: int | None
    penalty: str | None  # None, "l1" or "l2"

    @property
    def name(self):
        prefix = next(key for key, value in BACKBONE_NAMES.items() if value == self.backbone)
        head = "GAP-Zhou" if self.head == "zhou" else f"GAP{self.maps_per_class}"
        suffix = "" if self.penalty is None else f"-{self.penalty.upper()}"
        return f"{prefix}-{head}{suffix}"


def list_models():
    """Names ``build_model`` accepts: the paper's Table 1 first, then GAP1/GAP10 and the other backbones.

    Any m >= 1 is accepted too (``Inception-GAP3``); the list shows m = 1, 5, 10.
    """
    names = list(TABLE1_NAMES)
    for prefix in BACKBONE_NAMES:
        for head in [f"GAP{m}" for m in LISTED_MAPS_PER_CLASS] + ["GAP-Zhou"]:
            for suffix in ("", "-L1", "-L2"):
                name = f"{prefix}-{head}{suffix}"
                if name not in names:
                    names.append(name)
    return names + list(VIDEO_NAMES) + list(CAPTION_NAMES)


def parse_model_name(name):
    """``"Inception-GAP5-L1"`` → ``ModelSpec("inception_v3", "gapm", 5, "l1")``."""
    match = _NAME_PATTERN.match(str(name))
    if match is None:
        raise ValueError(
            f"Unknown model name {name!r}; valid names are {', '.join(list_models())} "
            "(any m >= 1 in GAPm)."
        )
    maps_per_class = None if match["zhou"] else int(match["m"])
    if maps_per_class is not None and maps_per_class < 1:
        raise ValueError(f"Model name {name!r} asks for m={maps_per_class} maps per class; m must be >= 1.")
    penalty = match["penalty"].lower() if match["penalty"] else None
    return ModelSpec(
        backbone=BACKBONE_NAMES[match["backbone"]],
        head="zhou" if match["zhou"] else "gapm",
        maps_per_class=maps_per_class,
        penalty=penalty,
    )


def build_model(name, num_classes, *, weights=None, input_shape=(299, 299, 3), alpha=DEFAULT_ALPHA, **overrides):
    """Build one of the paper's models (Table 1) by name.

    Args:
        name: a name from :func:`list_models`, e.g. ``"Inception-GAP5-L1"``.
        num_classes: c, at least 2 (40 for Stanford 40).
        weights: backbone weights: None, ``"imagenet"`` (InceptionV3, Keras'
            download or cache) or a path to a weights file of the backbone.
        input_shape: (height, width, 3); 299×299 in the paper.
        alpha: weight of the L1 (eq. 5) / group-L2 (eq. 6) penalty, 1e-7.
        **overrides: ``cut_layer`` (default ``mixed7`` / ``inception_4e`` /
            ``tiny_block4``), ``zhou_units`` (1024), ``reduction`` of the
            penalty over the batch (``"sum"``, the paper's Keras, or
            ``"mean"``), ``class_names`` (saved inside the model).

    Returns:
        A functional ``keras.Model`` named after ``name`` whose input takes
        images scaled to [-1, 1] and whose output is the class probabilities.
    """
    video = _VIDEO_PATTERN.match(str(name))
    if video is not None:
        return _build_video_model(video, name, num_classes, weights=weights, input_shape=input_shape, **overrides)
    captioner = _CAPTION_PATTERN.match(str(name))
    if captioner is not None:
        return _build_captioner(captioner, name, num_classes, weights=weights, input_shape=input_shape, **overrides)
    unknown = sorted(set(overrides) - set(_OVERRIDES))
    if unknown:
        raise ValueError(f"Unknown argument(s) {unknown} for build_model; accepted overrides: {', '.join(_OVERRIDES)}.")
    spec = parse_model_name(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}.")
    reduction = overrides.get("reduction", "sum")
    if reduction not in REDUCTIONS:
        raise ValueError(f"Unknown reduction {reduction!r}; use one of {REDUCTIONS}.")
    class_names = overrides.get("class_names")
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names were given for num_classes={num_classes}; pass one per class.")
    zhou_units = overrides.get("zhou_units", heads.ZHOU_UNITS)
    if not isinstance(zhou_units, int) or zhou_units < 1:
        raise ValueError(f"zhou_units must be an integer >= 1, got {zhou_units!r}.")

    dropout = overrides.get("dropout")
    if dropout is not None:
        from mindgap.dropout import check_method
        from mindgap.dropout.retention import check_base_retain

        check_method(dropout)
        check_base_retain(overrides.get("dropout_retain", 0.5))
        if spec.head != "zhou":
            raise ValueError(f"dropout={dropout!r} needs a fully-connected layer: GAP-Zhou heads only, not {spec.name!r}.")

    backbone = backbones.build_backbone(
        spec.backbone, input_shape=input_shape, weights=weights, cut_layer=overrides.get("cut_layer")
    )
    inputs = keras.Input(tuple(input_shape), name=INPUT_NAME)
    features = backbone(inputs)
    head_arguments = dict(penalty=spec.penalty, alpha=alpha, reduction=reduction, class_names=class_names)
    if spec.head == "gapm":
        probabilities = heads.gapm_head(features, num_classes, spec.maps_per_class, **head_arguments)
    else:
        probabilities = heads.zhou_head(features, num_classes, units=zhou_units, dropout=dropout,
                                        dropout_retain=overrides.get("dropout_retain", 0.5), **head_arguments)
    if dropout is not None:  # its train_step computes EB for the evidence variants (Figure 5.1)
        from mindgap.dropout import GuidedDropoutModel

        return GuidedDropoutModel(inputs, probabilities, name=spec.name)
    return keras.Model(inputs, probabilities, name=spec.name)


def takes_clips(name):
    """True for the registry names whose models take clips (batch, T, H, W, 3): the CNN-LSTMs (``Tiny-LSTM``)."""
    match = _VIDEO_PATTERN.match(str(name))
    return match is not None and not match["frames"]


def _build_captioner(match, name, num_classes, *, weights, input_shape, **overrides):
    """``Tiny-Captioner`` / ``Tiny-Captioner-Clips`` (:mod:`mindgap.captioning`): ``class_names`` is the vocabulary."""
    arguments = {key: value for key, value in overrides.items() if key in _CAPTION_OVERRIDES and value is not None}
    vocabulary = arguments.pop("class_names", None)
    if vocabulary is None or len(vocabulary) != num_classes:
        raise ValueError(f"A captioner needs its vocabulary as class_names ({num_classes} words); build it with "
                         "mindgap.captioning.build_vocabulary(captions).")
    return captioning.build_captioner(BACKBONE_NAMES[match["backbone"]], vocabulary, input_shape=input_shape,
                                      clips=bool(match["clips"]), weights=weights, name=name, **arguments)


def _build_video_model(match, name, num_classes, *, weights, input_shape, **overrides):
    """``Tiny-LSTM`` / ``Tiny-LSTM-tanh`` / ``Tiny-Frames`` (:mod:`mindgap.recurrent`); image-head overrides are ignored."""
    from mindgap import recurrent

    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}.")
    arguments = {key: value for key, value in overrides.items() if key in _VIDEO_OVERRIDES and value is not None}
    backbone = BACKBONE_NAMES[match["backbone"]]
    if match["frames"]:
        arguments.pop("lstm_units", None)
        return recurrent.build_frame_cnn(backbone, num_classes, input_shape=input_shape, weights=weights, name=name, **arguments)
    return recurrent.build_cnn_lstm(backbone, num_classes, input_shape=input_shape, weights=weights, name=name,
                                    activation=match["activation"] or "relu", **arguments)


def _config_with_backbone_class(config):
    """Make the nested backbone of a saved config a :class:`~mindgap.backbones.Backbone`.

    Files saved before issue 19 hold it as a plain Keras ``Functional``, whose ``output``
    is its inner graph's: ``keras.Model(model.inputs, [model.get_layer("backbone").output, ...])``
    then fails ("The name "image" is used 2 times").  Returns None when there is nothing to change.
    """
    layers = config.get("config", {}).get("layers", []) if isinstance(config, dict) else []
    backbone = next((layer for layer in layers if layer.get("name") == backbones.BACKBONE_LAYER), None)
    if backbone is None or backbone.get("class_name") != "Functional" or \
            backbone.get("registered_name") == backbones.BACKBONE_CLASS_ENTRY["registered_name"]:  # a CNN-LSTM's is a TimeDistributed
        return None
    backbone.update(backbones.BACKBONE_CLASS_ENTRY)
    return config


def load_model(path, safe_mode=True):
    """``keras.saving.load_model(path, compile=False)`` for a ``.keras`` file saved by any mindgap version.

    Files saved from models built now load the same with plain ``keras.saving.load_model``
    (after ``import mindgap``).  In older files the backbone is a plain Keras ``Functional``:
    the model is rebuilt from its config with a :class:`~mindgap.backbones.Backbone` instead
    and given the loaded weights, so the Keras idiom works on it too (same outputs).
    """
    loaded = keras.saving.load_model(os.fspath(path), compile=False, safe_mode=safe_mode)
    config = _config_with_backbone_class(keras.saving.serialize_keras_object(loaded))
    if config is None:
        return loaded
    # the weights file names a nested model by its class, so the weights are copied, not reloaded
    rebuilt = keras.saving.deserialize_keras_object(config, safe_mode=safe_mode)
    rebuilt.set_weights(loaded.get_weights())
    return rebuilt


_MISSING_CLASS = re.compile(r"Could not locate (?:class|function) '([^']+)'.*?'module': '([^']*)'.*?'registered_name': '([^']*)'",
                            re.S)


def describe_load_error(error):
    """Why Keras could not load a file, in a few words (the class it could not find, or the first line of the error)."""
    text = str(error)
    missing = _MISSING_CLASS.findall(text)
    if missing:
        name, module, registered = missing[-1]  # the innermost: the class really missing
        shown = registered if registered and registered != name else f"{module}.{name}"
        if shown.startswith("mindgap>") or module.startswith("mindgap"):
            return f"it needs mindgap's class {shown!r}, which is registered by `import mindgap`"
        return (f"it needs class {shown!r} of module {module!r}, which is not mindgap's (a model of another package, "
                "or a foreign layer)")
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return f"{type(error).__name__}: {first[:200]}" if first else type(error).__name__


def load_model_file(path, what="model", fix="save the model again"):
    """:func:`load_model` of ``path``, every failure one ``ValueError`` naming the file, what is wrong, and ``fix``.

    A missing file, a folder, a file that is not a ``.keras`` zip archive (truncated by an interrupted
    save, empty, text), a damaged archive, a class Keras cannot find: each says so.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{what} {path!r} is a folder, not a .keras file; {fix}.")
    if not os.path.isfile(path):
        raise ValueError(f"{what} {path!r} does not exist; {fix}.")
    if not zipfile.is_zipfile(path):
        size = os.path.getsize(path)
        raise ValueError(f"{what} {path!r} is not a .keras model file ({'empty' if size == 0 else f'{size} bytes, not a zip archive'}"
                         f": cut short by an interrupted save, or another kind of file); {fix}.")
    try:
        return load_model(path)
    except Exception as error:  # Keras, h5py and zipfile raise many types for damaged or foreign files
        raise ValueError(f"{what} {path!r} could not be loaded ({describe_load_error(error)}); {fix}.") from None


MODEL_KINDS = ("cam", "clips", "frames", "dropout", "other")


def model_kind(model):
    """What a built or loaded model is, for messages: ``"cam"`` (a GAPm or GAP-Zhou head: one pass gives the CAMs),
    ``"clips"`` (a CNN-LSTM, ``Tiny-LSTM``), ``"frames"`` (a frame CNN, ``Tiny-Frames``), ``"dropout"`` (an
    Excitation Dropout classifier of ``mindgap.dropout.architectures``) or ``"other"``."""
    names = {layer.name for layer in getattr(model, "layers", [])}
    if heads.MAPS_LAYER in names and heads.PROBABILITIES_LAYER in names:
        return "cam"
    from mindgap import recurrent  # recurrent imports this module (the registry builds its models)
    from mindgap.dropout import GuidedDropoutModel  # as in build_model: the dropout package builds on the heads

    if recurrent.is_video_model(model):
        return "clips"
    if isinstance(model, GuidedDropoutModel):
        return "dropout"
    if set(recurrent.FC_LAYERS) <= names and recurrent.LOGITS_LAYER in names:
        return "frames"
    return "other"


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What a built or loaded mindgap model is: read from its layers."""

    head: str
    num_classes: int
    maps_per_class: int | None
    class_names: tuple
    input_shape: tuple


def model_info(model):
    """Describe a mindgap model; ``ValueError`` if ``model`` is not one."""
    layer_names = {layer.name for layer in getattr(model, "layers", [])}
    probabilities = model.get_layer(heads.PROBABILITIES_LAYER) if heads.PROBABILITIES_LAYER in layer_names else None
    if not isinstance(probabilities, ClassProbabilities) or heads.MAPS_LAYER not in layer_names:
        raise ValueError(
            f"Model {getattr(model, 'name', model)!r} is not a mindgap model (no 'gap_maps' and "
            "'probabilities' layers); build it with mindgap.build_model."
        )
    num_classes = int(probabilities.output.shape[-1])
    if heads.GROUPED_GAP_LAYER in layer_names:
        head, maps_per_class = "gapm", model.get_layer(heads.GROUPED_GAP_LAYER).maps_per_class
    else:
        head, maps_per_class = "zhou", None
    class_names = probabilities.class_names or [f"class_{index}" for index in range(num_classes)]
    return ModelInfo(head, num_classes, maps_per_class, tuple(class_names), tuple(model.input.shape[1:]))


def logits_model(model):
    """The same model (shared layers) ending at the class logits, the softmax's input (eq. 3).

    ``grouped_gap`` for a GAPm head, ``dense`` for a Zhou head.  For tools that differentiate a
    linear class score, such as tf-keras-vis or Keras' Grad-CAM example (where it replaces
    ``model.layers[-1].activation = None``, which a :class:`~mindgap.layers.ClassProbabilities`
    layer does not have).
    """
    info = model_info(model)
    layer = heads.GROUPED_GAP_LAYER if info.head == "gapm" else heads.DENSE_LAYER
    return keras.Model(model.inputs, model.get_layer(layer).output, name=f"{model.name}-logits")

