"""Backbones cut at the layer whose maps feed the GAP head.

* ``inception_v3``: Keras' InceptionV3, cut at ``mixed7`` (17×17×768 at 299²).
* ``googlenet``: Inception v1 (Szegedy et al. 2015) built here, cut after ``inception_4e`` as in Zhou et al. 2016
  (14×14×832 at 224²).  The local response normalisation layers of the original are left out (Keras has none, and
  Zhou's GoogLeNet-GAP fine-tunes from weights that must come from a file).
* ``tiny``: four conv-BN-ReLU blocks (stride 8), for CPU runs and tests.

Every backbone takes images already scaled to [-1, 1] (InceptionV3 preprocessing, see ``mindgap.data.preprocess``) and
is returned as a ``keras.Model`` named ``"backbone"`` so that it can be frozen as one piece.
"""

import os

import keras

from mindgap import shipped

BACKBONES = ("inception_v3", "googlenet", "tiny")
BACKBONE_LAYER = "backbone"
# The backbone's own input; the model's is "image" (Keras requires unique names in one graph).
INPUT_NAME = "backbone_image"
DEFAULT_CUT_LAYERS = {"inception_v3": "mixed7", "googlenet": "inception_4e", "tiny": "tiny_block4"}
INCEPTION_MIN_SIZE = 75  # keras.applications' own lower bound
MIN_CAM_SIZE = 2  # a CAM of one pixel cannot localize anything

_GOOGLENET_MODULES = (
    # name, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection
    ("inception_3a", 64, 96, 128, 16, 32, 32),
    ("inception_3b", 128, 128, 192, 32, 96, 64),
    "pool",
    ("inception_4a", 192, 96, 208, 16, 48, 64),
    ("inception_4b", 160, 112, 224, 24, 64, 64),
    ("inception_4c", 128, 128, 256, 24, 64, 64),
    ("inception_4d", 112, 144, 288, 32, 64, 64),
    ("inception_4e", 256, 160, 320, 32, 128, 128),
    "pool",
    ("inception_5a", 256, 160, 320, 32, 128, 128),
    ("inception_5b", 384, 192, 384, 48, 128, 128),
)
_TINY_BLOCKS = ((32, 2), (64, 2), (128, 2), (128, 1))  # (filters, stride)


@keras.saving.register_keras_serializable(package="mindgap", name="Backbone")
class Backbone(keras.Model):
    """The cut backbone: a functional ``keras.Model`` named ``"backbone"``, nested in every mindgap model.

    Its ``output`` is the tensor it produced in the model that called it, the one the head reads
    (Keras' own ``output`` of a nested model is its inner graph's, which no outer layer reads).
    So Keras' idiom works on a mindgap model as on a flat one, gradients included::

        probe = keras.Model(model.inputs, [model.get_layer("backbone").output, model.output])

    Before it is called (standalone, or while a model is built from it) ``output`` is Keras' own.
    Built by :func:`build_backbone`; takes the arguments of a functional ``keras.Model``.
    """

    @property
    def output(self):
        # Keras 3 has no get_output_at(); the first inbound node is the call in the enclosing model.
        if self._inbound_nodes:
            return self._inbound_nodes[0].output_tensors[0]
        return super().output


# Keras names a nested model's weights after its class's name ("layers/functional/..." for a plain functional
# model): keeping that name keeps weights files, run backups and .keras files of either kind interchangeable.
Backbone.__name__ = Backbone.__qualname__ = "Functional"
BACKBONE_CLASS_ENTRY = {"module": Backbone.__module__, "class_name": Backbone.__name__,
                        "registered_name": keras.saving.get_registered_name(Backbone)}


def cut_candidates(backbone):
    """Names of the layers a backbone can be cut at."""
    if backbone == "inception_v3":
        return tuple(f"mixed{index}" for index in range(11))
    if backbone == "googlenet":
        return tuple(module[0] for module in _GOOGLENET_MODULES if module != "pool")
    if backbone == "tiny":
        return tuple(f"tiny_block{index + 1}" for index in range(len(_TINY_BLOCKS)))
    raise ValueError(f"Unknown backbone {backbone!r}; use one of {BACKBONES}.")


def _conv_relu(inputs, filters, kernel_size, name, strides=1):
    return keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", activation="relu", name=name
    )(inputs)


