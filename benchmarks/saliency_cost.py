"""Cost of each saliency method as a multiple of one predict, and RISE's peak memory at two values of N.

    python benchmarks/saliency_cost.py [--batch-size 8] [--repeats 3]

Inception-GAP5 at 299² (40 classes, weights=None: speed does not depend on the
weights) and Tiny-GAP5 at 96² (10 classes), measured side by side in one run:
seconds per image for the map of one class per image (the predicted one), best
of ``--repeats`` interleaved rounds after a warm-up (tracing; short calls looped to
0.5 s), divided by the seconds per image of
a compiled predict on the same batch.  Grad-CAM, EB and cEB at their default
layer (the backbone's output); EB also at a deeper layer.  RISE is timed on one
image with N = 64 (Inception) and 1000 (Tiny, the default); its cost is linear
in N (N forward passes per image), so the cost per mask is printed too.

RISE's peak memory: a fresh process per N builds the model, runs one predict
of a batch of RISE's size, then RISE on one image; printed: the peak resident
set size (VmHWM), its growth during RISE, and the peak of Python/numpy
allocations inside RISE (tracemalloc).
"""

import argparse
import json
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import tensorflow as tf

import mindgap
from mindgap.saliency import METHODS
from mindgap.saliency.rise import predictor

# name, input side, classes, a deeper EB layer, RISE's N for the timing, two N for the memory
SETTINGS = (("Inception-GAP5", 299, 40, "mixed2", 64, (32, 256)), ("Tiny-GAP5", 96, 10, "tiny_block2", 1000, (256, 4096)))


def best_times(functions, repeats, minimum=0.5):
    """{name: best seconds of one call}, the functions timed in interleaved rounds (so that load from other
    processes hits them alike); short calls are looped until a timing lasts ``minimum`` s."""
    calls = {}
    for name, function in functions.items():
        function()  # warm-up: tracing
        started = time.perf_counter()
        function()
        calls[name] = max(1, int(minimum / max(time.perf_counter() - started, 1e-6)))
    best = {name: float("inf") for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            started = time.perf_counter()
            for _ in range(calls[name]):
                function()
            best[name] = min(best[name], (time.perf_counter() - started) / calls[name])
    return best


def _peak_mb():
    """This process's peak resident set size (VmHWM; ru_maxrss would carry the parent's over fork and exec)."""
    with open("/proc/self/status") as handle:
        line = next(line for line in handle if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024.0


def rise_memory(name, size, classes, num_masks, rise_batch):
    """Child process: peak RSS growth (MB) of RISE with ``num_masks`` masks on one image."""
    model = mindgap.build_model(name, classes, input_shape=(size, size, 3))
    image = np.random.default_rng(0).uniform(-1, 1, (1, size, size, 3)).astype("float32")
    predictor(model)(np.repeat(image, rise_batch, axis=0))  # the same batch shape RISE uses
    before = _peak_mb()
    tracemalloc.start()
    METHODS["rise"](model, image, np.zeros((1, 1), int), num_masks=num_masks, batch_size=rise_batch)
    _, numpy_peak = tracemalloc.get_traced_memory()
    print(json.dumps({"before_mb": before, "after_mb": _peak_mb(), "numpy_peak_mb": numpy_peak / 2**20}))


def measure_rise_memory(name, size, classes, num_masks, rise_batch):
    output = subprocess.run([sys.executable, __file__, "--rise-memory", name, str(size), str(classes), str(num_masks),
                             str(rise_batch)], capture_output=True, text=True, check=True).stdout
    values = json.loads(output.strip().splitlines()[-1])
    return values["after_mb"] - values["before_mb"], values["after_mb"], values["numpy_peak_mb"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rise-batch", type=int, default=32, help="masked images per forward pass in RISE")
    parser.add_argument("--rise-memory", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    if args.rise_memory:
        name, size, classes, num_masks, rise_batch = args.rise_memory
        return rise_memory(name, int(size), int(classes), int(num_masks), int(rise_batch))

    print(f"batch {args.batch_size}, map of one class per image (the predicted one), best of {args.repeats}; "
          f"RISE on one image, {args.rise_batch} masked images per pass")
    for name, size, classes, deep_layer, rise_masks, memory_masks in SETTINGS:
        model = mindgap.build_model(name, classes, input_shape=(size, size, 3))
        images = tf.constant(np.random.default_rng(0).uniform(-1, 1, (args.batch_size, size, size, 3)).astype("float32"))
        predict = predictor(model)
        chosen = np.asarray(predict(images)).argmax(axis=-1)[:, None]
        functions = {"predict": lambda: predict(images).numpy()}
        for method in ("cam", "gradcam", "eb", "ceb"):
            functions[method] = lambda method=method: METHODS[method](model, images, chosen)
        functions[f"eb at {deep_layer}"] = lambda: METHODS["eb"](model, images, chosen, layer=deep_layer)
        best = best_times(functions, args.repeats)
        base = best["predict"]
        rows = list(best.items())
        rise_images = images[:1]
        rise_seconds = best_times({"rise": lambda: METHODS["rise"](model, rise_images, chosen[:1], num_masks=rise_masks,
                                                                   batch_size=args.rise_batch)}, 1)["rise"]
        print(f"\n{name} at {size}x{size}, {classes} classes")
        for label, seconds in rows:
            per_image = seconds / args.batch_size
            print(f"  {label:22s} {1000 * per_image:10.1f} ms/image   {seconds / base:8.2f}x predict")
        per_image_predict = base / args.batch_size
        print(f"  {'rise (N=' + str(rise_masks) + ')':22s} {1000 * rise_seconds:10.1f} ms/image   "
              f"{rise_seconds / per_image_predict:8.2f}x predict   ({1000 * rise_seconds / rise_masks:.2f} ms per mask)")
        for num_masks in memory_masks:
            growth, peak, numpy_peak = measure_rise_memory(name, size, classes, num_masks, args.rise_batch)
            print(f"  RISE peak memory, N={num_masks:5d}: peak RSS {peak:.0f} MB (+{growth:.1f} MB over the peak of "
                  f"one predict of the same batch); Python/numpy allocations inside RISE peak at {numpy_peak:.1f} MB")


if __name__ == "__main__":
    main()
