"""Saliency maps of every method behind one call, and their scores.

    maps = mindgap.saliency.compute(model, images, classes=None, method="cam", **options)
    # also exported as mindgap.saliency_maps(...)

The package is ``mindgap.saliency`` and its entry point ``compute`` (a function ``mindgap.saliency`` would clash with
the subpackage of the same name).  ``METHODS`` maps each name to its :class:`Method` (its function, what it takes and
needs, whether it is signed, takes a layer, its defaults); one module per family:

* ``cam``: Moreaux et al. 2018 eq. 4 / Zhou et al. 2016 (cam.py); at the
  ``gap_maps`` resolution; raw (its spatial mean is the logit).
* ``gradcam``: Selvaraju et al. 2017 at any ``layer`` (gradcam.py); at that
  layer's resolution; raw ``ReLU(sum_k alpha_k A_k)``.
* ``rise``: Petsiuk et al. 2018 (rise.py); at the input resolution; the expected class probability under random masks.
* ``eb``: Excitation Backprop, Zhang et al. 2016/2018 (excitation.py); at
  ``layer``'s resolution; a distribution (sums to 1).
* ``ceb``: contrastive EB (excitation.py; Bargal 2019 §4, §7); at ``layer``'s
  resolution; positive part of a difference of two distributions.
* ``bp``: gradient saliency (recurrent.py; Simonyan et al. 2014); at the input
  resolution; ``max_channels |d logit / d image|``.

**Video** (thesis ch. 7; recurrent.py): clips (batch, T, H, W, 3) give maps (batch, T, h, w, n).  ``eb_r`` / ``ceb_r``
(EB-R, cEB-R; a CNN-LSTM of ``mindgap.recurrent``; ``step``: the time step queried, default the last): normalised over
space and time (eq. 7.5), cEB-R signed (eq. 7.7); ``rule``: how probability passes through the LSTM, ``"authors"``
(default: the authors' Caffe code, time through the cell state only) or ``"conserving"`` (ours: gates as weights, mass
conserved through the cell and the hidden state; recurrent.py's docstring); ``bp_r``: the gradient of the step's logit
through time.  An image method on clips runs on every frame independently (the thesis's per-frame EB / cEB / BP
baselines, with an image model such as ``Tiny-Frames``).

**Words of a caption** (thesis §7.3, §7.5; caption.py): with a captioner of ``mindgap.captioning``, ``classes`` are
the word ids to ground and ``words`` (the fed caption's ids) and ``steps`` (the step of each queried word) are
options: ``word_eb_r`` / ``word_ceb_r`` (EB-R, cEB-R through the two-LSTM decoder, ``rule`` as above) and
``caption_guided`` (Ramanishka et al. 2017); `method_names("words")`.

``layer`` defaults to ``"backbone"`` (the backbone's output, which feeds the head).  :func:`upsample` resizes any of
them to the input size; scores are in :mod:`mindgap.saliency.scores` (pointing game, box accuracy, MaxBoxAccV2, centre
of mass) and :mod:`mindgap.saliency.causal` (insertion, deletion).
"""

import numpy as np

from mindgap import registry
from mindgap.registry import DEFAULT_METHOD, METHODS, Method, method_names, method_of  # noqa: F401  (the table)
from mindgap.cam import upsample_cams
from mindgap.layers import ClassProbabilities
from mindgap.engine.forward import predict
from mindgap.models import model_info
from mindgap.recurrent import check_cnn_lstm
from mindgap.saliency import cam, caption, causal, excitation, gradcam, recurrent, rise, scores


def list_methods():
    """Names accepted by :func:`compute`."""
    return list(METHODS)


def resolve_classes(classes, num_images, probabilities=None, num_classes=None):
    """``classes`` → an int array (num_images, n).

    None: every class; ``"predicted"``: the top class of each image (needs
    ``probabilities``); an int: that class for every image; a 1-D sequence:
    these classes for every image; a 2-D array: per image.
    """
    if classes is None:
        return np.tile(np.arange(num_classes), (num_images, 1))
    if isinstance(classes, str):
        if classes != "predicted":
            raise ValueError(f"Unknown classes {classes!r}; pass None, 'predicted', an int, a list or an array (images, n).")
        return np.asarray(probabilities).argmax(axis=-1)[:, None]
    array = np.asarray(classes)
    if array.ndim == 0:
        array = np.full((num_images, 1), int(array))
    elif array.ndim == 1:
        array = np.tile(array, (num_images, 1))
    if array.ndim != 2 or len(array) != num_images or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"classes must be integers of shape (n,) or ({num_images}, n), got shape {array.shape}.")
    if num_classes is not None and (array.min() < 0 or array.max() >= num_classes):
        raise ValueError(f"classes must be in [0, {num_classes - 1}], got values from {array.min()} to {array.max()}.")
    return array.astype(np.int64)


