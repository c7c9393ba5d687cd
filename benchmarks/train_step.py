"""Training-step throughput: bare Keras defaults against mindgap's step with each option, side by side in one run.

    python benchmarks/train_step.py [--steps 20] [--inception-steps 4] [--models Tiny-GAP5 ...] [--options ...]

For each model (Tiny-GAP5 and Tiny-GAP-Zhou at 64², batch 32, 10 classes; Inception-GAP5-L1 at
299², batch 16, 40 classes; weights=None, since speed does not depend on the weights; every
layer trainable, as after the unfreeze) it times ``fit`` on an in-memory batch repeated:

* ``keras defaults``: the same model compiled as a Keras user would (``optimizer="nadam"``, the
  loss, accuracy; ``jit_compile`` left to Keras' default);
* ``mindgap float32``: ``mindgap.training.compiled_model``, as ``mindgap.train`` builds it;
* ``mindgap XLA``: the same with ``jit_compile=True``;
* ``mindgap bf16`` and ``mindgap XLA + bf16``: ``precision="mixed_bfloat16"``.

``taskset -c 0 python benchmarks/train_step.py`` gives the one-core figures (each of the main
job's two training processes runs on one core).

One untimed epoch first (tracing, XLA compilation), then ``--rounds`` timed epochs of ``--steps`` steps,
interleaved over the options (round 1 of every option, then round 2, ...), so that a slow spell of a shared
machine hits every option alike; the best round counts (images/s, CPU % of one core in that round, ratio to
Keras defaults' best), the median is printed beside it.  The CPU's native bf16 support is
printed first: without ``avx512_bf16`` or AMX, bf16 is emulated and slower.
"""

import argparse
import os
import time

import numpy as np

import mindgap  # noqa: F401  (TensorFlow without its start-up chatter)
import keras
import tensorflow as tf
from mindgap.training import TrainConfig, compiled_model

MODELS = {"Tiny-GAP5": (64, 32, 10), "Tiny-GAP-Zhou": (64, 32, 10), "Inception-GAP5-L1": (299, 16, 40)}
OPTIONS = ("keras defaults", "mindgap float32", "mindgap XLA", "mindgap bf16", "mindgap XLA + bf16")


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as handle:
            flags = next(line for line in handle if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return "unknown"
    found = [flag for flag in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if flag in flags]
    return ", ".join(found) or "none of avx2 / avx512 / bf16"


def build(option, name, image_size, classes, zhou_units):
    if option == "keras defaults":
        model = mindgap.build_model(name, classes, input_shape=(image_size, image_size, 3), **zhou_units)
        model.compile(optimizer="nadam", loss="categorical_crossentropy", metrics=["accuracy"])
        return model
    config = TrainConfig().replace(image_size=image_size, jit_compile="XLA" in option,
                                   precision="mixed_bfloat16" if "bf16" in option else "float32", **zhou_units)
    return compiled_model(name, classes, config)


def warm_up(model, data, steps):
    model.fit(data, steps_per_epoch=max(2, steps // 4), epochs=1, verbose=0)  # tracing and compilation


def timed_epoch(model, data, steps, batch):
    started, cpu_started = time.perf_counter(), time.process_time()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return steps * batch / wall, cpu / wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps of the Tiny models")
    parser.add_argument("--inception-steps", type=int, default=4, help="timed steps of Inception-GAP5-L1")
    parser.add_argument("--rounds", type=int, default=3, help="timed epochs per option, interleaved; the best counts")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--options", nargs="+", default=list(OPTIONS), choices=list(OPTIONS))
    parser.add_argument("--zhou-units", type=int, default=171, help="maps of the Tiny Zhou head (the quick mode's 171)")
    args = parser.parse_args()
    print(f"CPU: {os.cpu_count()} cores, {len(os.sched_getaffinity(0))} usable; flags: {cpu_flags()}; "
          f"TensorFlow {tf.__version__}, Keras {keras.__version__}")
    print(f"| model | option | images/s (best of {args.rounds}) | median | CPU % of one core | × keras defaults |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for name in args.models:
        image_size, batch, classes = MODELS[name]
        images = tf.constant(rng.uniform(-1, 1, (batch, image_size, image_size, 3)).astype("float32"))
        labels = tf.constant(np.eye(classes, dtype="float32")[rng.integers(0, classes, batch)])
        data = tf.data.Dataset.from_tensors((images, labels)).repeat()
        steps = args.inception_steps if name.startswith("Inception") else args.steps
        zhou_units = {"zhou_units": args.zhou_units} if "Zhou" in name and name.startswith("Tiny") else {}
        models = {}
        for option in args.options:
            keras.utils.set_random_seed(0)
            models[option] = build(option, name, image_size, classes, zhou_units)
            warm_up(models[option], data, steps)
        rounds = {option: [] for option in args.options}
        for _ in range(args.rounds):
            for option in args.options:
                rounds[option].append(timed_epoch(models[option], data, steps, batch))
        best = {option: max(results) for option, results in rounds.items()}
        baseline = best.get("keras defaults", (None,))[0]
        label = f"{name}{' (' + str(args.zhou_units) + ' maps)' if zhou_units else ''}"
        for option in args.options:
            throughput, cpu = best[option]
            median = float(np.median([result[0] for result in rounds[option]]))
            ratio = f"{throughput / baseline:.2f}×" if baseline else "–"
            print(f"| {label} | {option} | {throughput:.1f} | {median:.1f} | {100 * cpu:.0f} % | {ratio} |", flush=True)
        models.clear()
        keras.backend.clear_session()


if __name__ == "__main__":
    main()
