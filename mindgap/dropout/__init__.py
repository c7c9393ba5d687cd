"""Excitation Dropout and its baselines (thesis ch. 5): dropout guided by the evidence of the true class.

    model = mindgap.dropout.build_dropout_model("CNN-2", 10, dropout="excitation", base_retain=0.5)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(images, labels, batch_size=100, epochs=10)      # Figure 5.1 in train_step
    model.save("m.keras")                                     # inference: the plain model

* :func:`retaining_probability`: eq. (5.1), ``p`` from ``p_EB``, N and P;
* :class:`GuidedDropout`: the layer, variant by name (:data:`METHODS`:
  ``none``, ``standard`` (one mask per batch), ``standard_per_image``,
  ``curriculum`` (Morerio et al. 2017), ``adaptive`` (Ba & Frey 2013's standout:
  keep probability sigmoid(alpha (W x + b) + beta)), ``mirrored_excitation`` (ours:
  eq. 5.1 turned round, the least relevant dropped),
  ``excitation``, and ours, ``excitation_prediction``: p_EB of the predicted class); inverted scaling by each unit's
  own retaining probability (``scaling="unit"``) or by P (``scaling="base"``);
* :class:`GuidedDropoutModel`: the functional model whose ``train_step`` runs
  Figure 5.1 (EB from ``mindgap.saliency.excitation``);
* :func:`build_cnn2`, :func:`build_finetuned` (:data:`ARCHITECTURES`), and ``mindgap.build_model("Tiny-GAP-Zhou", c,
  dropout="excitation")`` on the GAP features of a Zhou head;
* :mod:`mindgap.dropout.utilization`: Table 5.3's measures and Figure 5.5's switched-off neurons.
"""

from mindgap.dropout.architectures import (ARCHITECTURES, DROPOUT_LAYER, EVIDENCE_LAYER, build_cnn2, build_dropout_model,
                                           build_finetuned)
from mindgap.dropout.layer import ACTIVATION_METHODS, EVIDENCE_METHODS, METHODS, SCALINGS, GuidedDropout, check_method
from mindgap.dropout.model import GuidedDropoutModel, class_indices
from mindgap.dropout.retention import (CURRICULUM_GAMMA, STANDOUT_ALPHA, STANDOUT_BETA, curriculum_retaining_probability,
                                       mirrored_retaining_probability, retaining_probability,
                                       standout_retaining_probability)
from mindgap.dropout import utilization

__all__ = ["ACTIVATION_METHODS", "SCALINGS", "STANDOUT_ALPHA", "STANDOUT_BETA", "standout_retaining_probability",
           "ARCHITECTURES", "CURRICULUM_GAMMA", "DROPOUT_LAYER", "EVIDENCE_LAYER", "EVIDENCE_METHODS", "METHODS",
           "GuidedDropout", "GuidedDropoutModel", "build_cnn2", "build_dropout_model", "build_finetuned", "check_method",
           "class_indices", "curriculum_retaining_probability", "mirrored_retaining_probability",
           "retaining_probability", "utilization"]
