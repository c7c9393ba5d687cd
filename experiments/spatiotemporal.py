"""Spatiotemporal grounding (thesis ch. 7) and web images for video (ch. 3 §3.2, §3.4).

    python -m experiments.spatiotemporal                 # quick mode (minutes on 2 cores)
    python -m experiments.spatiotemporal --extra-small   # seconds (tests)

**Data** (``mindgap.data.video``): the embedded video set, moving digits on panning photos;
trimmed clips of 16 frames for training, GT + rand and rand + GT halves of 16 frames
(§7.4.2, Figure 7.6), rand + GT + rand clips of 32 frames (the thesis: 128) with GT
segments of 3, 10 and 16 frames (11, 41 and 65 of 128 in proportion, Table 7.2).  The
"web images" of chapter 3 are the project's digits image set (``mindgap.data.digits``:
still images of the same ten classes, other renders, other placements).

**Models.**  ``Tiny-Frames`` (the spatial CNN, the thesis's VGG-16 of Ma et al.): the
shipped pretrained Tiny backbone, ``fc1``/``fc2`` and a classifier, fine-tuned on video
frames only, or on frames and still images (equal numbers in every batch, §3.5.1.1).
``Tiny-LSTM`` (§7.2): the frames + images CNN fine-tuned with one ReLU LSTM on the trimmed
clips by ``mindgap.train`` (its run folder, callbacks, checks); ``Tiny-LSTM-tanh`` the same
with tanh, for its accuracy (§7.1: "similar performance").

**Measures.**  Table 7.1: the spatial pointing game on every frame of the trimmed test clips
(the GT digit's box), EB and cEB of the frame CNN on each frame, EB-R and cEB-R of the
CNN-LSTM (queried at the last step), BP and BP-R; maps at ``tiny_block2`` (12×12 at 48²,
the thesis's conv5 is 14×14 at 224²) upsampled to the frame; tolerance: the thesis's "15-pixel
diameter circle" (§7.4.1) on 320 × 240 frames scaled with the frame, 7.5 px · 48 / 240 = 1.5 px
(``mindgap.metrics.pointing_game_hit``, ``tolerance="thesis-video"``; ``--pointing-tolerance
scaled`` gives Zhang et al.'s 15 px · 48 / 224 = 3.2 px, the image game's).  EB-R and cEB-R run
by both rules through the LSTM (``mindgap.saliency.recurrent``): the authors' (their Caffe code,
the thesis's tables) and ours (``conserving``), in every table and in Figure 7.6; the share of
the EB-R mass on the first frame is reported for each.  Figure 7.6: the
sum of each frame's cEB-R map over time, mean ± sd over the GT + rand and rand + GT clips.
Table 7.2: mAP at IoU 0.5 of the known-length window and the unknown-length growth
(``mindgap.temporal``), one detection per clip (score: the sum of S over the window; for the
probability baseline the mean probability over it), per GT length.  Table 7.3 in our set:
the temporal pointing game.  Chapter 3: test accuracy per class of the two frame CNNs
(per frame and by voting over a clip's frames), and conservative filters (§3.4: filters
whose weights moved by less than Δ and whose top activations over a pool of pretraining
renders and video frames are < 10 % video frames).
"""

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mindgap.data.pipeline import preprocess  # noqa: E402
from mindgap.data.video import SCENES_VIDEO  # noqa: E402

THESIS_TABLE_7_1 = {"eb": 55.8, "eb_r": 61.5, "ceb": 37.0, "ceb_r": 39.1, "bp": 37.3, "bp_r": 39.2}
THESIS_TABLE_7_2 = {"known": {"probability": (8.5, 28.2, 47.7), "eb_r": (11.3, 38.5, 56.3), "ceb_r": (15.5, 53.2, 73.5)},
                    "unknown": {"probability": (3.4, 9.5, 35.7), "ceb_r": (4.1, 47.9, 62.0)}}
THESIS_TABLE_7_3 = {"random": 57.3, "probability": 65.8, "ceb_r": 65.1, "probability_ceb_r": 77.4}  # THUMOS14
THESIS_TABLE_3_2 = {"video only": 77.8, "video + images": 83.5}  # VGG16, UCF101 split 1
THESIS_CNN_LSTM_ACCURACY = 83.3  # the thesis's CNN-LSTM on UCF101 (§7.4.1); its frame CNN: 83.5
METHODS = ("eb", "eb_r", "ceb", "ceb_r", "bp", "bp_r")
RULES = ("authors", "conserving")  # EB-R through the LSTM (mindgap.saliency.recurrent): theirs (default), ours
# a method through the LSTM by the conserving rule is named "<method>:conserving"; the plain name is the authors' rule
CONSERVING = ":conserving"
LABELS = {"eb": "EB", "eb_r": "EB-R", "ceb": "cEB", "ceb_r": "cEB-R", "bp": "BP", "bp_r": "BP-R",
          "eb_r:conserving": "EB-R (conserving, ours)", "ceb_r:conserving": "cEB-R (conserving, ours)",
          "probability": "Probability", "probability_ceb_r": "Peak probability + cEB-R",
          "probability_ceb_r:conserving": "Peak probability + cEB-R (conserving, ours)", "random": "Random"}
SPATIAL_METHODS = METHODS + ("eb_r:conserving", "ceb_r:conserving")
FRAME_VARIANTS = ("video only", "video + images")


@dataclasses.dataclass
class Settings:
    mode: str
    video: dict
    web_images: dict
    frame_size: int = 48
    fc_units: int = 256
    lstm_units: int = 128  # the registry's default (mindgap.recurrent.LSTM_UNITS); fc_units come from the frame CNN
    frame_epochs: int = 3
    frame_batch: int = 64
    frame_learning_rate: float = 3e-4
    lstm_epochs: int = 4
    lstm_freeze_epochs: int = 1
    lstm_batch: int = 8
    lstm_learning_rate: float = 1e-3
    layer: str = "tiny_block2"
    pointing_tolerance: str = "thesis-video"  # §7.4.1's 15 px diameter circle, scaled; "scaled": Zhang et al.'s
    pool_per_domain: int = 500
    top_activations: int = 100
    pretrained: bool = True
    # The start (mindgap.pretrain.RECIPES) of the frame CNNs of chapter 7 and Table 3.2: the scenes start, which
    # already reads 12-18 px digits among letters (from the printed-scenes start the frame CNN memorised its
    # training clips and read 13 % of test frames, NOTES.md "Chapter 7 on the scenes video set").
    recipe: str = "scenes"
    # §3.4's conservative-filter study needs a source domain that differs from the frames, as ImageNet does from
    # UCF101: printed digits in coloured ink on grey pictures; its own pair of frame CNNs starts there (the same
    # models as chapter 7's when the two recipes are equal).
    filter_study_recipe: str = "printed-scenes"
    frame_stride: int = 1  # the frame CNNs train on every n-th frame of each clip (neighbouring frames nearly repeat)
    seed: int = 0
    # §3.4: VGG's fc6 came pretrained (ImageNet) into the fine-tuning; fc1/fc2 here are pretrained on source renders
    fc_pretrained: bool = True
    head_pretrain_images: int = 2000
    head_pretrain_epochs: int = 3
    test_views: int = 20  # §3.5.1.1: 20 frames of equal temporal spacing per test video (all of ours when fewer)


