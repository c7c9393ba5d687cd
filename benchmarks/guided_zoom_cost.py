"""Cost of Guided Zoom's refinement per test image, as a multiple of one predict of the conventional CNN.

    python benchmarks/guided_zoom_cost.py [--images 50] [--repeats 3] [--top-k 5]

The quick experiment's shapes: conventional Tiny-GAP5 at 64² (10 classes), Evidence CNN Tiny-GAP5 at
48², test images of 96² (patches of 150/448 of the side are cut from them), k = 5.  Untrained
weights (the cost does not depend on them).  Side by side in one run, interleaved rounds, best of
``--repeats`` after a warm-up (tracing): a compiled predict of the conventional CNN on the batch,
and ``Refiner.refine`` with cEB and with the CAM as grounding method at L = 0 and L = 2.

Where the time goes: each refinement is split into the grounding maps (``class_peaks``: the
saliency method, the resize of the maps to the image and the argmax), the Evidence CNN's predicts,
the conventional CNN's predict, and the rest (cutting patches, erasing, Algorithm 2's sums) by
timing those functions inside the refinement.  Per image and round, a refinement computes k maps,
cuts k patches and runs the Evidence CNN on them; so its cost grows as k · (L + 1).
"""

import argparse
import collections
import time

import numpy as np

import mindgap
from mindgap import guided_zoom as gz
from mindgap.guided_zoom import pool as gz_pool

CONFIGURATIONS = (("cam", 0), ("cam", 2), ("ceb", 0), ("ceb", 2))


class _Timer:
    """Wraps ``pool.class_peaks`` and ``pool.predict`` (which the refinement calls) to add up their seconds."""

    def __init__(self, conventional):
        self.conventional, self.seconds = conventional, collections.Counter()
        self.class_peaks, self.predict = gz_pool.class_peaks, gz_pool.predict

    def __enter__(self):
        def class_peaks(*arguments, **options):
            started = time.perf_counter()
            try:
                return self.class_peaks(*arguments, **options)
            finally:
                self.seconds["grounding maps"] += time.perf_counter() - started

        def predict(model, *arguments, **options):
            started = time.perf_counter()
            try:
                return self.predict(model, *arguments, **options)
            finally:
                name = "conventional predict" if model is self.conventional else "Evidence CNN predicts"
                self.seconds[name] += time.perf_counter() - started

        gz_pool.class_peaks, gz_pool.predict = class_peaks, predict
        return self

    def __exit__(self, *_):
        gz_pool.class_peaks, gz_pool.predict = self.class_peaks, self.predict


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50, help="test images per call")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds; the best is kept")
    parser.add_argument("--top-k", type=int, default=5)
    args = parser.parse_args(argv)
    if args.images < 1 or args.repeats < 1 or not 1 <= args.top_k <= 10:
        raise SystemExit(f"error: --images and --repeats must be >= 1 and --top-k in [1, 10], got {args.images}, "
                         f"{args.repeats}, {args.top_k}.")
    model = mindgap.build_model("Tiny-GAP5", 10, input_shape=(64, 64, 3))
    evidence = mindgap.build_model("Tiny-GAP5", 10, input_shape=(48, 48, 3))
    images = np.random.default_rng(0).uniform(-1, 1, (args.images, 96, 96, 3)).astype(np.float32)
    refiners = {(method, rounds): gz.Refiner(model, evidence, weights=gz.thesis_weights(rounds), methods=(method,),
                                             rounds=rounds, top_k=args.top_k)
                for method, rounds in CONFIGURATIONS}
    gz.predict(model, images)  # warm-up: tracing
    for refiner in refiners.values():
        refiner.refine(images)  # the same shapes as the timed calls (a new batch size would trace again)

    best = collections.defaultdict(lambda: float("inf"))
    parts = {}
    for _ in range(args.repeats):
        started = time.perf_counter()
        for _ in range(10):
            gz.predict(model, images)
        best["predict"] = min(best["predict"], (time.perf_counter() - started) / 10)
        for key, refiner in refiners.items():
            with _Timer(model) as timer:
                started = time.perf_counter()
                refiner.refine(images)
                seconds = time.perf_counter() - started
            if seconds < best[key]:
                best[key], parts[key] = seconds, dict(timer.seconds)

    per_image = {key: value / args.images for key, value in best.items()}
    predict = per_image["predict"]
    print(f"Guided Zoom refinement cost, {args.images} images of 96², conventional Tiny-GAP5 at 64², Evidence CNN "
          f"Tiny-GAP5 at 48², k = {args.top_k}, best of {args.repeats} interleaved rounds\n")
    print(f"one predict of the conventional CNN: {1000 * predict:.3f} ms per image (compiled, batch of {args.images})\n")
    columns = ("grounding maps", "Evidence CNN predicts", "conventional predict")
    print("| grounding method | L | ms per image | × one predict | " + " | ".join(f"{name}, %" for name in columns)
          + " | rest (patches, erasing, Algorithm 2), % |")
    print("|---|---|---|---|" + "---|" * (len(columns) + 1))
    for key in refiners:
        total = best[key]
        shares = [100 * parts[key].get(name, 0.0) / total for name in columns]
        print(f"| {key[0]} | {key[1]} | {1000 * per_image[key]:.2f} | {per_image[key] / predict:.1f} | "
              + " | ".join(f"{share:.0f}" for share in shares) + f" | {100 - sum(shares):.0f} |")


if __name__ == "__main__":
    main()
