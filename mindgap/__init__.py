"""mindgap: weakly supervised classification and localization with regularized GAP heads.

A Keras 3 reimplementation of Moreaux et al., "Mind the regularized GAP",
VISAPP 2018.  Importing the package registers its layers, so saved models load
with plain ``keras.saving.load_model``.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter

from mindgap import data, metrics
from mindgap.cam import cam_model, upsample_cams
from mindgap.layers import ClassProbabilities, GroupedClassMaps, GroupedSumGAP
from mindgap.models import build_model, list_models, model_info, parse_model_name
from mindgap.regularizers import MapActivityPenalty, map_penalty
from mindgap.evaluation import EvaluationReport, evaluate
from mindgap.training import TrainConfig, train

__version__ = "0.1.0"
