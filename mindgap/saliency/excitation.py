"""Excitation Backprop (EB) and contrastive EB (cEB) maps: Zhang et al., ECCV 2016 / IJCV 2018; Bargal 2019, eq.
(4.1)-(4.2), (7.1)-(7.9).  The rules (how each layer passes the marginal winning probability) and the closed form
on a GAPm head are in :mod:`mindgap.engine.excitation`, which Excitation Dropout shares.

Returned maps (batch, h, w, n) at the resolution of ``layer`` (default ``"backbone"``: the backbone's output, the
same grid as the CAM), the MWP summed over channels.  EB: a probability distribution over the layer's positions
(it sums to 1).  cEB: the positive part of a difference of two such distributions.
"""

import tensorflow as tf

from mindgap.engine import excitation
from mindgap.engine import graph as _graph
from mindgap.engine.cache import per_model

DEFAULT_LAYER = excitation.DEFAULT_LAYER


def excitation_backprop(model, images, classes, layer=DEFAULT_LAYER):
    """EB maps (batch, h, w, n) at ``layer``: each a probability distribution over positions (sums to 1).

    Zhang et al., ECCV 2016 / IJCV 2018.  ``classes`` (batch, n) int.  See the
    module docstring for the rules, the resolution and the closed form on a GAPm head.
    """
    return _run(model, images, classes, layer, False)


def contrastive_excitation_backprop(model, images, classes, layer=DEFAULT_LAYER):
    """cEB maps (batch, h, w, n) at ``layer``: positive part of MWP(class) - MWP(dual class).

    Zhang et al. 2016/2018; thesis §4 and eq. (7.1)-(7.9).  See the module docstring.
    """
    return _run(model, images, classes, layer, True)


def _run(model, images, classes, layer, contrastive):
    plan = excitation.plan_of(model, layer)
    if contrastive and not plan.contrast_below:
        raise ValueError(f"cEB subtracts the dual's MWP right below {plan.contrast_layer!r}; layer {layer!r} is not "
                         "below it: choose 'backbone' or a layer inside the backbone.")
    classes = tf.convert_to_tensor(classes, tf.int32)
    function = per_model(model, ("eb maps", layer), lambda: tf.function(
        lambda images, classes, count, contrastive: _maps(plan, images, classes, count, contrastive), reduce_retracing=True))
    return function(tf.convert_to_tensor(images, tf.float32), classes, int(classes.shape[1]), contrastive).numpy()


def _maps(plan, images, classes, count, contrastive):
    values = _graph.run(plan.graph, images, until=plan.logits_key)
    num_classes = values[plan.logits_key].shape[-1]
    maps = []
    for column in range(count):
        prior = tf.one_hot(classes[:, column], num_classes, dtype=values[plan.logits_key].dtype)
        mwp = plan.backward(values, prior, contrastive)[plan.target_key]
        summed = tf.reduce_sum(mwp, axis=-1) if mwp.shape.rank == 4 else mwp
        maps.append(tf.nn.relu(summed) if contrastive else summed)
    return tf.stack(maps, axis=-1)


def marginal_winning_probabilities(model, images, class_index, layer=DEFAULT_LAYER, contrastive=False):
    """The MWP of every tensor from the class logits down to ``layer``: {layer name: array}.

    For tests and analysis (eager, not compiled).  Tensors of nested models
    are named by their layer; the logits are under ``"logits"``.
    """
    plan = excitation.Plan(model, layer)
    images = tf.convert_to_tensor(images, tf.float32)
    values = _graph.run(plan.graph, images, until=plan.logits_key)
    prior = tf.one_hot(tf.fill([images.shape[0]], int(class_index)), values[plan.logits_key].shape[-1])
    mwp = plan.backward(values, prior, contrastive, keep=True)
    by_key = {key: name for name, key in plan.graph.names.items()}
    return {by_key.get(key, "logits" if key == plan.logits_key else str(key)): value.numpy() for key, value in mwp.items()}
