"""The registries: model families (each registers its name pattern, builder and what its models take) and
saliency methods (a table of :class:`Method` specs).  Nothing here imports TensorFlow or a family, so the CLI's
help lists the names at once.

    @register_family("gap", r"(?P<backbone>Tiny|...)-GAP(?P<m>\\d+)", takes="images", listed=(...), ...)
    def build(match, num_classes, **arguments): ...

As timm's ``register_model`` / ``list_models("*pattern*")``: the registry imports no family; a family
(:mod:`mindgap.models`' GAP heads, :mod:`mindgap.recurrent`'s frame CNN and CNN-LSTM, :mod:`mindgap.dropout`'s CNN-2
and Tiny-FC) adds itself when its module is imported, and ``import mindgap`` imports them all.  Names match
case-insensitively (``tiny-gap5``); an unknown name gets the closest registered ones.
"""

import dataclasses
import difflib
import fnmatch
import importlib
import re

TAKES = ("images", "clips")  # (batch, H, W, 3) or (batch, T, H, W, 3)


@dataclasses.dataclass(frozen=True)
class Family:
    """A family of models: ``pattern`` names them, ``build(match, num_classes, **arguments)`` makes one,
    ``recognises(model)`` tells a built or loaded one; ``kind`` words it in messages."""

    name: str
    pattern: re.Pattern
    build: object
    takes: str
    kind: str
    listed: tuple
    description: str
    recognises: object
    rank: int


_FAMILIES = {}


def register_family(name, pattern, *, takes, kind, listed, description, recognises, rank):
    """Decorator: register ``build`` as the builder of the names ``pattern`` matches (case-insensitive)."""
    if takes not in TAKES:
        raise ValueError(f"Family {name!r} takes {takes!r}; use one of {', '.join(TAKES)}.")

    def decorator(build):
        _FAMILIES[name] = Family(name, re.compile(pattern, re.IGNORECASE), build, takes, kind, tuple(listed), description,
                                 recognises, rank)
        return build

    return decorator


def families():
    """The registered families, in list order."""
    return sorted(_FAMILIES.values(), key=lambda family: family.rank)


def list_models(pattern="*"):
    """Names of every family whose name matches the shell ``pattern`` (case-insensitive), e.g. ``"*LSTM*"``."""
    names = [name for family in families() for name in family.listed]
    return [name for name in names if fnmatch.fnmatchcase(name.lower(), str(pattern).lower())]


def resolve(name):
    """``(family, match)`` of a model name, or one ``ValueError`` naming the closest registered names."""
    for family in families():
        match = family.pattern.fullmatch(str(name))
        if match is not None:
            return family, match
    known = {listed.lower(): listed for listed in list_models()}
    close = [known[lower] for lower in difflib.get_close_matches(str(name).lower(), list(known), n=3, cutoff=0.6)]
    hint = f"did you mean {' or '.join([', '.join(close[:-1]), close[-1]] if len(close) > 1 else close)}? " if close else ""
    raise ValueError(f"Unknown model name {name!r}; {hint}`mindgap models` lists all {len(known)} (any m >= 1 in GAPm).")


def checked(model, recognises, what):
    """``model`` when ``recognises(model)``, else a ``ValueError`` naming it and saying ``what`` it should be."""
    if not recognises(model):
        raise ValueError(f"Model {getattr(model, 'name', model)!r} is not {what}.")
    return model


def family_of(model):
    """The family of a built or loaded model, or None when it is not a mindgap model."""
    return next((family for family in families() if family.recognises(model)), None)


