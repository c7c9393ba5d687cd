"""Excitation Dropout (thesis ch. 5): generalization, neuron utilization, resilience to compression, sensitivity, run time.

    python -m experiments.excitation_dropout                 # quick mode, 5 seeds
    python -m experiments.excitation_dropout --seeds 2       # fewer seeds
    python -m experiments.excitation_dropout --extra-small   # seconds (tests)

**The data: an embedded classification set.**  No CIFAR, Caltech or UCF101
can be downloaded, so every image is rendered from data that ships with
scikit-learn: one of its 8×8 handwritten digits, scaled up and blended at a
random position and scale into a random crop of its two sample photos
(``mindgap.pretrain.centred_digit_canvases``, the digits renderer's ink and
outline); the class is the digit (10 classes).  Training images use the
training half of the source digits, test images the other half (no test digit
is ever seen, not even by the Tiny backbone's pretraining).  Quick mode: 2,000
training and 1,000 test images, 32² for CNN-2 and 48² for the fine-tuned
models.  The set is small and cluttered enough that a model without dropout
overfits: the table states its train − test gap (at least 5 points wanted).

**Models** (``mindgap.dropout``): CNN-2 from scratch (quick: convolutions
narrowed to 16/32/64 filters to fit a 2-core CPU; ``fc1`` and ``fc2`` keep the
thesis's 2,048 units), Tiny-FC (the pretrained Tiny backbone, ``fc1``/``fc2`` of
1,024 units, fine-tuned; the VGG16 ``fc6`` case in miniature) and, ours (no
thesis did it), Tiny-GAP-Zhou with the dropout on its pooled GAP features.
Each variant of :data:`mindgap.dropout.METHODS`, P = 0.5 (``adaptive`` is Ba &
Frey's standout, the thesis's "Adaptive Dropout"; ``mirrored_excitation`` is
ours, eq. 5.1 turned round).  CNN-2: the optimizer of the thesis's reference
[83] (Morerio et al.'s Curriculum Dropout code trains with
``tf.train.AdamOptimizer(lr, beta1=momentum)``, momentum 0.95), i.e. Adam with
beta_1 = 0.95 (``--cnn2-optimizer adam`` for Keras' 0.9), lr 1e-3 divided by 10
after a quarter of the steps (the thesis's 25K of 100K), batches of 100; the
fine-tuned models Adam 3e-4 fixed, batches of 50, as in §5.2.1.  Kept units are
divided by their own p (``--scaling unit``) or by P (``--scaling base``); the
largest factor any step used is reported per run.  **Training length:**
``--until-plateau`` trains Standard Dropout's CNN-2 (every seed) first and doubles
the epochs (from ``--epochs``, up to ``--max-epochs``) until its test accuracy has
plateaued: the mean over seeds gained less than ``PLATEAU_POINTS`` (0.5) points
from the epoch at three quarters of training to the last (the drop of the
learning rate is at a quarter, so the last half runs at 1e-4); every variant
then trains that long.  Each table states whether Standard plateaued.  Curriculum Dropout's gamma is 5e-4 per step over the thesis's 100K
steps (gamma · T = 50); quick runs have far fewer steps, so gamma is scaled to
keep gamma · T = 50 (``--curriculum-gamma`` sets it).

**Studies.**  Generalization (Figure 5.3, Tables 5.1–5.2): test accuracy after
every epoch, mean ± sd over the seeds.  Utilization (Table 5.3, Figures
5.6–5.9): ``mindgap.dropout.utilization`` at the dropout layer on the test set
after every epoch and at the end; conservative filters with Δ = the median
weight change of the standard-dropout runs of the same model (so about half
of them count as conservative under standard dropout; Δ is printed).
Resilience to compression (Figure 5.5): the mean predicted probability of the
true class on the test set as the most relevant neurons (cumulative p_EB =
p_c), the least relevant ones, or k random ones are switched off.
Sensitivity (Table 5.5): CNN-2 with P = p in {0.25, 0.5, 0.75}.  Run time
(Table 5.4): seconds per training step inside ``fit`` (first epoch excluded);
``benchmarks/excitation_dropout_cost.py`` measures it more carefully.
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

from experiments import workers  # noqa: E402  (no TensorFlow at import: workers pin themselves first)

VARIANTS = ("none", "standard", "standard_per_image", "curriculum", "adaptive", "mirrored_excitation", "excitation",
            "excitation_prediction")
LABELS = {"none": "No Dropout", "standard": "Standard", "standard_per_image": "Standard + Mask/Img",
          "curriculum": "Curriculum", "adaptive": "Adaptive (standout, Ba & Frey)",
          "mirrored_excitation": "Excitation mirrored, least relevant dropped (ours)", "excitation": "Excitation",
          "excitation_prediction": "Excitation, p_EB of the prediction (ours)"}
COLOURS = {"none": "tab:gray", "standard": "tab:blue", "standard_per_image": "tab:cyan", "curriculum": "tab:orange",
           "adaptive": "tab:green", "mirrored_excitation": "tab:olive", "excitation": "tab:purple",
           "excitation_prediction": "tab:red"}
CNN2_OPTIMIZERS = ("adam-morerio", "adam")  # Adam with beta_1 = 0.95 (ref. [83]'s code), or Keras' beta_1 = 0.9
MORERIO_BETA_1 = 0.95
PLATEAU_POINTS = 0.5  # Standard's mean test accuracy gained less than this from 3/4 of training to the end
# The mask-leak probe (test accuracy with one training mask from p_EB of the true class, or of a wrong class).
LEAK_VARIANTS = ("excitation", "excitation_prediction")
LEAK_DRAWS = 3
ARCHITECTURES = ("CNN-2", "Tiny-FC")
ZHOU = "Tiny-GAP-Zhou"
ZHOU_VARIANTS = ("none", "standard", "excitation", "excitation_prediction")
SENSITIVITY_VARIANTS = ("standard", "excitation", "excitation_prediction")
SENSITIVITY_RETAIN = (0.25, 0.5, 0.75)
METRICS = (("neurons_on", "# neurons ON"), ("peak_p_eb", "peak p_EB"), ("activation_entropy", "entropy of activations"),
           ("p_eb_entropy", "entropy of p_EB"))
THESIS_STEPS = 100_000  # CNN-2's training length in the thesis; curriculum gamma = 5e-4 over it
THESIS_GAMMA = 5e-4

# The thesis's numbers (Bargal 2019, ch. 5), in %.  CNN-2 beside Cifar10; the fine-tuned models beside VGG16 on UCF101.
THESIS_ACCURACY = {
    "CNN-2": {"dataset": "Cifar10, CNN-2", "standard": 80.13, "adaptive": 76.82, "excitation": 81.94},  # Tables 5.1, 5.5
    "Tiny-FC": {"dataset": "UCF101, VGG16", "none": 69.37, "standard": 71.93, "curriculum": 72.14, "adaptive": 71.76,
                "excitation": 73.23},  # Tables 5.1, 5.2
}
THESIS_UTILIZATION = {  # Table 5.3: standard, curriculum, excitation
    "CNN-2": {"dataset": "Cifar10, CNN-2 fc1 (2,048)", "delta": 0.25,
              "neurons_on": (1194, 1169, 1325), "peak_p_eb": (0.011, 0.009, 0.003),
              "activation_entropy": (3.55, 3.50, 4.29), "p_eb_entropy": (3.28, 3.32, 4.26),
              "conservative_filters": (1204, 959, 124)},
    "Tiny-FC": {"dataset": "UCF101, VGG16 fc6 (4,096)", "delta": 0.15,
                "neurons_on": (1120, 1143, 1404), "peak_p_eb": (0.007, 0.007, 0.004),
                "activation_entropy": (2.04, 2.08, 2.51), "p_eb_entropy": (1.92, 1.95, 2.42),
                "conservative_filters": (3599, 3859, 44)},
}
# Table 5.5 (Cifar10 row): columns are dropout *rates*, so "0.25 Dropout" is P = 0.75.
THESIS_SENSITIVITY = {"standard": {0.75: 79.16, 0.5: 80.13, 0.25: 81.19}, "excitation": {0.75: 81.38, 0.5: 81.94, 0.25: 81.55}}
THESIS_RUNTIME = {"CNN-2": (0.1532, 0.1885), "Tiny-FC": (2.2928, 2.8202)}  # Table 5.4, s/iteration (VGG16 for fine-tuned)


@dataclasses.dataclass
class Settings:
    """Everything a run's result depends on (its hash names the cached job results)."""

    mode: str
    train_images: int
    test_images: int
    probe_images: int  # test images of the utilization probe after every epoch
    compression_images: int  # test images of Figure 5.5's curves (each curve point is a forward pass above fc1)
    cnn2_size: int
    finetuned_size: int
    cnn2_filters: tuple
    cnn2_units: int
    finetuned_units: int
    zhou_units: int
    cnn2_epochs: int
    finetuned_epochs: int
    cnn2_batch: int
    finetuned_batch: int
    cnn2_learning_rate: float
    finetuned_learning_rate: float
    pretrained: bool
    curriculum_gamma: float | None  # None: scaled so that gamma * steps = 5e-4 * 100K
    random_steps: int  # Figure 5.5 right: k = 0, N/steps, ..., N
    scaling: str = "unit"  # a kept unit divided by its own p ("unit") or by P ("base")
    cnn2_optimizer: str = "adam-morerio"


