"""Excitation Backprop (EB) and contrastive Excitation Backprop (cEB).

Zhang, Bargal, Lin, Brandt, Shen, Sclaroff, "Top-down neural attention by Excitation Backprop", ECCV 2016 / IJCV 2018;
Bargal, "Grounding deep models of visual data", PhD thesis, Boston University 2019, eq. (4.1)-(4.2), (7.1)-(7.9).

**Marginal Winning Probability (MWP).**  A prior over the output units (one-hot
on the class logit) is passed down through the excitatory connections only:
for a parent unit ``a_j`` with non-negative children ``a_i``,

    P(a_i | a_j) = Z_j a_i w_ij  if w_ij >= 0, else 0,   Z_j = 1 / sum_{i: w_ij >= 0} a_i w_ij
    P(a_i) = sum_{j parent of i} P(a_i | a_j) P(a_j)                                   (4.1)

so the MWP of every layer that all paths go through is a probability distribution (it sums to 1).  For any layer whose
output is a positive linear map ``z = f(a)`` of its inputs (no bias), this is one vector-Jacobian product: ``P_in = a
* J_f^T (P_out / z)``; the rules of this module are that product with:

* ``Conv2D`` / ``Dense``: ``f`` = the layer with its kernel's positive part and no bias; a ``BatchNormalization``
  (inference mode) right after it is folded into the kernel first (``w * gamma / sqrt(var + eps)``: conv + BN is one
  linear unit; Zhang et al.'s networks had no BN, so this choice is ours); the layer's own ReLU and any
  ``ReLU``/``Activation("relu")`` pass the MWP unchanged (same neurons).
* ``MaxPooling2D``: winner-take-all (the max child gets all), as the vjp of max pooling routes it;
  ``AveragePooling2D``, ``GlobalAveragePooling2D``, ``Add``, ``Concatenate``, ``Flatten``/``Reshape``, mindgap's
  ``GroupedSumGAP`` (eq. 1-2) and ``GroupedClassMaps`` (eq. 4): ``f`` = the layer itself (positive weights); the pass
  starts at the input of ``ClassProbabilities`` (the logits: EB's prior is one-hot on the class unit);
  ``MapActivityPenalty`` and ``Dropout`` are identities at inference.

A parent whose excitatory children all have zero activation passes nothing (its ``Z_j`` is undefined; it can be active
only through its bias); then the sum is below 1. Any other layer (a sigmoid, a ``BatchNormalization`` not after a
conv, ...) stops the pass with a ``ValueError`` naming it.

**cEB.**  The dual unit of class c has the negated input weights of the top
learned layer ("the classification layer", thesis §7.1): ``dense`` for a Zhou
head; for a GAPm head the class logit is a fixed grouped sum (its negation has
no excitatory input at all), so the negation is applied to the learned layer
that makes the class maps, ``gap_maps``, i.e. its kernels.  The two MWPs
(with ``W+`` and with ``(-W)+``) are subtracted right below that layer and the
signed difference is propagated down with the same conditional probabilities
(eq. 7.9); the map is its positive part (thesis Figure 4.2: "thresholding the
values at 0").

**Returned maps** (batch, h, w, n) at the resolution of the target ``layer`` (default: the backbone's output, the
layer that feeds the head: the same grid as the CAM); the MWP of each neuron summed over channels.  EB: a probability
distribution over the layer's positions (it sums to 1).  cEB: the positive part of a difference of two such
distributions.

**Closed form on a GAPm head.**  From the class logit ``g_c = sum_{k in c}
mean_xy f_k(x, y)`` (weights 1/XY >= 0 on the class's maps, 0 elsewhere) down
to ``gap_maps``: ``P(f_k(x, y)) = (1/XY) f_k(x, y) / sum_{k' in c, x', y'}
(1/XY) f_k'(x', y') = f_k(x, y) / (XY g_c)`` for k of class c and 0 otherwise;
summed over channels, ``EB_c(x, y) = CAM_c(x, y) / sum_{x', y'} CAM_c(x', y')``:
EB at ``gap_maps`` is the CAM of eq. (4) divided by its total.
"""

import keras
import tensorflow as tf

from mindgap.engine import graph as _graph
from mindgap.engine.cache import per_model
from mindgap.layers import GroupedClassMaps, GroupedSumGAP

