"""Grad-CAM at any named layer.

Selvaraju, Cogswell, Das, Vedantam, Parikh, Batra, "Grad-CAM: Visual
explanations from deep networks via gradient-based localization", ICCV 2017:

    alpha_k^c = mean_{x,y} d y^c / d A_k(x, y),    L^c = ReLU( sum_k alpha_k^c A_k )

with ``y^c`` the class logit (the input of the softmax: ``grouped_gap`` for a
GAPm head, ``dense`` for a Zhou head) and ``A`` the output of ``layer``.

* ``layer`` (default ``"backbone"``): any layer of the model, including layers inside the nested backbone
  (``"mixed5"``, ``"tiny_block3"``, ...).  The default is the backbone's output, the layer that feeds the head: there
  the gradient goes through ``gap_maps`` and Grad-CAM differs from the CAM.
* ``layer="gap_maps"``: for a GAPm head ``d g_c / d f_k(x, y) = 1/XY`` for the
  class's maps and 0 otherwise, so Grad-CAM is ``CAM_c / XY``: the CAM again.

Returns (batch, h, w, n) float32 at the resolution of ``layer``, in logit units per unit of activation (not
normalised).  One forward pass and one backward pass per requested class (memory of one gradient), compiled with
``tf.function`` per model and layer.
"""

import numpy as np
import tensorflow as tf

from mindgap.engine import graph as _graph
from mindgap.engine.cache import per_model
from mindgap.heads import MAPS_LAYER
from mindgap.models import model_info

DEFAULT_LAYER = "backbone"


def _function(model, layer):
    model_info(model)
    graph = _graph.flat_graph(model)
    target, logits = graph.key_of(layer), _graph.logits_key(graph, model)
    if graph.producer.get(target, -1) >= graph.producer[logits]:
        raise ValueError(f"Grad-CAM needs a layer below the class logits; {layer!r} is not (try 'backbone' or 'gap_maps').")

    @tf.function(reduce_retracing=True)
    def grad_cam(images, classes, count):
        with tf.GradientTape(persistent=True) as tape:
            def watch(key, value):
                if key == target:
                    tape.watch(value)
                return value

            values = _graph.run(graph, images, until=logits, on_output=watch)
            targets = tf.gather(values[logits], classes, axis=1, batch_dims=1)  # (batch, n)
            # images do not interact (inference mode), so the gradient of a batch sum is each image's own
            sums = [tf.reduce_sum(targets[:, column]) for column in range(count)]
        activations = values[target]
        if activations.shape.rank != 4:
            raise ValueError(f"Grad-CAM needs a spatial layer (batch, h, w, k); {layer!r} has shape {activations.shape}.")
        maps = []
        for total in sums:  # one backward pass per asked class: memory of one gradient
            gradients = tape.gradient(total, activations)
            weights = tf.reduce_mean(gradients, axis=(1, 2))  # alpha_k per image
            maps.append(tf.nn.relu(tf.einsum("bk,bhwk->bhw", weights, activations)))
        del tape
        return tf.stack(maps, axis=-1)

    return grad_cam


def grad_cam(model, images, classes, layer=DEFAULT_LAYER):
    """Grad-CAM maps (batch, h, w, n) of ``classes`` (batch, n) at ``layer``; see the module docstring."""
    function = per_model(model, ("gradcam", layer), lambda: _function(model, layer))
    classes = tf.convert_to_tensor(classes, tf.int32)
    return function(tf.convert_to_tensor(images, tf.float32), classes, int(classes.shape[1])).numpy()


def grad_cam_of_maps(model, images, class_indices=None):
    """``mindgap.grad_cam``: Grad-CAM at ``gap_maps`` (the CAM's layer) of ``class_indices`` (default every class) for
    every image, (batch, h, w, n); for a GAPm head it is ``relu(CAM) / (h w)``."""
    classes = np.arange(int(model.output.shape[-1])) if class_indices is None else np.asarray(class_indices)
    return grad_cam(model, images, np.tile(classes, (len(images), 1)), layer=MAPS_LAYER)