MODES = {
    "quick": Settings("quick", 2000, 1000, 500, 500, 32, 48, (16, 32, 64), 2048, 1024, 171, 15, 6, 100, 50, 1e-3, 3e-4, True,
                      None, 16),
    "full": Settings("full", 20000, 5000, 1000, 5000, 32, 48, (96, 128, 256), 2048, 1024, 1024, 500, 60, 100, 50, 1e-3, 3e-4,
                     True, THESIS_GAMMA, 32),
    "extra-small": Settings("extra-small", 60, 30, 20, 30, 16, 16, (4, 4, 4), 16, 16, 8, 2, 1, 20, 20, 1e-3, 3e-4, False, None,
                            4),
}


# ------------------------------------------------------------------ data
def _data_path(runs_dir, settings, size, split):
    count = settings.train_images if split == "train" else settings.test_images
    return os.path.join(runs_dir, "data", f"digits-classification-{size}px-{split}{count}.npz")


def ensure_classification_set(runs_dir, settings):
    """Render (once) the train and test sets at both sizes; returns their paths by (size, split)."""
    from mindgap import storage  # not at the top: mindgap starts TensorFlow, after the workers pinned their cores
    from mindgap.pretrain import centred_digit_canvases

    paths = {}
    for size in sorted({settings.cnn2_size, settings.finetuned_size}):
        digit_size = (max(4, round(size * 26 / 48)), max(5, round(size * 44 / 48)))  # the pretraining's proportions
        for split, half, seed, count in (("train", 0, 101, settings.train_images), ("test", 1, 202, settings.test_images)):
            path = _data_path(runs_dir, settings, size, split)
            if not os.path.isfile(path):
                os.makedirs(os.path.dirname(path), exist_ok=True)
                canvases, labels = centred_digit_canvases(count, size, digit_size, seed=seed, half=half)
                with storage.atomic_path(path) as temporary:
                    np.savez_compressed(temporary, canvases=canvases[..., ::-1], labels=labels)  # BGR → RGB
            paths[size, split] = path
    return paths


def load_split(path):
    from mindgap.data.pipeline import preprocess

    with np.load(path) as data:
        return preprocess(data["canvases"]).numpy(), data["labels"].astype(np.int64)


# ------------------------------------------------------------------ one training run
def _job_key(settings, architecture, variant, base_retain, seed):
    text = json.dumps({"settings": dataclasses.asdict(settings), "architecture": architecture, "variant": variant,
                       "base_retain": base_retain, "seed": seed}, sort_keys=True)
    return f"{architecture}-{variant}-P{base_retain}-seed{seed}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def _evidence_batches(model, images, labels, batch_size=250):
    features, p_eb = [], []
    for start in range(0, len(images), batch_size):
        batch_features, batch_p_eb = model.evidence(images[start:start + batch_size], labels[start:start + batch_size])
        features.append(batch_features)
        p_eb.append(batch_p_eb)
    return np.concatenate(features), np.concatenate(p_eb)


def _true_class_probability(model, features, keep, labels, batch_size=500):
    import tensorflow as tf

    total = 0.0
    for start in range(0, len(features), batch_size):
        masked = tf.constant(features[start:start + batch_size] * keep[start:start + batch_size], tf.float32)
        probabilities = np.asarray(model.probabilities_from_features(masked))
        total += probabilities[np.arange(len(probabilities)), labels[start:start + batch_size]].sum()
    return float(total / len(features))


def compression_curves(model, features, p_eb, labels, random_steps, seed):
    """Figure 5.5: mean true-class probability as neurons are switched off (most / least relevant by p_c, k random)."""
    from mindgap.dropout import utilization

    curves = {"levels": list(utilization.COMPRESSION_LEVELS), "most": [], "least": []}
    for level in utilization.COMPRESSION_LEVELS:
        for name, most in (("most", True), ("least", False)):
            keep = utilization.relevance_keep_masks(p_eb, level, most_relevant=most)
            curves[name].append(_true_class_probability(model, features, keep, labels))
    num_neurons = features.shape[1]
    counts = sorted({int(round(num_neurons * step / random_steps)) for step in range(random_steps + 1)})
    rng = np.random.default_rng(seed)
    curves["counts"] = counts
    curves["random"] = [_true_class_probability(model, features, utilization.random_keep_masks(rng, len(features),
                                                                                               num_neurons, count), labels)
                        for count in counts]
    return curves


