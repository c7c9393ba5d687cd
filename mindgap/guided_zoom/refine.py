"""Decision refinement (Algorithm 2), the choice of its weights, and the saved refiner.

Bargal 2019, ch. 6.  For a test image ``s^j`` the conventional CNN gives ``v^{j,0}`` and its top-k
classes ``c_1 … c_k``.  For each of them, ``t``, the evidence patch ``e_0^{j,t}`` around the peak of
the grounding method's map of ``t`` is scored by the Evidence CNN, ``v_0^{j,t}[t]``; then the peak
is erased and the next patch scored, ``l = 1 … L`` (at test time every round is taken: there is no
label to stop on).  Algorithm 2 lines 3, 7, 12–13::

    tot^j = w · v^{j,0};   tot^j[t] += Σ_l w_l · v_l^{j,t}[t]  (t in the top-k);   c_ref = argmax_{c_1..c_k} tot^j

Only the top-k classes can be chosen.  With several grounding methods (Ensemble Guided Zoom,
eq. 6.1, L = 0) each method gives its own patch of ``t`` and ``v_0^{j,t}[t]`` is their **mean**, so
the weights keep their meaning (ours: the thesis does not say how the ensemble's patches combine).

**Weights** (the thesis fixes w = 0.4, w_0 = 0.3, w_1 = 0.2, w_2 = 0.1 without saying how they were
found): :func:`choose_weights` searches the simplex ``w + Σ w_l = 1`` on a grid of step 0.1 and keeps
the weights of the best top-1 accuracy **on the validation split**; ties go to the weights closest
(L1) to the thesis's, renormalised to the same L.
"""

import dataclasses
import itertools
import json
import os

import numpy as np

from mindgap import storage
from mindgap.guided_zoom import patches as gz_patches
from mindgap.guided_zoom import pool as gz_pool
from mindgap.models import load_model_file

THESIS_WEIGHTS = (0.4, 0.3, 0.2, 0.1)  # w, w_0, w_1, w_2 (§6.2)
DEFAULT_TOP_K = 5
WEIGHT_STEP = 0.1
MANIFEST = "manifest.json"
CONVENTIONAL_FILE = "conventional.keras"
EVIDENCE_FILE = "evidence.keras"
FORMAT = "mindgap-guided-zoom-refiner"
_CHUNK = 32  # test images per pass (each makes k erased copies)


def check_weights(weights):
    """(w, w_0, …, w_L) as a float array: finite, >= 0, at least two, not all zero; else a ``ValueError``."""
    array = np.asarray(weights, np.float64)
    if array.ndim != 1 or len(array) < 2 or not np.all(np.isfinite(array)) or np.any(array < 0) or not array.any():
        raise ValueError(f"weights must be (w, w_0, ..., w_L): at least two finite values >= 0, not all 0, got {weights!r}.")
    return array


def thesis_weights(rounds):
    """The thesis's (w, w_0, …, w_L) for L = ``rounds`` <= 2, renormalised to sum to 1."""
    if not 0 <= rounds <= 2:
        raise ValueError(f"The thesis gives weights up to L = 2, not L = {rounds}.")
    weights = np.asarray(THESIS_WEIGHTS[:rounds + 2])
    return weights / weights.sum()


def refine_decision(probabilities, top_classes, scores, weights):
    """Algorithm 2, lines 3, 7, 12 and 13: the refined class of each image.

    Args:
        probabilities: (n, c) the conventional CNN's ``v^{j,0}``.
        top_classes: (n, k) its top-k classes.
        scores: (n, k, L+1), or (n, k, M, L+1) for M grounding methods (averaged over M): the Evidence
            CNN's probability of class ``top_classes[j, i]`` on that class's patch of round l.
        weights: (w, w_0, …, w_L'); L' may be below the rounds in ``scores`` (the later rounds are unused).

    Returns:
        (refined classes (n,), totals (n, k): ``tot^j`` at the top-k classes).
    """
    probabilities = np.asarray(probabilities, np.float64)
    top_classes = np.asarray(top_classes, np.int64)
    scores = np.asarray(scores, np.float64)
    if scores.ndim == 4:
        scores = scores.mean(axis=2)
    weights = check_weights(weights)
    rounds = len(weights) - 1
    if scores.shape[:2] != top_classes.shape or scores.ndim != 3 or scores.shape[2] < rounds:
        raise ValueError(f"scores of shape {scores.shape} do not fit top classes {top_classes.shape} and {rounds + 1} "
                         "evidence weights; pass (n, k, L+1) scores with at least as many rounds as weights w_0..w_L.")
    totals = weights[0] * np.take_along_axis(probabilities, top_classes, axis=1)
    totals = totals + (scores[:, :, :rounds] * weights[1:]).sum(axis=2)
    refined = np.take_along_axis(top_classes, totals.argmax(axis=1)[:, None], axis=1)[:, 0]
    return refined, totals


