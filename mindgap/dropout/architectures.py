"""The chapter's two kinds of model, with the dropout layer in the first fully-connected layer (§5.2.1).

* ``CNN-2`` (trained from scratch): the network of Srivastava et al. 2014 that Morerio et al. 2017 and the thesis use:
  three 5×5 convolutions (96, 128, 256 filters, ReLU, 3×3 max-pooling with stride 2), two fully-connected layers of
  2,048 ReLU units (``fc1``, ``fc2``) and the classifier (``logits``); dropout in ``fc1``.
* ``Tiny-FC`` (fine-tuned): the chapter's VGG16 ``fc6`` case in miniature: the pretrained Tiny backbone
  (``mindgap.pretrain``), flattened, then ``fc1`` and ``fc2`` (1,024 ReLU units each, VGG's 4,096 in proportion to its
  smaller feature map) and the classifier; dropout in ``fc1`` (VGG's ``fc6``).

Layer names are stable: ``fc1``, ``fc1_dropout``, ``fc2``, ``logits``, ``probabilities``.  Every model is a
:class:`GuidedDropoutModel`, the variant a name of :data:`METHODS` (``"none"`` keeps the same layers and never drops).
"""

import keras

from mindgap import registry
from mindgap.backbones import build_backbone
from mindgap.dropout.layer import GuidedDropout, check_method
from mindgap.dropout.model import GuidedDropoutModel
from mindgap.dropout.retention import CURRICULUM_GAMMA
from mindgap.layers import ClassProbabilities
from mindgap.registry import check_num_classes

CNN2_FILTERS = (96, 128, 256)
CNN2_UNITS = 2048
FINETUNED_UNITS = 1024
DROPOUT_LAYER = "fc1_dropout"
EVIDENCE_LAYER = "fc1"


def _fully_connected_top(features, num_classes, units, dropout, base_retain, gamma, seed, class_names):
    features = keras.layers.Flatten(name="flatten")(features)
    features = keras.layers.Dense(units, activation="relu", name=EVIDENCE_LAYER)(features)
    features = GuidedDropout(dropout, base_retain=base_retain, gamma=gamma, seed=seed, name=DROPOUT_LAYER)(features)
    features = keras.layers.Dense(units, activation="relu", name="fc2")(features)
    logits = keras.layers.Dense(num_classes, name="logits")(features)
    return ClassProbabilities(class_names, name="probabilities", dtype="float32")(logits)


def _check(num_classes, units):
    check_num_classes(num_classes)
    if isinstance(units, bool) or not isinstance(units, int) or units < 2:
        raise ValueError(f"units must be an integer >= 2 (N of eq. 5.1), got {units!r}.")


def build_cnn2(num_classes, *, input_shape=(32, 32, 3), filters=CNN2_FILTERS, units=CNN2_UNITS, dropout="excitation",
               base_retain=0.5, gamma=CURRICULUM_GAMMA, seed=None, class_names=None, name="CNN-2"):
    """CNN-2 (thesis §5.2.1, Srivastava et al. 2014) with ``dropout`` in ``fc1``; a :class:`GuidedDropoutModel`.

    ``filters`` and ``units`` default to the thesis's (96, 128, 256) and 2,048;
    the quick experiment narrows the convolutions (see its docstring).
    """
    _check(num_classes, units)
    check_method(dropout)
    inputs = keras.Input(tuple(input_shape), name="image")
    features = inputs
    for index, count in enumerate(filters, start=1):
        features = keras.layers.Conv2D(count, 5, padding="same", activation="relu", name=f"conv{index}")(features)
        features = keras.layers.MaxPooling2D(3, strides=2, padding="same", name=f"pool{index}")(features)
    probabilities = _fully_connected_top(features, num_classes, units, dropout, base_retain, gamma, seed, class_names)
    return GuidedDropoutModel(inputs, probabilities, name=name)


def build_finetuned(num_classes, *, input_shape=(48, 48, 3), weights=None, units=FINETUNED_UNITS, dropout="excitation",
                    base_retain=0.5, gamma=CURRICULUM_GAMMA, seed=None, class_names=None, name="Tiny-FC"):
    """The pretrained Tiny backbone + ``fc1`` (with ``dropout``) + ``fc2`` + classifier: the fine-tuned case.

    ``weights``: a Tiny backbone weights file (``mindgap.pretrain.pretrained_tiny_weights()``) or None.
    """
    _check(num_classes, units)
    check_method(dropout)
    backbone = build_backbone("tiny", input_shape=input_shape, weights=weights)
    inputs = keras.Input(tuple(input_shape), name="image")
    probabilities = _fully_connected_top(backbone(inputs), num_classes, units, dropout, base_retain, gamma, seed,
                                         class_names)
    return GuidedDropoutModel(inputs, probabilities, name=name)


ARCHITECTURES = {"CNN-2": build_cnn2, "Tiny-FC": build_finetuned}


@registry.register_family("excitation-dropout", "|".join(ARCHITECTURES), takes="images", kind="dropout",
                          listed=ARCHITECTURES, recognises=lambda model: isinstance(model, GuidedDropoutModel), rank=2,
                          description="an Excitation Dropout classifier: CNN-2 or Tiny-FC (thesis ch. 5)")
def _build(match, num_classes, **arguments):
    name = next(name for name in ARCHITECTURES if name.lower() == match[0].lower())
    return ARCHITECTURES[name](num_classes, **arguments)


def build_dropout_model(architecture, num_classes, **arguments):
    """``architecture`` (``"CNN-2"`` or ``"Tiny-FC"``) with its keyword ``arguments``, e.g. ``dropout="standard"``."""
    if str(architecture).lower() not in {name.lower() for name in ARCHITECTURES}:
        raise ValueError(f"Unknown architecture {architecture!r}; use one of {', '.join(ARCHITECTURES)}.")
    return registry.build_model(architecture, num_classes, **arguments)
