"""The size of the backbone's first update when it is unfrozen, in units of the learning rate.

The paper's full setting freezes InceptionV3 for 10 epochs (about 1,250 steps of
Stanford 40 at batch 32), then trains it.  This script rebuilds that moment on
Inception-GAP5 (no weights needed: the update size depends on the optimizer's
state, not on the weights), one real training step on one batch, and reports
per backbone weight |Δw| / lr for:

* the global step count of Keras' optimizers (the bug: the backbone's moments are
  zero but its bias corrections use t);
* ``unfreeze_optimizer="per_variable"``: its own step count starts at its first update;
* ``unfreeze_optimizer="fresh"``: the whole optimizer state reset (a 2017 recompile).

A fresh Nadam's first step for a steady gradient is 1.056 × lr per weight.

    python benchmarks/unfreeze_shock.py [--steps 1250 57] [--image-size 299]
"""

import argparse

import keras
import numpy as np

import mindgap
from mindgap.optimizers import Nadam2017


def _momentum_product(optimizer, steps):
    return float(np.prod([float(optimizer._momentum_cache(float(step), "float32")) for step in range(1, steps + 1)]))


def _set_steps(optimizer, variables, steps):
    product = _momentum_product(optimizer, steps)
    for variable in variables:
        index = optimizer._get_variable_index(variable)
        optimizer._steps[index].assign(float(steps))
        optimizer._u_products[index].assign(product)


def first_update(model, initial_weights, images, labels, head_steps, setting, learning_rate=0.002):
    """|Δw| / lr of every backbone weight after one step in ``setting``, the head having trained ``head_steps`` steps."""
    model.set_weights(initial_weights)
    backbone = model.get_layer("backbone")
    backbone.trainable = True
    optimizer = Nadam2017(learning_rate=learning_rate)
    optimizer.build(model.trainable_variables)
    head_variables = [variable for variable in model.trainable_variables
                      if not any(variable is own for own in backbone.trainable_variables)]
    _set_steps(optimizer, head_variables, head_steps)
    optimizer.iterations.assign(head_steps)
    if setting == "global step (before the fix)":
        _set_steps(optimizer, backbone.trainable_variables, head_steps)
    elif setting == "fresh (default)":
        optimizer.reset_state()
    model.compile(optimizer=optimizer, loss="categorical_crossentropy")
    before = [variable.numpy().copy() for variable in backbone.trainable_variables]
    model.train_on_batch(images, labels)
    moved = np.concatenate([np.abs(variable.numpy() - start).ravel()
                            for variable, start in zip(backbone.trainable_variables, before)])
    return moved[moved > 0] / learning_rate


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[57, 1250], help="global step at the unfreeze")
    parser.add_argument("--image-size", type=int, default=299)
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    model = mindgap.build_model("Inception-GAP5", 40, weights=None, input_shape=(args.image_size, args.image_size, 3))
    initial = model.get_weights()
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (args.batch_size, args.image_size, args.image_size, 3)).astype("float32")
    labels = np.eye(40, dtype="float32")[rng.integers(0, 40, args.batch_size)]
    print(f"Inception-GAP5 at {args.image_size}², one step on a batch of {args.batch_size}; "
          "|Δw| / lr over the backbone's weights (those that moved)")
    print("| global step at the unfreeze | optimizer state of the backbone | median | 90th percentile | max |")
    print("|---|---|---|---|---|")
    for steps in args.steps:
        for setting in ("global step (before the fix)", "per_variable", "fresh (default)"):
            ratios = first_update(model, initial, images, labels, steps, setting)
            print(f"| {steps} | {setting} | {np.median(ratios):.2f} | {np.percentile(ratios, 90):.2f} | {ratios.max():.2f} |",
                  flush=True)


if __name__ == "__main__":
    main()