def weight_grid(rounds, step=WEIGHT_STEP):
    """Every (w, w_0, …, w_L) on the simplex Σ = 1 with coordinates in multiples of ``step``."""
    units = int(round(1 / step))
    grid = [combination for combination in itertools.product(range(units + 1), repeat=rounds + 1)
            if sum(combination) <= units]
    return np.asarray([(units - sum(combination), *combination) for combination in grid], np.float64) / units


def choose_weights(probabilities, top_classes, scores, labels, rounds, step=WEIGHT_STEP):
    """The weights (w, w_0, …, w_L) of the best top-1 accuracy on a **validation** split (see the module docstring).

    Returns (weights, that accuracy).
    """
    labels = np.asarray(labels, np.int64)
    grid = weight_grid(rounds, step)
    accuracies = np.asarray([(refine_decision(probabilities, top_classes, scores, weights)[0] == labels).mean()
                             for weights in grid])
    best = np.flatnonzero(accuracies >= accuracies.max() - 1e-12)
    reference = thesis_weights(min(rounds, 2)) if rounds <= 2 else np.full(rounds + 2, 1 / (rounds + 2))
    chosen = best[np.argmin(np.abs(grid[best] - reference).sum(axis=1))]
    return tuple(float(value) for value in grid[chosen]), float(accuracies[chosen])


@dataclasses.dataclass
class Refinement:
    """What :meth:`Refiner.refine` found for a batch.

    ``probabilities`` (n, c) of the conventional CNN, ``top_classes`` (n, k), ``scores`` (n, k, M, L+1)
    of the Evidence CNN, ``refined`` (n,) classes and ``totals`` (n, k) of Algorithm 2, ``conventional``
    (n,) top-1 classes; ``patches`` (n, k, M, L+1, side, side, 3) and ``peaks`` (n, k, M, L+1, 2) when asked for.
    """

    probabilities: np.ndarray
    top_classes: np.ndarray
    scores: np.ndarray
    refined: np.ndarray
    totals: np.ndarray
    patches: np.ndarray | None = None
    peaks: np.ndarray | None = None

    @property
    def conventional(self):
        return self.top_classes[:, 0]