def mask_accuracy(model, images, labels, seed, draws=LEAK_DRAWS):
    """Accuracy with one training mask drawn from p_EB of the true class, and of a wrong class (mean of ``draws``).

    If the mask tells the layers above which class is true, the first is far
    above the plain test accuracy and the second below it (NOTES.md).
    """
    rng = np.random.default_rng(seed)
    accuracy = {"true": [], "wrong": []}
    for _ in range(draws):
        wrong = (labels + rng.integers(1, 10, len(labels))) % 10
        for name, mask_classes in (("true", labels), ("wrong", wrong)):
            probabilities = np.concatenate([model.masked_probabilities(images[start:start + 250], mask_classes[start:start + 250])
                                            for start in range(0, len(images), 250)])
            accuracy[name].append(float((probabilities.argmax(axis=-1) == labels).mean()))
    return {name: float(np.mean(values)) for name, values in accuracy.items()}


def _build(settings, architecture, variant, base_retain, seed, gamma):
    import mindgap
    from mindgap import dropout

    common = dict(dropout=variant, base_retain=base_retain, gamma=gamma, seed=seed, class_names=None)
    weights = None
    if settings.pretrained and architecture != "CNN-2":
        from mindgap.pretrain import pretrained_tiny_weights

        weights = pretrained_tiny_weights(verbose=0)
    if architecture == "CNN-2":
        return dropout.build_cnn2(10, input_shape=(settings.cnn2_size,) * 2 + (3,), filters=tuple(settings.cnn2_filters),
                                  units=settings.cnn2_units, **common)
    if architecture == "Tiny-FC":
        return dropout.build_finetuned(10, input_shape=(settings.finetuned_size,) * 2 + (3,), weights=weights,
                                       units=settings.finetuned_units, **common)
    model = mindgap.build_model(ZHOU, 10, input_shape=(settings.finetuned_size,) * 2 + (3,), weights=weights,
                                zhou_units=settings.zhou_units, dropout=variant, dropout_retain=base_retain)
    model.dropout_layer.gamma = gamma
    return model


def run_job(settings_dict, runs_dir, architecture, variant, base_retain, seed):
    """Train one model and measure it; the result is cached as json under ``runs_dir`` by its settings."""
    settings = Settings(**{**settings_dict, "cnn2_filters": tuple(settings_dict["cnn2_filters"])})
    key = _job_key(settings, architecture, variant, base_retain, seed)
    path = os.path.join(runs_dir, "excitation_dropout_jobs", key + ".json")
    from mindgap import storage  # not at the top: mindgap starts TensorFlow, after the workers pinned their cores

    cached = storage.read_json(path)  # written atomically; a torn file of an older version is run again
    if cached is not None:
        if variant not in LEAK_VARIANTS or "mask_accuracy" in cached:  # older runs lack the probe: run them again
            return cached

    import keras

    import mindgap  # noqa: F401  (registers the layers; TensorFlow quietly)
    from mindgap.dropout import utilization

    cnn2 = architecture == "CNN-2"
    size = settings.cnn2_size if cnn2 else settings.finetuned_size
    train_images, train_labels = load_split(_data_path(runs_dir, settings, size, "train"))
    test_images, test_labels = load_split(_data_path(runs_dir, settings, size, "test"))
    epochs = settings.cnn2_epochs if cnn2 else settings.finetuned_epochs
    batch_size = settings.cnn2_batch if cnn2 else settings.finetuned_batch
    steps = epochs * int(np.ceil(len(train_images) / batch_size))
    gamma = settings.curriculum_gamma if settings.curriculum_gamma is not None else THESIS_GAMMA * THESIS_STEPS / steps
    keras.utils.set_random_seed(seed)
    model = _build(settings, architecture, variant, base_retain, seed, gamma)
    model.dropout_layer.scaling = settings.scaling
    weighted = model.get_layer(model.evidence_layer)
    initial = [np.array(value) for value in weighted.get_weights()] if weighted.get_weights() else None
    if cnn2:  # the thesis's 1e-3, then 1e-4 after a quarter of the steps (25K of 100K)
        learning_rate = keras.optimizers.schedules.PiecewiseConstantDecay([steps // 4], [settings.cnn2_learning_rate,
                                                                                         settings.cnn2_learning_rate / 10])
    else:
        learning_rate = settings.finetuned_learning_rate
    beta_1 = MORERIO_BETA_1 if cnn2 and settings.cnn2_optimizer == "adam-morerio" else 0.9
    model.compile(keras.optimizers.Adam(learning_rate, beta_1=beta_1), "sparse_categorical_crossentropy", metrics=["accuracy"])

    probe_images, probe_labels = test_images[:settings.probe_images], test_labels[:settings.probe_images]
    over_training = {name: [] for name, _ in METRICS}
    step_seconds = []
    largest_scale = [0.0]

    class Probe(keras.callbacks.Callback):
        """Before training and after every epoch: the utilization measures on the probe images; seconds per step."""

        def on_train_begin(self, logs=None):
            self.measure_utilization()

        def measure_utilization(self):
            numbers = utilization.utilization(*_evidence_batches(self.model, probe_images, probe_labels))
            for name, _ in METRICS:
                over_training[name].append(numbers[name])

        def on_epoch_begin(self, epoch, logs=None):
            self.started, self.last = time.perf_counter(), None
            self.steps = 0

        def on_train_batch_end(self, batch, logs=None):
            self.last, self.steps = time.perf_counter(), self.steps + 1
            largest_scale[0] = max(largest_scale[0], float((logs or {}).get("largest_scale", 0.0)))

        def on_epoch_end(self, epoch, logs=None):
            step_seconds.append((self.last - self.started) / max(self.steps, 1))
            self.measure_utilization()

    started = time.perf_counter()
    history = model.fit(train_images, train_labels, batch_size=batch_size, epochs=epochs, verbose=0, shuffle=True,
                        validation_data=(test_images, test_labels), callbacks=[Probe()])
    train_seconds = time.perf_counter() - started
    train_accuracy = model.evaluate(train_images, train_labels, batch_size=250, verbose=0, return_dict=True)["accuracy"]
    features, p_eb = _evidence_batches(model, test_images, test_labels)
    result = {
        "architecture": architecture, "variant": variant, "base_retain": base_retain, "seed": seed, "gamma": gamma,
        "steps": steps, "num_neurons": int(features.shape[1]),
        "test_accuracy_over_training": [float(value) for value in history.history["val_accuracy"]],
        "train_accuracy_over_training": [float(value) for value in history.history["accuracy"]],
        "test_accuracy": float(history.history["val_accuracy"][-1]), "train_accuracy": float(train_accuracy),
        "utilization": utilization.utilization(features, p_eb), "utilization_over_training": over_training,
        "compression": compression_curves(model, features[:settings.compression_images], p_eb[:settings.compression_images],
                                          test_labels[:settings.compression_images], settings.random_steps, seed),
        "seconds_per_step": float(np.mean(step_seconds[1:] if len(step_seconds) > 1 else step_seconds)),
        "train_seconds": train_seconds, "largest_scale": largest_scale[0], "epochs": epochs,
    }
    if variant in LEAK_VARIANTS:
        result["mask_accuracy"] = mask_accuracy(model, test_images[:settings.compression_images],
                                                test_labels[:settings.compression_images], seed)
    if initial is not None:
        final = weighted.get_weights()
        result["weight_changes"] = utilization.weight_changes(initial[0], final[0], initial[1] if len(initial) > 1 else None,
                                                              final[1] if len(final) > 1 else None).tolist()
    storage.write_json(path, result)
    print(f"[{architecture} {variant} P={base_retain} seed {seed}] test {100 * result['test_accuracy']:.1f} %, train "
          f"{100 * result['train_accuracy']:.1f} %, {train_seconds:.0f} s", flush=True)
    return result


