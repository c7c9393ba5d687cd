"""Workarounds that let Keras 3 ``fit`` run under MultiWorkerMirroredStrategy.

Keras 3.15 with TensorFlow 2.21 fails twice on that strategy (upstream:
keras-team/keras#20585, tensorflow/tensorflow#72388, both open):

1. ``fit`` builds the model symbolically from the first distributed batch, reduced with ``strategy.reduce("MEAN",
   batch, axis=None)``, which MultiWorkerMirroredStrategy cannot do eagerly on a batch of images.
2. Every step's logs are reduced with ``strategy.reduce("MEAN", v, axis=0)``, which fails on scalar metrics; the
   single-machine path takes the mean across replicas, which is ``axis=None``.

Both are applied only when the strategy is MultiWorkerMirroredStrategy; the
training itself (gradients all-reduced by the optimizer) is Keras' own.
"""

import tensorflow as tf
from keras import tree
from keras.src.backend.tensorflow import trainer as tensorflow_trainer


def _reduce_mean_across_replicas(values, strategy):
    def reduce(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.reduce("MEAN", value, axis=None)
        return value

    return tree.map_structure(reduce, values)


def _patched_reduce_per_replica(original):
    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return _reduce_mean_across_replicas(values, strategy)
        return original(values, strategy, reduction)

    reduce_per_replica.mindgap_patched = True
    return reduce_per_replica


def prepare_for_multi_worker(model, strategy, train_data):
    """Apply both workarounds for ``model`` when ``strategy`` is MultiWorkerMirroredStrategy; else nothing."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    if not getattr(tensorflow_trainer.reduce_per_replica, "mindgap_patched", False):
        tensorflow_trainer.reduce_per_replica = _patched_reduce_per_replica(tensorflow_trainer.reduce_per_replica)
    with strategy.scope():
        model._symbolic_build(data_batch=next(iter(train_data)))
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
