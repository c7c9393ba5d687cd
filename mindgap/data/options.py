"""The data options of a run, one object: the layout and its split, the check, the input size, batches, augmentation.

:class:`DataOptions` is shared by ``mindgap.train`` (a ``TrainConfig`` is data options plus the recipe, saved flat in
``config.json`` as before), ``mindgap evaluate`` (its data flags; unset ones come from the training run's
``config.json``) and ``load_dataset`` (:meth:`DataOptions.dataset_options`).  Each field carries its help and choices
(:func:`option`).  No TensorFlow here: the command line's help reads it.
"""

import dataclasses
import typing


def option(default, help, choices=None):
    """A config field: its default, what it does (the command line's help) and the values it takes, if a few names."""
    return dataclasses.field(default=default, metadata={"help": help, **({"choices": choices} if choices else {})})


def choices_of(config_class):
    """{field: the names it takes} of a config class."""
    return {field.name: field.metadata["choices"] for field in dataclasses.fields(config_class) if "choices" in field.metadata}


@dataclasses.dataclass
class DataOptions:
    """How a dataset is read, split, checked, sized, batched and augmented (see each field's help)."""

    image_size: int = option(299, "square input side in pixels")
    batch_size: int = option(32, "global batch size (split over the replicas)")
    cache: bool = option(True, "cache the decoded images in memory")
    hide_and_seek: bool = option(False, "hide random patches of the training images (Singh and Lee 2017)")
    # the choices of format and label_drawing are those of mindgap.data.layouts and mindgap.data.labels (tests/test_cli)
    label_drawing: str = option("majority", "training labels: the majority, or drawn from crowd votes each epoch "
                                "(Barsoum et al. 2016)", ("majority", "probabilistic"))
    format: str = option("auto", "dataset layout (auto detects it)",
                         ("auto", "stanford40", "wsol", "fer2013", "video", "afew", "folders"))
    image_root: str | None = option(None, "wsol: the folder the image ids are relative to")
    test_per_class: int = option(50, "stanford40: test images per class (the rest of test.txt is val)")
    split_seed: int | None = option(None, "folders without split files: seed of the stratified split (None: the "
                                    "training seed, as before it had its own flag)")
    val_fraction: float = option(0.1, "folders without split files: share of each class for validation")
    test_fraction: float = option(0.1, "folders without split files: share of each class for test")
    skip_bad_images: bool = option(False, "drop unreadable images and bad boxes with a warning")
    allow_train_duplicates: bool = option(False, "an image may be listed twice in train")
    allow_empty_classes: bool = option(False, "folders: a class folder without images is still a class")

    # What evaluating a saved model takes from these (its input size is the model's; it neither augments nor caches).
    EVALUATION: typing.ClassVar[tuple] = ("batch_size", "format", "image_root", "test_per_class", "split_seed",
                                          "val_fraction", "test_fraction", "skip_bad_images", "allow_train_duplicates",
                                          "allow_empty_classes")

    def problems(self):
        """One description per bad value (an empty list when all are good); a field whose default is None takes None."""
        defaults = {field.name: field.default for field in dataclasses.fields(self)}
        found = [f"{name} must be >= 1, got {getattr(self, name)}" for name in ("batch_size", "image_size")
                 if getattr(self, name) < 1]
        for name, names in choices_of(type(self)).items():
            value, optional = getattr(self, name), defaults[name] is None
            if value not in names and not (optional and value is None):
                found.append(f"{name} must be one of {', '.join(names)}{' (or None)' if optional else ''}, got {value!r}")
        return found

    def the_split_seed(self):
        """The seed of a seeded split: ``split_seed``, else 0 (a ``TrainConfig``: its training seed)."""
        return 0 if self.split_seed is None else self.split_seed

    def dataset_options(self):
        """The keyword arguments of ``mindgap.data.layouts.load_dataset`` these options hold."""
        names = ("format", "image_root", "test_per_class", "val_fraction", "test_fraction", "skip_bad_images",
                 "allow_train_duplicates", "allow_empty_classes")
        return {"seed": self.the_split_seed(), **{name: getattr(self, name) for name in names}}
