"""The paper's activity penalties on the GAP maps (eq. 5 and eq. 6).

Both penalties act on ``f_k(x, y)``, the ReLU output of kernel ``k`` of the
last convolution, for each image of a batch:

* eq. (5), L1:        ``alpha * sum_k | sum_{x,y} f_k(x, y) |``
* eq. (6), group L2:  ``alpha * sum_k sqrt( sum_{x,y} f_k(x, y)^2 )``

Eq. (6) is a group norm per map, not Keras' squared L2.  The paper's second line of eq. (6) writes ``max(0, (W_k *
z)^2)``; its first line, and the text ("f_k the ReLU output"), give ``f_k^2 = max(0, W_k * z)^2``, which is what is
computed here.

The Keras of 2017 summed activity penalties over the batch; Keras 3 divides them by the batch size.
``reduction="sum"`` (the default) is the faithful one, ``reduction="mean"`` gives Keras 3's convention.
"""

import keras
from keras import ops

PENALTIES = ("l1", "l2")
REDUCTIONS = ("sum", "mean")
DEFAULT_ALPHA = 1e-7


def _check(penalty, alpha, reduction):
    if penalty not in PENALTIES:
        raise ValueError(f"Unknown penalty {penalty!r}; use one of {PENALTIES}.")
    if reduction not in REDUCTIONS:
        raise ValueError(f"Unknown reduction {reduction!r}; use one of {REDUCTIONS}.")
    if not float(alpha) >= 0.0:
        raise ValueError(f"alpha must be a non-negative number, got {alpha!r}.")


def _safe_sqrt(values):
    # sqrt has an infinite slope at 0 and a dead ReLU map sums to exactly 0:
    # take 0 there with a zero (sub)gradient instead of NaN.
    positive = values > 0
    safe_values = ops.where(positive, values, ops.ones_like(values))
    return ops.where(positive, ops.sqrt(safe_values), ops.zeros_like(values))


def per_image_penalty(maps, penalty, alpha=DEFAULT_ALPHA):
    """Eq. (5) or eq. (6) for each image of ``maps`` (batch, h, w, k)."""
    _check(penalty, alpha, "sum")
    maps = ops.convert_to_tensor(maps)
    if penalty == "l1":
        per_map = ops.abs(ops.sum(maps, axis=(1, 2)))
    else:
        per_map = _safe_sqrt(ops.sum(ops.square(maps), axis=(1, 2)))
    return alpha * ops.sum(per_map, axis=-1)


def map_penalty(maps, penalty, alpha=DEFAULT_ALPHA, reduction="sum"):
    """The penalty of a batch: eq. (5) ("l1") or eq. (6) ("l2") reduced over images.

    Args:
        maps: tensor (batch, h, w, k) of ReLU maps ``f_k``.
        penalty: ``"l1"`` (eq. 5) or ``"l2"`` (eq. 6, group L2).
        alpha: the weight, 1e-7 in the paper.
        reduction: ``"sum"`` over the batch (Keras 1/2, the paper's) or
            ``"mean"`` (Keras 3's convention for activity regularizers).
    """
    _check(penalty, alpha, reduction)
    per_image = per_image_penalty(maps, penalty, alpha)
    if reduction == "sum":
        return ops.sum(per_image)
    return ops.mean(per_image)


@keras.saving.register_keras_serializable(package="mindgap")
class MapActivityPenalty(keras.layers.Layer):
    """Identity layer that adds the paper's activity penalty on the maps to the loss.

    Eq. (5) with ``penalty="l1"`` and eq. (6) with ``penalty="l2"``; the
    loss of the model becomes cross-entropy + this term.

    Args:
        penalty: str, ``"l1"`` or ``"l2"``.
        alpha: float, default 1e-7 (paper §3.2).
        reduction: str, ``"sum"`` (default, the paper's Keras) or ``"mean"``.

    Call arguments:
        inputs: tensor (batch, h, w, k), returned unchanged.

    Example:
    >>> layer = MapActivityPenalty("l1", alpha=1.0)
    >>> _ = layer(ops.ones((2, 3, 3, 4)))
    >>> float(layer.losses[0])
    72.0

    Reference: Moreaux et al., VISAPP 2018, §3.2.
    """

    def __init__(self, penalty, alpha=DEFAULT_ALPHA, reduction="sum", **kwargs):
        super().__init__(**kwargs)
        _check(penalty, alpha, reduction)
        self.penalty = penalty
        self.alpha = float(alpha)
        self.reduction = reduction

    def call(self, inputs):
        self.add_loss(map_penalty(inputs, self.penalty, self.alpha, self.reduction))
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(penalty=self.penalty, alpha=self.alpha, reduction=self.reduction)
        return config
