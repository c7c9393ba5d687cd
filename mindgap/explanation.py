"""Explain an image, a folder or a clip in one call: ``mindgap explain``, ``explain-video``, the viewer and notebooks.

    explanation = mindgap.explain(model, "photo.jpg", method="gradcam", top_k=5)
    explanation.top_k          # [("seven", 0.93), ("one", 0.04), ...]
    explanation.map            # (H, W) float32 at the photo's own size
    explanation.box            # (x_min, y_min, x_max, y_max) in the photo's pixels, or None
    explanation.overlay()      # RGB uint8 (H, W, 3): the map (jet, 50 %) over the photo, with its box
    explanation.save("photo_explained.png")

``model``: a loaded model, a ``.keras`` path or a name :func:`mindgap.load_model` resolves.  ``image``: a path,
a PIL image or an RGB array (H, W, 3) or (H, W), uint8 or floats in [0, 255] ([0, 1] when none is above 1).
The model sees the image stretched to its square input (as in training); the box is found on the map upsampled
to that input (as in evaluation) and moved back to the image's pixels.  Maps are min-max normalised unless the
method's values are ``absolute`` (the CAM's logit units; :class:`mindgap.saliency.Method`).
"""

import csv
import dataclasses
import os
import re
import sys

import numpy as np
import tensorflow as tf
from PIL import Image

from mindgap import plots, registry, saliency, storage
from mindgap.cam import upsample_map
from mindgap.data.folders import IMAGE_EXTENSIONS
from mindgap.data.pipeline import model_input, preprocess
from mindgap.engine.forward import predict
from mindgap.guided_zoom import Refiner
from mindgap.layers import ClassProbabilities
from mindgap.metrics import cam_to_box
from mindgap.models import load_model, load_model_file
from mindgap.saliency.scores import min_max
from mindgap.temporal import frame_sums, localize_unknown_length

DEFAULT_TOP_K = 5
DEFAULT_THRESHOLD = 0.2
PREDICTIONS_FILE = "predictions.csv"


@dataclasses.dataclass
class Explanation:
    """One image explained by ``method``: ``top_k`` [(class name, probability)], best first; the ``class_name``
    explained and its ``probability``; ``evidence`` (h, w), the map at its own resolution; ``box`` in the image's
    pixels (pixel edges, exclusive ends; None: no positive evidence); the ``image`` (RGB uint8)."""

    image: np.ndarray
    top_k: list
    class_name: str
    probability: float
    method: str
    evidence: np.ndarray
    box: tuple | None
    source: str | None = None

    @property
    def map(self):
        """The map at the image's own size (bilinear, half-pixel centres), float32 (H, W)."""
        return upsample_map(self.evidence, self.image.shape[:2])

    def overlay(self, with_box=True, peak=None):
        """RGB uint8 (H, W, 3): the map in jet (50 %) over the image, divided by ``peak`` (default its maximum)."""
        return draw(self.image, self.evidence, self.box if with_box else None, peak=peak)

    def save(self, path):
        """Write :meth:`overlay` as a PNG (a failed write leaves nothing, ``StorageError``); returns ``path``."""
        with storage.atomic_path(path) as temporary:
            plots.save_rgb(self.overlay(), temporary)
        return path


def image_box(evidence, input_size, image_size, threshold=DEFAULT_THRESHOLD):
    """The box of a map on the model's square input, in the pixels of ``image_size`` = (width, height), or None."""
    box = cam_to_box(upsample_map(evidence, (input_size, input_size)), threshold)
    if not box[2] > box[0]:
        return None
    width, height = image_size
    return tuple(float(value) for value in np.asarray(box, np.float64) * np.array([width, height, width, height]) / input_size)


def draw(image, evidence, box=None, box_frame=None, peak=None):
    """``evidence`` in jet over ``image`` (RGB uint8) with ``box`` in ``box_frame``'s pixels (width, height; default the image's)."""
    picture = plots.overlay_cam(image, evidence, vmax=peak)
    if box is None:
        return picture
    scale = image.shape[1] / (box_frame or image.shape[1::-1])[0]
    thickness = max(1, round(max(image.shape[:2]) / 150))
    return plots.draw_box(picture, [value * scale for value in box], plots.CAM_BOX_COLOUR, thickness)


def as_model(model):
    """A model as it is; an existing path loaded (one ``ValueError`` for a bad file); another string by :func:`load_model`."""
    if not isinstance(model, (str, os.PathLike)):
        return model
    if os.path.exists(model):
        return load_model_file(model, "Model", fix="pass a model saved by mindgap with model.save('name.keras')")
    return load_model(model)