def compute(model, images, classes=None, method="cam", upsample=False, batch_size=16, **options):
    """Saliency maps (batch, h, w, n) of ``classes`` for ``images`` by ``method``.

    Args:
        model: a mindgap model (any Keras model with a probability output for ``rise``).
        images: (batch, H, W, 3) preprocessed images (as the model takes them).
        classes: None (every class), ``"predicted"``, an int, a list of ints
            (the same for every image) or an int array (batch, n).
        method: a name of :data:`METHODS` (its :class:`Method` says what it takes and needs).
        upsample: resize the maps to the input size (bilinear, :func:`upsample`).
        batch_size: images per call of the method (bounds memory).
        **options: the method's own: ``layer`` (gradcam, eb, ceb, eb_r, ceb_r); ``step`` and ``rule`` ("authors" or
            "conserving"; eb_r, ceb_r); ``num_masks``, ``grid_size``, ``keep_probability``, ``seed``, ``baseline``,
            ``settings`` (rise).

    Returns:
        float32 numpy array (batch, h, w, n), n = the number of classes asked, at the resolution stated in the
        method's docstring (see the table in this package's docstring), or at the input size with ``upsample``.
    """
    spec = method_of(method)
    if spec.takes == "words":  # a captioner's words (options words= and steps=), mindgap.saliency.caption
        return caption.compute(model, images, classes, method, upsample=upsample, **options)
    images = np.asarray(images, np.float32)
    if images.ndim == 5 or spec.takes == "clips":
        return _compute_video(model, images, classes, spec, upsample, batch_size, **options)
    if images.ndim != 4:
        raise ValueError(f"images must be a batch (batch, H, W, 3), got shape {images.shape}.")
    labelled = any(isinstance(layer, ClassProbabilities) for layer in getattr(model, "layers", []))
    if spec.needs == "cam head" or (spec.needs == "graph" and not labelled):
        model_info(model)  # a clear error for a model that is not a mindgap model
    probabilities = predict(model, images, batch_size) if isinstance(classes, str) else None
    classes = resolve_classes(classes, len(images), probabilities, int(model.output.shape[-1]))
    parts = [spec(model, images[start:start + batch_size], classes[start:start + batch_size], **options)
             for start in range(0, len(images), batch_size)]
    maps = np.concatenate(parts).astype(np.float32)
    return upsample_cams(maps, images.shape[1:3]) if upsample else maps


def _compute_video(model, clips, classes, spec, upsample_maps, batch_size, **options):
    """:func:`compute` on clips: through time (a method that takes clips) or frame by frame (an image method)."""
    if clips.ndim != 5:
        raise ValueError(f"{spec.name} takes clips (batch, T, H, W, 3), got shape {clips.shape}; add the batch axis.")
    batch, steps = clips.shape[:2]
    if spec.takes == "images":
        family = registry.family_of(model)
        if family is not None and family.takes == "clips":
            raise ValueError(f"{spec.name} on clips runs frame by frame and needs an image model (e.g. a Tiny-Frames CNN); "
                             f"for the CNN-LSTM {model.name!r} use {spec.through_time or ' or '.join(method_names('clips'))}.")
        frame_classes = classes
        if classes is not None and not isinstance(classes, str) and np.asarray(classes).ndim == 2:
            frame_classes = np.repeat(np.asarray(classes), steps, axis=0)
        maps = compute(model, clips.reshape(-1, *clips.shape[2:]), frame_classes, spec.name, upsample_maps, batch_size,
                       **options)
        return maps.reshape(batch, steps, *maps.shape[1:])
    check_cnn_lstm(model)
    probabilities = None
    if isinstance(classes, str):
        step = options.get("step")
        probabilities = predict(model, clips, batch_size)[:, -1 if step is None else step]
    classes = resolve_classes(classes, batch, probabilities, int(model.output.shape[-1]))
    parts = [spec(model, clips[start:start + batch_size], classes[start:start + batch_size], **options)
             for start in range(0, batch, batch_size)]
    maps = np.concatenate(parts).astype(np.float32)
    if upsample_maps:
        flat = upsample_cams(maps.reshape(-1, *maps.shape[2:]), clips.shape[2:4])
        maps = flat.reshape(batch, steps, *flat.shape[1:])
    return maps


def upsample(maps, size):
    """Resize maps (batch, h, w, n) or (h, w, n) to ``size = (H, W)``, bilinear with half-pixel centres."""
    return upsample_cams(maps, size)


__all__ = ["METHODS", "Method", "caption", "compute", "list_methods", "method_names", "method_of", "resolve_classes", "upsample", "cam", "gradcam", "rise",
           "excitation", "recurrent", "scores", "causal"]
