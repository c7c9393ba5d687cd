"""What a compiled model needs before ``fit``, so that TensorFlow traces its train step once."""

import keras
import tensorflow as tf


def build_before_fit(model):
    """Create the optimizer's and the compiled metrics' variables now, eagerly (the metrics then zeroed), for a model
    trained on one-hot targets of its outputs' shape (``mindgap.train``'s).

    Without a distribution strategy Keras creates them inside the first traced train step; a variable created
    while tracing makes TensorFlow trace the whole step a second time, a second or more of every ``fit``'s start.
    Zeros in, the metrics reset after: the training is the same.  Under a strategy Keras builds them itself.
    Not for integer labels (a sparse loss): Keras picks "accuracy"'s kind from the targets' shape when it builds it,
    and targets shaped as the outputs here would make it categorical."""
    if tf.distribute.has_strategy():
        return model
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    if not all(getattr(metric, "built", True) for metric in model.metrics):
        outputs = [keras.ops.zeros([1] + [size or 1 for size in output.shape[1:]], output.dtype) for output in model.outputs]
        predictions = outputs[0] if len(outputs) == 1 else outputs
        model.compute_metrics(None, predictions, predictions)
        model.reset_metrics()
    return model
