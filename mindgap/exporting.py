"""Export a mindgap model for other runtimes: a TensorFlow SavedModel, LiteRT (``.tflite``) or ONNX.

Every artifact takes ``image`` (batch, H, W, 3) float32 scaled to [-1, 1]
(InceptionV3 preprocessing, as the model itself) and has two named outputs:

* ``probabilities`` (batch, c): the model's output (eq. 3);
* ``cams`` (batch, h, w, c): every class's CAM at the maps' resolution (eq. 4 for
  a GAPm head, Zhou et al.'s for a Zhou head), from :func:`mindgap.cam_model`.

Keras 3's own ``model.export`` writes each format (``tf_saved_model``; ``onnx`` through tf2onnx; ``litert`` through
TensorFlow's converter), so the artifacts are what Keras documents; run them with TensorFlow
(``tf.saved_model.load(...).signatures["serving_default"]``), ``ai-edge-litert`` and ``onnxruntime``.

The module is ``exporting`` so that ``mindgap.export`` can be the function (a module of that name would be shadowed by
it, as ``mindgap.saliency_maps`` is named beside the ``mindgap.saliency`` package).
"""

import errno
import os
import warnings

import keras
import numpy as np
import tensorflow as tf

from mindgap import storage
from mindgap.cam import cam_model

FORMATS = ("savedmodel", "litert", "onnx")
OUTPUT_NAMES = ("probabilities", "cams")
ARTIFACTS = {"savedmodel": "savedmodel", "litert": "model.tflite", "onnx": "model.onnx"}  # inside ``out_dir``
_KERAS_FORMATS = {"savedmodel": "tf_saved_model", "litert": "litert", "onnx": "onnx"}


def named_outputs_model(model):
    """``model``'s CAM model with a dict output ``{"probabilities", "cams"}`` (shared layers)."""
    explainer = cam_model(model)
    return keras.Model(explainer.inputs, dict(zip(OUTPUT_NAMES, explainer.outputs)), name=f"{model.name}-export")


def export(model, out_dir, format="savedmodel"):
    """Write ``model`` as ``format`` into ``out_dir``; returns the artifact's path.

    The artifact is written under a temporary name beside its place and renamed when complete (``mindgap.storage``): a
    full disk, a read-only place or a kill leaves the earlier export (or nothing) and no half-written files such as
    TensorFlow's ``variables_temp/``; such failures are a :class:`~mindgap.storage.StorageError` naming the path.

    Args:
        model: a mindgap model (built, or loaded with :func:`mindgap.load_model`).
        out_dir: a folder, created if absent; the artifact is ``out_dir/savedmodel/``,
            ``out_dir/model.tflite`` or ``out_dir/model.onnx`` (replaced if present).
        format: ``"savedmodel"``, ``"litert"`` or ``"onnx"``.
    """
    if format not in FORMATS:
        raise ValueError(f"Unknown export format {format!r}; use one of {', '.join(FORMATS)}.")
    path = os.path.join(os.fspath(out_dir), ARTIFACTS[format])
    named = named_outputs_model(model)
    # called once (Keras' ONNX export refuses a model never called), in its input structure (a list: no UserWarning)
    named([np.zeros((1, *named.input_shape[1:]), np.float32)])
    writing = storage.atomic_folder(path) if format == "savedmodel" else storage.atomic_path(path)
    try:
        with writing as temporary:
            _keras_export(named, temporary, format)
    except tf.errors.OpError as error:  # TensorFlow's writers (SaveV2) report a full disk or a read-only place so
        raise storage.storage_error(path, OSError(_errno_of(error), _reason_of(error))) from None
    return path


def _keras_export(named, path, format):
    try:
        with warnings.catch_warnings():  # Keras' tf2onnx shim probes np.object, which numpy 2 warns about
            warnings.filterwarnings("ignore", message="In the future `np.object`", category=FutureWarning)
            named.export(path, format=_KERAS_FORMATS[format], verbose=False)
    except ImportError as error:
        package = {"onnx": "tf2onnx onnx", "litert": "ai-edge-litert"}.get(format, error.name)
        raise ImportError(f"Export to {format} needs {error.name!r}; pip install {package}.") from error


_TF_STORAGE_ERRORS = {"No space left on device": errno.ENOSPC, "Disk quota exceeded": errno.EDQUOT,
                      "Read-only file system": errno.EROFS, "Permission denied": errno.EACCES}


def _errno_of(error):
    return next((code for text, code in _TF_STORAGE_ERRORS.items() if text in error.message), errno.EIO)


def _reason_of(error):
    return next((text for text in _TF_STORAGE_ERRORS if text in error.message), f"{type(error).__name__} while writing")