MODES = {
    # The video set that can tell (a small digit among moving letters in 64 px frames); the web images are scenes at
    # the frames' scale (mindgap.data.scenes), other photos and renders than the frames.
    # 150 training clips per class (40 were memorised: the frame CNN read 87.5 % of its training frames and 13 % of
    # the test frames); the frame CNNs see every second frame of each, the CNN-LSTM 3 epochs, to keep a seed near
    # 15 minutes on 2 cores.
    "quick": Settings("quick", video=dict(short_frames=16, long_frames=32, train_per_class=150, val_per_class=8,
                                          test_per_class=10, untrimmed_per_class=6, **SCENES_VIDEO),
                      web_images=dict(canvas_size=64, train_per_class=160, test_per_class=2, digit_size=(12, 18)),
                      frame_size=64, frame_stride=2, lstm_epochs=3),
    "extra-small": Settings("extra-small", video=dict(frame_size=32, short_frames=4, long_frames=8, train_per_class=2,
                                                      val_per_class=1, test_per_class=1, untrimmed_per_class=1,
                                                      digit_size=(8, 12), distractors=(1, 2)),
                            web_images=dict(canvas_size=32, train_per_class=4, test_per_class=2, digit_size=(8, 12),
                                            distractors=(1, 2)),
                            # the centred-digits start: the frames of 8-12 px digits need no source-domain study here
                            recipe="centred-digits", filter_study_recipe="centred-digits",
                            frame_size=32, fc_units=16, frame_epochs=1, frame_batch=16, lstm_epochs=1,
                            lstm_freeze_epochs=0, lstm_batch=4, pool_per_domain=20, top_activations=10,
                            head_pretrain_images=40, head_pretrain_epochs=1),
}


def log(message):
    print(f"[spatiotemporal {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _key(*parts):
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:10]


# ---------------------------------------------------------------- data

def prepare_data(settings, runs_dir):
    from mindgap.data import video
    from mindgap.data.scenes import ensure_scenes_dataset

    video_dir = os.path.join(runs_dir, "data", f"video-{settings.mode}-{_key(settings.video)}")
    web_dir = os.path.join(runs_dir, "data", f"scenes-web-{settings.mode}-{_key(settings.web_images)}")
    log(f"video set at {video_dir} (generated once)")
    video.ensure_video_set(video_dir, **settings.video)
    ensure_scenes_dataset(web_dir, **settings.web_images)
    return video_dir, web_dir, video.load_video_set(video_dir)


def _frames(clips, size):
    from mindgap.data.video import load_clip_frames

    return np.stack([load_clip_frames(clip, size) for clip in clips])  # (n, T, S, S, 3) uint8 RGB


def _preprocess(array):
    return preprocess(array).numpy()


def _web_images(web_dir, size):
    import cv2

    from mindgap.data import load_dataset

    dataset, _ = load_dataset(web_dir, require=("train",))
    images = np.stack([cv2.resize(cv2.imread(record.path), (size, size), interpolation=cv2.INTER_AREA)[..., ::-1]
                       for record in dataset.train])
    return images, np.asarray([record.label for record in dataset.train])


# ---------------------------------------------------------------- chapter 3: the frame CNNs

def _frame_cnn(settings, num_classes, class_names, head_path=None):
    """The fine-tuning's start: the pretrained backbone, fc1/fc2 from ``head_path`` (pretrained) or fresh, a new classifier."""
    import keras

    import mindgap

    keras.utils.set_random_seed(settings.seed)  # the same start (fc1, fc2, classifier) for both variants
    if head_path is not None:
        model = mindgap.load_model(head_path)
        # §3.5.1.1: every layer fine-tuned except the last, replaced and drawn from N(0, 0.01²) (Caffe's gaussian filler)
        logits = model.get_layer("logits")
        rng = np.random.default_rng(settings.seed)
        logits.kernel.assign(rng.normal(0.0, 0.01, logits.kernel.shape).astype(np.float32))
        logits.bias.assign(np.zeros(logits.bias.shape, np.float32))
        return model
    weights = None
    if settings.pretrained:
        from mindgap.pretrain import pretrained_tiny_weights

        weights = pretrained_tiny_weights(verbose=0, recipe=settings.recipe)
    return mindgap.build_model("Tiny-Frames", num_classes, input_shape=(settings.frame_size,) * 2 + (3,), weights=weights,
                               fc_units=settings.fc_units, class_names=class_names)