def _googlenet_full(input_shape):
    inputs = keras.Input(input_shape, name=INPUT_NAME)
    features = _conv_relu(inputs, 64, 7, "conv1_7x7", strides=2)
    features = keras.layers.MaxPooling2D(3, 2, padding="same", name="pool1")(features)
    features = _conv_relu(features, 64, 1, "conv2_reduce")
    features = _conv_relu(features, 192, 3, "conv2_3x3")
    features = keras.layers.MaxPooling2D(3, 2, padding="same", name="pool2")(features)
    pool_index = 3
    for module in _GOOGLENET_MODULES:
        if module == "pool":
            features = keras.layers.MaxPooling2D(3, 2, padding="same", name=f"pool{pool_index}")(features)
            pool_index += 1
            continue
        name, one, three_reduce, three, five_reduce, five, pool_proj = module
        branch_one = _conv_relu(features, one, 1, f"{name}_1x1")
        branch_three = _conv_relu(_conv_relu(features, three_reduce, 1, f"{name}_3x3_reduce"), three, 3, f"{name}_3x3")
        branch_five = _conv_relu(_conv_relu(features, five_reduce, 1, f"{name}_5x5_reduce"), five, 5, f"{name}_5x5")
        branch_pool = keras.layers.MaxPooling2D(3, 1, padding="same", name=f"{name}_pool")(features)
        branch_pool = _conv_relu(branch_pool, pool_proj, 1, f"{name}_pool_proj")
        features = keras.layers.Concatenate(name=name)([branch_one, branch_three, branch_five, branch_pool])
    return keras.Model(inputs, features, name="googlenet")


def _tiny_full(input_shape):
    inputs = keras.Input(input_shape, name=INPUT_NAME)
    features = inputs
    for index, (filters, strides) in enumerate(_TINY_BLOCKS, start=1):
        features = keras.layers.Conv2D(
            filters, 3, strides=strides, padding="same", use_bias=False, name=f"tiny_block{index}_conv"
        )(features)
        features = keras.layers.BatchNormalization(momentum=0.9, name=f"tiny_block{index}_bn")(features)
        features = keras.layers.ReLU(name=f"tiny_block{index}")(features)
    return keras.Model(inputs, features, name="tiny")


def _inception_v3_full(input_shape, weights):
    if min(input_shape[:2]) < INCEPTION_MIN_SIZE:
        raise ValueError(
            f"input_shape {tuple(input_shape)} is too small for InceptionV3; use at least "
            f"{INCEPTION_MIN_SIZE}x{INCEPTION_MIN_SIZE}."
        )
    return keras.applications.InceptionV3(
        include_top=False, weights=weights, input_tensor=keras.Input(input_shape, name=INPUT_NAME)
    )


def _load_weights_file(full_model, cut_model, path, backbone):
    """Load a weights file into the uncut backbone, or else into the cut one."""
    if not os.path.isfile(path):
        raise ValueError(f"Weights file {path!r} does not exist; pass None, 'imagenet' (InceptionV3), 'pretrained' (Tiny) "
                         "or an existing file.")
    errors = []
    for candidate in (full_model, cut_model):
        try:
            candidate.load_weights(path)
            return
        except Exception as error:  # Keras raises several types for a mismatch
            errors.append(f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
    raise ValueError(
        f"Weights file {path!r} does not match the {backbone} backbone ({errors[-1]}); "
        "pass a weights file saved from the same backbone."
    )


def build_backbone(backbone, input_shape=(299, 299, 3), weights=None, cut_layer=None):
    """The backbone cut at ``cut_layer``, as a :class:`Backbone` (a functional ``keras.Model``) named ``"backbone"``.

    Args:
        backbone: ``"inception_v3"``, ``"googlenet"`` or ``"tiny"``.
        input_shape: (height, width, 3).
        weights: None, ``"imagenet"`` (InceptionV3 only; Keras' own download or cache), ``"pretrained"`` (Tiny only:
            the shipped weights of the scenes-96k recipe, ``"pretrained:RECIPE"`` another, ``mindgap.shipped``) or the
            path of a weights file for this backbone (uncut, as Keras distributes it, or as cut here).
        cut_layer: layer whose output feeds the head; default ``mixed7``, ``inception_4e`` or ``tiny_block4``.
    """
    candidates = cut_candidates(backbone)
    cut_layer = DEFAULT_CUT_LAYERS[backbone] if cut_layer is None else cut_layer
    if cut_layer not in candidates:
        raise ValueError(
            f"The {backbone} backbone has no layer {cut_layer!r} to cut at; candidates: {', '.join(candidates)}."
        )
    input_shape = tuple(int(size) for size in input_shape)
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(f"input_shape must be (height, width, 3), got {input_shape}.")
    weights = shipped.backbone_weights(weights, backbone)
    is_path = weights not in (None, "imagenet")
    if weights == "imagenet" and backbone != "inception_v3":
        raise ValueError(
            f"No ImageNet weights are distributed with Keras for the {backbone} backbone; "
            "pass weights=None or the path of a weights file."
        )
    if backbone == "inception_v3":
        full_model = _inception_v3_full(input_shape, None if is_path else weights)
    elif backbone == "googlenet":
        full_model = _googlenet_full(input_shape)
    else:
        full_model = _tiny_full(input_shape)

    cut_output = full_model.get_layer(cut_layer).output
    height, width = cut_output.shape[1:3]
    if height < MIN_CAM_SIZE or width < MIN_CAM_SIZE:
        raise ValueError(
            f"input_shape {input_shape} is too small for the cut at {cut_layer!r}: its maps would be "
            f"{height}x{width}; use a larger input or an earlier cut layer."
        )
    cut_model = Backbone(full_model.inputs, cut_output, name=BACKBONE_LAYER)
    if is_path:
        _load_weights_file(full_model, cut_model, os.fspath(weights), backbone)
    return cut_model