def evidence_scores(model, evidence_model, images, top_classes, methods=("ceb",), rounds=gz_pool.DEFAULT_ROUNDS,
                    patch_fraction=gz_patches.PATCH_FRACTION, erase_fraction=gz_patches.ERASE_FRACTION,
                    fill=gz_patches.BLACK, saliency_options=None, keep_patches=False, print_fn=None):
    """Algorithm 2, lines 4–12: the Evidence CNN's score of each top-k class on its own patches.

    Returns (scores (n, k, M, L+1), patches or None, peaks (n, k, M, L+1, 2)); M = ``len(methods)``.
    """
    images = gz_pool.check_images(images)
    top_classes = np.asarray(top_classes, np.int64)
    rounds = gz_pool.check_rounds(rounds)
    for method in methods:
        gz_pool.check_method(method)
    count, k = top_classes.shape
    side = gz_patches.side_of(patch_fraction, *images.shape[1:3])
    scores = np.zeros((count, k, len(methods), rounds + 1), np.float32)
    peaks = np.zeros((count, k, len(methods), rounds + 1, 2), np.int64)
    kept = np.zeros((count, k, len(methods), rounds + 1, side, side, 3), np.float32) if keep_patches else None
    for start in range(0, count, _CHUNK):
        chunk = images[start:start + _CHUNK]
        classes = top_classes[start:start + _CHUNK].reshape(-1, 1)  # one (image, class) pair per row
        owner = np.repeat(np.arange(len(chunk)), k)
        for column, method in enumerate(methods):
            options = (saliency_options or {}).get(method)
            # round 0: the image itself, one call with its k classes (RISE scores every class from the same passes)
            centres = gz_pool.class_peaks(model, chunk, top_classes[start:start + _CHUNK], method, options).reshape(-1, 2)
            erased = chunk[owner] if rounds else None
            excluded = np.zeros((len(owner),) + chunk.shape[1:3], bool) if rounds else None  # erased: no peak there
            for level in range(rounds + 1):
                if level:
                    centres = gz_pool.class_peaks(model, erased, classes, method, options, excluded=excluded)[:, 0]
                cut = np.stack([gz_patches.extract_patch(chunk[index], centre, patch_fraction)
                                for index, centre in zip(owner, centres)])
                probabilities = gz_pool.predict(evidence_model, cut)
                rows = slice(start, start + len(chunk))
                scores[rows, :, column, level] = probabilities[np.arange(len(cut)), classes[:, 0]].reshape(len(chunk), k)
                peaks[rows, :, column, level] = centres.reshape(len(chunk), k, 2)
                if keep_patches:
                    kept[rows, :, column, level] = cut.reshape(len(chunk), k, side, side, 3)
                if level < rounds:
                    erased = np.stack([gz_patches.erase(image, centre, erase_fraction, fill)
                                       for image, centre in zip(erased, centres)])
                    for row, centre in enumerate(centres):
                        top, left, bottom, right = gz_patches.erase_box(centre, chunk.shape[1:3], erase_fraction)
                        excluded[row, top:bottom, left:right] = True
        if print_fn:
            print_fn(f"guided zoom: {min(start + _CHUNK, count)} of {count} images")
    return scores, kept, peaks


