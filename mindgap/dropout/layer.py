"""The dropout layer of the family: one layer, the variant selected by name."""

import keras
from keras import ops

from mindgap.dropout.retention import (CURRICULUM_GAMMA, STANDOUT_ALPHA, STANDOUT_BETA, check_base_retain,
                                       curriculum_retaining_probability, mirrored_retaining_probability,
                                       retaining_probability, standout_retaining_probability)

# The chapter's variants (§5.2.2): the name selects how the retaining probability is chosen.
METHODS = ("none", "standard", "standard_per_image", "curriculum", "adaptive", "mirrored_excitation", "excitation",
           "excitation_prediction")
# Need p_EB at this layer, so GuidedDropoutModel's train_step (with the labels: of the true class, or of the prediction).
EVIDENCE_METHODS = ("excitation", "mirrored_excitation", "excitation_prediction")
# Need the layer's own pre-activations (standout), so GuidedDropoutModel's train_step too.
ACTIVATION_METHODS = ("adaptive",)
PREDICTION_METHODS = ("excitation_prediction",)  # p_EB of the predicted class, not the label
SCALINGS = ("unit", "base")  # kept units divided by their own retaining probability p (default), or by P
_SMALLEST_RETAIN = 1e-6  # a kept unit is divided by its retaining probability; guard the division only


def check_method(method):
    if method not in METHODS:
        raise ValueError(f"Unknown dropout {method!r}; use one of {', '.join(METHODS)}.")
    return method


