"""The evidence pool: Algorithm 1 (adversarial erasing) and the ensemble pool of eq. (6.1).

Bargal 2019, ch. 6.  For every training image that the conventional CNN classifies correctly, the patch around the
peak of the grounding method's map of the **ground-truth** class is added to the pool (``e_0``); then, for ``l = 1 …
L``, the previous peak is erased (a black square, the erasures accumulate) and, **only while the erased image is still
classified correctly**, the patch around the new peak is added (``e_l``).  The first erasure that flips the prediction
ends that image's rounds.  The new peak is searched outside the squares already erased (their pixels carry no
evidence; a coarse map upsampled to the image would often peak in its own black square again).  Patches are cut from
the original image (not the erased one) at the peaks found on the erased one; every patch inherits the image's label.

Images may be larger than the conventional CNN's input: they are resized (bilinear) for the
model, the maps are resized back to the image, and patches are cut at the image's own resolution,
so a patch holds more pixels of the evidence than the model saw (the "zoom").
"""

import dataclasses
import os

import numpy as np

from mindgap import saliency
from mindgap.data.folders import SPLITS_DIR
from mindgap.data.pipeline import deprocess
from mindgap.data.records import write_lines
from mindgap.engine.forward import predict, resized
from mindgap.guided_zoom import patches as gz_patches

GROUNDING_METHODS = ("ceb", "gradcam", "rise", "cam")  # eq. (6.1)'s three, then the CAM (ours: free with a GAP model)
ENSEMBLE_METHODS = GROUNDING_METHODS
DEFAULT_ROUNDS = 2  # L of the thesis's experiments
_CHUNK = 64  # images per saliency call (bounds the memory of the maps resized to the images)


def check_images(images):
    """``images`` as float32 (n, H, W, 3) in the model's [-1, 1] space, or a ``ValueError`` saying what to pass."""
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be a batch (n, H, W, 3) preprocessed to [-1, 1], got shape {images.shape}.")
    return images


def check_method(method):
    if method not in GROUNDING_METHODS:
        raise ValueError(f"Unknown grounding method {method!r}; use one of {', '.join(GROUNDING_METHODS)}.")
    return method


def check_rounds(rounds):
    if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) or rounds < 0:
        raise ValueError(f"rounds (L) must be an integer >= 0, got {rounds!r}.")
    return int(rounds)


def class_peaks(model, images, classes, method, saliency_options=None, excluded=None):
    """Peaks (n, k, 2) (row, column in the images' pixels) of ``method``'s maps of ``classes`` (n, k); ``excluded``
    (n, h, w) bool: pixels where no peak may be (the squares already erased, see the module docstring), unless that
    is every pixel of the image."""
    classes = np.asarray(classes, np.int64).reshape(len(images), -1)
    peaks = np.zeros((len(images), classes.shape[1], 2), np.int64)
    for start in range(0, len(images), _CHUNK):
        chunk = images[start:start + _CHUNK]
        maps = saliency.compute(model, resized(chunk, model.input.shape[1:3]), classes[start:start + _CHUNK], method=method,
                                **(saliency_options or {}))
        maps = saliency.upsample(maps, chunk.shape[1:3])
        if excluded is not None:
            masked = np.asarray(excluded[start:start + _CHUNK], bool)
            masked = masked & ~masked.all(axis=(1, 2), keepdims=True)
            maps = np.where(masked[..., None], -np.inf, maps)
        flat = maps.reshape(len(chunk), -1, maps.shape[-1]).argmax(axis=1)  # (chunk, k), first maximum
        peaks[start:start + _CHUNK] = np.stack(np.unravel_index(flat, maps.shape[1:3]), axis=-1)
    return peaks


@dataclasses.dataclass
class EvidencePool:
    """Evidence patches with their labels: what the Evidence CNN is trained on.

    ``patches`` (m, side, side, 3) in [-1, 1]; per patch its ``labels`` (the image's ground truth),
    ``sources`` (index of the image in the batch given to :func:`evidence_pool`), ``rounds`` (l of
    ``e_l``), ``methods`` (the grounding method) and ``peaks`` (row, column in the image).
    """

    patches: np.ndarray
    labels: np.ndarray
    sources: np.ndarray
    rounds: np.ndarray
    methods: np.ndarray
    peaks: np.ndarray

    def __len__(self):
        return len(self.labels)

    @classmethod
    def empty(cls, side):
        return cls(np.zeros((0, side, side, 3), np.float32), *(np.zeros(0, np.int64) for _ in range(3)),
                   np.zeros(0, "<U8"), np.zeros((0, 2), np.int64))

    def union(self, *others):
        """This pool and ``others`` as one (eq. 6.1's union; patches must have one size)."""
        pools = (self, *others)
        sides = {pool.patches.shape[1:] for pool in pools if len(pool)}
        if len(sides) > 1:
            raise ValueError(f"Pools of different patch sizes {sorted(sides)} cannot be joined; cut them from images of one size.")
        fields = [field.name for field in dataclasses.fields(self)]
        return EvidencePool(**{name: np.concatenate([getattr(pool, name) for pool in pools]) for name in fields})

    def select(self, keep):
        """The patches where ``keep`` (a boolean mask or indices) holds."""
        return EvidencePool(**{field.name: getattr(self, field.name)[keep] for field in dataclasses.fields(self)})

    def counts(self):
        """{(method, round): patches}."""
        keys, numbers = np.unique(np.stack([self.methods.astype(str), self.rounds.astype(str)], axis=1), axis=0,
                                  return_counts=True) if len(self) else (np.zeros((0, 2)), [])
        return {(str(method), int(level)): int(count) for (method, level), count in zip(keys, numbers)}


