"""The one-pass class activation map, behind the saliency interface.

GAPm heads: ``CAM_c = sum_{k of class c} f_k`` (Moreaux et al., VISAPP 2018, eq. 4); Zhou heads: ``CAM_c = sum_k
w_{k,c} f_k`` (Zhou et al., "Learning deep features for discriminative localization", CVPR 2016).  Computed by
:func:`mindgap.cam.cam_model` in the same forward pass as the probabilities.

Returns (batch, h, w, n) float32 at the resolution of ``gap_maps`` (17×17 for InceptionV3 at 299²), not normalised:
the spatial mean of ``CAM_c`` is the class logit (minus the dense bias for Zhou); Zhou CAMs may be negative.
"""

import numpy as np
import tensorflow as tf

from mindgap.cam import cam_model
from mindgap.engine.cache import per_model

def class_activation_maps(model, images, classes):
    """CAMs (batch, h, w, n) of ``classes`` (batch, n); see the module docstring."""
    def make():
        explainer = cam_model(model)
        return tf.function(lambda batch, chosen: tf.gather(explainer(batch, training=False)[1], chosen, axis=-1,
                                                           batch_dims=1), reduce_retracing=True)

    function = per_model(model, "cam", make)
    return function(tf.convert_to_tensor(images, tf.float32), tf.convert_to_tensor(np.asarray(classes), tf.int32)).numpy()