@dataclasses.dataclass
class Refiner:
    """Guided Zoom at test time: a conventional CNN, an Evidence CNN, the weights and the settings.

    ``methods``: one grounding method (Guided Zoom) or several (Ensemble Guided Zoom, with
    ``rounds=0``); ``weights`` (w, w_0, …, w_L) with L = ``rounds``; ``source_size``: the side the
    images had when the pool was made (the CLI loads images at it; None: the conventional CNN's input).

    Example::

        refiner = Refiner(model, evidence_model, weights=(0.4, 0.3, 0.2, 0.1))
        result = refiner.refine(images)          # images (n, H, W, 3) in [-1, 1]
        refiner.save("refiner"); again = Refiner.load("refiner")
    """

    model: object
    evidence_model: object
    weights: tuple
    methods: tuple = ("ceb",)
    rounds: int = gz_pool.DEFAULT_ROUNDS
    top_k: int = DEFAULT_TOP_K
    patch_fraction: float = gz_patches.PATCH_FRACTION
    erase_fraction: float = gz_patches.ERASE_FRACTION
    fill: float = gz_patches.BLACK
    saliency_options: dict = dataclasses.field(default_factory=dict)
    source_size: int | None = None
    class_names: tuple | None = None

    def __post_init__(self):
        self.methods = tuple(gz_pool.check_method(method) for method in ([self.methods] if isinstance(self.methods, str)
                                                                           else self.methods))
        if not self.methods:
            raise ValueError("A refiner needs at least one grounding method in methods.")
        self.rounds = gz_pool.check_rounds(self.rounds)
        self.weights = tuple(float(value) for value in check_weights(self.weights))
        if len(self.weights) != self.rounds + 2:
            raise ValueError(f"{len(self.weights)} weights were given for L = {self.rounds}; pass (w, w_0, ..., w_L), "
                             f"{self.rounds + 2} values.")
        num_classes = int(self.model.output.shape[-1])
        if int(self.evidence_model.output.shape[-1]) != num_classes:
            raise ValueError(f"The Evidence CNN has {self.evidence_model.output.shape[-1]} classes but the conventional CNN "
                             f"{num_classes}; train it on the pool of the same classes.")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, (int, np.integer)) or not 1 <= self.top_k <= num_classes:
            raise ValueError(f"top_k must be an integer in [1, {num_classes}], got {self.top_k!r}.")
        gz_patches.check_fraction("patch_fraction", self.patch_fraction)
        gz_patches.check_fraction("erase_fraction", self.erase_fraction)
        # The class names are the conventional CNN's own (the Evidence CNN's are its pool's folder names): given ones
        # must agree with them, or name the classes of a model that stores none.
        stored = _stored_class_names(self.model)
        if self.class_names is None:
            self.class_names = stored or tuple(f"class_{index}" for index in range(num_classes))
        elif stored is not None and tuple(self.class_names) != stored:
            raise ValueError(f"class_names {_shown(self.class_names)} disagree with the models' own {_shown(stored)}; "
                             "leave class_names out (the names come from the models).")
        elif len(self.class_names) != num_classes:
            raise ValueError(f"{len(self.class_names)} class names were given for {num_classes} classes; pass one per class.")
        self.class_names = tuple(self.class_names)

    def refine(self, images, keep_patches=False, print_fn=None):
        """Algorithm 2 on ``images`` (n, H, W, 3) in [-1, 1]: a :class:`Refinement`."""
        images = gz_pool.check_images(images)
        probabilities = gz_pool.predict(self.model, images)
        top_classes = np.argsort(-probabilities, axis=1, kind="stable")[:, :self.top_k]
        scores, patches, peaks = evidence_scores(
            self.model, self.evidence_model, images, top_classes, self.methods, self.rounds, self.patch_fraction,
            self.erase_fraction, self.fill, self.saliency_options, keep_patches=keep_patches, print_fn=print_fn)
        refined, totals = refine_decision(probabilities, top_classes, scores, self.weights)
        return Refinement(probabilities, top_classes, scores, refined, totals, patches, peaks if keep_patches else None)

    def settings(self):
        """The JSON-ready settings of the manifest (everything but the two models)."""
        return dict(weights=list(self.weights), methods=list(self.methods), rounds=self.rounds, top_k=int(self.top_k),
                    patch_fraction=self.patch_fraction, erase_fraction=self.erase_fraction, fill=self.fill,
                    saliency_options=self.saliency_options, source_size=self.source_size, class_names=list(self.class_names))

    def save(self, folder, **extra):
        """Write the refiner to ``folder``: ``conventional.keras``, ``evidence.keras`` and ``manifest.json``
        (the settings, and ``extra`` JSON-ready notes such as the validation accuracy); returns ``folder``.

        The folder is written whole (``mindgap.storage.atomic_folder``): a kill or a full disk leaves the
        earlier refiner there, or nothing, never a mix.  A folder holding other files is refused."""
        folder = os.fspath(folder)
        others = sorted(set(os.listdir(folder)) - {MANIFEST, CONVENTIONAL_FILE, EVIDENCE_FILE}) if os.path.isdir(folder) else []
        if others:
            raise ValueError(f"{folder!r} holds other files than a refiner's ({', '.join(others[:3])}); pass a new folder, "
                             "or a refiner folder to replace.")
        with storage.atomic_folder(folder) as temporary:
            for name, model in ((CONVENTIONAL_FILE, self.model), (EVIDENCE_FILE, self.evidence_model)):
                model.save(os.path.join(temporary, name))
            with open(os.path.join(temporary, MANIFEST), "w") as handle:
                json.dump({"format": FORMAT, "version": 1, **self.settings(), "files": [CONVENTIONAL_FILE, EVIDENCE_FILE],
                           **extra}, handle, indent=2)
        return folder

    @classmethod
    def load(cls, folder):
        """A refiner saved by :meth:`save`; a one-line ``ValueError`` naming the file and the fix if it is not one.

        The manifest is checked against :data:`MANIFEST_SCHEMA` before any model is loaded; each model file that
        cannot be loaded is named; the class names are the models' own, and a manifest that disagrees is refused."""
        folder = os.fspath(folder)
        manifest_path = os.path.join(folder, MANIFEST)
        if not os.path.isfile(manifest_path):
            raise ValueError(f"{folder!r} holds no {MANIFEST}; pass a folder written by Refiner.save (e.g. a run's refiner/).")
        manifest = read_manifest(manifest_path)
        missing = [name for name in (CONVENTIONAL_FILE, EVIDENCE_FILE) if not os.path.isfile(os.path.join(folder, name))]
        if missing:
            raise ValueError(f"{folder!r} lacks {', '.join(missing)}; save the refiner again.")
        def load(name):
            return load_model_file(os.path.join(folder, name), "Refiner model", fix="save the refiner again (Refiner.save)")

        model = load(CONVENTIONAL_FILE)
        stored, listed = _stored_class_names(model), manifest.get("class_names")
        if stored is not None and listed is not None and tuple(listed) != stored:
            raise ValueError(f"{manifest_path} lists the classes {_shown(listed)} but {CONVENTIONAL_FILE} holds "
                             f"{_shown(stored)}; the manifest disagrees with its models: save the refiner again (the "
                             "class names come from the models).")
        evidence_model = load(EVIDENCE_FILE)
        fields = {field.name for field in dataclasses.fields(cls)} - {"model", "evidence_model", "class_names"}
        try:  # the models' own class names; the manifest's only for models that store none
            return cls(model, evidence_model, class_names=None if stored is not None else listed,
                       **{name: manifest[name] for name in fields if name in manifest})
        except ValueError as error:
            raise ValueError(f"{manifest_path}: {str(error).splitlines()[0]} Save the refiner again.") from None


