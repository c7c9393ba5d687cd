"""Training: the paper's recipe (config), the callback suite and ``train``."""

from mindgap.training.callbacks import (
    AtomicBackup,
    AtomicBestCheckpoint,
    BackboneFreeze,
    CamSnapshots,
    EpochSummary,
    LocalizationMetrics,
    PhaseTimes,
    PreciseBatchNorm,
    paper_learning_rate,
    recompute_batchnorm_statistics,
    step_decay_callback,
)
from mindgap.training.config import TrainConfig
from mindgap.training.loop import (
    TrainingInterrupted,
    TrainResult,
    WorkerLost,
    compiled_model,
    is_chief,
    read_history,
    select_strategy,
    train,
)
