"""Training: the paper's recipe (config), the callback suite and ``train``.

The names below are imported on first use, so that ``mindgap.training.config`` (the recipe, which the command line's
help reads) loads without TensorFlow.
"""

from mindgap.lazy_exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "callbacks": ("AtomicBackup", "AtomicBestCheckpoint", "BackboneFreeze", "CamSnapshots", "EpochSummary",
                  "LocalizationMetrics", "PhaseTimes", "PreciseBatchNorm", "paper_learning_rate",
                  "recompute_batchnorm_statistics", "step_decay_callback"),
    "config": ("TrainConfig",),
    "loop": ("TrainingInterrupted", "TrainResult", "WorkerLost", "compiled_model", "is_chief", "read_history",
             "select_strategy", "train"),
})