def read_image(image):
    """A path, a PIL image or an array → (RGB uint8 (H, W, 3), the path or None); see the module docstring."""
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if not os.path.isfile(path):
            raise ValueError(f"Image {path!r} does not exist; check the path.")
        try:  # TensorFlow's decoder, as training reads the files
            return tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False).numpy(), path
        except (tf.errors.InvalidArgumentError, tf.errors.UnknownError):
            raise ValueError(f"{path!r} is not an image TensorFlow can decode (JPEG, PNG, GIF or BMP).") from None
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"), np.uint8), None
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] not in (3, 4) or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"An image array must be (H, W, 3) RGB or (H, W) grey numbers, got {array.dtype} {array.shape}; "
                         "pass a path, a PIL image or such an array.")
    if array.dtype != np.uint8:
        array = array.astype(np.float64) * (255.0 if array.max() <= 1.0 else 1.0)
        array = np.clip(np.round(array), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array[..., :3]), None


def class_names(model):
    """The class names saved in the model's ``ClassProbabilities`` layer (``class_i`` without)."""
    layer = next((layer for layer in model.layers if isinstance(layer, ClassProbabilities)), None)
    count = int(model.output.shape[-1])
    return list(getattr(layer, "class_names", None) or [f"class_{index}" for index in range(count)])


def _chosen_class(names, class_name, probabilities):
    if class_name is None:
        return probabilities.argmax(axis=-1)
    if class_name not in names:
        raise ValueError(f"Unknown class {class_name!r}; this model knows: {', '.join(names)}.")
    return np.full(len(probabilities), names.index(class_name))


def _check(model, method, top_k, threshold, takes="images"):
    family = registry.family_of(model)
    if family is not None and family.takes != takes:
        fits = "mindgap.explain" if family.takes == "images" else "mindgap.explain_clip"
        raise ValueError(f"{model.name!r} takes {family.takes}, not {takes}; explain it with {fits}.")
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k must be an integer >= 1, got {top_k!r}.")
    if not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a fraction of the map's maximum in [0, 1], got {threshold!r}.")
    return saliency.method_of(method, takes=takes)


def explain_images(model, images, method=saliency.DEFAULT_METHOD, top_k=DEFAULT_TOP_K, class_name=None,
                   threshold=DEFAULT_THRESHOLD, batch_size=16, progress=False, **options):
    """:func:`explain` of many images, ``batch_size`` at a time (a tqdm bar on stderr with ``progress``)."""
    model = as_model(model)
    spec = _check(model, method, top_k, threshold)
    names, size = class_names(model), int(model.input.shape[1])
    explanations = []
    starts = range(0, len(images), batch_size)
    if progress:
        from tqdm import tqdm  # only for a progress bar

        starts = tqdm(starts, desc=f"explain ({method})", unit="batch", file=sys.stderr)
    for start in starts:
        read = [read_image(image) for image in images[start:start + batch_size]]
        inputs = np.stack([model_input(rgb, size) for rgb, _ in read])
        probabilities = predict(model, inputs, batch_size)
        chosen = _chosen_class(names, class_name, probabilities)
        maps = saliency.compute(model, inputs, chosen[:, None], method=method, batch_size=batch_size, **options)[..., 0]
        for (rgb, source), scores, index, evidence in zip(read, probabilities, chosen, maps):
            evidence = evidence if spec.absolute else min_max(evidence)
            order = np.argsort(-scores, kind="stable")[:top_k]
            explanations.append(Explanation(rgb, [(names[k], float(scores[k])) for k in order], names[index],
                                            float(scores[index]), method, evidence,
                                            image_box(evidence, size, rgb.shape[1::-1], threshold), source))
    return explanations


def explain(model, image, method=saliency.DEFAULT_METHOD, top_k=DEFAULT_TOP_K, class_name=None,
            threshold=DEFAULT_THRESHOLD, **options):
    """The :class:`Explanation` of one image by ``method`` (an image method of :data:`mindgap.saliency.METHODS`) for
    ``class_name`` (default the predicted one), or with a Guided Zoom ``Refiner`` its :class:`RefinedExplanation`;
    ``threshold``: the box's, a fraction of the map's maximum; ``options`` go to the method (``layer``, ...)."""
    if isinstance(model, Refiner):  # Guided Zoom: its own grounding methods and classes
        return explain_refined(model, [image], top_k)[0]
    return explain_images(model, [image], method, top_k, class_name, threshold, **options)[0]


def image_files(target):
    """The image files of a folder (sorted), or ``[target]`` for a file; a ``ValueError`` for an empty folder."""
    target = os.fspath(target)
    if not os.path.isdir(target):
        if not os.path.exists(target):
            raise ValueError(f"{target!r} does not exist; pass an image file or a folder of images.")
        return [target]
    paths = sorted(os.path.join(target, name) for name in os.listdir(target) if name.lower().endswith(IMAGE_EXTENSIONS))
    if not paths:
        raise ValueError(f"Folder {target!r} holds no image ({', '.join(IMAGE_EXTENSIONS)}); pass an image or a folder of images.")
    return paths


def write_predictions(path, explanations):
    """``predictions.csv``: per image and method its file, top-k (``name:probability;...``), class explained and box."""
    with storage.atomic_path(path) as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "method", "top_k", "class", "probability", "x_min", "y_min", "x_max", "y_max"])
        for item in explanations:
            box = [f"{value:.1f}" for value in item.box] if item.box is not None else ["", "", "", ""]
            writer.writerow([item.source, item.method, ";".join(f"{name}:{value:.4f}" for name, value in item.top_k),
                             item.class_name, f"{item.probability:.4f}", *box])
    return path