# ------------------------------------------------------------------ tables and figures
def _mean_sd(values, scale=1.0, digits=1):
    values = np.asarray(values, np.float64) * scale
    if len(values) == 0:
        return "–"
    sd = values.std(ddof=1) if len(values) > 1 else 0.0
    return f"{values.mean():.{digits}f} ± {sd:.{digits}f}"


def _thesis(value, digits=2):
    return "–" if value is None else f"{value:.{digits}f}"


def _select(results, architecture, variant, base_retain=0.5):
    return [run for run in results if run["architecture"] == architecture and run["variant"] == variant
            and run["base_retain"] == base_retain]


def generalization_table(results, architectures):
    lines = ["| model | variant | test accuracy % (ours) | train accuracy % | train − test | vs no dropout | "
             "largest scale factor | thesis % (dataset) |", "|---|---|---|---|---|---|---|---|"]
    for architecture in architectures:
        baseline = np.mean([run["test_accuracy"] for run in _select(results, architecture, "none")] or [np.nan])
        thesis = THESIS_ACCURACY.get(architecture, {})
        variants = ZHOU_VARIANTS if architecture == ZHOU else VARIANTS
        for variant in variants:
            runs = _select(results, architecture, variant)
            if not runs:
                continue
            test = [run["test_accuracy"] for run in runs]
            gap = [run["train_accuracy"] - run["test_accuracy"] for run in runs]
            theirs = thesis.get(variant)
            dataset = thesis.get("dataset", "none: ours")
            lines.append(f"| {architecture} | {LABELS[variant]} | {_mean_sd(test, 100)} | "
                         f"{_mean_sd([run['train_accuracy'] for run in runs], 100)} | {_mean_sd(gap, 100)} | "
                         f"{'–' if np.isnan(baseline) else f'{100 * (np.mean(test) - baseline):+.1f}'} | {_largest_scale(runs)} | {_thesis(theirs)} ({dataset}) |")
    return "\n".join(lines)


def _largest_scale(runs):
    values = [run["largest_scale"] for run in runs if "largest_scale" in run]
    return f"{max(values):.1f}×" if values else "–"


def standard_plateau(results, architecture="CNN-2"):
    """The training-length criterion: has Standard Dropout's test accuracy plateaued?

    Mean over seeds of the test accuracy after each epoch; the gain from the epoch that ends three quarters of
    training to the last, in points; plateaued when below ``PLATEAU_POINTS``.  None without Standard runs.
    """
    curves = [run["test_accuracy_over_training"] for run in _select(results, architecture, "standard")]
    if not curves:
        return None
    mean = np.mean(np.asarray(curves, np.float64), axis=0)
    at = max(0, int(np.ceil(0.75 * len(mean))) - 1)
    gain = 100 * float(mean[-1] - mean[at])
    return {"architecture": architecture, "epochs": len(mean), "from_epoch": at + 1, "gain_points": gain,
            "plateaued": gain < PLATEAU_POINTS, "seeds": len(curves)}


def plateau_text(check):
    if check is None:
        return "Standard Dropout's plateau: not measured (no Standard runs of CNN-2)."
    verdict = "plateaued" if check["plateaued"] else "**not plateaued**: train longer (`--until-plateau` or `--epochs`)"
    return (f"Standard Dropout's test accuracy ({check['architecture']}, mean of {check['seeds']} seeds) gained "
            f"{check['gain_points']:+.2f} points from epoch {check['from_epoch']} to epoch {check['epochs']}: {verdict} "
            f"(criterion: < {PLATEAU_POINTS} points over the last quarter of training).")


# The thesis's claims about Excitation Dropout, as "A beats B on a measure" (the measure's sign: +1 higher is the claim).
THESIS_CLAIMS = (
    ("excitation", "standard", "test_accuracy", 1, "Tables 5.1/5.5: 81.94 vs 80.13 (CNN-2), 73.23 vs 71.93 (VGG16)"),
    ("excitation", "adaptive", "test_accuracy", 1, "Table 5.1: 81.94 vs 76.82 (CNN-2), 73.23 vs 71.76 (VGG16)"),
    ("excitation", "none", "test_accuracy", 1, "Table 5.2: 73.23 vs 69.37 (VGG16)"),
    ("excitation", "curriculum", "test_accuracy", 1, "Table 5.2: 73.23 vs 72.14 (VGG16)"),
    ("excitation", "standard", "neurons_on", 1, "Table 5.3: 1325 vs 1194 neurons ON (CNN-2)"),
    ("excitation", "standard", "peak_p_eb", -1, "Table 5.3: peak p_EB 0.003 vs 0.011 (CNN-2)"),
    ("excitation", "standard", "activation_entropy", 1, "Table 5.3: 4.29 vs 3.55 (CNN-2)"),
    ("excitation", "standard", "p_eb_entropy", 1, "Table 5.3: 4.26 vs 3.28 (CNN-2)"),
    ("excitation", "standard", "compression_most_half", 1,
     "Figure 5.5: more of the true class's probability left when the most relevant neurons (p_c = 0.5) are dropped"),
)
MEASURE_WORDS = {"test_accuracy": "test accuracy", "neurons_on": "more neurons ON", "peak_p_eb": "a lower peak p_EB",
                 "activation_entropy": "a higher entropy of activations", "p_eb_entropy": "a higher entropy of p_EB",
                 "compression_most_half": "more resilience to compression"}


def _measure(run, name):
    if name == "test_accuracy":
        return run[name]
    if name == "compression_most_half":
        return run["compression"]["most"][run["compression"]["levels"].index(0.5)]
    return run["utilization"][name]


def thesis_verdicts(results, architectures):
    """Each claim of :data:`THESIS_CLAIMS` on each architecture where both variants ran: ``experiments.claims``' rows,
    paired by seed (only the seeds both variants have)."""
    from experiments.claims import compare

    rows = []
    for architecture in architectures:
        for better, other, measure, sign, thesis in THESIS_CLAIMS:
            runs = {variant: {run["seed"]: run for run in _select(results, architecture, variant)} for variant in (better, other)}
            seeds = sorted(set(runs[better]) & set(runs[other]))
            if len(seeds) < 1:
                continue
            values = [[sign * _measure(runs[variant][seed], measure) for seed in seeds] for variant in (better, other)]
            text = (f"{architecture}: {LABELS[better]} gives {MEASURE_WORDS[measure]} than {LABELS[other]}"
                    if measure != "test_accuracy" else f"{architecture}: {LABELS[better]} generalizes better than {LABELS[other]}")
            scale = {"neurons_on": 1.0, "peak_p_eb": 1000.0}.get(measure, 100.0)
            rows.append(compare(f"{text} ({thesis})" + (" [sign flipped: lower is better]" if sign < 0 else ""), *values,
                                measure, scale))
    return rows


