"""What the pre-training check costs: decoding and checking 10,000 images, first and cached run, beside a training epoch.

    python benchmarks/data_check.py [--images-dir /tmp/mindgap_check_bench] [--train-steps 40] [--full-epoch]

Generates 10,000 digits canvases of 96×96 once (kept in ``--images-dir``),
then, in one run on this machine:

* reads the dataset (Stanford 40 layout: split files and XML boxes);
* checks it with an empty cache (every image decoded, one worker per core);
* checks it again with the cache now filled (nothing decoded);
* for comparison, checks it without a cache on a single worker;
  (each check timing is the best of ``--repeats`` runs: the machine may be shared);
* times Tiny-GAP5 training steps at 96², batch 32, on the same images
  through the real input pipeline (decoding from disk, as in a first epoch)
  and gives one epoch over the 10,000 images: measured in full with
  ``--full-epoch``, else extrapolated from ``--train-steps`` steps (said so).
"""

import argparse
import math
import os
import tempfile
import time

import keras

import mindgap
from mindgap.data import make_dataset
from mindgap.data.check import check_dataset
from mindgap.data.digits import ensure_digits_dataset
from mindgap.data.layouts import read_dataset

IMAGES = 10_000
PER_CLASS = IMAGES // 10 // 2  # train and test lists, 10 classes


def train_step_seconds(records, batch_size, steps):
    """Seconds per step of Tiny-GAP5 at 96² (after a warm-up), the images decoded from disk by the real pipeline."""
    model = mindgap.build_model("Tiny-GAP5", 10, input_shape=(96, 96, 3))
    model.compile(optimizer=keras.optimizers.Nadam(), loss="categorical_crossentropy")
    data = make_dataset(records, num_classes=10, image_size=96, batch_size=batch_size, training=True, cache=False).repeat()
    model.fit(data, steps_per_epoch=3, epochs=1, verbose=0, shuffle=False)  # warm-up: tracing, first reads
    started = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
    return (time.perf_counter() - started) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images-dir", default=os.path.join(tempfile.gettempdir(), "mindgap_check_bench"))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--train-steps", type=int, default=40)
    parser.add_argument("--full-epoch", action="store_true", help="time a whole epoch instead of extrapolating")
    parser.add_argument("--repeats", type=int, default=3, help="check timings are the best of this many runs")
    args = parser.parse_args()

    started = time.perf_counter()
    root = ensure_digits_dataset(args.images_dir, canvas_size=96, train_per_class=PER_CLASS, test_per_class=PER_CLASS)
    generated = time.perf_counter() - started

    started = time.perf_counter()
    dataset = read_dataset(root, test_per_class=PER_CLASS // 2)
    read = time.perf_counter() - started
    records = dataset.train + dataset.val + dataset.test
    assert len(records) == IMAGES, len(records)

    def timed(**kwargs):
        started = time.perf_counter()
        _, report = check_dataset(dataset, **kwargs)
        return time.perf_counter() - started, report

    first_runs, cached_runs, one_worker_runs = [], [], []
    for _ in range(args.repeats):  # the machine is shared: the best of a few runs
        with tempfile.TemporaryDirectory() as folder:
            cache = os.path.join(folder, "checks.sqlite")
            seconds, first = timed(cache_path=cache)
            first_runs.append(seconds)
            seconds, second = timed(cache_path=cache)
            cached_runs.append(seconds)
        one_worker_runs.append(timed(cache_path=None, workers=1)[0])
        assert first.decoded == IMAGES and second.from_cache == IMAGES
    first_seconds, second_seconds, one_worker = min(first_runs), min(cached_runs), min(one_worker_runs)

    steps_per_epoch = math.ceil(IMAGES / args.batch_size)
    steps = steps_per_epoch if args.full_epoch else args.train_steps
    step = train_step_seconds(records, args.batch_size, steps)
    epoch = step * steps_per_epoch
    how = "measured over a full epoch" if args.full_epoch else f"extrapolated from {steps} timed steps"

    print(f"cores: {os.cpu_count()} (check workers: {os.cpu_count()}), {IMAGES} JPEGs of 96x96 at {root}"
          f" ({'generated in ' + format(generated, '.1f') + ' s' if generated > 1 else 'already there'})")
    print(f"read layout (split files, {IMAGES} XML boxes) : {read:7.2f} s;  check timings: best of {args.repeats} runs")
    print(f"check, first run (decode every image)        : {first_seconds:7.2f} s  ({IMAGES / first_seconds:,.0f} images/s)")
    print(f"check, first run on one worker (comparison)  : {one_worker:7.2f} s  ({IMAGES / one_worker:,.0f} images/s)")
    print(f"check, cached run (size + mtime unchanged)   : {second_seconds:7.2f} s  ({IMAGES / second_seconds:,.0f} images/s)")
    print(f"Tiny-GAP5 96², batch {args.batch_size}, one step          : {step * 1000:7.1f} ms")
    print(f"one training epoch ({steps_per_epoch} steps)              : {epoch:7.1f} s  ({how})")
    print(f"first check / epoch : {first_seconds / epoch:.1%};  cached check / epoch : {second_seconds / epoch:.2%}")


if __name__ == "__main__":
    main()
