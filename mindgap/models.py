"""The paper's family of the model registry (:mod:`mindgap.registry`): a name such as ``"Inception-GAP5-L1"`` resolves
to arguments; also loading any mindgap ``.keras`` file and describing a CAM model.

Grammar: ``<Backbone>-GAP<m>[-L1|-L2]`` or ``<Backbone>-GAP-Zhou[-L1|-L2]`` with ``<Backbone>`` one of ``Inception``
(InceptionV3 cut at ``mixed7``), ``GoogLeNet`` (cut after ``inception_4e``) or ``Tiny`` (a small CPU backbone).
"""

import dataclasses
import os
import re
import zipfile

import keras

from mindgap import backbones, heads, registry, shipped
from mindgap.dropout.layer import check_method
from mindgap.dropout.model import GuidedDropoutModel
from mindgap.dropout.retention import check_base_retain
from mindgap.layers import ClassProbabilities
from mindgap.registry import list_models  # noqa: F401  (mindgap.models.list_models, as before)
from mindgap.regularizers import DEFAULT_ALPHA, REDUCTIONS

INPUT_NAME = "image"

BACKBONE_NAMES = {"Inception": "inception_v3", "GoogLeNet": "googlenet", "Tiny": "tiny"}
BACKBONE_PATTERN = "(?P<backbone>" + "|".join(BACKBONE_NAMES) + ")"
TABLE1_NAMES = ("Inception-GAP5", "Inception-GAP5-L1", "Inception-GAP5-L2", "Inception-GAP-Zhou", "Inception-GAP-Zhou-L1",
                "Inception-GAP-Zhou-L2", "GoogLeNet-GAP-Zhou")
LISTED_MAPS_PER_CLASS = (1, 5, 10)
_OVERRIDES = ("cut_layer", "zhou_units", "reduction", "class_names", "dropout", "dropout_retain")


def backbone_prefix(text):
    """``"googlenet"`` → ``"GoogLeNet"``: a name's backbone prefix as the registry spells it."""
    return next(key for key in BACKBONE_NAMES if key.lower() == text.lower())


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


def _listed_gap_names():
    """The paper's Table 1 first, then GAP1/GAP5/GAP10 and GAP-Zhou of every backbone (any m >= 1 is accepted)."""
    names = list(TABLE1_NAMES)
    for prefix in BACKBONE_NAMES:
        for head in [f"GAP{m}" for m in LISTED_MAPS_PER_CLASS] + ["GAP-Zhou"]:
            names += [f"{prefix}-{head}{suffix}" for suffix in ("", "-L1", "-L2") if f"{prefix}-{head}{suffix}" not in names]
    return names


def _spec(match):
    maps_per_class = None if match["zhou"] else int(match["m"])
    if maps_per_class is not None and maps_per_class < 1:
        raise ValueError(f"Model name {match[0]!r} asks for m={maps_per_class} maps per class; m must be >= 1.")
    return ModelSpec(backbone=BACKBONE_NAMES[backbone_prefix(match["backbone"])], head="zhou" if match["zhou"] else "gapm",
                     maps_per_class=maps_per_class, penalty=match["penalty"].lower() if match["penalty"] else None)


def _is_cam_model(model):
    names = {layer.name for layer in getattr(model, "layers", [])}
    return heads.MAPS_LAYER in names and heads.PROBABILITIES_LAYER in names


@registry.register_family("gap", BACKBONE_PATTERN + r"-GAP(?:(?P<m>\d+)|-(?P<zhou>Zhou))(?:-(?P<penalty>L1|L2))?",
                          takes="images", kind="cam", listed=_listed_gap_names(), recognises=_is_cam_model, rank=0,
                          description="the paper's CAM heads: <Backbone>-GAP<m> (any m >= 1) or -GAP-Zhou, -L1/-L2")
def _build_gap(match, num_classes, *, weights=None, input_shape=(299, 299, 3), alpha=DEFAULT_ALPHA, **overrides):
    unknown = sorted(set(overrides) - set(_OVERRIDES))
    if unknown:
        raise ValueError(f"Unknown argument(s) {unknown} for build_model; accepted overrides: {', '.join(_OVERRIDES)}.")
    spec = _spec(match)
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
        check_method(dropout)
        check_base_retain(overrides.get("dropout_retain", 0.5))
        if spec.head != "zhou":
            raise ValueError(f"dropout={dropout!r} needs a fully-connected layer: GAP-Zhou heads only, not {spec.name!r}.")
    backbone = backbones.build_backbone(spec.backbone, input_shape=input_shape, weights=weights,
                                        cut_layer=overrides.get("cut_layer"))
    inputs = keras.Input(tuple(input_shape), name=INPUT_NAME)
    features = backbone(inputs)
    head_arguments = dict(penalty=spec.penalty, alpha=alpha, reduction=reduction, class_names=class_names)
    if spec.head == "gapm":
        probabilities = heads.gapm_head(features, num_classes, spec.maps_per_class, **head_arguments)
    else:
        probabilities = heads.zhou_head(features, num_classes, units=zhou_units, dropout=dropout,
                                        dropout_retain=overrides.get("dropout_retain", 0.5), **head_arguments)
    model_class = keras.Model if dropout is None else GuidedDropoutModel  # its train_step computes EB (Figure 5.1)
    return model_class(inputs, probabilities, name=spec.name)


def parse_model_name(name):
    """``"Inception-GAP5-L1"`` → ``ModelSpec("inception_v3", "gapm", 5, "l1")``."""
    family, match = registry.resolve(name)
    if family.name != "gap":
        raise ValueError(f"Model name {name!r} is {family.description}, not a GAP head; use a name of "
                         "mindgap.list_models('*GAP*').")
    return _spec(match)


