"""The training configuration: defaults are the paper's recipe (§3.3)."""

import dataclasses
import json

from mindgap.data.options import CHOICES as DATA_CHOICES, DataOptions

PRECISIONS = ("float32", "mixed_bfloat16")
# The values of the fields that take a name.  Four have owners that import TensorFlow (mindgap.dropout.METHODS,
# mindgap.regularizers.REDUCTIONS, and the data options' two); the copies here let `mindgap train --help`
# list them at once, and tests/test_cli.py checks that they agree with the owners.
CHOICES = {
    **DATA_CHOICES,
    "unfreeze_optimizer": ("fresh", "per_variable"),
    "reduction": ("sum", "mean"),
    "strategy": ("auto", "default", "mirrored", "multi_worker"),
    "dropout": ("none", "standard", "standard_per_image", "curriculum", "adaptive", "mirrored_excitation", "excitation",
                "excitation_prediction"),
    "precision": PRECISIONS,
}


@dataclasses.dataclass
class TrainConfig(DataOptions):
    """Every setting of a training run: the data options (``mindgap.data.options``) and the recipe, whose defaults are
    the paper's.  ``seed`` seeds the weights, the shuffling and the augmentation (and the split when ``split_seed`` is None).

    Optimizer: Nadam with the Keras defaults of 2017 (lr 0.002, β1 0.9,
    β2 0.999, ε 1e-8, momentum schedule decay 0.004; Keras 3's own Nadam
    differs in all but the betas), see ``mindgap.optimizers.Nadam2017``.  Learning rate ×0.94
    every second epoch (Szegedy et al. 2016).  Backbone frozen for the first
    10 epochs.  At most 125 epochs; the lowest-validation-loss weights are kept.

    ``batch_size`` is the **global** batch: under a ``tf.distribute``
    strategy each of the N replicas sees ``batch_size / N`` images per step.
    The paper does not give it; 32 is our choice.

    ``zhou_units``: maps of a GAP-Zhou head (None: Zhou et al.'s 1,024).
    ``jit_compile``: XLA-compile the train, test and predict steps.
    ``dropout``: None, or a name of ``mindgap.dropout.METHODS`` (e.g.
    ``"excitation"``) on the pooled features of a GAP-Zhou head, with
    ``dropout_retain`` (P) its base retaining probability.
    ``precision``: ``"float32"`` (default) or ``"mixed_bfloat16"`` (bf16
    compute, float32 weights and probabilities); pays only on CPUs with
    native bf16 (``avx512_bf16`` / AMX) or accelerators.
    """

    epochs: int = 125
    learning_rate: float = 0.002
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8
    nadam_schedule_decay: float = 0.004  # Keras 1/2's Nadam momentum schedule; 1.0 = Keras 3's Nadam
    lr_decay_factor: float = 0.94
    lr_decay_every: int = 2
    freeze_epochs: int = 10
    freeze_batchnorm: bool = False  # True: BN stays in inference mode after the unfreeze (Keras advice; not in the paper)
    unfreeze_optimizer: str = "fresh"  # fresh: new optimizer state at the unfreeze (a 2017 recompile) | per_variable
    precise_bn_batches: int = 50  # training batches over which training BN layers' statistics are recomputed before each validation; 0: off
    weights: str | None = None
    alpha: float = 1e-7
    reduction: str = "sum"
    seed: int = 0
    strategy: str = "auto"  # auto | default | mirrored | multi_worker
    localization_images: int = 200
    snapshot_images: int = 4
    cam_threshold: float = 0.2
    tensorboard: bool = True
    zhou_units: int | None = None
    dropout: str | None = None  # GAP-Zhou heads: Excitation Dropout or a baseline on the pooled features (mindgap.dropout)
    dropout_retain: float = 0.5
    jit_compile: bool = False
    precision: str = "float32"  # float32 | mixed_bfloat16
    verbose: int = -1  # -1: a progress bar on a terminal, one summary line per epoch otherwise; 0: silent; 1/2: Keras' own

    def the_split_seed(self):
        return self.seed if self.split_seed is None else self.split_seed

    def validate(self):
        problems = self.data_problems()
        for name in ("epochs", "lr_decay_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.zhou_units is not None and (isinstance(self.zhou_units, bool) or not isinstance(self.zhou_units, int) or self.zhou_units < 1):
            problems.append(f"zhou_units must be an integer >= 1 (or None for 1,024), got {self.zhou_units!r}")
        if self.dropout is not None and self.dropout not in CHOICES["dropout"]:
            problems.append(f"dropout must be one of {', '.join(CHOICES['dropout'])} (or None), got {self.dropout!r}")
        if not 0 < self.dropout_retain <= 1:
            problems.append(f"dropout_retain (P) must be in (0, 1], got {self.dropout_retain}")
        for name in ("precision", "reduction"):
            if getattr(self, name) not in CHOICES[name]:
                problems.append(f"{name} must be one of {', '.join(CHOICES[name])}, got {getattr(self, name)!r}")
        for name in ("localization_images", "snapshot_images"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0 (0 turns its callback off), got {getattr(self, name)}")
        if self.precise_bn_batches < 0:
            problems.append(f"precise_bn_batches must be >= 0 (0 turns it off), got {self.precise_bn_batches}")
        if self.freeze_epochs < 0:
            problems.append(f"freeze_epochs must be >= 0, got {self.freeze_epochs}")
        if self.strategy not in CHOICES["strategy"]:
            problems.append(f"strategy must be auto, default, mirrored or multi_worker, got {self.strategy!r}")
        if self.unfreeze_optimizer not in CHOICES["unfreeze_optimizer"]:
            problems.append(f"unfreeze_optimizer must be fresh or per_variable, got {self.unfreeze_optimizer!r}")
        if self.verbose not in (-1, 0, 1, 2):
            problems.append(f"verbose must be -1 (automatic), 0, 1 or 2, got {self.verbose}")
        if self.learning_rate <= 0:
            problems.append(f"learning_rate must be > 0, got {self.learning_rate}")
        if problems:
            raise ValueError("Bad training config: " + "; ".join(problems) + ".")
        return self

    def replace(self, **overrides):
        unknown = sorted(set(overrides) - {field.name for field in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"Unknown config field(s) {unknown}; known: {', '.join(field.name for field in dataclasses.fields(self))}.")
        return dataclasses.replace(self, **overrides).validate()

    def to_json(self, path, **extra):
        with open(path, "w") as handle:
            json.dump({**extra, **dataclasses.asdict(self)}, handle, indent=2)
