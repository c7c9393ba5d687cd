"""The data options of a run, one object: the layout and its split, the check, the input size, batches, augmentation.

:class:`DataOptions` is shared by ``mindgap.train`` (a ``TrainConfig`` is data
options plus the recipe, saved flat in ``config.json`` as before), ``mindgap
evaluate`` (its data flags are these fields; unset ones come from the training
run's ``config.json``) and ``mindgap.data.layouts.load_dataset``
(:meth:`DataOptions.dataset_options`).  No TensorFlow here: the command
line's help reads it.
"""

import dataclasses
import typing

# The owners import TensorFlow (mindgap.data.layouts.FORMATS, mindgap.data.labels.LABEL_DRAWINGS); the copies let
# `mindgap train --help` list them at once, and tests/test_cli.py checks that they agree with the owners.
CHOICES = {
    "format": ("auto", "stanford40", "wsol", "fer2013", "video", "afew", "folders"),
    "label_drawing": ("majority", "probabilistic"),
}


@dataclasses.dataclass
class DataOptions:
    """How a dataset is read, split, checked and batched.

    ``format``: a layout of ``mindgap.data.layouts`` (``auto`` detects it);
    ``image_root`` (wsol), ``test_per_class`` (stanford40: per class the first
    N of test.txt are test, the rest val), ``val_fraction`` / ``test_fraction``
    (folders without split files: a stratified split drawn with ``split_seed``;
    None takes the training seed, as every run did before the split seed had
    its own option), ``allow_empty_classes`` (folders); the check's
    ``skip_bad_images`` and ``allow_train_duplicates``; the input side
    ``image_size``, the global ``batch_size``, ``cache`` (decoded images in
    memory); the augmentation ``hide_and_seek`` (Singh and Lee 2017) and
    ``label_drawing`` (``"majority"``, or ``"probabilistic"``: Barsoum et al.
    2016, a label drawn from each image's crowd votes every epoch).
    """

    image_size: int = 299
    batch_size: int = 32
    cache: bool = True
    hide_and_seek: bool = False
    label_drawing: str = "majority"  # majority | probabilistic (mindgap.data.labels)
    format: str = "auto"
    image_root: str | None = None
    test_per_class: int = 50
    split_seed: int | None = None
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    skip_bad_images: bool = False
    allow_train_duplicates: bool = False
    allow_empty_classes: bool = False  # folders: a class folder without images is still a class (it changes the classes)

    # What evaluating a saved model takes from these (its input size is the model's; it neither augments nor caches).
    EVALUATION: typing.ClassVar[tuple] = ("batch_size", "format", "image_root", "test_per_class", "split_seed",
                                          "val_fraction", "test_fraction", "skip_bad_images", "allow_train_duplicates",
                                          "allow_empty_classes")

    def data_problems(self):
        """One description per bad value (an empty list when all are good); the layout's reader checks the rest."""
        problems = [f"{name} must be >= 1, got {getattr(self, name)}" for name in ("batch_size", "image_size")
                    if getattr(self, name) < 1]
        if self.label_drawing not in CHOICES["label_drawing"]:
            problems.append(f"label_drawing must be one of {', '.join(CHOICES['label_drawing'])}, got {self.label_drawing!r}")
        return problems

    def the_split_seed(self):
        """The seed of a seeded split: ``split_seed``, else 0 (a ``TrainConfig``: its training seed)."""
        return 0 if self.split_seed is None else self.split_seed

    def dataset_options(self):
        """The keyword arguments of ``mindgap.data.layouts.load_dataset`` these options hold."""
        names = ("format", "image_root", "test_per_class", "val_fraction", "test_fraction", "skip_bad_images",
                 "allow_train_duplicates", "allow_empty_classes")
        return {"seed": self.the_split_seed(), **{name: getattr(self, name) for name in names}}
