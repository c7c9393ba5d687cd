"""Training the captioner (``mindgap.captioning``) on a captioned set, into a run folder.

Teacher forcing: the decoder is fed ``<start>`` and the caption's words and learns the next word at every step
(padding weighs 0).  Every caption of an image is one example.  The run folder holds what ``mindgap.train`` writes for
the other models: ``config.json`` (the settings), ``history.csv``, ``model.keras`` (the lowest validation loss, by
``AtomicBestCheckpoint``), under one writer (``RunLock``).
"""

import dataclasses
import json
import os

import keras
import numpy as np
import tensorflow as tf

from mindgap import captioning
from mindgap.models import build_model, load_model
from mindgap.pretrain import pretrained_tiny_weights
from mindgap.training.callbacks import AtomicBestCheckpoint
from mindgap.training.run_folder import RunLock, write_json

MODEL_FILE = "model.keras"


@dataclasses.dataclass
class CaptionerConfig:
    """Settings of a captioner's training (quick-mode defaults: minutes on 2 cores)."""

    epochs: int = 12
    batch_size: int = 32
    learning_rate: float = 2e-3
    image_size: int = 64
    max_words: int = 16
    fc_units: int = captioning.FC_UNITS
    embedding_units: int = captioning.EMBEDDING_UNITS
    lstm_units: int = captioning.LSTM_UNITS
    pretrained: str | None = "scenes"  # a recipe of mindgap.pretrain (the shipped Tiny start), or None
    freeze_backbone: bool = True  # keep the pretrained CNN (it reads the digits); train fc1, fc2 and the decoder
    seed: int = 0


def _dataset(images, indices, inputs, targets, batch_size, shuffle, seed):
    weights = (targets != captioning.PAD).astype(np.float32)
    data = tf.data.Dataset.from_tensor_slices((indices, inputs, targets, weights))
    if shuffle:
        data = data.shuffle(len(indices), seed=seed, reshuffle_each_iteration=True)
    table = tf.constant(images)
    return data.batch(batch_size).map(
        lambda index, words, target, weight: ((tf.gather(table, index), words), target, weight)).prefetch(2)


def train_captioner(dataset, out_dir, config=None, model_name="Tiny-Captioner", verbose=0):
    """Train a captioner on ``dataset`` ({"train": [CaptionedImage], "val": [...]}) into ``out_dir``.

    Returns the best model (loaded from ``out_dir/model.keras``).
    """
    config = config or CaptionerConfig()
    lock = RunLock(out_dir)
    lock.acquire()
    try:
        keras.utils.set_random_seed(config.seed)
        vocabulary = captioning.build_vocabulary([caption.words for record in dataset["train"] for caption in record.captions])
        weights = None
        if config.pretrained:
            weights = pretrained_tiny_weights(verbose=verbose, recipe=config.pretrained)
        model = build_model(model_name, len(vocabulary), weights=weights,
                            input_shape=(config.image_size, config.image_size, 3), class_names=vocabulary,
                            fc_units=config.fc_units, embedding_units=config.embedding_units, lstm_units=config.lstm_units)
        if config.freeze_backbone:
            model.get_layer("backbone").trainable = False
        captioning.compile_captioner(model, config.learning_rate)
        write_json(os.path.join(out_dir, "config.json"), {"model": model_name, **dataclasses.asdict(config),
                                                          "vocabulary": vocabulary})
        splits = {}
        for split in ("train", "val"):
            images = captioning.load_images([record.path for record in dataset[split]], config.image_size)
            splits[split] = _dataset(images, *captioning.caption_arrays(dataset[split], vocabulary, config.max_words + 1),
                                     config.batch_size, split == "train", config.seed)
        model.fit(splits["train"], validation_data=splits["val"], epochs=config.epochs, verbose=verbose,
                  shuffle=False,  # the dataset shuffles itself (Keras warns that its own shuffle is ignored)
                  callbacks=[AtomicBestCheckpoint(os.path.join(out_dir, MODEL_FILE), print_fn=lambda line: None),
                             keras.callbacks.CSVLogger(os.path.join(out_dir, "history.csv"))])
    finally:
        lock.release()
    return load_model(os.path.join(out_dir, MODEL_FILE))


def trained_captioner(dataset, out_dir, config=None, model_name="Tiny-Captioner", verbose=0):
    """The captioner of ``out_dir`` if it was trained there with ``config``, else one trained there now
    (:func:`train_captioner`): train once, reuse after (the experiment and the notebook share a run folder)."""
    config = config or CaptionerConfig()
    path, record = os.path.join(out_dir, MODEL_FILE), os.path.join(out_dir, "config.json")
    if os.path.isfile(path) and os.path.isfile(record):
        with open(record) as handle:
            stored = json.load(handle)
        wanted = json.loads(json.dumps(dataclasses.asdict(config)))
        if stored.get("model") == model_name and {key: stored.get(key) for key in wanted} == wanted:
            return load_model(path)
    return train_captioner(dataset, out_dir, config, model_name=model_name, verbose=verbose)