def evidence_pool(model, images, labels, method="ceb", rounds=DEFAULT_ROUNDS, patch_fraction=gz_patches.PATCH_FRACTION,
                  erase_fraction=gz_patches.ERASE_FRACTION, fill=gz_patches.BLACK, saliency_options=None, print_fn=None):
    """Algorithm 1: the evidence pool of ``images`` (n, H, W, 3) with ground-truth ``labels`` (n,).

    Args:
        model: the conventional CNN (a mindgap model; any Keras classifier for ``rise``).
        images: preprocessed to [-1, 1], at the model's input size or larger (patches are cut at this size).
        labels: integer ground-truth classes.
        method: the grounding method (GM), one of :data:`GROUNDING_METHODS`.
        rounds: L, the adversarial erasing rounds (0: only ``e_0``; the thesis: 2).
        patch_fraction, erase_fraction: patch and erased square, fractions of the shorter image side
            (thesis: 150/448 and 85/448; see :mod:`mindgap.guided_zoom.patches`).
        fill: the erased pixels' value (black = -1).
        saliency_options: passed to ``mindgap.saliency.compute`` (e.g. ``{"num_masks": 250}`` for RISE).
        print_fn: called with one progress line per round (None: silent).

    Returns:
        :class:`EvidencePool` (patches ordered by round, then by image).
    """
    images = check_images(images)
    labels = np.asarray(labels, np.int64)
    if labels.shape != (len(images),):
        raise ValueError(f"labels must be one integer per image ({len(images)}), got shape {labels.shape}.")
    check_method(method)
    rounds = check_rounds(rounds)
    gz_patches.check_fraction("patch_fraction", patch_fraction)
    gz_patches.check_fraction("erase_fraction", erase_fraction)
    side = gz_patches.side_of(patch_fraction, *images.shape[1:3])
    pool = [EvidencePool.empty(side)]
    erased = images.copy()
    excluded = np.zeros(images.shape[:3], bool)  # the erased squares: no later peak there
    active = np.flatnonzero(predict(model, images).argmax(axis=-1) == labels)  # line 3: correctly classified
    for level in range(rounds + 1):
        if level > 0 and len(active):  # line 8: still correctly classified after the erasures
            active = active[predict(model, erased[active]).argmax(axis=-1) == labels[active]]
        if print_fn:
            print_fn(f"evidence pool ({method}): round {level} of {rounds}, {len(active)} of {len(images)} images")
        if not len(active):
            break
        centres = class_peaks(model, erased[active], labels[active, None], method, saliency_options,
                              excluded=excluded[active])[:, 0]
        found = np.stack([gz_patches.extract_patch(images[index], centre, patch_fraction)
                          for index, centre in zip(active, centres)])
        pool.append(EvidencePool(found, labels[active], active.copy(), np.full(len(active), level, np.int64),
                                 np.full(len(active), method, "<U8"), centres))
        if level < rounds:  # line 7: erase e_l before looking for e_{l+1}
            for index, centre in zip(active, centres):
                erased[index] = gz_patches.erase(erased[index], centre, erase_fraction, fill)
                top, left, bottom, right = gz_patches.erase_box(centre, images.shape[1:3], erase_fraction)
                excluded[index, top:bottom, left:right] = True
    return pool[0].union(*pool[1:])


def ensemble_pool(model, images, labels, methods=ENSEMBLE_METHODS, saliency_options=None, print_fn=None, **pool_options):
    """Eq. (6.1): the union of the pools of ``methods``, each by Algorithm 1 with L = 0.

    ``saliency_options``: {method: options} for ``mindgap.saliency.compute``; other keyword
    arguments go to :func:`evidence_pool` (patch fraction, fill).
    """
    if not methods:
        raise ValueError("ensemble_pool needs at least one grounding method.")
    pools = [evidence_pool(model, images, labels, check_method(method), rounds=0,
                           saliency_options=(saliency_options or {}).get(method), print_fn=print_fn, **pool_options)
             for method in methods]
    return pools[0].union(*pools[1:])


def class_folder_name(index, name):
    """``007_seven``: sorted folder names keep the class order (the folders layout sorts class folders)."""
    return f"{index:03d}_{name}"


def write_pool(folder, pools, class_names):
    """Write ``{split: EvidencePool}`` (``train``, ``val``, ``test``) as a class-folder dataset
    (``mindgap.data.folders``: ``<folder>/<NNN_class>/<split>_<source>_<method>_l<round>.png`` and
    ``splits/<split>.txt``) that ``mindgap.train`` reads; returns ``folder``."""
    import cv2  # OpenCV: only writing a pool needs it

    if "train" not in pools:
        raise ValueError(f"write_pool needs a 'train' pool, got {sorted(pools)}.")
    os.makedirs(os.path.join(folder, SPLITS_DIR), exist_ok=True)
    for index, name in enumerate(class_names):
        os.makedirs(os.path.join(folder, class_folder_name(index, name)), exist_ok=True)
    for split, pool in pools.items():
        lines = []
        for patch, label, source, method, level in zip(deprocess(pool.patches), pool.labels, pool.sources, pool.methods,
                                                       pool.rounds):
            relative = f"{class_folder_name(int(label), class_names[int(label)])}/{split}_{int(source):05d}_{method}_l{int(level)}.png"
            if not cv2.imwrite(os.path.join(folder, relative), patch[..., ::-1]):
                raise OSError(f"could not write {os.path.join(folder, relative)}; check the disk and the folder's permissions.")
            lines.append(relative)
        write_lines(os.path.join(folder, SPLITS_DIR, f"{split}.txt"), lines)
    return folder
