"""Facial emotion from video with web images (thesis §3.6, Table 3.10) and the ablation the thesis does not report.

    python -m experiments.emotion                  # quick mode on the embedded stand-in (3 seeds, minutes on 2 cores)
    python -m experiments.emotion --extra-small    # seconds (tests)
    python -m experiments.emotion --fer-dir FER --afew-dir AFEW [--detector haar --cascade FILE]   # the real data

**Data.**  Web images: a ``fer2013`` layout (FER2013 + FER+ votes); videos: an ``afew``
layout (one folder per emotion of clips).  Quick mode writes the stand-in
(``mindgap.data.faces``: drawn faces that test the pipeline, not human emotion) and reads it
through the same two readers.  Every image and frame is checked before anything trains.

**Pipeline** (``mindgap.emotion``): per frame, the face box (the stand-in's known box, or the
largest Haar detection with ``--detector haar``), crop, 48² grey, histogram equalisation; web
images are grey-levelled and equalised alike.  A spatial CNN (``Tiny-GAP-Zhou``, the shipped
pretrained Tiny backbone) is trained with ``mindgap.train`` on the face crops of sampled
training frames and/or the web images, with Probabilistic Label Drawing (``label_drawing=
"probabilistic"``) or the majority label; its validation split is the frames of one held-out
training clip per emotion.  Features of every frame at the named layers (``gap``: the pooled
maps, like the thesis's ResNet pool; ``backbone``: the backbone's output averaged over space),
each SSR + L2, concatenated; per video the mean, variance, min and max over its frames,
L2-normalised; a one-vs-rest ``LinearSVC`` with C by 5-fold cross-validation over the thesis's
range, trained on the training clips, scored on the validation and test clips.

**Rows.**  Table 3.10: the baseline (here: uniform LBP histograms per frame, the same statistics
and SVM; the challenge's baseline is LBP-TOP with a kernel SVM) and the system (frames + web
images, PLD).  Ablation: frames only, web images only, frames + web images with majority labels,
and the CNN's own vote (mean probability over frames) for the system.  Per-class accuracy, the
confusion matrix (figure), and the chapter-3 finding (frames + web images against frames only)
as the paired difference over seeds with its 95 % interval.
"""

import argparse
import dataclasses
import hashlib
import json
import os
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

THESIS_TABLE_3_10 = {"baseline": (38.81, 40.47), "system": (59.42, 56.66)}  # validation / test accuracy, %
VARIANTS = {  # name → (training images, label drawing)
    "frames": ("frames", "majority"),
    "web": ("web", "probabilistic"),
    "frames+web majority": ("frames+web", "majority"),
    "frames+web PLD": ("frames+web", "probabilistic"),
}
SYSTEM = "frames+web PLD"
MODEL_NAME = "Tiny-GAP-Zhou"


@dataclasses.dataclass
class Settings:
    mode: str
    standin: dict | None
    seeds: tuple = (0, 1, 2)
    image_size: int = 48
    epochs: int = 6
    freeze_epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 0.001
    zhou_units: int = 171  # experiments.common.QUICK_ZHOU_UNITS: Zhou's 1,024 maps on 768 channels, in proportion to Tiny's 128
    train_frames_per_clip: int = 8  # training frames sampled per clip for the CNN (the thesis: "sampled AFEW frames")
    frames_per_clip: int | None = None  # frames read per clip (None: all)
    layers: tuple = ("gap", "backbone")
    c_grid: tuple = (0.5, 1.0, 2.0)
    detector: str = "known"  # known | haar
    cascade: str | None = None
    pretrained: bool = True


MODES = {
    "quick": Settings("quick", dict(seed=0, web_per_class=(60, 10, 10), clips_per_class=(8, 5, 8), frames=16)),
    "extra-small": Settings("extra-small", dict(seed=0, web_per_class=(3, 1, 1), clips_per_class=(3, 1, 2), frames=4),
                            seeds=(0,), epochs=1, freeze_epochs=0, batch_size=16, zhou_units=16, train_frames_per_clip=2),
    "real": Settings("real", None, epochs=20, freeze_epochs=2, frames_per_clip=32, train_frames_per_clip=8, detector="haar"),
}


