"""Cost of class evidence maps: predict alone, predict + all CAMs in one pass, and Grad-CAM.

    python benchmarks/cam_cost.py [--batch-size 8] [--repeats 3]

For Inception-GAP5 and Inception-GAP-Zhou (40 classes, 299², weights=None:
speed does not depend on the weights) on this machine, in one run.  Ratios
are to predict alone on the same model.
"""

import argparse
import time

import numpy as np
import tensorflow as tf

import mindgap


def best_time(function, repeats):
    function()  # warm-up: tracing
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--classes", type=int, default=40)
    args = parser.parse_args()
    images = tf.constant(np.random.default_rng(0).uniform(-1, 1, (args.batch_size, 299, 299, 3)).astype("float32"))
    print(f"batch {args.batch_size}, 299x299, {args.classes} classes, best of {args.repeats}")
    for name in ("Inception-GAP5", "Inception-GAP-Zhou"):
        model = mindgap.build_model(name, args.classes)
        explainer = mindgap.cam_model(model)
        predict = tf.function(lambda batch: model(batch, training=False))
        predict_with_cams = tf.function(lambda batch: explainer(batch, training=False))
        base = best_time(lambda: predict(images).numpy(), args.repeats)
        one_pass = best_time(lambda: [output.numpy() for output in predict_with_cams(images)], args.repeats)
        grad_one = best_time(lambda: mindgap.grad_cam(model, images, [0]), args.repeats)
        grad_all = best_time(lambda: mindgap.grad_cam(model, images), args.repeats)
        print(f"\n{name}")
        for label, seconds in (("predict", base), ("predict + all CAMs (one pass)", one_pass),
                               ("Grad-CAM, one class", grad_one), (f"Grad-CAM, all {args.classes} classes", grad_all)):
            print(f"  {label:32s} {1000 * seconds:9.1f} ms   {seconds / base:6.2f}x predict")


if __name__ == "__main__":
    main()
