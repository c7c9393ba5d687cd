"""Input pipeline speed at 299², with and without Hide-and-Seek, beside Inception-GAP5's training step rate.

    python benchmarks/data_pipeline.py [--batch-size 32] [--batches 20]

Everything is measured in one run on this machine: images per second the
pipeline delivers (decode, resize, preprocess, hide) and images per second
one Inception-GAP5 training step consumes at the same batch size; the ratio
says whether the pipeline can keep the model fed.
"""

import argparse
import os
import tempfile
import time

import numpy as np

import mindgap
from mindgap.data import make_dataset, read_stanford40
from mindgap.data.digits import generate_digits_dataset


def pipeline_rate(records, batch_size, batches, hide_and_seek):
    dataset = make_dataset(records, num_classes=10, image_size=299, batch_size=batch_size, training=True,
                           hide_and_seek=hide_and_seek, cache=False).repeat()
    iterator = iter(dataset)
    next(iterator)  # warm-up: graph building, first file reads
    started = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - started)


def training_rate(batch_size, steps):
    model = mindgap.build_model("Inception-GAP5", 10)
    model.compile(optimizer="nadam", loss="categorical_crossentropy")
    images = np.random.default_rng(0).uniform(-1, 1, (batch_size, 299, 299, 3)).astype("float32")
    labels = np.eye(10, dtype="float32")[np.arange(batch_size) % 10]
    model.train_on_batch(images, labels)  # warm-up: tracing
    started = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(images, labels)
    return steps * batch_size / (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--train-steps", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        # Stanford 40 images are about 400×300 JPEGs: 400×400 digits canvases are of that size class.
        root = generate_digits_dataset(os.path.join(folder, "d"), canvas_size=400, train_per_class=40, test_per_class=1,
                                       digit_size=(80, 200))
        records = read_stanford40(root, test_per_class=1).train
        plain = pipeline_rate(records, args.batch_size, args.batches, hide_and_seek=False)
        hidden = pipeline_rate(records, args.batch_size, args.batches, hide_and_seek=True)
    trained = training_rate(args.batch_size, args.train_steps)
    print(f"cores: {os.cpu_count()}, batch size {args.batch_size}, 400x400 JPEGs resized to 299x299")
    print(f"pipeline, no Hide-and-Seek : {plain:8.1f} images/s")
    print(f"pipeline, Hide-and-Seek    : {hidden:8.1f} images/s  ({hidden / plain:.2f}x the plain pipeline)")
    print(f"Inception-GAP5 train step  : {trained:8.1f} images/s")
    print(f"pipeline / training ratio  : {plain / trained:8.1f}x (no H&S), {hidden / trained:.1f}x (H&S)")


if __name__ == "__main__":
    main()
