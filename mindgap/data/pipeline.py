"""tf.data input pipeline: decode, resize, InceptionV3 preprocessing, Hide-and-Seek, batches.

Aspect-ratio policy: every image is stretched to ``image_size × image_size`` (the paper resizes to 299×299 RGB); its
boxes are scaled by the same factors along x and y, so they stay on the object.  Images of any mode (grayscale, RGBA,
CMYK JPEG, PNG) are decoded to 3-channel RGB.  Preprocessing is InceptionV3's: ``x / 127.5 - 1`` into [-1, 1], the
range every mindgap model takes.
"""

import functools

import numpy as np
import tensorflow as tf

from mindgap.cores import usable_cores
from mindgap.data.clips import odd_lengths
from mindgap.data.hide_and_seek import DEFAULT_GRID_SIZES, HIDE_PROBABILITY, hide_patches
from mindgap.data.labels import LABEL_DRAWINGS, draw_label, vote_distributions
from mindgap.data.records import summarize

DEFAULT_IMAGE_SIZE = 299
_PREFETCH_BATCHES = 2
PADDING_BOX = (-1.0, -1.0, -1.0, -1.0)  # rows of the padded box tensor that hold no box


def preprocess(images):
    """InceptionV3 preprocessing: uint8-range RGB → [-1, 1] float32."""
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def deprocess(images):
    """The inverse of :func:`preprocess`: [-1, 1] → RGB uint8 (rounded, clipped), as numpy."""
    return np.clip(np.round((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def model_input(rgb, size):
    """The model's input from an RGB array, as :func:`load_image` makes it from a file: stretched to
    ``size × size`` (bilinear, half-pixel centres), rounded to uint8, then :func:`preprocess`."""
    resized = tf.image.resize(rgb, (int(size), int(size)), method="bilinear")
    return preprocess(tf.cast(tf.round(tf.clip_by_value(resized, 0.0, 255.0)), tf.uint8)).numpy()


def decode_resized(path, image_size):
    """Decoded RGB image resized to (image_size, image_size) as float32 in [0, 255], and its original (h, w)."""
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    original_size = tf.shape(image)[:2]
    resized = tf.image.resize(image, (image_size, image_size), method="bilinear")
    return tf.clip_by_value(resized, 0.0, 255.0), original_size


def scale_boxes(boxes, original_size, image_size):
    """Move pixel-edge boxes (k, 4) from an (h, w) image to the resized square; padding rows stay padding."""
    height = tf.cast(original_size[0], tf.float32)
    width = tf.cast(original_size[1], tf.float32)
    factors = tf.stack([image_size / width, image_size / height, image_size / width, image_size / height])
    valid = boxes[:, 2:3] > boxes[:, 0:1]
    return tf.where(valid, boxes * factors, tf.constant(PADDING_BOX))


def padded_boxes(records):
    """(n, k, 4) float32 boxes of the records, k = most boxes in one image, padded with -1 rows."""
    most = max((len(record.boxes) for record in records), default=1)
    boxes = np.tile(np.asarray(PADDING_BOX, np.float32), (len(records), most, 1))
    for index, record in enumerate(records):
        boxes[index, : len(record.boxes)] = record.boxes
    return boxes


def valid_boxes(padded):
    """The real boxes of one padded (k, 4) array."""
    padded = np.asarray(padded)
    return padded[padded[:, 2] > padded[:, 0]]


def make_dataset(records, *, num_classes, image_size=DEFAULT_IMAGE_SIZE, batch_size=32, training=False, hide_and_seek=False,
                 grid_sizes=DEFAULT_GRID_SIZES, hide_probability=HIDE_PROBABILITY, fill_value=0.0, seed=0, with_boxes=False,
                 cache=False, drop_remainder=False, label_drawing="majority"):
    """Batches of (images, one-hot labels) for ``fit``, or (images, one-hot labels, boxes).

    Args:
        records: sequence of ``mindgap.data.Record``.
        num_classes: c, the length of the one-hot labels.
        image_size: side of the square input (299 in the paper).
        batch_size: the global batch size (split across replicas by ``fit`` under a ``tf.distribute`` strategy).
        training: shuffle (seeded, reshuffled every epoch) and allow Hide-and-Seek; False gives the records in order.
        hide_and_seek: hide random patches of training images (never when ``training`` is False).
        grid_sizes, hide_probability, fill_value: Hide-and-Seek settings.
        seed: seeds the shuffle and the hiding; the same seed gives the same epochs.
        with_boxes: also yield the boxes (batch, k, 4) scaled to the resized image, padding rows -1 (see
            :func:`valid_boxes`); not for ``fit``.
        cache: keep decoded, resized images in memory (True) or in a file (a path).
        drop_remainder: drop the last incomplete batch.
        label_drawing: ``"majority"`` (each record's label) or ``"probabilistic"``: while ``training``, a label drawn
            from each record's vote distribution anew every epoch (Barsoum et al. 2016, ``mindgap.data.labels``).
    """
    drawing = training and label_drawing == "probabilistic"
    source = tf.data.Dataset.from_tensor_slices(_columns(records, num_classes, label_drawing, drawing))

    def load(path, label, boxes, *votes):
        image, original_size = decode_resized(path, image_size)
        return (tf.cast(tf.round(image), tf.uint8), label, scale_boxes(boxes, original_size, image_size), *votes)

    parallel = usable_cores()
    if cache is not False:
        dataset = source.map(load, num_parallel_calls=parallel).cache("" if cache is True else str(cache))
        if training:
            dataset = dataset.shuffle(len(records), seed=seed, reshuffle_each_iteration=True)
    else:
        if training:
            source = source.shuffle(len(records), seed=seed, reshuffle_each_iteration=True)
        dataset = source.map(load, num_parallel_calls=parallel)

    hiding = training and hide_and_seek
    if hiding or drawing:  # one seed pair per image and epoch
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        dataset = tf.data.Dataset.zip((dataset, seeds))
    hide = functools.partial(hide_patches, grid_sizes=grid_sizes, hide_probability=hide_probability,
                             fill_value=fill_value) if hiding else None
    finish = functools.partial(_finish, num_classes=num_classes, hide=hide, drawing=drawing, with_boxes=with_boxes)
    dataset = dataset.map(finish, num_parallel_calls=parallel)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(_PREFETCH_BATCHES)
    options = tf.data.Options()
    # tf.data's autotuner thread can hold the end of an epoch for seconds at 0 % CPU (freeing
    # the old iterator waits for its sleep); fixed parallelism and prefetch do the same work.
    options.autotune.enabled = False
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _columns(records, num_classes, label_drawing, drawing):
    """(paths, labels, padded boxes[, vote distributions]) of ``records``; a ``ValueError`` for no record, a label
    beyond ``num_classes`` or an unknown label drawing."""
    if label_drawing not in LABEL_DRAWINGS:
        raise ValueError(f"Unknown label_drawing {label_drawing!r}; use one of {', '.join(LABEL_DRAWINGS)}.")
    if len(records) == 0:
        raise ValueError("make_dataset got no records; check the split you passed.")
    labels = np.asarray([record.label for record in records], np.int32)
    if labels.max() >= num_classes or labels.min() < 0:
        raise ValueError(f"Labels go up to {labels.max()} but num_classes is {num_classes}; pass the dataset's class count.")
    paths = np.asarray([record.path for record in records])
    return (paths, labels, padded_boxes(records)) + ((vote_distributions(records, num_classes),) if drawing else ())


def _finish(*element, num_classes, hide, drawing, with_boxes):
    """One decoded element → (image in [-1, 1], Hide-and-Seek's patches hidden; one-hot label, drawn from the votes
    when ``drawing``[; boxes]); the element carries its seed pair when hiding or drawing."""
    (image, label, boxes, *votes), pair_seed = (element[0], element[1]) if hide or drawing else (element, None)
    image = preprocess(image)
    if hide:
        image = hide(image, pair_seed)
    if drawing:
        label = draw_label(votes[0], tf.random.experimental.stateless_fold_in(pair_seed, 1))
    one_hot = tf.one_hot(label, num_classes)
    return (image, one_hot, boxes) if with_boxes else (image, one_hot)


def make_video_dataset(clips, *, num_classes, image_size, batch_size=8, training=False, seed=0, cache=False):
    """Batches of (clips (batch, T, S, S, 3) in [-1, 1], one-hot labels (batch, T, c): the clip's label at every step).

    The frames are decoded and resized as :func:`make_dataset` decodes images; every clip of ``clips``
    (``mindgap.data.clips.Clip``) must have the same T.  ``training`` shuffles (seeded, reshuffled every epoch)."""
    lengths = sorted({clip.num_frames for clip in clips})
    if len(lengths) != 1:
        raise ValueError(summarize(odd_lengths(clips), "clip(s) of another length") + "; clips of one batch need one "
                         "length: pass clips of one kind.")
    paths = np.asarray([list(clip.frames) for clip in clips])
    labels = np.asarray([clip.label for clip in clips], np.int32)
    steps = lengths[0]

    def load(frame_paths, label):
        frames = tf.map_fn(lambda path: decode_resized(path, image_size)[0], frame_paths,
                           fn_output_signature=tf.TensorSpec((image_size, image_size, 3), tf.float32))
        target = tf.repeat(tf.one_hot(label, num_classes)[None], steps, axis=0)
        return preprocess(frames), target

    data = tf.data.Dataset.from_tensor_slices((paths, labels)).map(load, num_parallel_calls=usable_cores())
    if cache:
        data = data.cache()
    if training:
        data = data.shuffle(len(clips), seed=seed, reshuffle_each_iteration=True)
    return data.batch(batch_size).prefetch(_PREFETCH_BATCHES)


def load_image(path, image_size):
    """One image file → (preprocessed (s, s, 3) float32 array, resized RGB uint8 for display); a ``ValueError``
    naming the file when it is missing or not a decodable image."""
    path = str(path)
    if not tf.io.gfile.exists(path):
        raise ValueError(f"Image {path!r} does not exist; check the path.")
    try:
        resized, _ = decode_resized(tf.constant(path), image_size)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError):
        raise ValueError(f"{path!r} is not an image TensorFlow can decode (JPEG, PNG, GIF or BMP).") from None
    display = tf.cast(tf.round(resized), tf.uint8)
    return preprocess(display).numpy(), display.numpy()