def conservative_delta(results, architecture):
    """Δ of the conservative filters: the median weight change of the standard-dropout runs of ``architecture``."""
    changes = [change for run in _select(results, architecture, "standard") for change in run.get("weight_changes", [])]
    return float(np.median(changes)) if changes else None


def utilization_table(results, architectures):
    shown = ("none", "standard", "curriculum", "adaptive", "excitation", "excitation_prediction")
    lines = ["| model | measure | " + " | ".join(LABELS[variant] for variant in shown) +
             " | thesis: Standard / Curriculum / Excitation |", "|" + "---|" * (len(shown) + 3)]
    for architecture in architectures:
        delta = conservative_delta(results, architecture)
        thesis = THESIS_UTILIZATION.get(architecture)
        rows = list(METRICS) + ([("conservative_filters", f"conservative filters, Δ = {delta:.3f}")] if delta else [])
        for name, label in rows:
            cells = []
            for variant in shown:
                runs = _select(results, architecture, variant)
                if name == "conservative_filters":
                    values = [int((np.asarray(run["weight_changes"]) < delta).sum()) for run in runs]
                else:
                    values = [run["utilization"][name] for run in runs]
                cells.append(_mean_sd(values, digits=0 if name in ("neurons_on", "conservative_filters") else 3)
                             if runs else "–")
            if thesis:
                theirs = " / ".join(str(value) for value in thesis[name])
                theirs += f" (Δ = {thesis['delta']})" if name == "conservative_filters" else ""
            else:
                theirs = "–"
            lines.append(f"| {architecture} | {label} | " + " | ".join(cells) + f" | {theirs} |")
    return "\n".join(lines)


def compression_table(results, architectures):
    levels = (0.0, 0.25, 0.5, 0.75)
    lines = ["| model | variant | " + " | ".join(f"most, p_c={level}" for level in levels[1:]) + " | " +
             " | ".join(f"least, p_c={level}" for level in levels[1:]) + " | random, k = N/4, N/2, 3N/4 |",
             "|" + "---|" * 9]
    for architecture in architectures:
        for variant in (ZHOU_VARIANTS if architecture == ZHOU else VARIANTS):
            runs = _select(results, architecture, variant)
            if not runs:
                continue
            curves = runs[0]["compression"]
            index = [curves["levels"].index(level) for level in levels[1:]]
            most = [np.mean([run["compression"]["most"][i] for run in runs]) for i in index]
            least = [np.mean([run["compression"]["least"][i] for run in runs]) for i in index]
            counts = curves["counts"]
            quarter = [min(range(len(counts)), key=lambda j: abs(counts[j] - fraction * counts[-1]))
                       for fraction in (0.25, 0.5, 0.75)]
            random = [np.mean([run["compression"]["random"][j] for run in runs]) for j in quarter]
            lines.append(f"| {architecture} | {LABELS[variant]} | " + " | ".join(f"{value:.3f}" for value in most + least) +
                         " | " + " / ".join(f"{value:.3f}" for value in random) + " |")
    return "\n".join(lines)


def sensitivity_table(results):
    lines = ["| CNN-2, test accuracy % (ours / thesis Cifar10) | P = 0.75 (dropout 0.25) | P = 0.5 | P = 0.25 (dropout 0.75) |",
             "|---|---|---|---|"]
    for variant in SENSITIVITY_VARIANTS:
        cells = []
        for retain in (0.75, 0.5, 0.25):
            runs = _select(results, "CNN-2", variant, retain)
            theirs = THESIS_SENSITIVITY.get(variant, {}).get(retain)
            cells.append(f"{_mean_sd([run['test_accuracy'] for run in runs], 100)} (n={len(runs)}) / {_thesis(theirs)}")
        lines.append(f"| {LABELS[variant]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def leak_table(results, architectures):
    lines = ["| model | variant | test accuracy % | with a training mask of the true class | of a wrong class | "
             "true − wrong (points) |", "|---|---|---|---|---|---|"]
    for architecture in architectures:
        for variant in LEAK_VARIANTS:
            runs = [run for run in _select(results, architecture, variant) if "mask_accuracy" in run]
            if not runs:
                continue
            true = [run["mask_accuracy"]["true"] for run in runs]
            wrong = [run["mask_accuracy"]["wrong"] for run in runs]
            lines.append(f"| {architecture} | {LABELS[variant]} | {_mean_sd([run['test_accuracy'] for run in runs], 100)} | "
                         f"{_mean_sd(true, 100)} | {_mean_sd(wrong, 100)} | "
                         f"{_mean_sd(np.subtract(true, wrong), 100)} |")
    return "\n".join(lines)


def runtime_table(results, architectures):
    lines = ["| model | variant | ms per training step (ours, in fit) | × standard | thesis s/iteration (× standard) |",
             "|---|---|---|---|---|"]
    for architecture in architectures:
        standard = np.mean([run["seconds_per_step"] for run in _select(results, architecture, "standard")] or [np.nan])
        thesis = THESIS_RUNTIME.get(architecture)
        for variant in (ZHOU_VARIANTS if architecture == ZHOU else VARIANTS):
            runs = _select(results, architecture, variant)
            if not runs:
                continue
            seconds = np.mean([run["seconds_per_step"] for run in runs])
            theirs = "–"
            if thesis and variant in ("standard", "excitation"):
                value = thesis[0] if variant == "standard" else thesis[1]
                theirs = f"{value:.4f} ({value / thesis[0]:.2f}×)"
            lines.append(f"| {architecture} | {LABELS[variant]} | {1000 * seconds:.1f} | {seconds / standard:.2f} | {theirs} |")
    return "\n".join(lines)


def _band(axis, curves, colour, label, x=None):
    curves = np.asarray(curves, np.float64)
    mean = curves.mean(axis=0)
    sd = curves.std(axis=0, ddof=1) if len(curves) > 1 else np.zeros_like(mean)
    x = np.arange(1, len(mean) + 1) if x is None else np.asarray(x)
    axis.plot(x, mean, color=colour, label=label, linewidth=1.2, marker="o" if len(mean) < 15 else None, markersize=2.5)
    axis.fill_between(x, mean - sd, mean + sd, color=colour, alpha=0.15, linewidth=0)


def _final_accuracies(axis, results, architecture, variants):
    """The last epoch's test accuracy per variant: each seed a dot, the mean ± sd a bar, one row per variant."""
    rows = [(variant, [100 * run["test_accuracy_over_training"][-1] for run in _select(results, architecture, variant)])
            for variant in variants]
    rows = [(variant, values) for variant, values in rows if values]
    for position, (variant, values) in enumerate(rows):
        mean, sd = np.mean(values), (np.std(values, ddof=1) if len(values) > 1 else 0.0)
        axis.errorbar(mean, position, xerr=sd, fmt="o", color=COLOURS[variant], capsize=3, markersize=5)
        axis.scatter(values, [position] * len(values), color=COLOURS[variant], s=9, alpha=0.5, linewidths=0)
    axis.set_yticks(range(len(rows)), [LABELS[variant] for variant, _ in rows], fontsize=7)
    axis.invert_yaxis()
    axis.set_xlabel("test accuracy % (dots: seeds; bar: mean ± sd)", fontsize=7)
    axis.grid(axis="x", alpha=0.3)
    axis.tick_params(axis="x", labelsize=7)


def plot_generalization(results, architectures, path, caption=""):
    """Per model: the mean test accuracy over training (no bands: several variants end within a point), and below
    it the last epoch's accuracy per variant with every seed, which is where the variants are told apart."""
    columns = max(len(architectures), 2)  # never narrower than two panels: the title and labels must fit
    figure, axes = plt.subplots(2, columns, figsize=(5.2 * columns, 7.4), squeeze=False,
                                gridspec_kw={"height_ratios": (1, 1.1)})
    for column, architecture in enumerate(architectures):
        variants = ZHOU_VARIANTS if architecture == ZHOU else VARIANTS
        curves_axis = axes[0, column]
        for variant in variants:
            runs = _select(results, architecture, variant)
            if runs:
                mean = np.mean([np.asarray(run["test_accuracy_over_training"]) * 100 for run in runs], axis=0)
                curves_axis.plot(np.arange(1, len(mean) + 1), mean, color=COLOURS[variant], linewidth=1.3,
                                 label=f"{LABELS[variant]} (n={len(runs)})")
        curves_axis.set_title(f"{architecture}: over training (mean of seeds)", fontsize=9)
        curves_axis.set_xlabel("epoch", fontsize=8)
        curves_axis.set_ylabel("test accuracy %", fontsize=8)
        curves_axis.tick_params(labelsize=7)
        curves_axis.grid(alpha=0.3)
        _final_accuracies(axes[1, column], results, architecture, variants)
        axes[1, column].set_title(f"{architecture}: after the last epoch", fontsize=9)
    for column in range(len(architectures), columns):
        axes[0, column].axis("off"); axes[1, column].axis("off")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    for column in range(1, len(architectures)):  # one legend: every variant once
        for handle, label in zip(*axes[0, column].get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle); labels.append(label)
    figure.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=7, frameon=False)
    return _save(figure, path, "Test accuracy (cf. the thesis's Figure 5.3); settings: table.md", bottom=0.1)