def log(message):
    print(f"[emotion {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _recipe(settings):
    """The settings a crop set or a trained CNN depends on (all but the list of seeds)."""
    return {name: value for name, value in dataclasses.asdict(settings).items() if name != "seeds"}


def _key(*parts):
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:10]


# ---------------------------------------------------------------- data: read, check, crop

def read_sets(settings, web_dir, video_dir):
    from mindgap.data import load_dataset

    web, _ = load_dataset(web_dir, format="fer2013", require=("train",))
    video, _ = load_dataset(video_dir, format="afew", require=("train",), frames_per_clip=settings.frames_per_clip)
    return web, video


def clip_faces(settings, records):
    """{clip: (label, (T, s, s) grey equalised crops)} of the frames ``records`` (AFEW layout), and the detection count."""
    import cv2

    from mindgap.data.afew import group_clips
    from mindgap.emotion import face_boxes, load_cascade, preprocess_face

    cascade = load_cascade(settings.cascade) if settings.detector == "haar" else None
    faces, detected, total = {}, 0, 0
    for clip, frames in group_clips(records).items():
        images = [cv2.imread(record.path) for record in frames]
        known = [record.boxes[0] for record in frames] if settings.detector == "known" else None
        if known is not None and any(len(record.boxes) == 0 for record in frames):
            raise ValueError(f"{clip} has frames without a known face box; use --detector haar.")
        boxes, found = face_boxes(images, cascade, known)
        detected, total = detected + found, total + len(images)
        faces[clip] = (frames[0].label, np.stack([preprocess_face(image, box, settings.image_size) for image, box in zip(images, boxes)]))
    return faces, (detected, total)


def web_faces(settings, records):
    import cv2

    from mindgap.emotion import equalize_histogram, to_grayscale

    size = settings.image_size
    return [equalize_histogram(cv2.resize(to_grayscale(cv2.imread(record.path)), (size, size), interpolation=cv2.INTER_AREA))
            for record in records]


def write_crops(root, web_train, web_images, clips):
    """All face crops as a class-folder set (``votes.csv`` for the web images); returns {kind: [relative paths]}."""
    import cv2

    from mindgap.data.emotions import EMOTIONS
    from mindgap.data.folders import VOTES_FILE, write_votes_csv

    if os.path.isfile(os.path.join(root, "done.json")):
        with open(os.path.join(root, "done.json")) as handle:
            return json.load(handle)
    for emotion in EMOTIONS:
        os.makedirs(os.path.join(root, emotion), exist_ok=True)
    written, votes = {"web": [], "clips": {}}, []
    for index, (record, face) in enumerate(zip(web_train, web_images)):
        relative = f"{EMOTIONS[record.label]}/web{index:06d}.png"
        cv2.imwrite(os.path.join(root, relative), face)
        written["web"].append(relative)
        if record.votes is not None:
            votes.append((relative, record.votes))
    for clip_index, (clip, (label, faces)) in enumerate(clips.items()):
        paths = []
        for frame_index, face in enumerate(faces):
            relative = f"{EMOTIONS[label]}/clip{clip_index:05d}_{frame_index:04d}.png"
            cv2.imwrite(os.path.join(root, relative), face)
            paths.append(relative)
        written["clips"][clip] = paths
    write_votes_csv(os.path.join(root, VOTES_FILE), EMOTIONS, votes)
    with open(os.path.join(root, "done.json"), "w") as handle:
        json.dump(written, handle)
    return written


def held_out_clips(train_clips):
    """One training clip per emotion (its last) held out as the CNN's validation frames."""
    last = {}
    for clip, (label, _) in train_clips.items():
        last[label] = clip
    return set(last.values())


