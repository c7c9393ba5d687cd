"""The paper's two phases (frozen backbone, then fine-tuning) survive the unfreeze.

Before the fix, Nadam's bias corrections used the global step t, so a backbone
unfrozen at step t took a first step of about lr · 0.6 / sqrt(1 − 0.999^t) per
weight (4.4 × lr at t = 57, 13.9 × lr at t = 1,250) and the maps died.  These
tests run ``fit`` through :class:`BackboneFreeze` and check the numbers.
"""

import keras
import numpy as np
import pytest

import mindgap
from mindgap.optimizers import Nadam2017
from mindgap.training import BackboneFreeze

FROZEN_EPOCHS = 2
BATCHES_PER_EPOCH = 60
LEARNING_RATE = 0.002
FRESH_FIRST_STEP = 1.0564  # |first update| / lr of a fresh Nadam2017, any steady gradient (test_optimizers)


def _colour_task(count=240, size=16, seed=0):
    """Three classes told apart by which colour channel is brightest: learnable from a frozen random backbone."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 3
    images = rng.uniform(-1, 0.2, (count, size, size, 3)).astype("float32")
    images[np.arange(count), :, :, labels] += 0.8
    return images, np.eye(3, dtype="float32")[labels]


class _GlobalStepCounting(keras.callbacks.Callback):
    """Emulates the optimizer before the fix: at the unfreeze, the backbone's step counts jump to the global step."""

    def __init__(self, freeze_epochs):
        super().__init__()
        self.freeze_epochs = freeze_epochs

    def on_epoch_begin(self, epoch, logs=None):
        if epoch != self.freeze_epochs:
            return
        optimizer = self.model.optimizer
        steps = int(optimizer.iterations.numpy())
        mu = [optimizer._momentum_cache(float(step), "float32") for step in range(1, steps + 1)]
        product = float(np.prod([float(value) for value in mu]))
        for variable in self.model.get_layer("backbone").trainable_variables:
            index = optimizer._get_variable_index(variable)
            optimizer._steps[index].assign(float(steps))
            optimizer._u_products[index].assign(product)


class _Recorder(keras.callbacks.Callback):
    """Per-batch losses, and the backbone kernel before and after the first unfrozen batch."""

    def __init__(self, freeze_epochs):
        super().__init__()
        self.freeze_epochs = freeze_epochs
        self.losses = []
        self.before = self.after = None
        self.epoch = 0

    def _kernel(self):
        return self.model.get_layer("backbone").get_layer("tiny_block2_conv").kernel.numpy().copy()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        if epoch == self.freeze_epochs:
            self.before = self._kernel()

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append((self.epoch, float(logs["loss"])))
        if self.epoch == self.freeze_epochs and batch == 0:
            self.after = self._kernel()


def _train_through_unfreeze(unfreeze_optimizer, emulate_global_step=False, learning_rate=LEARNING_RATE):
    keras.utils.set_random_seed(0)
    images, labels = _colour_task()
    model = mindgap.build_model("Tiny-GAP5", 3, input_shape=images.shape[1:])
    optimizer = Nadam2017(learning_rate=learning_rate, epsilon=1e-12)  # no epsilon damping of tiny gradients
    optimizer.build(model.trainable_variables)
    model.compile(optimizer=optimizer, loss="categorical_crossentropy")
    recorder = _Recorder(FROZEN_EPOCHS)
    # The emulation runs after BackboneFreeze, so it overrides a fresh reset too.
    callbacks = [BackboneFreeze(FROZEN_EPOCHS, unfreeze_optimizer=unfreeze_optimizer)]
    if emulate_global_step:
        callbacks.append(_GlobalStepCounting(FROZEN_EPOCHS))
    model.fit(images, labels, batch_size=len(images) // BATCHES_PER_EPOCH, epochs=FROZEN_EPOCHS + 1, verbose=0,
              shuffle=False, callbacks=callbacks + [recorder])
    return recorder


def _first_step_per_lr(recorder):
    moved = np.abs(recorder.after - recorder.before)
    return float(np.median(moved[moved > 0]) / LEARNING_RATE)


@pytest.mark.parametrize("unfreeze_optimizer", ["fresh", "per_variable"])
def test_first_backbone_step_is_a_fresh_optimizers(unfreeze_optimizer):
    """Whatever the global step (here 120), the backbone's first update is a fresh Nadam's first step:
    1.056 × lr per weight within 2 %, against 7.2 × lr if the global step were used."""
    ours = _first_step_per_lr(_train_through_unfreeze(unfreeze_optimizer))
    assert ours == pytest.approx(FRESH_FIRST_STEP, rel=0.02)
    shock = _first_step_per_lr(_train_through_unfreeze("per_variable", emulate_global_step=True))
    assert shock > 5 * FRESH_FIRST_STEP  # the test can tell the bug apart