def plot_utilization(results, architectures, path, caption=""):
    figure, axes = plt.subplots(len(architectures), len(METRICS), figsize=(3.4 * len(METRICS), 2.9 * len(architectures) + 0.8),
                                squeeze=False)
    for row, architecture in enumerate(architectures):
        for column, (name, label) in enumerate(METRICS):
            axis = axes[row, column]
            for variant in (ZHOU_VARIANTS if architecture == ZHOU else VARIANTS):
                runs = _select(results, architecture, variant)
                if runs:
                    curves = [run["utilization_over_training"][name] for run in runs]
                    _band(axis, curves, COLOURS[variant], LABELS[variant], x=np.arange(len(curves[0])))
            axis.set_title(f"{architecture}: {label}", fontsize=8)
            axis.set_xlabel("epoch (0: before training)", fontsize=7)
            axis.tick_params(labelsize=7)
    _one_legend(figure, axes)
    return _save(figure, path, "Utilization of the dropout layer on test images, mean ± sd over seeds "
                               "(cf. the thesis's Figures 5.6–5.9); settings: table.md", bottom=0.14)


COMPRESSION_PANELS = (("most", "levels", "most relevant off", "share p_c of the most relevant neurons off"),
                      ("least", "levels", "least relevant off", "share p_c of the least relevant neurons off"),
                      ("random", "counts", "random neurons off", "k random neurons off"))


def plot_compression(results, architectures, path, caption=""):
    figure, axes = plt.subplots(len(architectures), 3, figsize=(11.5, 3.0 * len(architectures) + 0.8), squeeze=False)
    for row, architecture in enumerate(architectures):
        for variant in (ZHOU_VARIANTS if architecture == ZHOU else VARIANTS):
            runs = _select(results, architecture, variant)
            if not runs:
                continue
            for column, (name, x_key, title, xlabel) in enumerate(COMPRESSION_PANELS):
                _band(axes[row, column], [run["compression"][name] for run in runs], COLOURS[variant], LABELS[variant],
                      x=runs[0]["compression"][x_key])
        for column, (_, _, title, xlabel) in enumerate(COMPRESSION_PANELS):
            axes[row, column].set_title(f"{architecture}: {title}", fontsize=8)
            axes[row, column].set_xlabel(xlabel, fontsize=7)
            axes[row, column].tick_params(labelsize=7)
        axes[row, 0].set_ylabel("P(true class)", fontsize=7)
    _one_legend(figure, axes)
    return _save(figure, path, "Resilience to compression: mean probability of the true class on test images as neurons "
                               "of the dropout layer are switched off (cf. the thesis's Figure 5.5); settings: table.md",
                 bottom=0.14)


def _one_legend(figure, axes):
    """Every variant's line once, below the panels (a legend inside a panel hides its curves)."""
    handles, labels = [], []
    for axis in axes.flat:
        for handle, label in zip(*axis.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle); labels.append(label)
    figure.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=7, frameon=False)


def _save(figure, path, title, bottom=0.0):
    """One title line over the panels (the settings are table.md's caption), the legend row kept clear at the bottom."""
    figure.suptitle(title, fontsize=9)
    figure.tight_layout(rect=(0, bottom, 1, 0.97))
    from mindgap import storage  # not at the top: mindgap starts TensorFlow, after the workers pinned their cores

    storage.savefig(figure, path, dpi=100)
    plt.close(figure)
    return path


def replot(out_dir):
    """Draw the three figures again from ``out_dir``'s results.json (no training)."""
    with open(os.path.join(out_dir, "results.json")) as handle:
        results = json.load(handle)["runs"]
    present = {run["architecture"] for run in results}
    architectures = [name for name in ARCHITECTURES if name in present and name != ZHOU]
    shown = architectures + ([ZHOU] if ZHOU in present else [])
    return [plot_generalization(results, shown, os.path.join(out_dir, "generalization.png")),
            plot_utilization(results, architectures, os.path.join(out_dir, "utilization.png")),
            plot_compression(results, architectures, os.path.join(out_dir, "compression.png"))]