def pretrain_frame_head(settings, num_classes, class_names, path):
    """fc1/fc2 pretrained on the source domain, as VGG16's fc6/fc7 came pretrained on ImageNet (§3.4); cached at ``path``.

    The source domain is the backbone's own pretraining data (``settings.recipe``'s canvases, the project's
    "ImageNet", the same domain as the source half of §3.4's pool); the backbone stays as pretrained (frozen), fc1,
    fc2 and a classifier are trained on ``head_pretrain_images`` renders for ``head_pretrain_epochs``.
    """
    import keras

    from mindgap.pretrain import RECIPES, pretraining_canvases

    if os.path.isfile(path):
        return path
    model = _frame_cnn(settings, num_classes, class_names)
    renders, render_labels = pretraining_canvases(dict(RECIPES[settings.recipe], image_size=settings.frame_size),
                                                  settings.head_pretrain_images, seed=settings.seed + 11)
    log(f"pretraining fc1/fc2 on {len(renders)} source renders (§3.4: fc6 came pretrained)")
    backbone = model.get_layer("backbone")
    backbone.trainable = False
    model.compile(keras.optimizers.Adam(settings.frame_learning_rate), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(_preprocess(renders[..., ::-1]), render_labels, batch_size=settings.frame_batch,
              epochs=settings.head_pretrain_epochs, verbose=0)
    backbone.trainable = True
    model.save(path)
    return path


def training_batches(frames, labels, images, image_labels, num_classes, batch_size, seed, with_domain=False):
    """The frame CNN's training batches: frames only, or **exactly** ``batch_size / 2`` video frames and as many still
    images in every batch (§3.5.1.1: "Equal numbers of web images and video frames are sampled in each training
    batch"), each stream shuffled and repeated on its own.  ``with_domain``: a third element, 0 frame / 1 image."""
    import tensorflow as tf

    def stream(pixels, targets, domain, stream_seed):
        data = tf.data.Dataset.from_tensor_slices((pixels, tf.one_hot(targets, num_classes),
                                                   tf.fill([len(pixels)], domain)))
        return data.shuffle(len(pixels), seed=stream_seed, reshuffle_each_iteration=True).repeat()

    if images is None:
        data = stream(frames, labels, 0, seed).batch(batch_size)
    else:
        if batch_size % 2:
            raise ValueError(f"Equal numbers of frames and images need an even batch size, got {batch_size}.")
        halves = (stream(frames, labels, 0, seed).batch(batch_size // 2),
                  stream(images, image_labels, 1, seed + 1).batch(batch_size // 2))
        data = tf.data.Dataset.zip(halves).map(lambda first, second: tuple(tf.concat([a, b], axis=0)
                                                                          for a, b in zip(first, second)))

    def prepare(pixels, target, domain):
        return (preprocess(pixels), target) + ((domain,) if with_domain else ())

    return data.map(prepare)


def train_frame_cnn(settings, variant, frames, labels, images, image_labels, num_classes, class_names, path, head_path=None):
    """Fine-tune ``Tiny-Frames`` on video frames (and still images); cached at ``path``. Returns (model, initial weights)."""
    import keras

    import mindgap

    model = _frame_cnn(settings, num_classes, class_names, head_path)
    initial = {layer.name: [np.asarray(value) for value in layer.get_weights()] for layer in _weighted_layers(model)}
    from experiments.common import cached_model

    cached = cached_model(path)  # saved atomically: a file there is complete
    if cached is not None:
        return cached, initial
    log(f"training the frame CNN ({variant}) on {len(frames)} frames" + (f" and {len(images)} images" if images is not None else ""))
    data = training_batches(frames, labels, images, image_labels, num_classes, settings.frame_batch, settings.seed)
    model.compile(keras.optimizers.Adam(settings.frame_learning_rate), "categorical_crossentropy", metrics=["accuracy"])
    steps = max(1, len(frames) // settings.frame_batch)
    model.fit(data.prefetch(2), epochs=settings.frame_epochs, steps_per_epoch=steps, verbose=2 if sys.stdout.isatty() else 0)
    mindgap.storage.save_model(model, path)
    return model, initial


def view_probabilities(model, clips, views=10, frames_per_video=20, batch=256):
    """§3.5.1.1's video classification views: per frame (``frames_per_video`` of equal temporal spacing, all when
    the clip has fewer) the frame resized to 256/224 of the network's input, its four corners and centre at the input
    size (5 views) and their horizontal flips (10); the frame's scores are the mean of its views' probabilities.
    Returns (n, frames, classes)."""
    import cv2

    if views not in (5, 10):
        raise ValueError(f"views must be 5 (corners and centre) or 10 (and their flips), got {views}.")
    count, steps, size = clips.shape[:3]
    chosen = np.unique(np.round(np.linspace(0, steps - 1, min(frames_per_video, steps))).astype(int))
    large = int(round(size * 256 / 224))
    frames = clips[:, chosen].reshape(-1, size, size, 3)
    resized = np.stack([cv2.resize(frame, (large, large), interpolation=cv2.INTER_LINEAR) for frame in frames])
    margin = large - size
    corners = [(0, 0), (0, margin), (margin, 0), (margin, margin), (margin // 2, margin // 2)]
    crops = [resized[:, top:top + size, left:left + size] for top, left in corners]
    if views == 10:
        crops += [crop[:, :, ::-1] for crop in crops]
    probabilities = np.mean([np.asarray(model.predict(_preprocess(crop), verbose=0, batch_size=batch)) for crop in crops],
                            axis=0)
    return probabilities.reshape(count, len(chosen), -1)


def vote(frame_probabilities, num_classes):
    """Each frame's class is its top score; the video's class the most frequent (the lowest class on ties)."""
    classes = frame_probabilities.argmax(axis=-1)
    return np.array([np.bincount(row, minlength=num_classes).argmax() for row in classes])


def _weighted_layers(model):
    names = ("tiny_block3_conv", "tiny_block4_conv", "fc1")
    layers = {layer.name: layer for layer in model._flatten_layers(include_self=False, recursive=True)}
    return [layers[name] for name in names if name in layers]


def conservative_filter_study(models, initial, pool, is_video, top, quantiles=(0.05, 0.1, 0.25, 0.5)):
    """§3.4: per layer, filters with ``alpha < 0.1`` (video frames among their top activations) and ``Delta < Δ``.

    ``Δ`` at quantiles of the video-only model's changes (the thesis picks small absolute values for VGG16).
    Returns {layer: {"deltas": [...], variant: [counts]}}.
    """
    from mindgap.dropout.utilization import conservative_filters, weight_changes

    study = {}
    for variant, model in models.items():
        for layer in _weighted_layers(model):
            activations = _layer_activations(model, layer.name, pool)  # (images, filters)
            order = np.argsort(-activations, axis=0)[:top]
            alpha = is_video[order].mean(axis=0)
            kernel = np.asarray(layer.get_weights()[0])
            start = initial[variant][layer.name][0]
            bias = (initial[variant][layer.name][1], np.asarray(layer.get_weights()[1])) if layer.name == "fc1" else (None, None)
            changes = weight_changes(start.reshape(-1, kernel.shape[-1]), kernel.reshape(-1, kernel.shape[-1]), *bias)
            entry = study.setdefault(layer.name, {})
            entry.setdefault("changes", {})[variant] = changes
            entry.setdefault("alpha", {})[variant] = alpha
    for name, entry in study.items():
        deltas = [float(np.quantile(entry["changes"][FRAME_VARIANTS[0]], q)) for q in quantiles]
        entry["deltas"] = deltas
        for variant in models:
            low_alpha = entry["alpha"][variant] < 0.1
            entry[variant] = [int(((entry["changes"][variant] < delta) & low_alpha).sum()) for delta in deltas]
            entry[f"{variant} (any alpha)"] = [conservative_filters(np.zeros((1, len(entry["changes"][variant]))),
                                                                    entry["changes"][variant][None], delta)
                                               for delta in deltas]
        entry["filters"] = int(len(entry["changes"][FRAME_VARIANTS[0]]))
        entry["low_alpha"] = {variant: int((entry["alpha"][variant] < 0.1).sum()) for variant in models}
        del entry["changes"], entry["alpha"]
    return study


def _layer_activations(model, name, pool, batch=256):
    """Each image's maximum activation of each filter of layer ``name`` (after its BN and ReLU for a conv)."""
    import keras

    if name == "fc1":
        output = model.get_layer("fc1").output
        probe = keras.Model(model.inputs, output)
    else:
        backbone = model.get_layer("backbone")
        probe = keras.Model(backbone.inputs, backbone.get_layer(name.replace("_conv", "")).output)
    values = np.concatenate([np.asarray(probe(_preprocess(pool[start:start + batch]), training=False))
                             for start in range(0, len(pool), batch)])
    return values.reshape(len(values), -1, values.shape[-1]).max(axis=1)


# ---------------------------------------------------------------- chapter 7: the CNN-LSTM

def train_cnn_lstm(settings, runs_dir, video_dir, frame_cnn_path, activation):
    import mindgap

    name = "Tiny-LSTM" if activation == "relu" else "Tiny-LSTM-tanh"
    overrides = dict(epochs=settings.lstm_epochs, freeze_epochs=settings.lstm_freeze_epochs, batch_size=settings.lstm_batch,
                     image_size=settings.frame_size, learning_rate=settings.lstm_learning_rate, weights=frame_cnn_path,
                     precise_bn_batches=min(20, max(1, settings.video["train_per_class"])), tensorboard=False,
                     seed=settings.seed, localization_images=0, snapshot_images=0, verbose=0)
    run_dir = os.path.join(runs_dir, "models", f"{name}-{_key(video_dir, frame_cnn_path, overrides)}")
    log(f"training {name} with mindgap.train into {run_dir}")
    result = mindgap.train(name, video_dir, run_dir, **overrides)
    return result.best_model(), run_dir


def _predict(model, clips, batch=16):
    return np.concatenate([np.asarray(model(_preprocess(clips[start:start + batch]), training=False))
                           for start in range(0, len(clips), batch)])


def _saliency(model, clips, classes, method, layer, batch=16):
    """Maps of ``method`` (a name of SPATIAL_METHODS: ``"eb_r:conserving"`` runs EB-R by the conserving rule)."""
    import mindgap

    method, _, rule = method.partition(":")
    spec = mindgap.saliency.METHODS[method]
    options = {"layer": layer} if spec.takes_layer else {}
    if "rule" in spec.defaults:
        options["rule"] = rule or spec.defaults["rule"]
    return mindgap.saliency.compute(model, _preprocess(clips), np.asarray(classes)[:, None], method=method,
                                    batch_size=batch, **options)[..., 0]


def frame_zero_share(lstm, clips, classes, rule, batch=16):
    """The share of the EB-R mass (eq. 7.5, at the LSTM's input, last step queried) on each clip's first frame."""
    from mindgap.saliency.recurrent import input_winning_probabilities

    mwp = np.concatenate([input_winning_probabilities(lstm, _preprocess(clips[start:start + batch]),
                                                      np.asarray(classes[start:start + batch])[:, None], rule=rule)[..., 0]
                          for start in range(0, len(clips), batch)])
    return mwp[:, 0].sum(axis=-1) / mwp.sum(axis=(1, 2))


def spatial_pointing_game(frame_cnn, lstm, clips, dataset_clips, layer, tolerance="thesis-video"):
    """Table 7.1: the share of annotated frames whose map's maximum is within τ of the GT box."""
    import mindgap
    from mindgap.metrics import pointing_game_hit

    labels = np.asarray([clip.label for clip in dataset_clips])
    size = clips.shape[2]
    frames = [(index, step) for index, clip in enumerate(dataset_clips) for step in range(clip.num_frames)
              if clip.segment[0] <= step < clip.segment[1]]
    centre = np.zeros((size, size))
    centre[size // 2, size // 2] = 1
    centre_hits = np.asarray([pointing_game_hit(centre, dataset_clips[index].boxes[step][None], tolerance)
                              for index, step in frames])
    results, off_centre = {"centre": float(centre_hits.mean())}, {"centre": 0.0, "frames": int((~centre_hits).sum())}
    for method in SPATIAL_METHODS:
        model = lstm if method.partition(":")[0].endswith("_r") else frame_cnn
        maps = _saliency(model, clips, labels, method, layer)  # (n, T, h, w)
        if maps.shape[2] != size:
            flat = mindgap.saliency.upsample(maps.reshape(-1, *maps.shape[2:])[..., None], (size, size))[..., 0]
            maps = flat.reshape(*maps.shape[:2], size, size)
        hits = np.asarray([pointing_game_hit(maps[index, step], dataset_clips[index].boxes[step][None], tolerance)
                           for index, step in frames])
        results[method] = float(hits.mean())
        off_centre[method] = float(hits[~centre_hits].mean()) if (~centre_hits).any() else float("nan")
    results["off_centre"] = off_centre  # the frames where pointing at the centre misses: the digit is away from it
    return results


def temporal_curves(lstm, clips, dataset_clips, layer, method="ceb_r"):
    """Figure 7.6: S_t of cEB-R (queried: the GT class at the last step), per clip."""
    from mindgap.temporal import frame_sums

    maps = _saliency(lstm, clips, [clip.label for clip in dataset_clips], method, layer)
    return frame_sums(maps)


def temporal_localization(lstm, clips, dataset_clips, layer):
    """Table 7.2 and the temporal pointing game on rand + GT + rand clips."""
    from mindgap.metrics import temporal_mean_ap, temporal_pointing_hit
    from mindgap.temporal import frame_sums, localize_known_length, localize_unknown_length, thresholded_probabilities

    labels = np.asarray([clip.label for clip in dataset_clips])
    sums = {method: frame_sums(_saliency(lstm, clips, labels, method, layer))
            for method in ("eb_r", "ceb_r", "eb_r:conserving", "ceb_r:conserving")}
    probabilities = _predict(lstm, clips)[np.arange(len(labels)), :, labels]  # (n, T): p(GT class) at every step
    sums["probability"] = thresholded_probabilities(probabilities)
    lengths = sorted({clip.gt_length for clip in dataset_clips})
    table = {"known": {}, "unknown": {}}
    for setting, methods in (("known", TEMPORAL_METHODS), ("unknown", ("probability", "ceb_r", "ceb_r:conserving"))):
        for method in methods:
            values = []
            for length in lengths:
                detections, ground_truth = [], []
                for index, clip in enumerate(dataset_clips):
                    if clip.gt_length != length:
                        continue
                    scores = sums[method][index]
                    segment = localize_known_length(scores, length) if setting == "known" else localize_unknown_length(scores)
                    confidence = probabilities[index, segment[0]:segment[1]].mean() if method == "probability" \
                        else scores[segment[0]:segment[1]].sum()
                    detections.append((index, clip.label, *segment, float(confidence)))
                    ground_truth.append((index, clip.label, *clip.segment))
                values.append(temporal_mean_ap(detections, ground_truth))
            table[setting][method] = values
    curves = {"probability": probabilities}
    for rule_suffix in ("", CONSERVING):
        curves["ceb_r" + rule_suffix] = sums["ceb_r" + rule_suffix]
        curves["probability_ceb_r" + rule_suffix] = _normalized(probabilities) + _normalized(sums["ceb_r" + rule_suffix])
    pointing = {"random": float(np.mean([clip.gt_length / clip.num_frames for clip in dataset_clips]))}  # its expectation
    for method, values in curves.items():
        pointing[method] = float(np.mean([temporal_pointing_hit(values[index], clip.segment)
                                          for index, clip in enumerate(dataset_clips)]))
    return {"lengths": lengths, "map": table, "pointing": pointing}


TEMPORAL_METHODS = ("probability", "eb_r", "ceb_r", "eb_r:conserving", "ceb_r:conserving")
POINTING_METHODS = ("random", "probability", "ceb_r", "probability_ceb_r", "ceb_r:conserving", "probability_ceb_r:conserving")


def _normalized(values):
    low, high = values.min(axis=1, keepdims=True), values.max(axis=1, keepdims=True)
    return (values - low) / np.maximum(high - low, 1e-12)


# ---------------------------------------------------------------- figures

def plot_curves(curves, path, caption, rule="authors"):
    figure, axis = plt.subplots(figsize=(7, 4))
    for name, colour, label in (("rand_gt", "tab:blue", "rand + GT"), ("gt_rand", "tab:green", "GT + rand")):
        values = curves[name]
        steps = np.arange(1, values.shape[1] + 1)
        mean, sd = values.mean(axis=0), values.std(axis=0)
        axis.plot(steps, mean, colour, label=f"{label} ({len(values)} clips)")
        axis.fill_between(steps, mean - sd, mean + sd, color=colour, alpha=0.2)
    axis.axhline(0, color="black", linewidth=0.6)
    axis.axvline(values.shape[1] / 2 + 0.5, color="gray", linestyle=":", linewidth=0.8)
    axis.set_xlabel("frame")
    axis.set_ylabel("sum of the cEB-R map")
    axis.legend()
    axis.set_title(f"Figure 7.6: sum of cEB-R maps over time (mean ± sd), {rule} rule", fontsize=10)
    figure.text(0.01, 0.01, caption, fontsize=6, wrap=True)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    from mindgap import storage  # as every mindgap import here: inside the function, TensorFlow starts late

    storage.savefig(figure, path, dpi=120)
    plt.close(figure)
    return path


# ---------------------------------------------------------------- tables

def _pct(value):
    return "–" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{100 * value:.1f}"


def _tolerance_text(settings):
    if settings.pointing_tolerance == "thesis-video":
        return f"the thesis's 15 px diameter circle on 240 px-high frames: 7.5 · {settings.frame_size} / 240"
    if settings.pointing_tolerance == "scaled":
        return f"Zhang et al.'s 15 px at 224 px: 15 · {settings.frame_size} / 224"
    return "fixed"


def markdown_report(results, settings, caption):
    lines = ["## Spatiotemporal grounding (thesis ch. 7) and web images for video (ch. 3)", "", f"*{caption}*", "",
             "### Accuracy", "", "| model | test accuracy (ours) | thesis (UCF101) |", "|---|---|---|"]
    accuracy = results["accuracy"]
    pairs = [(settings.recipe, accuracy)]
    if "filter study" in accuracy:
        pairs.append((f"{settings.filter_study_recipe}, §3.4's", accuracy["filter study"]))
    for start, values in pairs:
        for variant in FRAME_VARIANTS:
            lines.append(f"| Tiny-Frames ({start} start), {variant}: per frame / voting over a clip (centre view, ours) / "
                         f"voting over 10 views per frame (§3.5.1.1) / 5 views, no flips (ours) | "
                         f"{_pct(values[variant]['frame'])} / {_pct(values[variant]['voting'])} / "
                         f"{_pct(values[variant].get('voting_10_views'))} / {_pct(values[variant].get('voting_5_views'))} "
                         f"| VGG16 {THESIS_TABLE_3_2[variant]} (voting) |")
    for name in ("Tiny-LSTM", "Tiny-LSTM-tanh"):
        if name in accuracy:
            lines.append(f"| {name} (last step) | {_pct(accuracy[name])} | {THESIS_CNN_LSTM_ACCURACY if name == 'Tiny-LSTM' else '–'} |")
    lines += ["", "Video classification as §3.5.1.1: each test frame resized to 256/224 of the input, its four corners and "
              "centre and their horizontal flips (10 views) scored and averaged, the frame classified by the top score, "
              f"the clip by voting over its frames ({settings.test_views} of equal spacing, all of ours when fewer). Flips "
              "mirror a digit (not a class-preserving change here, unlike actions), so 5 views without flips are reported "
              "too. Frame CNNs fine-tuned from " + (
                  f"fc1/fc2 pretrained on {settings.head_pretrain_images} source renders (§3.4: VGG's fc6 came pretrained), "
                  "a new classifier" if settings.fc_pretrained else "fc1/fc2 trained from scratch") +
              f" on one frame in {settings.frame_stride} of each training clip" * (settings.frame_stride > 1) +
              "; batches of exactly half frames and half still images for video + images. Chapter 7's models (the "
              f"CNN-LSTM's start, the per-frame maps) and the per-class table below are the {settings.recipe} start's"
              + (f"; §3.4's conservative filters are counted on the {settings.filter_study_recipe} start's, a source "
                 "domain that differs from the frames" if settings.filter_study_recipe != settings.recipe else "") + ".",
              "", "### Table 7.1: spatial pointing game (%)", "",
              "| | " + " | ".join(LABELS[method] for method in SPATIAL_METHODS) + " | centre |",
              "|---|" + "---|" * (len(SPATIAL_METHODS) + 1),
              "| ours | " + " | ".join(_pct(results["spatial"][method]) for method in SPATIAL_METHODS)
              + f" | {_pct(results['spatial']['centre'])} |",
              f"| ours, the {results['spatial']['off_centre']['frames']} frames where the centre misses | " + " | ".join(
                  _pct(results["spatial"]["off_centre"][method]) for method in SPATIAL_METHODS) + " | 0.0 |",
              "| thesis (UCF101/THUMOS14) | " + " | ".join(str(THESIS_TABLE_7_1.get(method, "–")) for method in SPATIAL_METHODS)
              + " | – |", "",
              f"Every frame of the {results['counts']['test']} trimmed test clips; maps at `{settings.layer}` upsampled to the "
              f"frame; tolerance {results['tolerance_px']:.2f} px ({_tolerance_text(settings)}). EB, cEB, BP: "
              "the frames + images CNN on each frame; EB-R, cEB-R, BP-R: the CNN-LSTM queried with the GT class at the last "
              "step, EB-R and cEB-R by the authors' rule through the LSTM (their Caffe code) unless marked conserving (ours).",
              "", "Share of the EB-R mass (eq. 7.5, at the LSTM's input) on the first frame of the trimmed test clips "
              "(last step queried; 1/T would be even): " + ", ".join(
                  f"{rule} {_pct(results['frame_zero_share'][rule])} %" for rule in RULES)
              + f" (1/T = {100 / results['counts']['short_frames']:.1f} %).",
              "", "### Table 7.2: temporal detection, mAP at IoU 0.5 (%)", ""]
    temporal = results["temporal"]
    lengths = temporal["lengths"]
    thesis_lengths = (11, 41, 65)
    lines += ["| action length | GT length (ours / thesis) | " + " | ".join(
        f"{LABELS[method]} (ours / thesis)" for method in TEMPORAL_METHODS) + " |", "|---|---|" + "---|" * len(TEMPORAL_METHODS)]
    for setting in ("known", "unknown"):
        for index, length in enumerate(lengths):
            cells = []
            for method in TEMPORAL_METHODS:
                ours = temporal["map"][setting].get(method)
                theirs = THESIS_TABLE_7_2[setting].get(method)
                cells.append("–" if ours is None else f"{_pct(ours[index])} / {theirs[index] if theirs else '–'}")
            lines.append(f"| {setting} | {length} of {results['counts']['long_frames']} / {thesis_lengths[index]} of 128 | "
                         + " | ".join(cells) + " |")
    lines += ["", "One detection per clip (its GT class); score: the window's sum of S (probability baseline: its mean "
              "probability). Unknown length needs negative sums at the boundaries, so EB-R (non-negative) is not run there "
              "(as in the thesis).", "", "### Temporal pointing game (Table 7.3's measure, on our rand + GT + rand clips) (%)", "",
              "| | ours | thesis (THUMOS14) |", "|---|---|---|"]
    for method in POINTING_METHODS:
        lines.append(f"| {LABELS[method]} | {_pct(temporal['pointing'][method])} | {THESIS_TABLE_7_3.get(method, '–')} |")
    lines += ["", "Random: its expectation (GT length / clip length). Peak probability + cEB-R: the peak of the sum of the "
              "two curves, each min-max normalised per clip (ours; the thesis does not say how it combined them).", "",
              "### Chapter 3: test accuracy per class of the frame CNN (%, per frame)", "",
              "| class | video only | video + images | change |", "|---|---|---|---|"]
    for name, (only, both) in results["per_class"].items():
        lines.append(f"| {name} | {_pct(only)} | {_pct(both)} | {100 * (both - only):+.1f} |")
    lines += ["", "### Chapter 3 §3.4: conservative filters (alpha < 0.1 and Δ < value)", ""]
    for layer, entry in results["conservative"].items():
        header = " | ".join(f"Δ < {delta:.3g}" for delta in entry["deltas"])
        lines += [f"`{layer}` ({entry['filters']} filters; alpha < 0.1: video only {entry['low_alpha'][FRAME_VARIANTS[0]]}, "
                  f"video + images {entry['low_alpha'][FRAME_VARIANTS[1]]})", "", f"| | {header} |",
                  "|---|" + "---|" * len(entry["deltas"])]
        for variant in FRAME_VARIANTS:
            lines.append(f"| {variant} | " + " | ".join(str(value) for value in entry[variant]) + " |")
            lines.append(f"| {variant}, any alpha | " + " | ".join(str(value) for value in entry[f"{variant} (any alpha)"]) + " |")
        lines.append("")
    lines += ["Δ = ||ŵ_k − w_k|| of each filter's kernel (fc1: and bias) from the start of fine-tuning, at the 5/10/25/50 % "
              "quantiles of the video-only model's changes (the thesis uses 0.02–0.06 on VGG16); alpha = the share of video "
              f"frames among a filter's top {settings.top_activations} activations over a pool of {settings.pool_per_domain} "
              f"pretraining renders of the {settings.filter_study_recipe} start and as many video frames. Thesis: Table 3.4."]
    return "\n".join(lines)


# ---------------------------------------------------------------- the run

THESIS_CLAIMS = (
    # (the thesis's claim, A, B, where): each a path into one seed's results; A > B is the claim
    ("EB-R points better than EB (Table 7.1: 61.5 vs 55.8)", ("spatial", "eb_r"), ("spatial", "eb")),
    ("cEB-R points better than cEB (Table 7.1: 39.1 vs 37.0)", ("spatial", "ceb_r"), ("spatial", "ceb")),
    ("BP-R points better than BP (Table 7.1: 39.2 vs 37.3)", ("spatial", "bp_r"), ("spatial", "bp")),
    ("EB-R points better than cEB-R (Table 7.1: 61.5 vs 39.1)", ("spatial", "eb_r"), ("spatial", "ceb_r")),
    ("cEB-R localizes in time better than the probability, known length (Table 7.2, mean over lengths)",
     ("temporal", "map", "known", "ceb_r"), ("temporal", "map", "known", "probability")),
    ("cEB-R localizes in time better than EB-R, known length (Table 7.2, mean over lengths)",
     ("temporal", "map", "known", "ceb_r"), ("temporal", "map", "known", "eb_r")),
    ("cEB-R localizes in time better than the probability, unknown length (Table 7.2, mean over lengths)",
     ("temporal", "map", "unknown", "ceb_r"), ("temporal", "map", "unknown", "probability")),
    ("peak probability + cEB-R points in time better than the probability (Table 7.3: 77.4 vs 65.8)",
     ("temporal", "pointing", "probability_ceb_r"), ("temporal", "pointing", "probability")),
    ("web images raise the frame CNN's video accuracy (Table 3.2: 83.5 vs 77.8, voting over 10 views)",
     ("accuracy", "video + images", "voting_10_views"), ("accuracy", "video only", "voting_10_views")),
)


def _lookup(results, path):
    value = results
    for key in path:
        value = value[key]
    return value


def _value(results, path):
    return float(np.mean(_lookup(results, path)))  # a list per GT length: its mean


def seed_verdicts(per_seed):
    """The thesis's claims over the seeds' results: ``experiments.claims``' rows."""
    from experiments.claims import compare

    return [compare(text, [_value(results, better) for results in per_seed], [_value(results, other) for results in per_seed])
            for text, better, other in THESIS_CLAIMS]


def _spread(values):
    values = 100 * np.asarray(values, np.float64)
    return f"{values.mean():.1f} ± {values.std(ddof=1):.1f}" if len(values) > 1 else f"{values.mean():.1f}"


def seed_summary(per_seed):
    """Every table's numbers as mean ± sd (points) over the seeds' results, beside the thesis's: markdown lines."""
    seeds = len(per_seed)

    def spread(*path):
        return _spread([_lookup(results, path) for results in per_seed])

    lines = [f"### Over the {seeds} seeds (mean ± sd, %)", "", "| model | per frame | voting (centre view) | "
             "voting, 10 views (§3.5.1.1) | thesis (UCF101) |", "|---|---|---|---|---|"]
    for start, prefix in (("chapter 7's", ()), ("§3.4's", ("filter study",))):
        if prefix and prefix[0] not in per_seed[0]["accuracy"]:
            continue
        for variant in FRAME_VARIANTS:
            path = ("accuracy",) + prefix + (variant,)
            lines.append(f"| Tiny-Frames ({start} start), {variant} | {spread(*path, 'frame')} | {spread(*path, 'voting')} "
                         f"| {spread(*path, 'voting_10_views')} | VGG16 {THESIS_TABLE_3_2[variant]} |")
    for name in ("Tiny-LSTM", "Tiny-LSTM-tanh"):
        if name in per_seed[0]["accuracy"]:
            lines.append(f"| {name} (last step) | – | {spread('accuracy', name)} | – | "
                         f"{THESIS_CNN_LSTM_ACCURACY if name == 'Tiny-LSTM' else '–'} |")
    lines += ["", "Table 7.1, spatial pointing game:", "", "| | " + " | ".join(LABELS[method] for method in SPATIAL_METHODS)
              + " | centre |", "|---|" + "---|" * (len(SPATIAL_METHODS) + 1),
              "| all GT frames | " + " | ".join(spread("spatial", method) for method in SPATIAL_METHODS)
              + f" | {spread('spatial', 'centre')} |",
              "| frames where the centre misses | " + " | ".join(spread("spatial", "off_centre", method)
                                                             for method in SPATIAL_METHODS) + " | 0.0 |",
              "| thesis | " + " | ".join(str(THESIS_TABLE_7_1.get(method, "–")) for method in SPATIAL_METHODS) + " | – |",
              "", "Share of the EB-R mass on the first frame: " + ", ".join(
                  f"{rule} {spread('frame_zero_share', rule)}" for rule in RULES) + ".", "",
              "Table 7.2, mAP at IoU 0.5 (ours / thesis):", "",
              "| action length | GT length | " + " | ".join(LABELS[method] for method in TEMPORAL_METHODS) + " |",
              "|---|---|" + "---|" * len(TEMPORAL_METHODS)]
    for setting in ("known", "unknown"):
        for index, length in enumerate(per_seed[0]["temporal"]["lengths"]):
            cells = []
            for method in TEMPORAL_METHODS:
                if method not in per_seed[0]["temporal"]["map"][setting]:
                    cells.append("–")
                    continue
                theirs = THESIS_TABLE_7_2[setting].get(method)
                cells.append(f"{_spread([results['temporal']['map'][setting][method][index] for results in per_seed])}"
                             f" / {theirs[index] if theirs else '–'}")
            lines.append(f"| {setting} | {length} | " + " | ".join(cells) + " |")
    lines += ["", "Temporal pointing game (ours / thesis): " + ", ".join(
        f"{LABELS[method]} {spread('temporal', 'pointing', method)} / {THESIS_TABLE_7_3.get(method, '–')}"
        for method in POINTING_METHODS) + "."]
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extra-small", action="store_true", help="a handful of tiny clips and tiny models (tests)")
    parser.add_argument("--seeds", type=int, default=None,
                        help="training seeds (0 … N-1; default 3, extra-small 1); the data set is the same for all")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--no-tanh", action="store_true", help="skip the tanh CNN-LSTM (its accuracy only)")
    parser.add_argument("--pointing-tolerance", choices=("thesis-video", "scaled"), default="thesis-video",
                        help="Table 7.1's slack: the thesis's 15 px diameter circle scaled with the frame (default) or "
                             "Zhang et al.'s 15 px at 224 px, the image pointing game's")
    args = parser.parse_args(argv)
    seeds = args.seeds if args.seeds is not None else (1 if args.extra_small else 3)
    if seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {seeds}.")
    started, cpu_started = time.perf_counter(), time.process_time()
    settings = dataclasses.replace(MODES["extra-small" if args.extra_small else "quick"],
                                   pointing_tolerance=args.pointing_tolerance)
    runs_dir = os.path.abspath(args.runs_dir)
    out_dir = os.path.join(runs_dir, "spatiotemporal" + ("" if settings.mode == "quick" else f"-{settings.mode}"))
    command = " ".join(["python -m experiments.spatiotemporal", *(argv if argv is not None else sys.argv[1:])])
    per_seed = []
    for seed in range(seeds):
        log(f"seed {seed} of 0 … {seeds - 1}")
        per_seed.append(run_seed(dataclasses.replace(settings, seed=seed), runs_dir,
                                 out_dir if seeds == 1 else os.path.join(out_dir, f"seed{seed}"), args.no_tanh, command))
    if seeds == 1:
        return per_seed[0]
    from experiments.claims import claims_table
    from experiments.common import write_outputs

    verdicts = seed_verdicts(per_seed)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    with open(os.path.join(out_dir, "seed0", "table.md")) as handle:
        seed_zero = handle.read().replace("## Spatiotemporal grounding", "## Seed 0: Spatiotemporal grounding", 1)
    markdown = "\n".join([
        f"## Spatiotemporal grounding (thesis ch. 7, ch. 3): the thesis's claims over {seeds} seeds", "",
        claims_table(verdicts, seeds), "",
        "A, B: the two sides of the claim, mean ± sd over the training seeds (the data set is the same); A − B paired by "
        "seed, 95 % interval from Student's t (`experiments.claims`). Known/unknown length: the mean mAP over the three "
        "GT lengths. EB-R and cEB-R by the authors' rule through the LSTM. Each seed's full report: `seed<N>/table.md`; "
        "below, seed 0's, with its figures in `seed0/`.", "", *seed_summary(per_seed), "",
        f"Experiment: {seeds} seeds, {wall:.0f} s wall, {cpu:.0f} CPU-seconds of this process "
        f"({100 * cpu / max(wall, 1e-9):.0f} % of one core; cached models cost nothing).", "", seed_zero])
    write_outputs(out_dir, settings, {"experiment": "spatiotemporal", "seeds": seeds, "command": command},
                  {"verdicts": verdicts, "seeds": per_seed, "wall_seconds": wall, "cpu_seconds": cpu}, markdown)
    return {"verdicts": verdicts, "seeds": per_seed}


def train_frame_pair(settings, dataset, train_clips, web, web_labels, video_dir, web_dir, models_dir):
    """Both frame CNNs (video only; video + images) from ``settings.recipe``'s start, cached under ``models_dir``.

    They train on every ``settings.frame_stride``-th frame of each training clip. Returns (models, initial weights,
    paths), each by variant."""
    class_names = list(dataset.class_names)
    head_path = None
    if settings.fc_pretrained:
        head_path = pretrain_frame_head(settings, dataset.num_classes, class_names, os.path.join(
            models_dir, f"Tiny-Frames-source-{_key(dataclasses.asdict(settings), class_names)}.keras"))
    strided = train_clips[:, ::settings.frame_stride]
    frames = strided.reshape(-1, *train_clips.shape[2:])
    labels = np.repeat([clip.label for clip in dataset.train], strided.shape[1])
    models, initial, paths = {}, {}, {}
    for variant in FRAME_VARIANTS:
        paths[variant] = os.path.join(models_dir, f"Tiny-Frames-{variant.replace(' ', '').replace('+', '-')}-"
                                                  f"{_key(video_dir, web_dir, dataclasses.asdict(settings))}.keras")
        models[variant], initial[variant] = train_frame_cnn(
            settings, f"{variant}, {settings.recipe} start", frames, labels, web if variant != "video only" else None,
            web_labels, dataset.num_classes, class_names, paths[variant], head_path)
    return models, initial, paths


def frame_accuracy(models, test_clips, test_labels, test_views):
    """Test accuracy of each frame CNN per frame, by voting over a clip's frames (centre view) and over §3.5.1.1's 10
    and 5 views; returns (accuracy by variant, each variant's class per test frame)."""
    size = test_clips.shape[2]
    accuracy, predictions = {}, {}
    for variant, model in models.items():
        probabilities = np.asarray(model.predict(_preprocess(test_clips.reshape(-1, size, size, 3)), verbose=0, batch_size=256))
        num_classes = probabilities.shape[-1]
        predicted = probabilities.argmax(axis=1).reshape(test_clips.shape[:2])
        predictions[variant] = predicted
        votes = np.array([np.bincount(row, minlength=num_classes).argmax() for row in predicted])
        accuracy[variant] = {"frame": float((predicted == test_labels[:, None]).mean()), "voting": float((votes == test_labels).mean())}
        for views in (10, 5):  # §3.5.1.1: 10 views (corners, centre, flips) averaged per frame, then voting; 5: no flips
            scores = view_probabilities(model, test_clips, views, test_views)
            accuracy[variant][f"voting_{views}_views"] = float((vote(scores, num_classes) == test_labels).mean())
    return accuracy, predictions


def run_seed(settings, runs_dir, out_dir, no_tanh, command):
    """One training seed of the whole experiment; writes its report to ``out_dir`` and returns its results."""
    started, cpu_started = time.perf_counter(), time.process_time()
    models_dir = os.path.join(runs_dir, "models")
    os.makedirs(out_dir, exist_ok=True)
    os.makedirs(models_dir, exist_ok=True)
    video_dir, web_dir, dataset = prepare_data(settings, runs_dir)
    size, class_names = settings.frame_size, list(dataset.class_names)

    # Chapter 3: the frame CNN on video frames only, and on frames + still images
    train_clips = _frames(dataset.train, size)
    train_frames = train_clips.reshape(-1, size, size, 3)
    train_labels = np.repeat([clip.label for clip in dataset.train], train_clips.shape[1])
    web, web_labels = _web_images(web_dir, size)
    pair = dict(dataset=dataset, train_clips=train_clips, web=web, web_labels=web_labels, video_dir=video_dir,
                web_dir=web_dir, models_dir=models_dir)
    frame_models, initial, paths = train_frame_pair(settings, **pair)
    test_clips = _frames(dataset.test, size)
    test_labels = np.asarray([clip.label for clip in dataset.test])
    accuracy, frame_predictions = frame_accuracy(frame_models, test_clips, test_labels, settings.test_views)
    per_class = {}
    for label, name in enumerate(class_names):
        rows = test_labels == label
        per_class[name] = tuple(float((frame_predictions[variant][rows] == label).mean()) for variant in FRAME_VARIANTS)
    log("conservative filters (§3.4)")
    from mindgap.pretrain import RECIPES, pretraining_canvases

    # §3.4 on frame CNNs from a source domain that differs from the frames (the same models when the recipes agree)
    study_models, study_initial = frame_models, initial
    if settings.filter_study_recipe != settings.recipe:
        study_settings = dataclasses.replace(settings, recipe=settings.filter_study_recipe)
        study_models, study_initial, _ = train_frame_pair(study_settings, **pair)
        accuracy["filter study"], _ = frame_accuracy(study_models, test_clips, test_labels, settings.test_views)
    # The source half of the pool: renders of the frame CNN's pretraining domain (as ImageNet images in the thesis).
    renders, _ = pretraining_canvases(dict(RECIPES[settings.filter_study_recipe], image_size=size),
                                      settings.pool_per_domain, seed=settings.seed + 7)
    pool_frames = train_frames[np.random.default_rng(settings.seed).choice(len(train_frames), settings.pool_per_domain, replace=False)]
    pool = np.concatenate([renders[..., ::-1], pool_frames])
    is_video = np.concatenate([np.zeros(len(renders), bool), np.ones(len(pool_frames), bool)])
    conservative = conservative_filter_study(study_models, study_initial, pool, is_video, settings.top_activations)

    # Chapter 7: the CNN-LSTM, fine-tuned from the frames + images CNN with mindgap.train
    lstm, lstm_dir = train_cnn_lstm(settings, runs_dir, video_dir, paths["video + images"], "relu")
    accuracy["Tiny-LSTM"] = float((_predict(lstm, test_clips)[:, -1].argmax(axis=1) == test_labels).mean())
    if not no_tanh:
        tanh, _ = train_cnn_lstm(settings, runs_dir, video_dir, paths["video + images"], "tanh")
        accuracy["Tiny-LSTM-tanh"] = float((_predict(tanh, test_clips)[:, -1].argmax(axis=1) == test_labels).mean())
    log(f"accuracy: {json.dumps(accuracy)}")
    log("spatial pointing game (Table 7.1)")
    spatial = spatial_pointing_game(frame_models["video + images"], lstm, test_clips, dataset.test, settings.layer,
                                    settings.pointing_tolerance)
    from mindgap.metrics import pointing_tolerance

    tolerance_px = pointing_tolerance(settings.pointing_tolerance, (size, size))
    share = {rule: float(frame_zero_share(lstm, test_clips, test_labels, rule).mean()) for rule in RULES}
    log(f"share of the EB-R mass on frame 0: {json.dumps(share)}")
    log("temporal curves (Figure 7.6) and localization (Table 7.2)")
    curves = {rule: {} for rule in RULES}
    for name in ("gt_rand", "rand_gt"):
        clips = _frames(dataset.split(name), size)
        for rule in RULES:
            method = "ceb_r" if rule == "authors" else "ceb_r" + CONSERVING
            curves[rule][name] = temporal_curves(lstm, clips, dataset.split(name), settings.layer, method)
    long_clips = _frames(dataset.split("rand_gt_rand"), size)
    temporal = temporal_localization(lstm, long_clips, dataset.split("rand_gt_rand"), settings.layer)

    counts = {name: len(clips) for name, clips in dataset.splits.items()}
    counts["long_frames"] = settings.video["long_frames"]
    counts["short_frames"] = settings.video["short_frames"]
    caption = (f"{settings.mode} mode: embedded video set ({counts['train']} trimmed training clips of "
               f"{settings.video['short_frames']} frames at {size}², {counts['test']} test clips; {counts['gt_rand']} GT + rand, "
               f"{counts['rand_gt']} rand + GT, {counts['rand_gt_rand']} rand + GT + rand clips of {settings.video['long_frames']} "
               f"frames); Tiny-Frames (Tiny backbone of the {settings.recipe} start, fc1/fc2 of {settings.fc_units}) "
               f"{settings.frame_epochs} epochs; "
               f"Tiny-LSTM ({settings.lstm_units} units) {settings.lstm_epochs} epochs by mindgap.train. The thesis's numbers are "
               "VGG16 on UCF101 / THUMOS14: only the orderings compare.")
    figures = {"figure_7_6": plot_curves(curves["authors"], os.path.join(out_dir, "figure_7_6.png"), caption, "authors"),
               "figure_7_6_conserving": plot_curves(curves["conserving"], os.path.join(out_dir, "figure_7_6_conserving.png"),
                                                    caption, "conserving (ours)")}
    clip_index = next((index for index, clip in enumerate(dataset.split("rand_gt"))), 0)
    clip = dataset.split("rand_gt")[clip_index]
    clip_frames = _frames([clip], size)
    other = int(clip.frame_labels[0])
    maps = [_saliency(lstm, clip_frames, [label], "ceb_r", settings.layer)[0] for label in (clip.label, other)]
    from mindgap.plots import plot_clip_grounding
    from mindgap.temporal import frame_sums, localize_unknown_length

    figures["figure_7_5"] = plot_clip_grounding(
        clip_frames[0], maps, [f"cEB-R '{class_names[label]}'" for label in (clip.label, other)],
        os.path.join(out_dir, "figure_7_5.png"), segments=[localize_unknown_length(frame_sums(values)) for values in maps],
        title=f"Figure 7.5: cEB-R of two queried actions in {clip.name}",
        note=f"'{class_names[other]}' in frames 1–{clip.segment[0]}, then '{class_names[clip.label]}' in frames "
             f"{clip.segment[0] + 1}–{clip.num_frames}; shaded: the segment localized for each query (unknown length)")
    results = {"accuracy": accuracy, "spatial": spatial, "temporal": temporal, "per_class": per_class,
               "conservative": conservative, "counts": counts, "tolerance_px": tolerance_px, "frame_zero_share": share,
               "curves": {rule: {name: {"mean": values.mean(axis=0).tolist(), "sd": values.std(axis=0).tolist()}
                                 for name, values in rule_curves.items()} for rule, rule_curves in curves.items()},
               "figures": figures, "lstm_run": lstm_dir}
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    markdown = markdown_report(results, settings, caption) + (
        f"\n\nExperiment: {wall:.0f} s wall, {cpu:.0f} CPU-seconds ({100 * cpu / max(wall, 1e-9):.0f} % of one core; "
        f"cached models cost nothing). Figures: {', '.join(os.path.basename(path) for path in figures.values())}.")
    from experiments.common import write_outputs

    write_outputs(out_dir, settings, {"experiment": "spatiotemporal", "video_dir": video_dir, "web_dir": web_dir,
                                      "command": command}, {**results, "wall_seconds": wall, "cpu_seconds": cpu}, markdown)
    return results


if __name__ == "__main__":
    from experiments import common

    common.run_main(main)
