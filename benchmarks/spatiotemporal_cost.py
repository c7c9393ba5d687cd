"""Cost of cEB-R for one clip as a multiple of one forward pass of the CNN-LSTM (target <= 4x), and against per-frame cEB.

    python benchmarks/spatiotemporal_cost.py [--frames 16 32] [--size 48] [--repeats 5]

The thesis: "the complexity of cEB-R is on the order of a single backward pass" (§7.1).
Tiny-LSTM at 48² (10 classes, fc1/fc2 of 256, LSTM of 128: the quick experiment's model;
weights do not change the speed), one clip of T frames: a compiled forward pass
(``predict``), EB-R and cEB-R of the last step's predicted class at the backbone's
output (the default layer) and at ``tiny_block2`` (the experiment's layer), BP-R, and
the per-frame baselines on a Tiny-Frames CNN (cEB and EB on the T frames as a batch).
Best of ``--repeats`` interleaved rounds after a warm-up (tracing; short calls looped
to 0.5 s, ``saliency_cost.best_times``).
"""

import argparse
import os
import sys

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from saliency_cost import best_times  # noqa: E402

import mindgap  # noqa: E402
from mindgap.saliency import METHODS  # noqa: E402
from mindgap.saliency.rise import predictor  # noqa: E402

TARGET = 4.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    shape = (args.size, args.size, 3)
    print(f"Tiny-LSTM and Tiny-Frames at {args.size}², one clip, the last step's predicted class; best of {args.repeats}")
    worst = 0.0
    for steps in args.frames:
        # fresh models per T: each compiled function is traced at this clip's static shape (a second shape would make
        # tf.function relax it to (1, None, ...), another graph whose timings are not comparable)
        lstm = mindgap.build_model("Tiny-LSTM", 10, input_shape=shape)
        frames_cnn = mindgap.build_model("Tiny-Frames", 10, input_shape=shape)
        clip = tf.constant(np.random.default_rng(0).uniform(-1, 1, (1, steps, *shape)).astype("float32"))
        frames = tf.reshape(clip, (steps, *shape))
        predict = predictor(lstm)
        chosen = np.asarray(predict(clip))[:, -1].argmax(axis=-1)[:, None]
        functions = {
            "predict (CNN-LSTM)": lambda: predict(clip).numpy(),
            "eb_r": lambda: METHODS["eb_r"](lstm, clip, chosen),
            "ceb_r": lambda: METHODS["ceb_r"](lstm, clip, chosen),
            "ceb_r at tiny_block2": lambda: METHODS["ceb_r"](lstm, clip, chosen, layer="tiny_block2"),
            "bp_r": lambda: METHODS["bp_r"](lstm, clip, chosen),
            "ceb per frame (T frames)": lambda: METHODS["ceb"](frames_cnn, frames, np.repeat(chosen, steps, axis=0)),
            "eb per frame (T frames)": lambda: METHODS["eb"](frames_cnn, frames, np.repeat(chosen, steps, axis=0)),
        }
        best = best_times(functions, args.repeats)
        base = best["predict (CNN-LSTM)"]
        per_frame = best["ceb per frame (T frames)"]
        print(f"\nT = {steps} frames")
        for label, seconds in best.items():
            print(f"  {label:26s} {1000 * seconds:9.1f} ms   {seconds / base:6.2f}x forward   {seconds / per_frame:6.2f}x per-frame cEB")
        worst = max(worst, best["ceb_r"] / base)
    print(f"\ncEB-R / forward pass, worst over T: {worst:.2f}x (target <= {TARGET:g}x): {'met' if worst <= TARGET else 'MISSED'}")


if __name__ == "__main__":
    main()
