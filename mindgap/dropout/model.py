"""The model that trains with Excitation Dropout: Figure 5.1's five steps inside Keras' ``train_step``."""

import dataclasses

import keras
import numpy as np
import tensorflow as tf
from keras.src import tree
from keras.src.losses import loss as loss_module

from mindgap.dropout.layer import EVIDENCE_METHODS, GuidedDropout
from mindgap.engine import excitation
from mindgap.engine.cache import per_model


@dataclasses.dataclass
class _Parts:
    """The model cut at its dropout layer: below it (input → the layer's input), above it (its output → probabilities)."""

    layer: GuidedDropout
    below: keras.Model
    above: keras.Model
    evidence_layer: str  # the layer whose output the dropout layer reads, where p_EB is taken
    evidence_function: object = None
    below_dense: keras.Model = None  # standout: input → the evidence layer's input (a Dense layer's)
    dense: keras.layers.Dense = None


def class_indices(labels, num_classes):
    """Labels as one int per image: one-hot (batch, c) → argmax; (batch,) or (batch, 1) ints → as they are."""
    labels = tf.convert_to_tensor(labels)
    if labels.shape.rank == 2 and labels.shape[-1] == num_classes and num_classes > 1:
        return tf.argmax(labels, axis=-1, output_type=tf.int32)
    return tf.cast(tf.reshape(labels, [-1]), tf.int32)