@keras.saving.register_keras_serializable(package="mindgap")
class GuidedDropout(keras.layers.Dropout):
    """Dropout whose retaining probability is chosen by ``method``: Excitation Dropout and its baselines.

    Thesis §5.1–5.2 (Bargal 2019, ch. 5; Zunino, Bargal et al. 2018):

    * ``"excitation"``: eq. (5.1), per neuron and per image from p_EB, the
      Excitation Backprop probability of the ground-truth class at this layer;
    * ``"excitation_prediction"``: eq. (5.1) with p_EB of the class the model predicts for the image (ours; the
      thesis's "neurons that are more relevant to the current prediction", §5.1).  The mask is then a function of the
      image alone: with the true class the mask tells the layers above which class is right, and a small network
      learns to read it (NOTES.md);
    * ``"adaptive"``: Adaptive Dropout, Ba & Frey 2013's standout (Table 5.1):
      keep probability ``sigmoid(alpha (W x + b) + beta)`` from the layer's own pre-activations through its shared
      weights (``alpha``, ``beta``), per image (:func:`standout_retaining_probability`);
    * ``"mirrored_excitation"`` (ours): eq. (5.1) turned round, drops the *least* relevant neurons
      (:func:`mirrored_retaining_probability`; this was ``"adaptive"`` before issue 28);
    * ``"standard"``: probability P, **one mask per batch** (as the thesis describes its Standard Dropout);
      ``"standard_per_image"``: one per image ("Standard Dropout + Mask/Img");
    * ``"curriculum"``: Morerio et al. 2017, theta(t) = (1 - P) e^(-gamma t) + P
      with t the optimizer's step, one mask per batch like ``"standard"``;
    * ``"none"``: never drops (the same architecture without dropout).

    **Scaling (all variants alike): inverted dropout.**  A kept unit is divided
    by its own retaining probability, so that its expected value in training
    equals its value at inference, where the layer is the identity (Keras'
    ``Dropout`` convention, with the unit's p in place of 1 - rate).  A unit with
    p = 0 is never kept.  (Ba & Frey instead keep units unscaled and multiply by
    p at test time: the same expectation, but the layer would not be the identity.)

    The evidence variants need the labels and ``curriculum`` the step, so they drop only in
    :class:`~mindgap.dropout.GuidedDropoutModel`'s ``train_step``, which calls :meth:`retaining_probabilities` and
    :meth:`drop` (Figure 5.1, steps 3–4).  A plain training-mode call of the layer (another model's ``fit``, or the
    BatchNorm statistics pass of ``mindgap.train``, which runs the model with ``training=True`` and no labels) passes
    their input unchanged; ``standard`` and ``standard_per_image`` drop in any Keras model.

    Args:
        method: str, a name of :data:`METHODS`; default ``"excitation"``.
        base_retain: float in (0, 1], P, the probability of keeping a neuron
            when all contribute equally; 0.5 in the thesis.
        gamma: float, the curriculum's decay per step (5e-4, Morerio et al.).
        scaling: ``"unit"`` (default, above: each kept unit divided by its own p) or ``"base"``: kept units of the
            guided variants (evidence and standout) divided by P instead of their own p (biased: the expected training
            value of a unit is ``p / P`` of its inference value; the thesis is silent, see NOTES.md).  The largest
            factor a step used is in ``fit``'s logs as ``largest_scale``.
        alpha, beta: floats, standout's scale and shift (``"adaptive"``).
        seed: int or None, of the Bernoulli draws.

    Call arguments:
        inputs: tensor (batch, N).
        training: bool; False (inference) returns ``inputs``.

    Example:
    >>> layer = GuidedDropout("standard_per_image", base_retain=0.5, seed=1)
    >>> x = ops.ones((2, 8))
    >>> bool(ops.all(layer(x) == x))  # inference: the identity
    True

    Reference: Zunino, Bargal, Morerio, Zhang, Sclaroff, Murino, "Excitation
    Dropout: Encouraging Plasticity in Deep Neural Networks", arXiv:1805.09092; Bargal 2019, eq. (5.1).
    """

    def __init__(self, method="excitation", base_retain=0.5, gamma=CURRICULUM_GAMMA, seed=None, scaling="unit",
                 alpha=STANDOUT_ALPHA, beta=STANDOUT_BETA, **kwargs):
        check_method(method)
        if scaling not in SCALINGS:
            raise ValueError(f"Unknown scaling {scaling!r}; use one of {', '.join(SCALINGS)}.")
        base_retain = check_base_retain(base_retain)
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma!r}.")
        kwargs.pop("rate", None)  # Dropout's own field, derived from base_retain
        kwargs.pop("noise_shape", None)
        super().__init__(rate=1.0 - base_retain, seed=seed, **kwargs)
        self.method = method
        self.base_retain = base_retain
        self.gamma = float(gamma)
        self.scaling = scaling
        self.alpha = float(alpha)
        self.beta = float(beta)
        if not hasattr(self, "seed_generator"):  # Dropout makes one only when rate > 0
            self.seed_generator = keras.random.SeedGenerator(seed)

    @property
    def needs_evidence(self):
        return self.method in EVIDENCE_METHODS

    @property
    def needs_activations(self):
        """True for standout: the keep probability comes from the layer's pre-activations (``train_step``)."""
        return self.method in ACTIVATION_METHODS

    @property
    def guided(self):
        """True when only ``GuidedDropoutModel.train_step`` can drop (it has the labels, step or pre-activations)."""
        return self.needs_evidence or self.needs_activations or self.method == "curriculum"

    @property
    def evidence_from_prediction(self):
        """True when p_EB is taken for the predicted class instead of the label."""
        return self.method in PREDICTION_METHODS

    def retaining_probabilities(self, features, p_eb=None, step=None, pre_activations=None):
        """``(retain, noise_shape)``: the probability of keeping each unit and the shape of the Bernoulli draw.

        ``retain`` broadcasts to ``features`` (batch, N); None when nothing is
        dropped.  ``p_eb`` (batch, N): EB at this layer for the true class
        (``excitation``, ``mirrored_excitation``; of the prediction for ``excitation_prediction``); ``step``:
        the training step (``curriculum``); ``pre_activations`` (batch, N): ``W x + b`` of the layer below
        (``adaptive``, standout).
        """
        num_neurons = features.shape[-1]
        per_batch, per_image = (1, num_neurons), (ops.shape(features)[0], num_neurons)
        if self.method == "none" or self.base_retain == 1.0:
            return None, None
        if self.method in ("standard", "standard_per_image"):
            retain = ops.full((1, num_neurons), self.base_retain, dtype="float32")
            return retain, per_batch if self.method == "standard" else per_image
        if self.method == "curriculum":
            if step is None:
                raise ValueError("Curriculum Dropout needs the training step: train with mindgap.dropout.GuidedDropoutModel.")
            theta = curriculum_retaining_probability(step, self.base_retain, self.gamma)
            return ops.full((1, num_neurons), 1.0, dtype="float32") * ops.cast(theta, "float32"), per_batch
        if self.method == "adaptive":
            if pre_activations is None:
                raise ValueError(f"Standout ('adaptive') needs the pre-activations of the layer below {self.name!r}: train "
                                 "with mindgap.dropout.GuidedDropoutModel (its train_step computes them).")
            retain = standout_retaining_probability(ops.cast(pre_activations, "float32"), self.alpha, self.beta)
            return retain, per_image
        if p_eb is None:
            raise ValueError(f"{self.method!r} dropout needs p_EB of the true class at layer {self.name!r}: train with "
                             "mindgap.dropout.GuidedDropoutModel (its train_step computes it).")
        rule = mirrored_retaining_probability if self.method == "mirrored_excitation" else retaining_probability
        retain = rule(ops.cast(p_eb, "float32"), num_neurons, self.base_retain)
        return ops.clip(retain, 0.0, 1.0), per_image

    def drop(self, features, retain, noise_shape, return_largest_scale=False):
        """Bernoulli masks of ``noise_shape`` following ``retain``; kept units divided by their ``retain`` (or P).

        ``return_largest_scale``: also return the largest factor a kept unit was multiplied by (0 if none kept).
        """
        if retain is None:
            return (features, ops.zeros((), "float32") + 1.0) if return_largest_scale else features
        uniform = keras.random.uniform(noise_shape, seed=self.seed_generator)
        keep = ops.less(uniform, retain)
        guided = self.needs_evidence or self.needs_activations
        divisor = self.base_retain if self.scaling == "base" and guided else ops.maximum(retain, _SMALLEST_RETAIN)
        scale = ops.where(keep, 1.0 / divisor, 0.0)
        dropped = features * ops.cast(scale, features.dtype)
        return (dropped, ops.max(ops.cast(scale, "float32"))) if return_largest_scale else dropped

    def call(self, inputs, training=False):
        if not training or self.method == "none" or self.guided:
            return inputs  # no labels, step or pre-activations here: only GuidedDropoutModel.train_step drops these
        retain, noise_shape = self.retaining_probabilities(inputs)
        return self.drop(inputs, retain, noise_shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        for name in ("rate", "noise_shape"):
            config.pop(name, None)
        config.update(method=self.method, base_retain=self.base_retain, gamma=self.gamma, scaling=self.scaling,
                      alpha=self.alpha, beta=self.beta)
        return config
