"""Class activation maps in the same forward pass as the probabilities.

* GAPm heads: ``CAM_c = sum_{k of class c} f_k`` (paper eq. 4), from the
  ``gap_maps`` output by :class:`~mindgap.layers.GroupedClassMaps`.
* Zhou heads: ``CAM_c = sum_k w_{k,c} f_k`` (Zhou et al. 2016), with ``w`` the kernel of the model's own ``dense``
  layer, shared, not copied: the layer is applied to every pixel of the maps, and its bias, obtained by applying it to
  zeros, is subtracted.

In both cases the spatial mean of ``CAM_c`` is the logit of class c (plus the
dense bias for Zhou), so ``softmax(mean(CAM))`` reproduces the probabilities.
"""

import keras
import numpy as np
import tensorflow as tf

from mindgap import heads
from mindgap.layers import GroupedClassMaps
from mindgap.models import model_info

CAMS_LAYER = "class_activation_maps"


def cam_model(model, upsample=False):
    """A model with outputs ``[probabilities, cams]`` from one forward pass.

    Args:
        model: a mindgap model (from :func:`mindgap.build_model` or loaded).
        upsample: if True, the CAMs are resized (bilinear) to the input size
            inside the graph; otherwise they stay at the maps' resolution.

    Returns:
        ``keras.Model``; ``cams`` has shape (batch, h, w, num_classes).
        It shares its layers (and weights) with ``model``.
    """
    info = model_info(model)
    maps = model.get_layer(heads.MAPS_LAYER).output
    if info.head == "gapm":
        cams = GroupedClassMaps(info.maps_per_class, name=CAMS_LAYER)(maps)
    else:
        dense = model.get_layer(heads.DENSE_LAYER)
        with_bias = dense(maps)
        bias_only = dense(keras.layers.Rescaling(0.0, name="zero_maps")(maps))
        cams = keras.layers.Subtract(name=CAMS_LAYER)([with_bias, bias_only])
    if upsample:
        height, width = info.input_shape[:2]
        cams = keras.layers.Resizing(height, width, interpolation="bilinear", name="upsampled_cams")(cams)
    return keras.Model(model.input, [model.output, cams], name=f"{model.name}-cam")


def upsample_cams(cams, size):
    """Resize CAMs (batch, h, w, c) or (h, w, c) to ``size = (height, width)``, bilinear.

    Uses half-pixel centres (as OpenCV and ``tf.image.resize`` do), so a CAM
    pixel's centre lands on the centre of the image region it covers.
    """
    cams = np.asarray(cams, dtype=np.float32)
    if cams.ndim not in (3, 4):
        raise ValueError(f"cams must have shape (batch, h, w, c) or (h, w, c), got {cams.shape}.")
    resized = tf.image.resize(cams, tuple(int(side) for side in size), method="bilinear")
    return resized.numpy()


def upsample_map(maps, size):
    """Resize one map (h, w) or a stack of single maps (batch, h, w) to ``size``, as :func:`upsample_cams`."""
    return upsample_cams(np.asarray(maps, dtype=np.float32)[..., None], size)[..., 0]
