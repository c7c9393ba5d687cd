"""Custom layers of the GAP heads: grouped-sum GAP (eq. 1–2), grouped CAMs (eq. 4),
and the labelled softmax output that carries the class names with a saved model."""

import keras
from keras import ops


def _check_maps_per_class(maps_per_class):
    if not isinstance(maps_per_class, int) or maps_per_class < 1:
        raise ValueError(f"maps_per_class (m) must be an integer >= 1, got {maps_per_class!r}.")


def _check_channels(channels, maps_per_class, layer_name):
    if channels is not None and channels % maps_per_class:
        raise ValueError(
            f"{layer_name} got {channels} channels, not a multiple of maps_per_class={maps_per_class}."
        )


def _group_last_axis(inputs, maps_per_class):
    """(..., c*m) -> (..., c): sum of the m consecutive channels of each class."""
    shape = ops.shape(inputs)
    channels = inputs.shape[-1]
    grouped = ops.reshape(inputs, (*shape[:-1], channels // maps_per_class, maps_per_class))
    return ops.sum(grouped, axis=-1)


class _ClassMajorGroups(keras.layers.Layer):
    """Base of the layers that read c·m class-major channels as c groups of m."""

    def __init__(self, maps_per_class, **kwargs):
        super().__init__(**kwargs)
        _check_maps_per_class(maps_per_class)
        self.maps_per_class = maps_per_class

    def build(self, input_shape):
        _check_channels(input_shape[-1], self.maps_per_class, self.name)

    def get_config(self):
        config = super().get_config()
        config.update(maps_per_class=self.maps_per_class)
        return config


@keras.saving.register_keras_serializable(package="mindgap")
class GroupedSumGAP(_ClassMajorGroups):
    """Global average pooling then the grouped **sum** per class (paper eq. 1–2).

    ``g_k = sum_{x,y} f_k(x, y) / (X*Y)`` (eq. 1), then ``g'_c = sum_{k of class c} g_k`` (eq. 2), with class-major
    channels: kernels ``c*m … c*m+m-1`` belong to class ``c``.  The output is the vector of class logits fed to the
    softmax (eq. 3).

    Args:
        maps_per_class: int, m (5 in Inception-GAP5).

    Call arguments:
        inputs: tensor (batch, h, w, c*m).

    Returns:
        tensor (batch, c).

    Example:
    >>> layer = GroupedSumGAP(maps_per_class=2)
    >>> layer(ops.ones((1, 3, 3, 4))).shape
    (1, 2)

    Reference: Moreaux et al., VISAPP 2018, eq. (1)–(2).
    """

    def call(self, inputs):
        gap = ops.mean(inputs, axis=(1, 2))
        return _group_last_axis(gap, self.maps_per_class)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1] // self.maps_per_class)


@keras.saving.register_keras_serializable(package="mindgap")
class GroupedClassMaps(_ClassMajorGroups):
    """Class activation maps of a GAPm head (paper eq. 4).

    ``CAM_c(x, y) = sum_{k of class c} f_k(x, y)``: the CAMs come straight out of the forward pass, m sums per pixel
    and class.  The spatial mean of ``CAM_c`` is the logit ``g'_c`` of :class:`GroupedSumGAP`.

    Args:
        maps_per_class: int, m.

    Call arguments:
        inputs: tensor (batch, h, w, c*m).

    Returns:
        tensor (batch, h, w, c).

    Reference: Moreaux et al., VISAPP 2018, eq. (4).
    """

    def call(self, inputs):
        return _group_last_axis(inputs, self.maps_per_class)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] // self.maps_per_class)


@keras.saving.register_keras_serializable(package="mindgap")
class ClassProbabilities(keras.layers.Layer):
    """Softmax over class logits (paper eq. 3) that also records the class names.

    The names are part of the layer's config, so they travel inside a saved
    ``.keras`` file; a model without this layer is not a mindgap model.

    Args:
        class_names: list of str or None (then ``class_0``, ``class_1``, …).

    Call arguments:
        inputs: tensor (batch, c) of logits.

    The softmax is the attribute ``activation``, as in Keras' Dense, so tools that set
    ``model.layers[-1].activation`` to linear or None (tf-keras-vis' ``ReplaceToLinear``,
    Keras' Grad-CAM example) get the logits; it is not an argument and is softmax again when loaded.
    """

    def __init__(self, class_names=None, **kwargs):
        super().__init__(**kwargs)
        self.class_names = None if class_names is None else [str(name) for name in class_names]
        self.activation = keras.activations.softmax

    def build(self, input_shape):
        num_classes = input_shape[-1]
        if self.class_names is not None and num_classes is not None and len(self.class_names) != num_classes:
            raise ValueError(
                f"{len(self.class_names)} class names were given for {num_classes} classes; "
                "pass one name per class."
            )

    def call(self, inputs):
        return inputs if self.activation is None else self.activation(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(class_names=self.class_names)
        return config