def check_num_classes(num_classes):
    """``num_classes`` when it is an integer >= 2, else a ``ValueError`` naming it."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}.")
    return num_classes


def build_model(name, num_classes, **arguments):
    """Build a model of any registered family by name (see :func:`mindgap.models.build_model` for the arguments)."""
    family, match = resolve(name)
    return family.build(match, check_num_classes(num_classes), **arguments)


@dataclasses.dataclass(frozen=True)
class Method:
    """What a saliency method is, for every caller (the CLI, the viewer, ``mindgap.explain``, the experiments).

    ``function``: ``"module:name"`` of ``function(model, images, classes, **options)``, imported on the first call; ``takes``: ``"images"`` (batch, H, W, 3), ``"clips"``
    (batch, T, H, W, 3) or ``"words"`` (a captioner's words, queried with ``words=`` and ``steps=``); ``needs``: ``"cam head"`` (a GAPm or GAP-Zhou model), ``"graph"`` (any model with
    mindgap's ``ClassProbabilities``: a white box) or ``"outputs"`` (the probabilities alone: a black box) or ``"captioner"``;
    ``signed``: maps may be negative; ``takes_layer``: a ``layer`` option; ``defaults``: its options' defaults;
    ``serving``: the options interactive callers (the viewer, ``mindgap.explain``) bound its cost with;
    ``shown``: offered by the viewer and ``mindgap explain`` and compared by ``experiments.grounding``;
    ``absolute``: its values mean the same across images and classes (the CAM's logit units), so callers keep
    them (the viewer's shared scale); the others are min-max normalised before a box is drawn; ``through_time``:
    its version for a CNN-LSTM (``eb`` → ``eb_r``).
    """

    name: str
    label: str
    function: str
    takes: str = "images"
    needs: str = "graph"
    signed: bool = False
    takes_layer: bool = True
    defaults: dict = dataclasses.field(default_factory=dict)
    serving: dict = dataclasses.field(default_factory=dict)
    shown: bool = True
    absolute: bool = False
    through_time: str | None = None

    def __call__(self, model, images, classes, **options):
        module, name = self.function.split(":")
        return getattr(importlib.import_module(module), name)(model, images, classes, **options)


DEFAULT_METHOD = "cam"
_SALIENCY = "mindgap.saliency."
_LAYER = {"layer": "backbone"}
_THROUGH_TIME = {**_LAYER, "step": None, "rule": "authors"}
_WORD = {"layer": "tiny_block2", "rule": "authors"}  # the Tiny captioner's 16 × 16 block: mindgap.saliency.caption
METHODS = {method.name: method for method in (
    Method("cam", "CAM", _SALIENCY + "cam:class_activation_maps", needs="cam head", signed=True, takes_layer=False,
           absolute=True),
    Method("gradcam", "Grad-CAM", _SALIENCY + "gradcam:grad_cam", needs="cam head", defaults=_LAYER),
    Method("rise", "RISE", _SALIENCY + "rise:rise", needs="outputs", takes_layer=False,
           defaults=dict(num_masks=1000, grid_size=7, keep_probability=0.5),
           serving=dict(num_masks=256, batch_size=32)),  # 256 forward passes per map: a few seconds for Tiny on a CPU
    Method("eb", "EB", _SALIENCY + "excitation:excitation_backprop", defaults=_LAYER, through_time="eb_r"),
    Method("ceb", "cEB", _SALIENCY + "excitation:contrastive_excitation_backprop", defaults=_LAYER, through_time="ceb_r"),
    Method("bp", "BP", _SALIENCY + "recurrent:gradient_saliency", takes_layer=False, shown=False, through_time="bp_r"),
    Method("eb_r", "EB-R", _SALIENCY + "recurrent:excitation_backprop_rnn", takes="clips", defaults=_THROUGH_TIME),
    Method("ceb_r", "cEB-R", _SALIENCY + "recurrent:contrastive_excitation_backprop_rnn", takes="clips", signed=True,
           defaults=_THROUGH_TIME),
    Method("bp_r", "BP-R", _SALIENCY + "recurrent:gradient_saliency_rnn", takes="clips", takes_layer=False,
           defaults={"step": None}),
    # the words of a caption (a captioner of mindgap.captioning; options words= and steps=): mindgap.saliency.caption
    Method("word_eb_r", "EB-R of a word", _SALIENCY + "caption:excitation_backprop_words", takes="words",
           needs="captioner", shown=False, defaults=_WORD),
    Method("word_ceb_r", "cEB-R of a word", _SALIENCY + "caption:contrastive_excitation_backprop_words", takes="words",
           needs="captioner", signed=True, shown=False, defaults=_WORD),
    Method("caption_guided", "Caption-Guided Saliency", _SALIENCY + "caption:caption_guided_saliency", takes="words",
           needs="captioner", shown=False, defaults={"layer": "backbone"}),
)}


def method_names(takes=None, shown=None):
    """Names of :data:`METHODS` that take ``takes`` (``"images"``, ``"clips"``; None: any) and are ``shown``."""
    return [name for name, method in METHODS.items()
            if takes in (None, method.takes) and shown in (None, method.shown)]


def method_of(name, takes=None):
    """The :class:`Method` called ``name``, or one ``ValueError`` listing the methods that take ``takes``."""
    if name not in METHODS or takes not in (None, METHODS[name].takes):
        kind = "" if takes is None else f" for {takes}"
        raise ValueError(f"Unknown saliency method {name!r}{kind}; use one of {', '.join(method_names(takes))}.")
    return METHODS[name]