def variant_root(crops_root, variant_dir, written, kind, train_clips, held_out, frames_per_clip):
    """A class-folder set sharing the crops (symlinked class folders) with its own ``splits/``."""
    from mindgap.data.afew import keep_evenly
    from mindgap.data.emotions import EMOTIONS
    from mindgap.data.folders import VOTES_FILE

    os.makedirs(os.path.join(variant_dir, "splits"), exist_ok=True)
    for emotion in EMOTIONS:
        link = os.path.join(variant_dir, emotion)
        if not os.path.islink(link):
            os.symlink(os.path.join(crops_root, emotion), link)
    if not os.path.lexists(os.path.join(variant_dir, VOTES_FILE)):
        os.symlink(os.path.join(crops_root, VOTES_FILE), os.path.join(variant_dir, VOTES_FILE))
    train = list(written["web"]) if "web" in kind else []
    if "frames" in kind:
        for clip in train_clips:
            if clip not in held_out:
                paths = written["clips"][clip]
                train += [paths[index] for index in keep_evenly(len(paths), frames_per_clip)]
    val = [path for clip in sorted(held_out) for path in written["clips"][clip]]
    for split, lines in (("train", train), ("val", val)):
        with open(os.path.join(variant_dir, "splits", f"{split}.txt"), "w") as handle:
            handle.write("".join(f"{line}\n" for line in lines))
    return variant_dir


# ---------------------------------------------------------------- the CNNs, features, SVM

def train_cnn(settings, data_dir, out_dir, drawing, seed):
    import mindgap
    from mindgap.training import TrainConfig

    weights = None
    if settings.pretrained:
        from mindgap.pretrain import pretrained_tiny_weights

        weights = pretrained_tiny_weights(verbose=0)
    config = TrainConfig().replace(
        image_size=settings.image_size, epochs=settings.epochs, freeze_epochs=settings.freeze_epochs,
        batch_size=settings.batch_size, learning_rate=settings.learning_rate, lr_decay_factor=0.7, lr_decay_every=1,
        zhou_units=settings.zhou_units, weights=weights, seed=seed, label_drawing=drawing, localization_images=0,
        snapshot_images=0, tensorboard=False, precise_bn_batches=10, verbose=0)
    result = mindgap.train(MODEL_NAME, data_dir, out_dir, config=config)
    return result.best_model(), result.history


def evaluate_features(settings, features, labels, seed):
    """{split: accuracy, predictions}, the SVM's C and its cross-validation scores, for per-video ``features``."""
    from mindgap.emotion import fit_video_classifier

    classifier = fit_video_classifier(features["train"], labels["train"], settings.c_grid, seed=seed)
    result = {"C": classifier.c, "cv_accuracy": classifier.cv_accuracy}
    for split in ("val", "test"):
        if len(labels[split]):
            predicted = classifier.predict(features[split])
            result[split] = float(np.mean(predicted == labels[split]))
            result[f"{split}_predicted"] = predicted.tolist()
    return result


def per_video(clips, encode):
    """(n, 4·D) encoded videos: ``encode`` runs once on every frame of every clip (one batched pass), then per-clip statistics."""
    from mindgap.emotion import encode_videos

    faces = [faces for _, faces in clips.values()]
    features = encode(np.concatenate(faces))
    return encode_videos(np.split(features, np.cumsum([len(clip) for clip in faces])[:-1]))


def cnn_vote(model, clips):
    """Each clip's class by the CNN alone: the mean of its frames' probabilities (one batched pass)."""
    from mindgap.data.pipeline import preprocess

    faces = [faces for _, faces in clips.values()]
    probabilities = model.predict(preprocess(np.repeat(np.concatenate(faces)[..., None], 3, axis=-1)).numpy(), batch_size=256, verbose=0)
    return np.asarray([int(np.argmax(part.mean(0))) for part in np.split(probabilities, np.cumsum([len(clip) for clip in faces])[:-1])])


