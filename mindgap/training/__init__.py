"""Training: the paper's recipe (config), the callback suite and ``train``.

The names below are imported on first use, so that ``mindgap.training.config`` (the recipe, which the command line's
help reads) loads without TensorFlow.
"""

import importlib

_EXPORTS = {
    "callbacks": ("AtomicBackup", "AtomicBestCheckpoint", "BackboneFreeze", "CamSnapshots", "EpochSummary",
                  "LocalizationMetrics", "PhaseTimes", "PreciseBatchNorm", "paper_learning_rate",
                  "recompute_batchnorm_statistics", "step_decay_callback"),
    "config": ("TrainConfig",),
    "loop": ("TrainingInterrupted", "TrainResult", "WorkerLost", "compiled_model", "is_chief", "read_history",
             "select_strategy", "train"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name):
    if name in _MODULE_OF:
        return getattr(importlib.import_module(f"mindgap.training.{_MODULE_OF[name]}"), name)
    try:
        return importlib.import_module(f"mindgap.training.{name}")  # a submodule: mindgap.training.callbacks
    except ModuleNotFoundError as error:
        if error.name != f"mindgap.training.{name}":
            raise
        raise AttributeError(f"module 'mindgap.training' has no attribute {name!r}") from None


def __dir__():
    return sorted(set(globals()) | set(_MODULE_OF))