PASS_THROUGH = (keras.layers.ReLU,)
POSITIVE_LINEAR = (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D, keras.layers.GlobalAveragePooling2D,
                   keras.layers.GlobalMaxPooling2D, keras.layers.Add, keras.layers.Concatenate, keras.layers.Flatten,
                   keras.layers.Reshape, keras.layers.ZeroPadding2D, GroupedSumGAP, GroupedClassMaps)
WEIGHTED = (keras.layers.Conv2D, keras.layers.Dense)
DEFAULT_LAYER = "backbone"


def _activation_name(layer):
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", str(activation))


def safe_divide(numerator, denominator):
    positive = denominator > 0
    return tf.where(positive, numerator / tf.where(positive, denominator, tf.ones_like(denominator)), 0.0)


def _excite(function, inputs, mwp):
    """``P_in = a * J_f^T (P_out / f(a))`` for every input ``a`` of a positive linear ``f``."""
    with tf.GradientTape() as tape:
        for value in inputs:
            tape.watch(value)
        output = function(*inputs)
    gradients = tape.gradient(output, inputs, output_gradients=safe_divide(mwp, output))
    return [value * gradient for value, gradient in zip(inputs, gradients)]


class Plan:
    """Per model: the flat graph, the logits tensor and the BN folds, checked once."""

    def __init__(self, model, layer, top=None):
        """``top``: the layer whose output receives the prior (default: the class logits, the input of
        ``ClassProbabilities``); EB-R starts the CNN part at the LSTM's input layer (eq. 7.9)."""
        self.graph = graph = _graph.flat_graph(model)
        self.logits_key = _graph.logits_key(graph, model) if top is None else graph.key_of(top)
        input_names = {item.name for item in model.layers if isinstance(item, keras.layers.InputLayer)}
        if layer in input_names:
            raise ValueError(f"EB needs non-negative activations (assumption A1); {layer!r} is the signed input image: "
                             "choose a layer after a ReLU, e.g. 'backbone'.")
        self.target_key = graph.key_of(layer)
        # cEB negates the top learned layer: the class maps of a GAPm head (its logit is a fixed grouped sum),
        # otherwise the layer that makes the logits ("dense" of a Zhou head, the classifier of CNN-2)
        contrast = graph.step_of(self.logits_key)
        if isinstance(contrast.layer, GroupedSumGAP):
            contrast = graph.step_of(contrast.inputs[0])
            while isinstance(contrast.layer, _graph.IDENTITY_LAYERS):  # the penalty layer of an L1/L2 head
                contrast = graph.step_of(contrast.inputs[0])
        self.contrast_layer = getattr(contrast.layer, "name", None)
        self.folds = {}  # conv step index -> BN layer folded into it
        self.start = graph.producer[self.target_key] + 1
        self.stop = graph.producer[self.logits_key]
        if self.start > self.stop:
            raise ValueError(f"Layer {layer!r} is above the class logits; choose a layer of the backbone or 'gap_maps'.")
        for index in range(self.start, self.stop + 1):
            self._check(index)
        self.layer = layer
        self.contrast_below = any(self.graph.steps[index].name == self.contrast_layer
                                  for index in range(self.start, self.stop + 1))

    def _check(self, index):
        step = self.graph.steps[index]
        layer = step.layer
        if layer is None or isinstance(layer, _graph.IDENTITY_LAYERS + PASS_THROUGH + POSITIVE_LINEAR):
            return
        if isinstance(layer, WEIGHTED + (keras.layers.Activation,)):
            if _activation_name(layer) not in ("relu", "linear"):
                raise ValueError(f"Excitation Backprop can't pass layer {layer.name!r}: activation "
                                 f"{_activation_name(layer)!r} (only relu or linear).")
            if isinstance(layer, keras.layers.Conv2D) and getattr(layer, "groups", 1) != 1:
                raise ValueError(f"Excitation Backprop can't pass layer {layer.name!r}: grouped convolution.")
            return
        if isinstance(layer, keras.layers.BatchNormalization):
            producer = self.graph.step_of(step.inputs[0])
            single_use = len(self.graph.consumers[step.inputs[0]]) == 1
            if isinstance(producer.layer, WEIGHTED) and _activation_name(producer.layer) == "linear" and single_use \
                    and layer.axis in (-1, len(layer.input.shape) - 1):
                self.folds[self.graph.producer[step.inputs[0]]] = layer
                return
            raise ValueError(f"Excitation Backprop can't pass layer {layer.name!r}: a BatchNormalization that does not "
                             "directly follow a linear Conv2D/Dense (it is folded into that layer's kernel).")
        raise ValueError(f"Excitation Backprop can't pass layer {layer.name!r} ({type(layer).__name__}); supported: "
                         "Conv2D, Dense, BatchNormalization after them, ReLU/Activation, pooling, Add, Concatenate, "
                         "Flatten, Reshape and mindgap's head layers.")

    def kernel(self, index, sign=1.0):
        layer = self.graph.steps[index].layer
        kernel = sign * tf.convert_to_tensor(layer.kernel)
        bn = self.folds.get(index)
        if bn is not None:
            scale = tf.math.rsqrt(tf.convert_to_tensor(bn.moving_variance) + bn.epsilon)
            if bn.gamma is not None:
                scale = scale * tf.convert_to_tensor(bn.gamma)
            kernel = kernel * scale
        return tf.nn.relu(kernel)

    def weighted(self, index, kernel):
        layer = self.graph.steps[index].layer
        if isinstance(layer, keras.layers.Dense):
            return lambda value: tf.tensordot(value, kernel, axes=[[value.shape.rank - 1], [0]])
        return lambda value: keras.ops.conv(value, kernel, strides=layer.strides, padding=layer.padding,
                                            data_format=layer.data_format, dilation_rate=layer.dilation_rate)

    def backward(self, values, prior, contrastive=False, keep=False):
        """MWP at the target tensor (and at every tensor if ``keep``) from ``prior`` on the logits."""
        mwp = {self.logits_key: prior}
        for index in range(self.stop, self.start - 1, -1):
            step = self.graph.steps[index]
            if not any(key in mwp for key in step.outputs):
                continue
            out = mwp[step.outputs[0]] if keep else mwp.pop(step.outputs[0])
            inputs = [values[key] for key in step.inputs]
            layer = step.layer
            if layer is None or isinstance(layer, _graph.IDENTITY_LAYERS + PASS_THROUGH + (
                    keras.layers.Activation, keras.layers.BatchNormalization)):
                passed = [out]
            elif isinstance(layer, WEIGHTED):
                passed = _excite(self.weighted(index, self.kernel(index)), inputs, out)
                if contrastive and layer.name == self.contrast_layer:
                    dual = _excite(self.weighted(index, self.kernel(index, -1.0)), inputs, out)
                    passed = [positive - negative for positive, negative in zip(passed, dual)]
            else:
                passed = _excite(lambda *args, layer=layer: layer(list(args)) if len(args) > 1 else layer(args[0]),
                                 inputs, out)
            for key, value in zip(step.inputs, passed):
                mwp[key] = mwp[key] + value if key in mwp else value
        return mwp


def plan_of(model, layer, top=None):
    """The :class:`Plan` of ``model`` from the logits (or ``top``) down to ``layer``, checked once per model."""
    return per_model(model, ("excitation", layer, top), lambda: Plan(model, layer, top))


def marginal_winning_probabilities_at(model, layer, activations, classes):
    """EB's MWP at ``layer`` (batch, ...) for ``classes`` (batch,) int, from that layer's own ``activations``.

    The layers above ``layer`` run in inference mode on ``activations`` (no image is needed), then the MWP of the
    one-hot prior on each image's class goes down to ``layer`` with the rules of this module: the same numbers as
    :func:`excitation_backprop` at ``layer`` before the sum over channels.  ``layer`` must be a cut of the graph
    (every path to the logits goes through it).  Traceable: Excitation Dropout calls it inside ``train_step`` (thesis
    §5.1, Figure 5.1 step 2), on the activations of its own forward pass.
    """
    plan = plan_of(model, layer)
    values = _graph.run_from(plan.graph, plan.target_key, activations, until=plan.logits_key)
    logits = values[plan.logits_key]
    prior = tf.one_hot(tf.cast(classes, tf.int32), logits.shape[-1], dtype=logits.dtype)
    return plan.backward(values, prior)[plan.target_key]
