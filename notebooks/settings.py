"""What every notebook starts from: small settings in the tests (``MINDGAP_NOTEBOOK_SMALL=1``), the quick mode otherwise.

``MINDGAP_NOTEBOOK_OUT`` is where a notebook writes (default ``runs/notebooks`` of the checkout).
"""

import collections
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "docs", "examples")  # three test images of the scenes set, named by their class

DigitsSettings = collections.namedtuple("DigitsSettings", "out data image_size train dataset")


def is_small():
    return os.environ.get("MINDGAP_NOTEBOOK_SMALL") == "1"


def output_folder():
    return os.path.abspath(os.environ.get("MINDGAP_NOTEBOOK_OUT", os.path.join(ROOT, "runs", "notebooks")))


def pick(small, quick):
    """``small`` in the tests, ``quick`` otherwise."""
    return small if is_small() else quick


def digits_settings():
    """The embedded digits set (written once) and ``mindgap.train``'s settings for it: (out, data folder, image size,
    train keyword arguments, the dataset)."""
    import mindgap

    small, out = is_small(), output_folder()
    data = os.path.join(out, "digits-small" if small else "digits")
    mindgap.data.ensure_digits_dataset(data, **(dict(train_per_class=3, test_per_class=3, canvas_size=32, digit_size=(12, 24))
                                                if small else {}))
    dataset = mindgap.data.read_stanford40(data, test_per_class=2 if small else 50)
    image_size, epochs = (32, 1) if small else (96, 8)
    weights = None if small else "pretrained:centred-digits"  # the shipped Tiny backbone of the digits set
    train = dict(image_size=image_size, epochs=epochs, freeze_epochs=0 if small else epochs, batch_size=8 if small else 32,
                 test_per_class=2 if small else 50, weights=weights, localization_images=8 if small else 100,
                 snapshot_images=2, verbose=0)
    return DigitsSettings(out, data, image_size, train, dataset)


CaptionSettings = collections.namedtuple("CaptionSettings", "out dataset model")


def caption_settings():
    """The embedded captioned set and a ``Tiny-Captioner`` of its vocabulary: (out, dataset, model).

    Quick: ``python -m experiments.caption_grounding``'s own set and trained captioner (``runs/caption_grounding``,
    made once and shared with the experiment: the model whose numbers docs/results/caption_grounding holds).
    Small (the tests): that experiment's ``--extra-small`` set and an *untrained* captioner of the same sizes: the
    tests run the notebook's code, and training would add seconds without making its maps mean more."""
    import mindgap
    from experiments.caption_grounding import MODES
    from mindgap import captioning
    from mindgap.data import captions
    from mindgap.training.captioner import CaptionerConfig, trained_captioner

    mode = MODES["extra-small" if is_small() else "quick"]
    runs = output_folder() if is_small() else os.path.join(ROOT, "runs", "caption_grounding")
    data = captions.ensure_captions_set(os.path.join(runs, f"captions_set_{mode.name}"), **mode.data)
    dataset = captions.load_captions_set(data)
    config = CaptionerConfig(**mode.train)
    if not is_small():
        return CaptionSettings(runs, dataset, trained_captioner(dataset, os.path.join(runs, f"captioner_{mode.name}"), config))
    vocabulary = captioning.build_vocabulary([text.words for record in dataset["train"] for text in record.captions])
    model = mindgap.build_model("Tiny-Captioner", len(vocabulary), class_names=vocabulary,
                                input_shape=(config.image_size, config.image_size, 3), fc_units=config.fc_units,
                                embedding_units=config.embedding_units, lstm_units=config.lstm_units)
    return CaptionSettings(runs, dataset, model)
