"""Size on disk and single-image latency of each export format, against Keras.

    python benchmarks/export_latency.py [--repeats 5] [--out /tmp/export_latency]

For Tiny-GAP5 at 96² (10 classes) and Inception-GAP5 at 299² (40 classes),
weights=None (speed does not depend on the weights): the model is exported
with :func:`mindgap.export` as a SavedModel, a LiteRT ``.tflite`` and an ONNX
file, and one image (batch of one, both outputs: probabilities and every
class's CAM) is timed in each runtime: TensorFlow (the SavedModel's
``serving_default``), ``ai-edge-litert``'s interpreter, ``onnxruntime`` (CPU), and
Keras itself twice: ``model.predict`` (what a script calls; it builds a dataset
each call) and a direct call of the model compiled with ``tf.function`` (what
a server calls).  Best of ``--repeats`` interleaved rounds after a warm-up, short
calls looped to 0.5 s; the largest |difference| to Keras of each runtime's
outputs is printed too.  Size on disk: the artifact (the SavedModel folder's
total) and the ``.keras`` file.

Not run by the test suite: it loads the CPU for minutes (Inception).  Run it on a
quiet machine; the export itself is checked by ``tests/test_export.py``.
"""

import argparse
import os
import shutil
import sys

import numpy as np
import tensorflow as tf

import mindgap
from mindgap.exporting import ARTIFACTS, FORMATS, OUTPUT_NAMES
from saliency_cost import best_times  # the same interleaved best-of-N timing (run as python benchmarks/...)

SETTINGS = (("Tiny-GAP5", 96, 10), ("Inception-GAP5", 299, 40))  # name, input side, classes


def size_mb(path):
    if os.path.isfile(path):
        return os.path.getsize(path) / 2**20
    return sum(os.path.getsize(os.path.join(folder, name)) for folder, _, names in os.walk(path) for name in names) / 2**20


def runners(paths, image):
    """{format: a call returning {output name: array}} for the exported artifacts."""
    found = {}
    serve = tf.saved_model.load(paths["savedmodel"]).signatures["serving_default"]
    batch = tf.constant(image)
    found["savedmodel"] = lambda: {name: value.numpy() for name, value in serve(image=batch).items()}
    try:
        from ai_edge_litert.interpreter import Interpreter

        runner = Interpreter(model_path=paths["litert"]).get_signature_runner()
        found["litert"] = lambda: runner(image=image)
    except ImportError:
        print("ai-edge-litert is not installed: LiteRT skipped", file=sys.stderr)
    try:
        import onnxruntime

        session = onnxruntime.InferenceSession(paths["onnx"], providers=["CPUExecutionProvider"])
        names = [output.name for output in session.get_outputs()]
        found["onnx"] = lambda: dict(zip(names, session.run(names, {session.get_inputs()[0].name: image})))
    except ImportError:
        print("onnxruntime is not installed: ONNX skipped", file=sys.stderr)
    return found


def measure(name, side, classes, out_dir, repeats):
    model = mindgap.build_model(name, classes, input_shape=(side, side, 3), weights=None)
    keras_path = os.path.join(out_dir, f"{name}.keras")
    model.save(keras_path)
    explainer = mindgap.cam_model(model)
    image = np.random.default_rng(0).uniform(-1, 1, (1, side, side, 3)).astype(np.float32)
    compiled = tf.function(lambda batch: explainer(batch, training=False))
    paths = {}
    for format in FORMATS:
        try:
            paths[format] = mindgap.export(model, os.path.join(out_dir, name), format=format)
        except ImportError as error:
            print(f"{name}: {format} not exported ({error})", file=sys.stderr)
    expected = dict(zip(OUTPUT_NAMES, (value.numpy() for value in compiled(image))))
    calls = {"keras predict": lambda: explainer.predict(image, verbose=0), "keras compiled call": lambda: compiled(image)}
    exported = runners(paths, image) if "savedmodel" in paths else {}
    calls.update(exported)
    seconds = best_times(calls, repeats)
    rows = []
    for label in calls:
        size = size_mb(paths[label]) if label in paths else size_mb(keras_path)
        difference = max(float(np.abs(exported[label]()[output] - expected[output]).max()) for output in OUTPUT_NAMES) \
            if label in exported else 0.0
        rows.append((label, size, 1000 * seconds[label], difference))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="/tmp/export_latency", help="where the .keras files and artifacts are written")
    args = parser.parse_args(argv)
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)
    print(f"artifacts: {', '.join(ARTIFACTS.values())}; one image, outputs {', '.join(OUTPUT_NAMES)}")
    for name, side, classes in SETTINGS:
        print(f"\n{name} at {side}², {classes} classes\n")
        print("| runtime | size on disk (MB) | latency (ms) | max abs diff to Keras |")
        print("|---|---|---|---|")
        for label, size, milliseconds, difference in measure(name, side, classes, args.out, args.repeats):
            print(f"| {label} | {size:.1f} | {milliseconds:.2f} | {difference:.1e} |")


if __name__ == "__main__":
    main()
