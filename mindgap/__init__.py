"""mindgap: weakly supervised classification and localization with regularized GAP heads.

A Keras 3 reimplementation of Moreaux et al., "Mind the regularized GAP",
VISAPP 2018.  Importing the package registers its layers, so saved models load
with plain ``keras.saving.load_model``.
"""

import os


def default_tf_log_level():
    """TF_CPP_MIN_LOG_LEVEL unless the user set one: "2" (errors only), "3" in a multi-worker run (TF_CONFIG set),
    where a lost peer makes the collective ops log C++ errors before mindgap can say it in one line."""
    return "3" if os.environ.get("TF_CONFIG") else "2"


def _import_tensorflow_quietly():
    """TensorFlow 2.21 writes C++ start-up lines to stderr before any log setting is read;
    they would bury the one-line errors of the ``mindgap`` command.  Python errors still
    propagate.  Set MINDGAP_TF_LOGS=1 to see them."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", default_tf_log_level())
    if os.environ.get("MINDGAP_TF_LOGS") == "1":
        import tensorflow  # noqa: F401

        return
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)


_import_tensorflow_quietly()

from mindgap import data, metrics
from mindgap.cam import cam_model, upsample_cams, upsample_map
from mindgap import backbones
from mindgap.layers import ClassProbabilities, GroupedClassMaps, GroupedSumGAP
from mindgap.models import build_model, list_models, load_model, logits_model, model_info, parse_model_name
from mindgap.regularizers import MapActivityPenalty, map_penalty
from mindgap.evaluation import EvaluationReport, evaluate
from mindgap.exporting import export
from mindgap.training import TrainConfig, train
from mindgap import saliency  # noqa: E402  (mindgap.saliency.compute)
from mindgap.saliency import compute as saliency_maps  # noqa: E402
from mindgap.saliency.gradcam import grad_cam_of_maps as grad_cam  # noqa: E402
from mindgap import dropout  # noqa: E402  (Excitation Dropout, thesis ch. 5)
from mindgap import plots, recurrent, temporal  # noqa: E402  (video: CNN-LSTM and temporal grounding, thesis ch. 7)
from mindgap.explanation import Explanation, explain, explain_clip, explain_folder, explain_refined  # noqa: E402  (one call)

__version__ = "0.1.0"