def _unfreeze_jump(recorder, batches=10):
    frozen_last = np.mean([loss for epoch, loss in recorder.losses if epoch == FROZEN_EPOCHS - 1][-batches:])
    unfrozen_first = np.mean([loss for epoch, loss in recorder.losses if epoch == FROZEN_EPOCHS][:batches])
    return frozen_last, unfrozen_first


def test_no_loss_jump_at_the_unfreeze():
    """Mean loss of the first 10 unfrozen batches stays within 0.25 of the last 10 frozen ones (ln 3 = 1.10
    would be a dead head); the global-step optimizer on the same run jumps by more than that."""
    frozen_last, unfrozen_first = _unfreeze_jump(_train_through_unfreeze("fresh"))
    assert frozen_last < 0.8  # the head learned during the frozen phase
    assert unfrozen_first < frozen_last + 0.25
    shocked_last, shocked_first = _unfreeze_jump(_train_through_unfreeze("per_variable", emulate_global_step=True))
    assert shocked_first > shocked_last + 0.25


def _batchnorm_model():
    inputs = keras.Input((2, 2, 3))
    frozen = keras.layers.BatchNormalization(name="frozen_bn")
    frozen.trainable = False
    outputs = frozen(keras.layers.BatchNormalization(momentum=0.9, name="training_bn")(inputs))
    return keras.Model(inputs, outputs)


def test_recomputed_batchnorm_statistics_are_the_batch_averages():
    """PreciseBN: moving mean = mean of the batch means, moving variance = mean of the (biased) batch variances,
    whatever the momentum; a frozen BN keeps its statistics; the momentum is put back."""
    from mindgap.training import recompute_batchnorm_statistics

    rng = np.random.default_rng(0)
    batches = [rng.normal(loc, scale, (4, 2, 2, 3)).astype("float32") for loc, scale in ((0.0, 1.0), (2.0, 3.0), (-1.0, 0.5))]
    model = _batchnorm_model()
    frozen_before = model.get_layer("frozen_bn").moving_variance.numpy().copy()
    assert recompute_batchnorm_statistics(model, [(batch, None) for batch in batches]) == 3
    layer = model.get_layer("training_bn")
    expected_mean = np.mean([batch.mean(axis=(0, 1, 2)) for batch in batches], axis=0)
    expected_variance = np.mean([batch.var(axis=(0, 1, 2)) for batch in batches], axis=0)
    np.testing.assert_allclose(layer.moving_mean.numpy(), expected_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.moving_variance.numpy(), expected_variance, rtol=1e-5)
    np.testing.assert_array_equal(model.get_layer("frozen_bn").moving_variance.numpy(), frozen_before)
    assert layer.momentum == 0.9
    # An exponential average with momentum 0.9 would weigh the last batch most: the test tells them apart.
    assert abs(layer.moving_mean.numpy().mean() - batches[-1].mean()) > 0.5


def test_precise_batchnorm_runs_before_validation():
    """In fit, the statistics are recomputed after the epoch's steps and before its validation: the validation
    loss of an identity-like BN model equals the loss computed with the recomputed statistics."""
    from mindgap.training import PreciseBatchNorm

    rng = np.random.default_rng(1)
    images = rng.normal(3.0, 2.0, (64, 2, 2, 3)).astype("float32")
    inputs = keras.Input((2, 2, 3))
    model = keras.Model(inputs, keras.layers.BatchNormalization(momentum=0.999, center=False, scale=False)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    statistics = PreciseBatchNorm(tf_batches(images, 16), batches=4)
    history = model.fit(images, np.zeros_like(images), batch_size=16, epochs=1, verbose=0, shuffle=False,
                        validation_data=(images, np.zeros_like(images)), callbacks=[statistics])
    layer = model.layers[-1]
    np.testing.assert_allclose(layer.moving_mean.numpy(), images.reshape(4, -1, 3).mean(axis=1).mean(axis=0), rtol=1e-5)
    normalised = (images - layer.moving_mean.numpy()) / np.sqrt(layer.moving_variance.numpy() + layer.epsilon)
    assert history.history["val_loss"][0] == pytest.approx(float(np.mean(normalised ** 2)), rel=1e-4)
    # With momentum 0.999 and no recomputation the moving mean would still be near 0, the loss near 13 (3² + 2²).
    assert history.history["val_loss"][0] < 1.5


def tf_batches(images, batch_size):
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices(images).batch(batch_size)