def overlay_name(item):
    """``cat.jpg_owl_overlay.png`` (CAM), ``cat.jpg_owl_gradcam_overlay.png``: ``cat.jpg`` and ``cat.png`` never collide."""
    method = "" if item.method == saliency.DEFAULT_METHOD else f"_{item.method}"
    return f"{os.path.basename(item.source)}_{file_part(item.class_name)}{method}_overlay.png"


def file_part(text):
    """``text`` reduced to letters, digits and '-' (no '/', '..', '_' or '.'): safe in a file name."""
    return re.sub(r"[^A-Za-z0-9-]+", "-", text).strip("-") or "class"


def explain_folder(model, target, out_dir, methods=(saliency.DEFAULT_METHOD,), progress=True, predictions=True,
                   **arguments):
    """Every image of ``target`` (a folder, a file or a list of paths) by each of ``methods``: an :func:`overlay_name`
    PNG each and ``predictions.csv`` in ``out_dir``; returns (explanations, paths written).  ``arguments``: :func:`explain`'s."""
    model = as_model(model)
    paths = list(target) if isinstance(target, (list, tuple)) else image_files(target)
    explanations = [item for method in methods
                    for item in explain_images(model, paths, method, progress=progress and len(paths) > 1, **arguments)]
    written = [item.save(os.path.join(out_dir, overlay_name(item))) for item in explanations]
    if predictions:
        written.append(write_predictions(os.path.join(out_dir, PREDICTIONS_FILE), explanations))
    return explanations, written


@dataclasses.dataclass
class ClipExplanation:
    """A clip explained through time (thesis ch. 7): ``frames`` (T, H, W, 3 uint8), the ``class_name`` grounded and its
    ``probability`` at the last frame, the ``predicted`` class, ``maps`` (T, h, w), their sums and the ``segment`` [start, end)."""

    frames: np.ndarray
    class_name: str
    probability: float
    predicted: str
    method: str
    maps: np.ndarray
    frame_scores: np.ndarray
    segment: tuple


def explain_clip(model, frames, method="ceb_r", class_name=None, layer="backbone"):
    """Ground a CNN-LSTM's class in space and time on ``frames`` (T, H, W, 3 uint8 at the model's input size).

    The class is the last step's prediction or ``class_name``; the segment grows from the highest frame sum
    until a negative sum (§7.2), on the sums minus their mean for a method that is not signed."""
    model = as_model(model)
    spec = _check(model, method, 1, 0.0, takes="clips")
    names = class_names(model)
    clips = preprocess(np.asarray(frames)).numpy()[None]
    probabilities = np.asarray(model(clips, training=False))[0]  # (T, c)
    predicted = int(probabilities[-1].argmax())
    index = int(_chosen_class(names, class_name, probabilities[-1:])[0])
    options = {"layer": layer} if spec.takes_layer else {}
    maps = saliency.compute(model, clips, [[index]], method=method, **options)[0, ..., 0]
    sums = frame_sums(maps)
    segment = localize_unknown_length(sums if spec.signed else sums - sums.mean())
    return ClipExplanation(np.asarray(frames), names[index], float(probabilities[-1, index]), names[predicted], method,
                           maps, sums, tuple(int(value) for value in segment))


@dataclasses.dataclass
class RefinedExplanation:
    """Guided Zoom on one image (thesis ch. 6): the conventional CNN's ``top_k`` [(class, probability)], the
    ``refined`` ranking [(class, Algorithm 2's total)], and the evidence ``patches`` (k, M, L+1, side, side, 3)
    with the Evidence CNN's ``scores`` (k, M, L+1) for the conventional top ``classes`` (k,)."""

    top_k: list
    refined: list
    patches: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    source: str | None = None


def explain_refined(refiner, images, top_k=None):
    """Guided Zoom's answer for each of ``images`` (as :func:`explain` takes them, stretched to the refiner's
    ``source_size``, where the patches are cut); ``refiner``: a :class:`~mindgap.guided_zoom.Refiner` or its folder."""
    refiner = Refiner.load(refiner) if isinstance(refiner, (str, os.PathLike)) else refiner
    top_k = refiner.top_k if top_k is None else min(top_k, refiner.top_k)
    read = [read_image(image) for image in images]
    size = refiner.source_size or int(refiner.model.input.shape[1])
    result = refiner.refine(np.stack([model_input(rgb, size) for rgb, _ in read]), keep_patches=True)
    names, explained = refiner.class_names, []
    for index, (_, source) in enumerate(read):
        classes = result.top_classes[index]
        order = np.argsort(-result.totals[index], kind="stable")[:top_k]
        explained.append(RefinedExplanation([(names[c], float(result.probabilities[index, c])) for c in classes[:top_k]],
                                            [(names[classes[j]], float(result.totals[index, j])) for j in order],
                                            result.patches[index], result.scores[index], classes, source))
    return explained
