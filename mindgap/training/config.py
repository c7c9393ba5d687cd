"""The training configuration: defaults are the paper's recipe (§3.3)."""

import dataclasses

from mindgap.data.options import DataOptions, choices_of, option

PRECISIONS = ("float32", "mixed_bfloat16")


@dataclasses.dataclass
class TrainConfig(DataOptions):
    """Every setting of a training run: the data options (``mindgap.data.options``) and the recipe, whose defaults are
    the paper's; each field's help says what it does.

    Optimizer: Nadam with the Keras defaults of 2017 (lr 0.002, β1 0.9, β2 0.999, ε 1e-8, momentum schedule decay
    0.004; Keras 3's own Nadam differs in all but the betas), see ``mindgap.optimizers.Nadam2017``.  Learning rate
    ×0.94 every second epoch (Szegedy et al. 2016).  Backbone frozen for the first 10 epochs.  At most 125 epochs; the
    lowest-validation-loss weights are kept.
    ``batch_size`` is the **global** batch: under a ``tf.distribute`` strategy each of the N replicas sees
    ``batch_size / N`` images per step.  The paper does not give it; 32 is our choice.
    """

    epochs: int = option(125, "epochs in all (a finished run in the same --out extends to this many)")
    learning_rate: float = option(0.002, "Nadam's learning rate")
    beta_1: float = option(0.9, None)
    beta_2: float = option(0.999, None)
    epsilon: float = option(1e-8, None)
    nadam_schedule_decay: float = option(0.004, "Keras 1/2's Nadam momentum schedule; 1.0 = Keras 3's Nadam")
    lr_decay_factor: float = option(0.94, "learning rate times this every --lr-decay-every epochs")
    lr_decay_every: int = option(2, None)
    freeze_epochs: int = option(10, "epochs with the backbone frozen before it is fine-tuned")
    freeze_batchnorm: bool = option(False, "keep BatchNorm in inference mode after the unfreeze (Keras advice; not in "
                                    "the paper)")
    unfreeze_optimizer: str = option("fresh", "optimizer state at the unfreeze: fresh (a 2017 recompile) or per variable",
                                     ("fresh", "per_variable"))
    precise_bn_batches: int = option(50, "batches over which BatchNorm statistics are recomputed before each "
                                     "validation; 0 off")
    weights: str | None = option(None, "backbone start: pretrained (the shipped Tiny weights), pretrained:RECIPE, "
                                 "imagenet (Inception) or a file")
    alpha: float = option(1e-7, "weight of the maps penalty (eq. 5-6)")
    # the choices of reduction and dropout are mindgap.regularizers.REDUCTIONS and mindgap.dropout.METHODS (tests/test_cli)
    reduction: str = option("sum", "maps penalty summed over the batch (the paper's Keras) or averaged", ("sum", "mean"))
    seed: int = option(0, "seed of weights, shuffling, augmentation (and of a seeded split without --split-seed)")
    strategy: str = option("auto", "tf.distribute strategy (auto: mirrored on several GPUs, multi_worker with TF_CONFIG)",
                           ("auto", "default", "mirrored", "multi_worker"))
    localization_images: int = option(200, "validation images whose localization is measured each epoch; 0 off")
    snapshot_images: int = option(4, "images whose CAMs are saved each epoch; 0 off")
    cam_threshold: float = option(0.2, "CAM threshold of a box, a fraction of the map's max")
    tensorboard: bool = option(True, "write TensorBoard logs")
    zhou_units: int | None = option(None, "maps of a GAP-Zhou head (None: Zhou et al.'s 1,024)")
    fc_units: int | None = option(None, "width of fc1/fc2 of a CNN-LSTM or frame CNN (None: the frame CNN's, else 256)")
    dropout: str | None = option(None, "dropout on a GAP-Zhou head's pooled features (Excitation Dropout and "
                                 "baselines, mindgap.dropout)", ("none", "standard", "standard_per_image", "curriculum",
                                                                 "adaptive", "mirrored_excitation", "excitation",
                                                                 "excitation_prediction"))
    dropout_retain: float = option(0.5, "base retaining probability P of --dropout")
    jit_compile: bool = option(False, "XLA-compile the train, test and predict steps")
    precision: str = option("float32", "mixed_bfloat16 (bf16 compute, float32 weights) pays only on CPUs with native "
                            "bf16 (avx512_bf16 / AMX) or accelerators", PRECISIONS)
    verbose: int = option(-1, "-1: a progress bar on a terminal, a line per epoch otherwise; 0 silent; 1, 2 Keras' own")

    def the_split_seed(self):
        return self.seed if self.split_seed is None else self.split_seed

    def validate(self):
        problems = self.problems()
        for name in ("epochs", "lr_decay_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        for name, default in (("zhou_units", "1,024"), ("fc_units", "256")):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                problems.append(f"{name} must be an integer >= 1 (or None for {default}), got {value!r}")
        if not 0 < self.dropout_retain <= 1:
            problems.append(f"dropout_retain (P) must be in (0, 1], got {self.dropout_retain}")
        for name in ("localization_images", "snapshot_images"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0 (0 turns its callback off), got {getattr(self, name)}")
        if self.precise_bn_batches < 0:
            problems.append(f"precise_bn_batches must be >= 0 (0 turns it off), got {self.precise_bn_batches}")
        if self.freeze_epochs < 0:
            problems.append(f"freeze_epochs must be >= 0, got {self.freeze_epochs}")
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


# The names each field takes; four owners import TensorFlow, so `mindgap train --help` reads these copies.
CHOICES = choices_of(TrainConfig)
