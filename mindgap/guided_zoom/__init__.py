"""Guided Zoom: refine a prediction by questioning its evidence (Bargal 2019, thesis ch. 6).

A conventional CNN's top-k classes are re-ranked by how much the evidence of each (the patch
around the peak of a grounding method's map) looks like the evidence of correctly classified
training images of that class, as judged by an Evidence CNN trained on those patches.

* :func:`evidence_pool`: Algorithm 1 (patches, adversarial erasing, L rounds); :func:`ensemble_pool`:
  eq. (6.1), the union of the pools of cEB, Grad-CAM, RISE (and the CAM, ours) with L = 0.
* :func:`train_evidence_cnn`: the Evidence CNN, a registry model trained through ``mindgap.train``.
* :func:`refine_decision`: Algorithm 2's decision; :func:`choose_weights`: w, w_0 … w_L on a
  validation split; :class:`Refiner`: the whole method, saved to and loaded from one folder.

Patch and erase sizes (``patches.PATCH_FRACTION`` = 150/448, ``patches.ERASE_FRACTION`` = 85/448 of
the shorter side, the thesis's ratios) are explained in :mod:`mindgap.guided_zoom.patches`.

Example::

    from mindgap import guided_zoom as gz
    pool = gz.evidence_pool(model, train_images, train_labels, method="ceb", rounds=2)
    result = gz.train_evidence_cnn(pool, val_pool, "runs/gz/evidence", class_names, image_size=48)
    refiner = gz.Refiner(model, result.best_model(), weights=(0.4, 0.3, 0.2, 0.1), methods=("ceb",), rounds=2)
    refined = refiner.refine(test_images).refined
"""

from mindgap.guided_zoom.evidence import train_evidence_cnn
from mindgap.guided_zoom.patches import ERASE_FRACTION, PATCH_FRACTION, erase, erase_box, extract_patch, patch_box, peak
from mindgap.guided_zoom.pool import (ENSEMBLE_METHODS, GROUNDING_METHODS, EvidencePool, class_peaks, ensemble_pool,
                                      evidence_pool, predict, write_pool)
from mindgap.guided_zoom.refine import (THESIS_WEIGHTS, Refinement, Refiner, choose_weights, evidence_scores,
                                        refine_decision, thesis_weights, weight_grid)

__all__ = ["ERASE_FRACTION", "PATCH_FRACTION", "erase", "erase_box", "extract_patch", "patch_box", "peak", "ENSEMBLE_METHODS",
           "GROUNDING_METHODS", "EvidencePool", "class_peaks", "ensemble_pool", "evidence_pool", "predict", "write_pool",
           "THESIS_WEIGHTS", "Refinement", "Refiner", "choose_weights", "evidence_scores", "refine_decision",
           "thesis_weights", "weight_grid", "train_evidence_cnn"]