def build_model(name, num_classes, **arguments):
    """Build a model of any registered family by name; the paper's (Table 1) take these arguments.

    Args:
        name: a name from :func:`list_models`, e.g. ``"Inception-GAP5-L1"`` (any case).
        num_classes: c, at least 2 (40 for Stanford 40).
        weights: backbone weights: None, ``"imagenet"`` (InceptionV3, Keras' download or cache) or a path to a
            weights file of the backbone.
        input_shape: (height, width, 3); 299×299 in the paper.
        alpha: weight of the L1 (eq. 5) / group-L2 (eq. 6) penalty, 1e-7.
        **overrides: ``cut_layer`` (default ``mixed7`` / ``inception_4e`` / ``tiny_block4``), ``zhou_units``
            (1024), ``reduction`` of the penalty over the batch (``"sum"``, the paper's Keras, or ``"mean"``),
            ``class_names`` (saved inside the model).

    Returns:
        A functional ``keras.Model`` named after ``name`` whose input takes images scaled to [-1, 1] and whose
        output is the class probabilities.
    """
    return registry.build_model(name, num_classes, **arguments)


def _config_with_backbone_class(config):
    """Make the nested backbone of a saved config a :class:`~mindgap.backbones.Backbone`.

    Files saved before issue 19 hold it as a plain Keras ``Functional``, whose ``output`` is its inner graph's:
    ``keras.Model(model.inputs, [model.get_layer("backbone").output, ...])`` then fails ("The name "image" is used 2
    times").  Returns None when there is nothing to change."""
    layers = config.get("config", {}).get("layers", []) if isinstance(config, dict) else []
    backbone = next((layer for layer in layers if layer.get("name") == backbones.BACKBONE_LAYER), None)
    if backbone is None or backbone.get("class_name") != "Functional" or \
            backbone.get("registered_name") == backbones.BACKBONE_CLASS_ENTRY["registered_name"]:  # a CNN-LSTM's is a TimeDistributed
        return None
    backbone.update(backbones.BACKBONE_CLASS_ENTRY)
    return config


def load_model(path, safe_mode=True):
    """``keras.saving.load_model(path, compile=False)`` for a ``.keras`` file saved by any mindgap version,
    or for a shipped model by its name (``load_model("scenes-gap5-l1")``, :mod:`mindgap.shipped`).

    Files saved from models built now load the same with plain ``keras.saving.load_model`` (after ``import
    mindgap``).  In older files the backbone is a plain Keras ``Functional``: the model is rebuilt from its config
    with a :class:`~mindgap.backbones.Backbone` and given the loaded weights, so the Keras idiom works on it too."""
    loaded = keras.saving.load_model(shipped.resolve(path), compile=False, safe_mode=safe_mode)
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
    path = shipped.resolve(path)
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


def model_kind(model):
    """What a built or loaded model is, for messages: its family's kind (``"cam"``: a GAPm or GAP-Zhou head,
    ``"clips"``: a CNN-LSTM, ``"frames"``: a frame CNN, ``"dropout"``: an Excitation Dropout classifier) or ``"other"``."""
    family = registry.family_of(model)
    return "other" if family is None else family.kind


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What a built or loaded mindgap model is: read from its layers."""

    head: str
    num_classes: int
    maps_per_class: int | None
    class_names: tuple
    input_shape: tuple
    takes: str = "images"  # a CAM model takes images; registry.family_of(model).takes says it for any family


def model_info(model):
    """Describe a mindgap model with a CAM head; ``ValueError`` if ``model`` is not one (naming its family)."""
    layer_names = {layer.name for layer in getattr(model, "layers", [])}
    probabilities = model.get_layer(heads.PROBABILITIES_LAYER) if heads.PROBABILITIES_LAYER in layer_names else None
    family = registry.family_of(model)
    if family is not None and family.kind != "cam":
        raise ValueError(f"Model {model.name!r} is {family.description} (it takes {family.takes}), not one with a "
                         "CAM head (GAPm or GAP-Zhou); build one with mindgap.build_model('Tiny-GAP5', ...).")
    if not isinstance(probabilities, ClassProbabilities) or heads.MAPS_LAYER not in layer_names:
        raise ValueError(f"Model {getattr(model, 'name', model)!r} is not a mindgap model (no 'gap_maps' and "
                         "'probabilities' layers); build it with mindgap.build_model.")
    num_classes = int(probabilities.output.shape[-1])
    grouped = heads.GROUPED_GAP_LAYER in layer_names
    head, maps_per_class = ("gapm", model.get_layer(heads.GROUPED_GAP_LAYER).maps_per_class) if grouped else ("zhou", None)
    class_names = probabilities.class_names or [f"class_{index}" for index in range(num_classes)]
    return ModelInfo(head, num_classes, maps_per_class, tuple(class_names), tuple(model.input.shape[1:]))


def logits_model(model):
    """The same model (shared layers) ending at the class logits, the softmax's input (eq. 3): ``grouped_gap`` for a
    GAPm head, ``dense`` for a Zhou head.  For tools that differentiate a linear class score, such as tf-keras-vis or
    Keras' Grad-CAM example (in place of ``model.layers[-1].activation = None``, which a
    :class:`~mindgap.layers.ClassProbabilities` layer does not have)."""
    info = model_info(model)
    layer = heads.GROUPED_GAP_LAYER if info.head == "gapm" else heads.DENSE_LAYER
    return keras.Model(model.inputs, model.get_layer(layer).output, name=f"{model.name}-logits")

