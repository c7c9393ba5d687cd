"""The two GAP heads of the paper, as functions on a feature tensor.

Layer names are stable so that CAMs can be read from any model:
``"gap_maps"`` (the last convolution, maps f_k), ``"maps_penalty"`` (eq. 5/6, when present), ``"grouped_gap"`` (GAPm,
eq. 1–2) or ``"gap"`` + ``"dense"`` (Zhou), and ``"probabilities"`` (softmax, eq. 3).
"""

import keras

from mindgap.dropout.layer import GuidedDropout
from mindgap.layers import ClassProbabilities, GroupedSumGAP
from mindgap.regularizers import MapActivityPenalty

MAPS_LAYER = "gap_maps"
PENALTY_LAYER = "maps_penalty"
GROUPED_GAP_LAYER = "grouped_gap"
GAP_LAYER = "gap"
DENSE_LAYER = "dense"
GAP_DROPOUT_LAYER = "gap_dropout"
PROBABILITIES_LAYER = "probabilities"
ZHOU_UNITS = 1024


def _maps(features, filters, penalty, alpha, reduction):
    """Conv2D 3×3, stride 1, ``same`` padding, ReLU: the maps f_k, then the optional penalty."""
    maps = keras.layers.Conv2D(filters, 3, strides=1, padding="same", activation="relu", name=MAPS_LAYER)(features)
    if penalty is not None:
        maps = MapActivityPenalty(penalty, alpha=alpha, reduction=reduction, name=PENALTY_LAYER, dtype="float32")(maps)
    return maps


def gapm_head(features, num_classes, maps_per_class, penalty=None, alpha=1e-7, reduction="sum", class_names=None):
    """GAPm head: c·m class-major maps → GAP → grouped sum (eq. 1–2) → softmax (eq. 3)."""
    maps = _maps(features, num_classes * maps_per_class, penalty, alpha, reduction)
    logits = GroupedSumGAP(maps_per_class, name=GROUPED_GAP_LAYER)(maps)
    return ClassProbabilities(class_names, name=PROBABILITIES_LAYER, dtype="float32")(logits)


def zhou_head(features, num_classes, units=ZHOU_UNITS, penalty=None, alpha=1e-7, reduction="sum", class_names=None,
              dropout=None, dropout_retain=0.5):
    """Zhou et al.'s head: 1024 maps → GAP → Dense(c) → softmax.

    ``dropout``: a name of ``mindgap.dropout.METHODS`` puts a ``GuidedDropout`` layer (``"gap_dropout"``, retaining
    probability ``dropout_retain``) on the pooled features before ``dense`` (ours: the thesis applies Excitation
    Dropout to fully-connected layers of CNN-2 and VGG, not to a GAP head).
    """
    maps = _maps(features, units, penalty, alpha, reduction)
    pooled = keras.layers.GlobalAveragePooling2D(name=GAP_LAYER)(maps)
    if dropout is not None:
        pooled = GuidedDropout(dropout, base_retain=dropout_retain, name=GAP_DROPOUT_LAYER)(pooled)
    logits = keras.layers.Dense(num_classes, name=DENSE_LAYER)(pooled)
    return ClassProbabilities(class_names, name=PROBABILITIES_LAYER, dtype="float32")(logits)