@keras.saving.register_keras_serializable(package="mindgap")
class GuidedDropoutModel(keras.Model):
    """A functional model with one :class:`GuidedDropout` layer, trained as in the thesis's Figure 5.1.

    ``train_step`` (Keras 3's own, with the forward pass replaced):

    1. forward pass up to the dropout layer (training mode);
    2. Excitation Backprop from the ground-truth class (``excitation_prediction``:
       the predicted class) down to the dropout layer: ``p_EB`` per image (``mindgap.saliency.excitation``, the same
       numbers as ``excitation_backprop`` there), only for the variants that
       use it (``excitation``, ``adaptive``, ``excitation_prediction``);
    3. the retaining probability (eq. 5.1 or the variant's) and a Bernoulli mask;
    4. forward pass from the dropout layer to the end with the mask applied;
    5. the standard backward pass and update.

    The layers above the dropout layer run twice (in step 2 in inference mode, then in step 4), those below once, as
    in the thesis (§5.2.5).  Every variant goes through the same steps (only step 2 is skipped), so the scaling and
    the cost comparison are alike.  Inference, ``evaluate`` and ``predict`` are the plain functional model (the
    dropout layer is the identity), so a saved ``.keras`` file loads after ``import mindgap`` and predicts as its
    weights say.  It works under ``tf.distribute`` (each replica draws its own masks for its images).

    Built like a functional model: ``GuidedDropoutModel(inputs, outputs, name=...)``
    (see :func:`mindgap.dropout.build_dropout_model`); the labels may be one-hot or ints.
    """

    def _parts(self):  # kept outside the model so that Keras does not track the sub-models as its layers (saving, weights)
        return per_model(self, "dropout parts", self._cut)

    def _cut(self):
        layers = [layer for layer in self.layers if isinstance(layer, GuidedDropout)]
        if len(layers) != 1:
            raise ValueError(f"A GuidedDropoutModel needs exactly one GuidedDropout layer at its top level; "
                             f"{self.name!r} has {len(layers)}.")
        layer = layers[0]
        below = keras.Model(self.inputs, layer.input, name=f"{self.name}_below_{layer.name}")
        above = keras.Model(layer.output, self.outputs[0], name=f"{self.name}_above_{layer.name}")
        evidence = layer.input._keras_history.operation
        parts = _Parts(layer, below, above, evidence.name)
        if layer.needs_activations:  # standout reads W x + b of the Dense layer below it (shared weights)
            if not isinstance(evidence, keras.layers.Dense) or not evidence.use_bias:
                raise ValueError(f"Standout ('adaptive') needs a Dense layer with a bias below the dropout layer; "
                                 f"{self.name!r} has {type(evidence).__name__} {evidence.name!r}.")
            parts.below_dense = keras.Model(self.inputs, evidence.input, name=f"{self.name}_below_{evidence.name}")
            parts.dense = evidence
        return parts

    @property
    def dropout_layer(self):
        """The :class:`GuidedDropout` layer."""
        return self._parts().layer

    @property
    def evidence_layer(self):
        """Name of the layer whose output the dropout layer reads (where p_EB is taken)."""
        return self._parts().evidence_layer

    def _num_classes(self):
        return int(self.outputs[0].shape[-1])

    def dropout_features(self, images, training=False):
        """Activations at the dropout layer (its input), (batch, N)."""
        return self._parts().below(images, training=training)

    def probabilities_from_features(self, features):
        """Class probabilities from activations at the dropout layer (inference mode; no dropout)."""
        return self._parts().above(features, training=False)

    def excitation_probabilities(self, features, labels):
        """p_EB (batch, N) of the class ``labels`` at the dropout layer, from that layer's ``features``."""
        return excitation.marginal_winning_probabilities_at(self, self.evidence_layer, features,
                                                            class_indices(labels, self._num_classes()))

    def evidence(self, images, labels):
        """(activations, p_EB) at the dropout layer for ``labels``, inference mode, as numpy (compiled once)."""
        parts = self._parts()
        if parts.evidence_function is None:
            def evidence(batch, classes):
                features = parts.below(batch, training=False)
                return features, self.excitation_probabilities(features, classes)

            parts.evidence_function = tf.function(evidence, reduce_retracing=True)
        features, p_eb = parts.evidence_function(tf.convert_to_tensor(images, tf.float32),
                                                 tf.convert_to_tensor(labels, tf.int32))
        return features.numpy(), p_eb.numpy()

    def masked_probabilities(self, images, mask_classes):
        """Class probabilities with one training mask drawn from p_EB of ``mask_classes`` (numpy).

        The layers above the dropout layer in inference mode, fed the masked activations as in training.  Masks from
        the true class against masks from a wrong class measure how much the mask tells the layers above (the label
        leak of NOTES.md); the evidence variants only.
        """
        layer = self._parts().layer
        if not layer.needs_evidence:
            raise ValueError(f"masked_probabilities needs an evidence variant ({', '.join(EVIDENCE_METHODS)}); "
                             f"this model's dropout is {layer.method!r}.")
        features, p_eb = self.evidence(images, mask_classes)
        features = tf.convert_to_tensor(features)
        retain, noise_shape = layer.retaining_probabilities(features, tf.convert_to_tensor(p_eb))
        return np.asarray(self.probabilities_from_features(layer.drop(features, retain, noise_shape)))

    def guided_forward(self, images, labels, return_largest_scale=False):
        """Steps 1–4 of Figure 5.1: the training-mode probabilities with this step's masks.

        ``return_largest_scale``: also the largest factor a kept unit was multiplied by in this step.
        """
        parts = self._parts()
        layer = parts.layer
        pre_activations = None
        if layer.needs_activations:  # standout: the Dense layer's W x + b, then its activation, as in its own call
            below = parts.below_dense(images, training=True)
            pre_activations = tf.matmul(below, parts.dense.kernel) + parts.dense.bias
            features = parts.dense.activation(pre_activations)
            pre_activations = tf.stop_gradient(pre_activations)  # the keep probability is not trained through
        else:
            features = parts.below(images, training=True)  # step 1 (the layers above run in step 2 and step 4)
        p_eb = None
        if layer.needs_evidence:  # step 2: EB is a function of the forward pass, not trained through
            evidence_features = tf.stop_gradient(features)
            if layer.evidence_from_prediction:
                labels = tf.argmax(self.probabilities_from_features(evidence_features), axis=-1, output_type=tf.int32)
            p_eb = self.excitation_probabilities(evidence_features, labels)
        optimizer = getattr(self, "optimizer", None)  # None before compile
        step = optimizer.iterations if optimizer is not None else None
        retain, noise_shape = layer.retaining_probabilities(features, p_eb, step=step, pre_activations=pre_activations)
        dropped, largest = layer.drop(features, retain, noise_shape, return_largest_scale=True)  # step 3
        probabilities = parts.above(dropped, training=True)  # step 4
        return (probabilities, largest) if return_largest_scale else probabilities

    def train_step(self, data):
        # Keras 3.15's TensorFlow train_step; only the forward pass differs (guided_forward for self(x, training=True)).
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if y is None:
            raise ValueError("Excitation Dropout needs the labels: fit(x, y) or a dataset of (images, labels).")
        with tf.GradientTape() as tape:
            y_pred, largest_scale = self.guided_forward(x, y, return_largest_scale=True)
            loss = self._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
            self._loss_tracker.update_state(
                loss_module.unscale_loss_for_distribution(loss),
                sample_weight=tf.shape(next(i for i in tree.flatten(x) if i is not None))[0])
            if self.optimizer is not None:
                loss = self.optimizer.scale_loss(loss)
        trainable_weights = self.trainable_weights
        gradients = tape.gradient(loss, trainable_weights)  # step 5
        self.optimizer.apply_gradients(zip(gradients, trainable_weights))
        logs = self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        return {**logs, "largest_scale": largest_scale}  # this step's; a callback keeps the maximum over training