# ---------------------------------------------------------------- report

def per_class(labels, predicted, num_classes):
    """Accuracy of each class (None without a video of it), by ``mindgap.metrics.per_class_table`` on one-hot predictions."""
    from mindgap.metrics import per_class_table

    rows = per_class_table(labels, np.eye(num_classes)[predicted])
    return [row["accuracy"] if row["support"] else None for row in rows]


def plot_confusion(matrix, class_names, title, path):
    figure, axis = plt.subplots(figsize=(5.2, 4.6))
    rates = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    axis.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for row in range(len(class_names)):
        for column in range(len(class_names)):
            axis.text(column, row, str(matrix[row, column]), ha="center", va="center", fontsize=8,
                      color="white" if rates[row, column] > 0.6 else "black")
    axis.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    axis.set_yticks(range(len(class_names)), class_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_samples(web_train, web_images, clips, class_names, path, per_class_web=4, clip_frames=6):
    """One row per emotion: web images (the CNN's input) and the face crops of one training clip (onset → offset)."""
    figure, axes = plt.subplots(len(class_names), per_class_web + clip_frames, figsize=(1.0 * (per_class_web + clip_frames), 1.05 * len(class_names)))
    first_clip = {}
    for clip, (label, faces) in clips.items():
        first_clip.setdefault(label, faces)
    for label, name in enumerate(class_names):
        web = [image for record, image in zip(web_train, web_images) if record.label == label][:per_class_web]
        faces = first_clip.get(label)
        frames = [] if faces is None else [faces[index] for index in np.linspace(0, len(faces) - 1, clip_frames).round().astype(int)]
        for column, axis in enumerate(axes[label]):
            picture = (web + [None] * (per_class_web - len(web)))[column] if column < per_class_web else \
                (frames + [None] * clip_frames)[column - per_class_web]
            if picture is not None:
                axis.imshow(picture, cmap="gray", vmin=0, vmax=255)
            axis.set_xticks([])
            axis.set_yticks([])
        axes[label][0].set_ylabel(name, fontsize=8)
    figure.subplots_adjust(left=0.07, right=0.99, bottom=0.01, top=0.94, wspace=0.05, hspace=0.08)
    figure.text(0.07, 0.965, "web images (apex)", fontsize=8)
    figure.text(0.07 + 0.92 * per_class_web / (per_class_web + clip_frames), 0.965,
                "one training clip: face crops, onset → apex → offset", fontsize=8)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_saliency(model, clips, class_names, path, per_class=2):
    """The thesis's Figure 4.3 on the stand-in: cEB and the CAM of the true emotion on the middle frame of test clips."""
    import mindgap

    chosen = {}
    for label, faces in clips.values():
        if len(chosen.setdefault(label, [])) < per_class:
            chosen[label].append(faces[len(faces) // 2])
    labels = [label for label in sorted(chosen) for _ in chosen[label]]
    faces = np.stack([face for label in sorted(chosen) for face in chosen[label]])
    inputs = mindgap.data.pipeline.preprocess(np.repeat(faces[..., None], 3, axis=-1)).numpy()
    predicted = model.predict(inputs, verbose=0).argmax(1)
    maps = {method: mindgap.saliency.compute(model, inputs, np.asarray(labels)[:, None], method=method, upsample=True)[..., 0]
            for method in ("ceb", "cam")}
    figure, axes = plt.subplots(3, len(faces), figsize=(1.3 * len(faces), 4.2), squeeze=False)
    for column, face in enumerate(faces):
        axes[0, column].imshow(face, cmap="gray")
        axes[0, column].set_title(f"{class_names[labels[column]][:5]} → {class_names[predicted[column]][:5]}", fontsize=7)
        for row, method in enumerate(("ceb", "cam"), start=1):
            axes[row, column].imshow(face, cmap="gray")
            axes[row, column].imshow(maps[method][column], cmap="jet", alpha=0.45)
    for axis in axes.ravel():
        axis.set_xticks([])
        axis.set_yticks([])
    axes[0, 0].set_ylabel("face (true → predicted)", fontsize=7)
    axes[1, 0].set_ylabel("cEB, true class", fontsize=7)
    axes[2, 0].set_ylabel("CAM, true class", fontsize=7)
    figure.tight_layout(pad=0.3)
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _spread(values):
    values = 100 * np.asarray([value for value in values if value is not None], np.float64)
    if not len(values):
        return "–"
    return f"{values.mean():.1f} ± {values.std(ddof=1):.1f}" if len(values) > 1 else f"{values.mean():.1f}"


def report(results, settings, class_names, counts, detection, seconds):
    from experiments.claims import paired_interval, verdict

    seeds = len(settings.seeds)
    rows = results["rows"]
    lines = [f"## Emotion from video with web images (thesis §3.6, Table 3.10), {settings.mode} mode, {seeds} seed(s)", "",
             "| approach | validation acc. % (ours) | test acc. % (ours) | thesis validation / test % |", "|---|---|---|---|",
             f"| chance (7 classes) | {100 / len(class_names):.1f} | {100 / len(class_names):.1f} | – |"]
    labels = {"baseline": "baseline: uniform LBP per frame + statistics + LinearSVC (ours; the challenge's: LBP-TOP)",
              SYSTEM: "system: CNN features (gap + backbone, SSR + L2) + statistics + LinearSVC, frames + web images, PLD",
              "cnn vote": "the system's CNN alone: mean probability over frames",
              "frames": "ablation: CNN trained on frames only",
              "web": "ablation: CNN trained on web images only (PLD)",
              "frames+web majority": "ablation: frames + web images, majority-vote labels"}
    thesis = {"baseline": THESIS_TABLE_3_10["baseline"], SYSTEM: THESIS_TABLE_3_10["system"]}
    for name in ("baseline", SYSTEM, "cnn vote", "frames", "web", "frames+web majority"):
        values = rows[name]
        theirs = thesis.get(name)
        lines.append(f"| {labels[name]} | {_spread([run.get('val') for run in values])} | {_spread([run.get('test') for run in values])} | "
                     f"{'–' if theirs is None else f'{theirs[0]:.2f} / {theirs[1]:.2f}'} |")
    findings = []
    for better, other, text in ((SYSTEM, "frames", "web images help a spatial CNN trained on video frames (chapter 3)"),
                                (SYSTEM, "web", "video frames help a CNN trained on web images"),
                                (SYSTEM, "frames+web majority", "PLD beats majority-vote labels"),
                                (SYSTEM, "baseline", "the system beats the LBP baseline")):
        for split in ("val", "test"):
            differences = [a[split] - b[split] for a, b in zip(rows[better], rows[other]) if split in a and split in b]
            if not differences:
                continue
            mean, low, high = paired_interval(differences)
            interval = "no interval at N = 1" if low is None else f"95 % interval [{100 * low:+.1f}, {100 * high:+.1f}]"
            findings.append(f"| {text} | {split} | {100 * mean:+.1f} ({interval}) | **{verdict(low, high)}** |")
    lines += ["", f"| finding | split | difference, points, mean over {seeds} seed(s) | verdict |", "|---|---|---|---|", *findings]
    system_runs = rows[SYSTEM]
    lines += ["", "Per-class test accuracy % of the system (mean over seeds):", "",
              "| " + " | ".join(class_names) + " |", "|" + "---|" * len(class_names),
              "| " + " | ".join(_spread([run["per_class_test"][index] for run in system_runs if "per_class_test" in run])
                                for index in range(len(class_names))) + " |"]
    lines += ["", f"*{settings.mode} mode: {counts}; face boxes: "
              + ("the stand-in's known boxes" if settings.detector == "known" else f"Haar cascade, {detection[0]} of {detection[1]} frames with a detection")
              + f"; {MODEL_NAME} at {settings.image_size}² (pretrained Tiny backbone), {settings.epochs} epochs "
              f"({settings.freeze_epochs} frozen), batch {settings.batch_size}, lr {settings.learning_rate} ×0.7 per epoch; "
              f"{settings.train_frames_per_clip} training frames per clip; features at {', '.join(settings.layers)}; "
              f"LinearSVC one vs rest, C in {list(settings.c_grid)} by 5-fold CV on the training videos; "
              f"seeds {list(settings.seeds)}; wall {seconds[0]:.0f} s, CPU {seconds[1]:.0f} s ({100 * seconds[1] / max(seconds[0], 1e-9):.0f} %).*"]
    if settings.standin is not None:
        lines.append("\n*The stand-in is drawn faces (mindgap.data.faces): these numbers test the pipeline, not human emotion.*")
    return "\n".join(lines)


# ---------------------------------------------------------------- main

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extra-small", action="store_true", help="a handful of faces and one epoch (tests)")
    parser.add_argument("--fer-dir", default=None, help="FER2013 folder (fer2013.csv, fer2013new.csv): the web images")
    parser.add_argument("--afew-dir", default=None, help="AFEW folder (Train_AFEW/, Val_AFEW/ …): the videos")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--detector", choices=("known", "haar"), default=None, help="face boxes: the layout's known boxes or Haar")
    parser.add_argument("--cascade", default=None, help="a Haar cascade XML (haarcascade_frontalface_default.xml)")
    parser.add_argument("--layers", nargs="+", default=None, help="the CNN's layers whose features are concatenated (default gap backbone)")
    args = parser.parse_args(argv)
    if bool(args.fer_dir) != bool(args.afew_dir):
        parser.error("--fer-dir and --afew-dir go together (the real data needs both)")
    mode = "real" if args.fer_dir else "extra-small" if args.extra_small else "quick"
    settings = dataclasses.replace(MODES[mode])
    for name in ("seeds", "epochs", "detector", "cascade", "layers"):
        if getattr(args, name) is not None:
            setattr(settings, name, tuple(getattr(args, name)) if name in ("seeds", "layers") else getattr(args, name))
    started = (time.perf_counter(), time.process_time())
    runs_dir = os.path.abspath(args.runs_dir)
    out_dir = os.path.join(runs_dir, "emotion" + ("" if mode == "quick" else f"-{mode}"))
    os.makedirs(out_dir, exist_ok=True)

    import mindgap  # noqa: F401  (TensorFlow without its start-up chatter)
    from mindgap.data.emotions import EMOTIONS
    from mindgap.emotion import frame_features, lbp_histograms
    from mindgap.metrics import confusion_matrix

    if mode == "real":
        web_dir, video_dir = os.path.abspath(args.fer_dir), os.path.abspath(args.afew_dir)
    else:
        from mindgap.data.faces import ensure_emotion_set

        standin_dir = os.path.join(runs_dir, "data", f"emotion-{mode}-{_key(settings.standin)}")
        log(f"stand-in at {standin_dir} (generated once)")
        web_dir, video_dir = ensure_emotion_set(standin_dir, **settings.standin)
    web, video = read_sets(settings, web_dir, video_dir)
    log(f"read and checked: {len(web.train)} web training images, {len(video.train)}/{len(video.val)}/{len(video.test)} frames")
    clips, detection = {}, [0, 0]
    for split in ("train", "val", "test"):
        clips[split], found = clip_faces(settings, getattr(video, split))
        detection = [detection[0] + found[0], detection[1] + found[1]]
    web_images = web_faces(settings, web.train)
    crops_root = os.path.join(runs_dir, "data", f"emotion-crops-{mode}-{_key(web_dir, video_dir, _recipe(settings))}")
    written = write_crops(crops_root, web.train, web_images, {**clips["train"], **clips["val"], **clips["test"]})
    held_out = held_out_clips(clips["train"])
    labels = {split: np.asarray([label for label, _ in clips[split].values()]) for split in clips}
    counts = (f"{len(web.train)} web training images, {len(clips['train'])} / {len(clips['val'])} / {len(clips['test'])} "
              f"train / val / test clips ({len(held_out)} training clips held out as the CNN's validation)")
    plot_samples(web.train, web_images, clips["train"], EMOTIONS, os.path.join(out_dir, "samples.png"))

    lbp = {split: per_video(clips[split], lambda faces: lbp_histograms(faces)) for split in clips}
    variant_dirs = {kind: variant_root(crops_root, os.path.join(crops_root + "-variants", kind), written, kind, clips["train"],
                                       held_out, settings.train_frames_per_clip) for kind, _ in VARIANTS.values()}
    rows = {name: [] for name in ("baseline", "cnn vote", *VARIANTS)}
    for seed in settings.seeds:
        baseline = evaluate_features(settings, lbp, labels, seed)
        rows["baseline"].append(baseline)
        for name, (kind, drawing) in VARIANTS.items():
            variant_dir = variant_dirs[kind]
            run_dir = os.path.join(runs_dir, "models", f"emotion-{mode}-{kind}-{drawing}-seed{seed}-{_key(crops_root, _recipe(settings))}")
            log(f"seed {seed}: {name}: training {MODEL_NAME} ({run_dir})")
            model, history = train_cnn(settings, variant_dir, run_dir, drawing, seed)
            features = {split: per_video(clips[split], lambda faces: frame_features(model, faces, settings.layers)) for split in clips}
            result = evaluate_features(settings, features, labels, seed)
            result["history"] = {key: [round(value, 4) for value in values] for key, values in history.items()}
            for split in ("val", "test"):
                if f"{split}_predicted" in result:
                    result[f"per_class_{split}"] = per_class(labels[split], np.asarray(result[f"{split}_predicted"]), len(EMOTIONS))
            rows[name].append(result)
            log(f"seed {seed}: {name}: val {result.get('val', float('nan')):.3f} test {result.get('test', float('nan')):.3f} (C = {result['C']})")
            if name == SYSTEM:
                vote = {}
                for split in ("val", "test"):
                    if len(labels[split]):
                        vote[split] = float(np.mean(cnn_vote(model, clips[split]) == labels[split]))
                rows["cnn vote"].append(vote)
                if seed == settings.seeds[0] and "test_predicted" in result:
                    matrix = confusion_matrix(labels["test"], np.eye(len(EMOTIONS))[result["test_predicted"]])
                    plot_confusion(matrix, EMOTIONS, f"system ({SYSTEM}), test clips, seed {seed}: "
                                   f"{100 * result['test']:.1f} %", os.path.join(out_dir, "confusion_matrix.png"))
                    plot_saliency(model, clips["test"], EMOTIONS, os.path.join(out_dir, "saliency.png"))
    seconds = (time.perf_counter() - started[0], time.process_time() - started[1])
    results = {"rows": rows, "settings": dataclasses.asdict(settings), "class_names": list(EMOTIONS), "detection": detection,
               "seconds": {"wall": seconds[0], "cpu_this_process": seconds[1]}, "thesis_table_3_10": THESIS_TABLE_3_10}
    markdown = report(results, settings, EMOTIONS, counts, detection, seconds)
    with open(os.path.join(out_dir, "results.json"), "w") as handle:
        json.dump(results, handle, indent=2)
    with open(os.path.join(out_dir, "table.md"), "w") as handle:
        handle.write(markdown + "\n")
    with open(os.path.join(out_dir, "config.json"), "w") as handle:
        json.dump({"settings": dataclasses.asdict(settings), "web_dir": web_dir, "video_dir": video_dir}, handle, indent=2)
    print(markdown)
    print(f"\nwritten to {out_dir}")
    return results


if __name__ == "__main__":
    from experiments.common import run_main

    run_main(main)