# ------------------------------------------------------------------ the run
def resolve_settings(args):
    settings = dataclasses.replace(MODES["full" if args.full else "extra-small" if args.extra_small else "quick"],
                                   scaling=args.scaling, cnn2_optimizer=args.cnn2_optimizer)
    if args.epochs is not None:
        settings.cnn2_epochs = settings.finetuned_epochs = args.epochs
    if args.curriculum_gamma is not None:
        settings.curriculum_gamma = args.curriculum_gamma
    return settings


def jobs_for(seeds, sensitivity_seeds, zhou_seeds, variants=VARIANTS, architectures=ARCHITECTURES):
    """(architecture, variant, P, seed) of every run, the slow fine-tuned runs interleaved with the others."""
    jobs = []
    for seed in range(seeds):
        for architecture in architectures:
            jobs += [(architecture, variant, 0.5, seed) for variant in variants]
    for seed in range(sensitivity_seeds if "CNN-2" in architectures else 0):
        jobs += [("CNN-2", variant, retain, seed) for variant in SENSITIVITY_VARIANTS if variant in variants
                 for retain in (0.25, 0.75)]
    for seed in range(zhou_seeds):
        jobs += [(ZHOU, variant, 0.5, seed) for variant in ZHOU_VARIANTS if variant in variants]
    return jobs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--full", action="store_true", help="the thesis's CNN-2 widths, 20,000 images, long training")
    group.add_argument("--extra-small", action="store_true", help="a handful of images, tiny models (tests)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per model and variant (default 5; extra-small 2)")
    parser.add_argument("--sensitivity-seeds", type=int, default=None,
                        help="seeds of the P = 0.25 and 0.75 runs (default: --seeds, at most 2; 0 skips the study)")
    parser.add_argument("--zhou-seeds", type=int, default=None, help="seeds of the GAP-Zhou runs (ours; default 2, 0 skips)")
    parser.add_argument("--epochs", type=int, default=None, help="override the epochs of every model")
    parser.add_argument("--curriculum-gamma", type=float, default=None,
                        help="curriculum decay per step (default: gamma * steps = 5e-4 * 100K, the thesis's shape)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, from " + ", ".join(VARIANTS))
    parser.add_argument("--architectures", default=",".join(ARCHITECTURES),
                        help="comma-separated, from " + ", ".join(ARCHITECTURES) + " (the GAP-Zhou runs: --zhou-seeds)")
    parser.add_argument("--scaling", choices=("unit", "base"), default="unit",
                        help="a kept unit divided by its own retaining probability p (unit, default) or by P (base)")
    parser.add_argument("--cnn2-optimizer", choices=CNN2_OPTIMIZERS, default="adam-morerio",
                        help="CNN-2's optimizer: Adam with beta_1 = 0.95 as Morerio et al.'s code (ref. [83], default) "
                             "or Keras' Adam")
    parser.add_argument("--until-plateau", action="store_true",
                        help="double CNN-2's epochs until Standard Dropout's test accuracy has plateaued (see the docstring)")
    parser.add_argument("--max-epochs", type=int, default=240, help="the longest --until-plateau may train CNN-2")
    parser.add_argument("--runs-dir", default="runs")
    workers.add_workers_argument(parser, "runs trained at once")
    parser.add_argument("--replot", metavar="OUT_DIR", default=None,
                        help="only draw the figures again from OUT_DIR/results.json (e.g. runs/excitation_dropout)")
    args = parser.parse_args(argv)
    args.workers = workers.worker_count(args)
    if args.replot:
        for path in replot(args.replot):
            print(f"wrote {path}")
        return 0
    for name in ("seeds", "sensitivity_seeds", "zhou_seeds", "epochs", "workers"):
        value = getattr(args, name)
        if value is not None and value < (1 if name in ("seeds", "epochs", "workers") else 0):
            raise ValueError(f"--{name.replace('_', '-')} must be at least {1 if name in ('seeds', 'epochs', 'workers') else 0}, got {value}.")
    variants = [variant.strip() for variant in args.variants.split(",") if variant.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown or not variants:
        raise ValueError(f"Unknown variant(s) {unknown or args.variants!r}; use some of {', '.join(VARIANTS)}.")
    architectures = [name.strip() for name in args.architectures.split(",") if name.strip()]
    if not architectures or set(architectures) - set(ARCHITECTURES):
        raise ValueError(f"Unknown architecture(s) in {args.architectures!r}; use some of {', '.join(ARCHITECTURES)}.")
    settings = resolve_settings(args)
    seeds = args.seeds or (2 if settings.mode == "extra-small" else 5)
    sensitivity_seeds = min(seeds, 2) if args.sensitivity_seeds is None else args.sensitivity_seeds
    zhou_seeds = (1 if settings.mode == "extra-small" else 2) if args.zhou_seeds is None else args.zhou_seeds
    runs_dir = os.path.abspath(args.runs_dir)
    # another length writes its own tables (the runs themselves are cached by their settings)
    from experiments import common  # imports TensorFlow: not at module import (workers pin themselves first)

    out_dir = common.results_folder(runs_dir, "excitation_dropout", settings.mode,
                                    "until-plateau" if args.until_plateau else
                                    None if args.epochs is None else f"{args.epochs}epochs")
    ensure_classification_set(runs_dir, settings)
    if settings.pretrained:
        from mindgap.pretrain import pretrained_tiny_weights

        pretrained_tiny_weights(verbose=1)  # once, before the workers (trained into the cache only if the shipped file is stale)

    started = time.perf_counter()
    cpu_started = os.times()
    if args.until_plateau and "CNN-2" in architectures:
        while True:  # Standard first; its runs at the final length are cached and reused below
            standard = workers.map_in_parallel(run_job, [(dataclasses.asdict(settings), runs_dir, "CNN-2", "standard", 0.5, seed)
                                                         for seed in range(seeds)], args.workers)
            check = standard_plateau(standard)
            print(plateau_text(check), flush=True)
            if check["plateaued"] or 2 * settings.cnn2_epochs > args.max_epochs:
                break
            settings.cnn2_epochs *= 2
    jobs = jobs_for(seeds, sensitivity_seeds, zhou_seeds, variants, architectures)
    results = workers.map_in_parallel(run_job, [(dataclasses.asdict(settings), runs_dir, *job) for job in jobs],
                                      args.workers)
    finished = os.times()
    cpu_seconds = (finished.user - cpu_started.user) + (finished.system - cpu_started.system) + \
                  (finished.children_user - cpu_started.children_user) + (finished.children_system - cpu_started.children_system)
    wall = time.perf_counter() - started

    shown = architectures + ([ZHOU] if zhou_seeds else [])
    none_gap = {architecture: float(np.mean(gaps)) * 100 for architecture in shown
                if (gaps := [run["train_accuracy"] - run["test_accuracy"] for run in _select(results, architecture, "none")])}
    models = []
    if "CNN-2" in architectures:
        models.append(f"CNN-2 at {settings.cnn2_size}² with {'/'.join(map(str, settings.cnn2_filters))} filters and "
                      f"fc1/fc2 of {settings.cnn2_units}, {settings.cnn2_epochs} epochs")
    if "Tiny-FC" in architectures or zhou_seeds:
        models.append(f"{' and '.join(name for name in ('Tiny-FC', ZHOU) if name in shown)} at {settings.finetuned_size}², "
                      f"{'pretrained' if settings.pretrained else 'untrained'} Tiny backbone"
                      + (f", fc1/fc2 of {settings.finetuned_units}" if "Tiny-FC" in architectures else "")
                      + f", {settings.finetuned_epochs} epochs")
    caption = (f"{settings.mode} mode, {seeds} seeds: embedded digits-on-photos set (10 classes; {settings.train_images} "
               f"training images of training-half digits, {settings.test_images} test images of the other half; "
               f"{'; '.join(models)}), P = 0.5. The thesis's numbers are on other data (Cifar10 for CNN-2, "
               "UCF101 with VGG16 for the fine-tuned case), so only the ordering of the variants compares.")
    figures = {
        "generalization": plot_generalization(results, shown, os.path.join(out_dir, "generalization.png"), caption),
        "utilization": plot_utilization(results, architectures, os.path.join(out_dir, "utilization.png"), caption),
        "compression": plot_compression(results, architectures, os.path.join(out_dir, "compression.png"), caption),
    }
    gaps = ", ".join(f"{name} {gap:.1f} points" for name, gap in none_gap.items()) or "not run"
    if sensitivity_seeds and not set(SENSITIVITY_VARIANTS) & set(variants):
        sensitivity_seeds = 0
    verdicts = thesis_verdicts(results, architectures)
    from experiments.claims import claims_table

    sections = [
        "## Excitation Dropout (thesis ch. 5)", "", f"*{caption}*", "",
        f"### The thesis's claims over {seeds} seeds", "", claims_table(verdicts, seeds) if verdicts else "(no pair ran)", "",
        "Paired by seed; 95 % interval from Student's t (`experiments.claims`); values in points (accuracy; entropies and "
        "compression × 100), neurons ON as counts, peak p_EB × 1000. Peak p_EB: the sign is flipped so that 'held' means lower, as the thesis claims.", "",
        "### Generalization (Figure 5.3, Tables 5.1–5.2)", "", generalization_table(results, shown), "",
        plateau_text(standard_plateau(results)), "",
        f"CNN-2: {'Adam, beta_1 = 0.95 (ref. [83])' if settings.cnn2_optimizer == 'adam-morerio' else 'Adam (Keras)'}, "
        f"lr 1e-3 then 1e-4 after a quarter of the steps, batches of {settings.cnn2_batch}. Kept units divided by "
        f"{'their own p' if settings.scaling == 'unit' else 'P'} (largest scale factor: the largest any training step "
        "used, over the seeds).", "",
        f"Train − test without dropout: {gaps} (the set should make it at least 5). Test accuracy after the last epoch, "
        "mean ± sd over seeds; 'vs no dropout' in points. Thesis: Table 5.1 (Adaptive, Excitation), Table 5.5 at P = 0.5 "
        "(Standard, Cifar10), Table 5.2 (VGG16 on UCF101); Figure 5.3's other curves give no numbers. "
        f"{ZHOU}: dropout on the pooled GAP features before `dense` (ours; no thesis did it).", "",
        "### Utilization of the dropout layer (Table 5.3)", "", utilization_table(results, architectures), "",
        "On all test images after training, per image then averaged; entropies in nats. Conservative filters: neurons of "
        "fc1 whose incoming weights and bias moved by less than Δ; Δ = the median change under Standard Dropout of the "
        "same model (the thesis picks Δ per dataset, 0.15–1.25), so Standard has about half by construction.", "",
        "### What the masks tell the layers above (ours)", "", leak_table(results, shown), "",
        f"Accuracy on the first {settings.compression_images} test images when the layers above the dropout layer get "
        f"one training mask (eq. 5.1, inverted scaling) drawn from p_EB of the true class or of a random wrong class, "
        f"mean of {LEAK_DRAWS} draws. With p_EB of the true class (the thesis's Excitation) the mask carries the label: "
        "a model trained so learns to read it, and without the mask (inference) it loses what it learned to read. "
        "With p_EB of the predicted class the mask depends on the image alone. See NOTES.md.", "",
        "### Resilience to compression (Figure 5.5)", "", compression_table(results, shown), "",
        f"Mean predicted probability of the true class on the first {settings.compression_images} test images with the "
        "most relevant neurons (by p_EB of the "
        "true class) switched off until their cumulative p_EB reaches p_c, the least relevant within p_c, or k random "
        "ones (mean over seeds). The thesis gives curves only (Figure 5.5).", "",
    ]
    if sensitivity_seeds:
        sections += ["### Sensitivity to P (Table 5.5)", "", sensitivity_table(results), "",
                     "Test accuracy, ours / thesis (Cifar10); the thesis's columns are dropout rates (1 − P).", ""]
    sections += ["### Run time (Table 5.4)", "", runtime_table(results, shown), "",
                 f"Mean wall seconds per training step inside `fit` (first epoch excluded; {args.workers} run(s) at a "
                 "time, each on its share of the cores). Thesis: Caffe python layer, GTX Titan X, batch 50 (VGG16 for the fine-tuned row). "
                 "`python benchmarks/excitation_dropout_cost.py` measures the step alone.", "",
                 f"Experiment: {len(jobs)} runs, {wall:.0f} s wall, {cpu_seconds:.0f} CPU-seconds "
                 f"({100 * cpu_seconds / max(wall, 1e-9):.0f} % of one core; cached runs cost nothing).", "",
                 "Figures: " + ", ".join(figures.values())]
    markdown = "\n".join(sections)
    summary = [{key: value for key, value in run.items() if key != "weight_changes"} for run in results]
    for run, source in zip(summary, results):
        delta = conservative_delta(results, run["architecture"])
        if delta is not None and "weight_changes" in source:
            run["conservative_filters"] = {"delta": delta, "count": int((np.asarray(source["weight_changes"]) < delta).sum())}
    from mindgap import storage

    storage.write_json(os.path.join(out_dir, "config.json"), {
        "experiment": "excitation_dropout", "settings": dataclasses.asdict(settings), "seeds": seeds,
        "sensitivity_seeds": sensitivity_seeds, "zhou_seeds": zhou_seeds, "workers": args.workers,
        "command": " ".join(["python -m experiments.excitation_dropout", *(argv if argv is not None else sys.argv[1:])])})
    storage.write_json(os.path.join(out_dir, "results.json"),
                       {"runs": summary, "verdicts": verdicts, "wall_seconds": wall, "cpu_seconds": cpu_seconds, "no_dropout_gap_points": none_gap})
    storage.write_text(os.path.join(out_dir, "table.md"), markdown + "\n")
    print(markdown)
    print(f"\nwritten to {out_dir}")
    return results


if __name__ == "__main__":
    from experiments import common

    common.run_main(main)