def _shown(names, count=4):
    names = list(names)
    return "[" + ", ".join(map(str, names[:count])) + (f", … ({len(names)} in all)" if len(names) > count else "") + "]"


def _stored_class_names(model):
    """The class names a model stores in its ``probabilities`` layer, or None."""
    try:
        names = model.get_layer("probabilities").class_names
    except (ValueError, AttributeError):
        return None
    return tuple(names) if names else None


def _number(value):
    return not isinstance(value, bool) and isinstance(value, (int, float)) and np.isfinite(value)


def _integer(value, least):
    return not isinstance(value, bool) and isinstance(value, int) and value >= least


# key: (required, check, what the value must be).  Checked before anything is loaded (Refiner.load).
MANIFEST_SCHEMA = {
    "format": (True, lambda value: value == FORMAT, f"{FORMAT!r}"),
    "version": (False, lambda value: value == 1, "1"),
    "weights": (True, lambda value: isinstance(value, list) and len(value) >= 2 and all(_number(v) and v >= 0 for v in value)
                and any(value), "a list (w, w_0, ..., w_L) of at least two numbers >= 0, not all 0"),
    "methods": (True, lambda value: isinstance(value, list) and value and all(v in gz_pool.GROUNDING_METHODS for v in value),
                f"a non-empty list of grounding methods from {', '.join(gz_pool.GROUNDING_METHODS)}"),
    "rounds": (False, lambda value: _integer(value, 0), "an integer >= 0 (L)"),
    "top_k": (False, lambda value: _integer(value, 1), "an integer >= 1"),
    "patch_fraction": (False, lambda value: _number(value) and 0 < value <= 1, "a number in (0, 1]"),
    "erase_fraction": (False, lambda value: _number(value) and 0 < value <= 1, "a number in (0, 1]"),
    "fill": (False, _number, "a number (the erased pixels' value in [-1, 1])"),
    "saliency_options": (False, lambda value: isinstance(value, dict) and all(isinstance(v, dict) for v in value.values()),
                         "an object {method: {option: value}}"),
    "source_size": (False, lambda value: value is None or _integer(value, 1), "null or an integer >= 1 (pixels)"),
    "class_names": (False, lambda value: isinstance(value, list) and all(isinstance(v, str) for v in value),
                    "a list of class names (strings)"),
    "files": (False, lambda value: isinstance(value, list) and all(isinstance(v, str) for v in value), "a list of file names"),
}


def read_manifest(path):
    """The refiner manifest at ``path`` checked against :data:`MANIFEST_SCHEMA`; else one ``ValueError`` naming the
    file and every bad or missing key."""
    try:
        with open(path) as handle:
            manifest = json.load(handle)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is not readable JSON ({type(error).__name__}: {str(error).splitlines()[0]}); save the "
                         "refiner again.") from None
    if not isinstance(manifest, dict):
        raise ValueError(f"{path} holds a JSON {type(manifest).__name__}, not an object; save the refiner again.")
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path} is not a Guided Zoom refiner manifest (format {manifest.get('format')!r}); "
                         "pass a folder written by Refiner.save.")
    problems = []
    for key, (required, check, what) in MANIFEST_SCHEMA.items():
        if key not in manifest:
            if required:
                problems.append(f"'{key}' is missing (it must be {what})")
        elif not check(manifest[key]):
            problems.append(f"'{key}' must be {what}, got {manifest[key]!r}")
    if problems:
        raise ValueError(f"{path}: {'; '.join(problems)}; fix these keys or save the refiner again.")
    return manifest
