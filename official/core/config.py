"""The one config schema of the project: its sections, one preset registry, overrides.

`ExperimentConfig` (model, data, objective, train) is one pretraining run, stored as
<model_dir>/config.json (`read_run_config`); `FinetuneConfig` is the fine-tuning grid search
(paper Table 2) and `StudyConfig` what a study runs, with `_tuning` variants (`tuning_study`).
`PRESETS[section][name]` holds the presets; `override` and `parse_params_override` change
any config. official.data is imported only inside `resolve`.
"""

import ast
import dataclasses
import functools
import itertools
import json
import math
import os
import types
import typing
from typing import Any, Callable, Mapping, Optional, Union

import numpy as np

from official import losses
from official.core import io
from official.modeling import resnet

# The files of a pretraining run directory (official.training.trainer writes it):
CONFIG_FILE = "config.json"  # to_dict of the resolved ExperimentConfig
CHECKPOINT_DIR = "checkpoints"  # tf.train.CheckpointManager's ckpt-N files
EXPORT_DIR = os.path.join("export", "saved_model")  # SavedModel of the EMA weights
METRICS_FILE = "metrics.json"  # the final evaluation

SPLITS = ("train", "validation", "test", "train_full")
PREPROCESSING = ("train", "eval", "transfer")


def _require_positive_ints(config, section: str, names, optional: bool = False) -> None:
  """A one-line ValueError naming the first field of `names` that is not an integer >= 1
  (or None, where `optional`)."""
  for name in names:
    value = getattr(config, name)
    if (value is not None or not optional) and (
        not isinstance(value, int) or isinstance(value, bool) or value < 1):
      raise ValueError(f"{section}.{name}={value!r} must be a positive integer"
                       + (" or None" if optional else ""))


@dataclasses.dataclass
class ModelConfig(resnet.ResNetConfig):
  """The ResNet plus what the data decides about it.

  Attributes:
    num_classes: K, the width of the head; 0 means "the dataset's number of classes"
      (filled in by `resolve`).
    image_size: side of the square input images the network sees.
  """
  num_classes: int = 0
  image_size: int = 224

  def __post_init__(self):
    super().__post_init__()
    if not isinstance(self.num_classes, int) or self.num_classes < 0:
      raise ValueError(f"model.num_classes={self.num_classes!r} must be a positive integer "
                       "(or 0 for the dataset's number of classes)")
    if not isinstance(self.image_size, int) or self.image_size < 8:
      raise ValueError(f"model.image_size={self.image_size!r} must be an integer >= 8")


@dataclasses.dataclass
class DataConfig:
  """The pretraining data.

  Attributes:
    dataset: an official.data.datasets spec ("demo_pretrain", "imagenet2012", "folder:/p").
    data_dir: TFDS data directory (None: TFDS's default).
    classes: optional class subset, as official.data.datasets.get takes it.
    class_names: the names of the classes in label order, filled by `resolve` from the
      dataset (None when it names none); a value given here must match the dataset's.
    train_examples, eval_examples: if set, only the first N examples of the split are used.
    train_preprocess, eval_preprocess: official.data preprocessing ("train": random crop and
      flip; "eval": centre crop; docs/protocol.md §3).
    crop_area_range: area fraction of the random training crop (released: 8%-100%).
  """
  dataset: str = "demo_pretrain"
  data_dir: Optional[str] = None
  classes: Optional[str] = None
  class_names: Optional[tuple[str, ...]] = None
  train_split: str = "train"
  eval_split: str = "test"
  train_examples: Optional[int] = None
  eval_examples: Optional[int] = None
  train_preprocess: str = "train"
  eval_preprocess: str = "eval"
  crop_area_range: tuple[float, float] = (0.08, 1.0)

  def __post_init__(self):
    for key in ("train_split", "eval_split"):
      if getattr(self, key) not in SPLITS:
        raise ValueError(f"data.{key}={getattr(self, key)!r} is not a split; valid: "
                         f"{', '.join(SPLITS)}")
    for key in ("train_preprocess", "eval_preprocess"):
      if getattr(self, key) not in PREPROCESSING:
        raise ValueError(f"data.{key}={getattr(self, key)!r} is not a preprocessing; valid: "
                         f"{', '.join(PREPROCESSING)}")
    low, high = (tuple(self.crop_area_range) + (None, None))[:2]
    if len(self.crop_area_range) != 2 or not 0 < low <= high <= 1:
      raise ValueError(f"data.crop_area_range={tuple(self.crop_area_range)!r} must be "
                       "(low, high) with 0 < low <= high <= 1")
    self.crop_area_range = (float(low), float(high))
    _require_positive_ints(self, "data", ("train_examples", "eval_examples"), optional=True)
    if self.class_names is not None:
      if not all(isinstance(name, str) for name in self.class_names):
        raise ValueError(f"data.class_names={self.class_names!r} must be a list of names")
      self.class_names = tuple(self.class_names)


@dataclasses.dataclass
class ObjectiveConfig:
  """The loss of docs/protocol.md §1: an official.losses name and hyperparameter overrides.

  `resolve` canonicalises the name ("mse" -> "squared_error") and fills `hparams` with every
  hyperparameter of the objective: explicit `hparams` first, then the preset's
  `preset_hparams[name]`, then the released defaults (official.losses.DEFAULT_HPARAMS).
  """
  name: str = "softmax"
  hparams: dict = dataclasses.field(default_factory=dict)
  # Per-objective defaults of a preset that differ from the released ones (ImageNet scale).
  preset_hparams: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class TrainConfig:
  """Optimisation and the training loop (docs/protocol.md §3: schedule, EMA, early stopping).

  Attributes:
    seed: seeds the initialisation, dropout and the data order of every epoch.
    base_learning_rate: learning rate per 256 examples of the global batch (linear scaling
      rule), unless `learning_rate` gives the absolute peak.
    weight_decay: c of the penalty c * 0.5 * ||v||^2 over every convolution and dense kernel.
    ema_warmup: the EMA decay at step t is min(ema_decay, (1 + t) / (10 + t)).
    mixed_precision: bfloat16 computation, head and loss in float32.
    sync_batch_norm: batch-norm statistics over the global batch, not each replica's part.
    deterministic: deterministic TF ops, so a resumed run reproduces an uninterrupted one.
    steps_per_loop: training steps per call of the compiled loop (between host checks).
    checkpoint_every_steps: periodic checkpoint every N steps (0: only at epoch ends).
    eval_every_epochs: evaluate every N epochs (and always after the last).
    select_best_epoch: export the EMA weights of the evaluated epoch of highest top-1.
    stop_after_epochs: end the run after this many epochs of the `epochs`-epoch schedule
      (0: train all `epochs`).
    class_separation_examples: the first N examples of the evaluation split, on which the
      class separation R^2 (docs/protocol.md §6) of the penultimate features is measured.
  """
  seed: int = 0
  batch_size: int = 4096
  epochs: int = 90
  base_learning_rate: float = 0.1
  learning_rate: Optional[float] = None
  warmup_epochs: float = 5.0
  momentum: float = 0.9
  nesterov: bool = True
  weight_decay: float = 8e-5
  ema_decay: float = 0.9999
  ema_warmup: bool = True
  mixed_precision: bool = False
  sync_batch_norm: bool = False
  jit_compile: bool = False
  deterministic: bool = False
  steps_per_loop: int = 100
  log_every_steps: int = 100
  checkpoint_every_steps: int = 1000
  keep_checkpoints: int = 3
  eval_batch_size: int = 1000
  eval_every_epochs: int = 1
  class_separation_examples: int = 10_000
  select_best_epoch: bool = False
  stop_after_epochs: int = 0

  def __post_init__(self):
    _require_positive_ints(self, "train", (
        "batch_size", "epochs", "steps_per_loop", "log_every_steps", "keep_checkpoints",
        "eval_batch_size", "eval_every_epochs", "class_separation_examples"))
    if not isinstance(self.checkpoint_every_steps, int) or self.checkpoint_every_steps < 0:
      raise ValueError(f"train.checkpoint_every_steps={self.checkpoint_every_steps!r} must be "
                       "a non-negative integer (0: only at epoch ends)")
    if not isinstance(self.stop_after_epochs, int) or not (
        0 <= self.stop_after_epochs <= self.epochs):
      raise ValueError(f"train.stop_after_epochs={self.stop_after_epochs!r} must be an integer "
                       f"in [0, train.epochs={self.epochs}] (0: train every epoch)")
    if not self.base_learning_rate > 0:
      raise ValueError(f"train.base_learning_rate={self.base_learning_rate!r} must be positive")
    if self.learning_rate is not None and not self.learning_rate > 0:
      raise ValueError(f"train.learning_rate={self.learning_rate!r} must be positive or None")
    if not 0 <= self.warmup_epochs < self.epochs:
      raise ValueError(f"train.warmup_epochs={self.warmup_epochs!r} must be in "
                       f"[0, train.epochs={self.epochs})")
    if not 0 <= self.momentum < 1:
      raise ValueError(f"train.momentum={self.momentum!r} must be in [0, 1)")
    if not self.weight_decay >= 0:
      raise ValueError(f"train.weight_decay={self.weight_decay!r} must be >= 0")
    if not 0 <= self.ema_decay < 1:
      raise ValueError(f"train.ema_decay={self.ema_decay!r} must be in [0, 1)")

  @property
  def peak_learning_rate(self) -> float:
    """The learning rate after warm-up: explicit, or 0.1 per 256 examples scaled linearly."""
    if self.learning_rate is not None:
      return float(self.learning_rate)
    return self.base_learning_rate * self.batch_size / 256


@dataclasses.dataclass
class ExperimentConfig:
  """A pretraining run: model, data, objective, train (see the module docstring)."""
  model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
  data: DataConfig = dataclasses.field(default_factory=DataConfig)
  objective: ObjectiveConfig = dataclasses.field(default_factory=ObjectiveConfig)
  train: TrainConfig = dataclasses.field(default_factory=TrainConfig)


SECTIONS = {"model": ModelConfig, "data": DataConfig, "objective": ObjectiveConfig,
            "train": TrainConfig}

# Keys that change how a run is carried out but not its result: a run may resume with other
# values for them. Everything else (model, objective, data, schedule, seed) must match.
RUN_ONLY_KEYS = frozenset({
    "data.data_dir", "train.jit_compile", "train.deterministic", "train.steps_per_loop",
    "train.log_every_steps", "train.checkpoint_every_steps", "train.keep_checkpoints",
    "train.eval_batch_size", "train.eval_every_epochs",
})


# ---------------------------------------------------------------------------------------------
# The finetune section: fine-tuning the whole network (paper Table 2, docs/protocol.md §5;
# official.evaluation.finetune).

SCHEDULES = ("cosine", "constant")

# docs/protocol.md §5 grid: 7 log-spaced values per range; weight decay 0 stands for "none".
PAPER_LEARNING_RATE_RANGE = (1e-4, 0.1)
PAPER_WEIGHT_DECAY_RANGE = (1e-6, 1e-3)
GRID_SIZE = 7


def log_spaced(low: float, high: float, num: int = GRID_SIZE) -> tuple[float, ...]:
  """`num` values low * (high / low)^(i / (num - 1)), i = 0..num-1 (both ends included)."""
  return tuple(float(v) for v in np.logspace(math.log10(low), math.log10(high), num))


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
  """Settings of a fine-tuning grid search.

  Attributes:
    weight_decays: weight decays wd of the grid; 0 means none. The loss carries
      (wd / lr) * 0.5 * sum ||kernel||^2 (docs/protocol.md §5).
    schedule: "cosine" (decay from lr to 0 over `steps`) or "constant".
    bn_momentum_epochs: E in the batch-norm momentum max(1 - E / s, min_bn_momentum).
    min_bn_momentum: the floor of the batch-norm momentum.
    sync_batch_norm: batch-norm statistics over the global batch, not each replica's part.
    image_size: side S of the network's input; None: the pretrained network's own.
    seed: seeds the head's initialisation and the data order of every epoch.
    checkpoint_every_steps: checkpoint every N steps (and at the end of training).
    keep_checkpoints: keep a grid point's checkpoints once its result is written.
  """
  learning_rates: tuple = log_spaced(*PAPER_LEARNING_RATE_RANGE)
  weight_decays: tuple = (0.0,) + log_spaced(*PAPER_WEIGHT_DECAY_RANGE)
  steps: int = 20_000
  batch_size: int = 256
  momentum: float = 0.9
  nesterov: bool = True
  schedule: str = "cosine"
  bn_momentum_epochs: float = 10.0
  min_bn_momentum: float = 0.9
  sync_batch_norm: bool = False
  image_size: Optional[int] = None
  seed: int = 0
  eval_batch_size: int = 256
  steps_per_loop: int = 100
  log_every_steps: int = 500
  checkpoint_every_steps: int = 1000
  keep_checkpoints: bool = False

  def __post_init__(self):
    for name in ("learning_rates", "weight_decays"):
      values = getattr(self, name)
      if isinstance(values, (int, float)):
        values = (values,)
      values = tuple(float(v) for v in values)
      object.__setattr__(self, name, values)
      if not values:
        raise ValueError(f"finetune {name}: at least one value is needed")
      if len(set(values)) != len(values):
        raise ValueError(f"finetune {name}: duplicate values in {list(values)}")
    if not all(v > 0 and math.isfinite(v) for v in self.learning_rates):
      raise ValueError(f"finetune learning_rates must be positive, got "
                       f"{list(self.learning_rates)}")
    if not all(v >= 0 and math.isfinite(v) for v in self.weight_decays):
      raise ValueError(f"finetune weight_decays must be >= 0 (0: none), got "
                       f"{list(self.weight_decays)}")
    _require_positive_ints(self, "finetune", ("steps", "batch_size", "eval_batch_size",
                                              "steps_per_loop", "log_every_steps",
                                              "checkpoint_every_steps"))
    if self.schedule not in SCHEDULES:
      raise ValueError(f"finetune schedule={self.schedule!r}; valid: {', '.join(SCHEDULES)}")
    if not 0.0 <= self.momentum < 1.0:
      raise ValueError(f"finetune momentum={self.momentum!r} must be in [0, 1)")
    if not 0.0 <= self.min_bn_momentum < 1.0 or not self.bn_momentum_epochs >= 0:
      raise ValueError(f"finetune batch-norm momentum: need min_bn_momentum in [0, 1) and "
                       f"bn_momentum_epochs >= 0, got {self.min_bn_momentum}, "
                       f"{self.bn_momentum_epochs}")
    if self.image_size is not None and (not isinstance(self.image_size, int)
                                        or self.image_size < 8):
      raise ValueError(f"finetune image_size={self.image_size!r} must be an integer >= 8 or "
                       "None (the pretrained network's)")

  def grid(self) -> list[tuple[float, float]]:
    """(learning rate, weight decay) pairs, learning rate major."""
    return [(lr, wd) for lr in self.learning_rates for wd in self.weight_decays]

  def to_dict(self) -> dict[str, Any]:
    return {name: list(value) if isinstance(value, tuple) else value
            for name, value in dataclasses.asdict(self).items()}


# ---------------------------------------------------------------------------------------------
# The study section: what a study runs (official.study).

# A tuning grid's key (and a Run's hparams name) for train.base_learning_rate; every other key
# is a hyperparameter of the objective.
LEARNING_RATE = "base_learning_rate"


def hparam_override(name: str) -> str:
  """The ExperimentConfig key a tuning grid's (or a Run's) hyperparameter `name` overrides."""
  return f"train.{name}" if name == LEARNING_RATE else f"objective.hparams.{name}"


@dataclasses.dataclass(frozen=True)
class Run:
  """One pretraining run of the grid: an objective, its hyperparameter overrides, a seed."""
  objective: str
  seed: int
  hparams: tuple = ()  # sorted (name, value) pairs overriding the defaults (hparam_override)

  @property
  def variant(self) -> str:
    """The objective with its numeric overrides, e.g. `cosine_softmax_tau0.01`.

    Switches (boolean overrides such as the sweep's `scale_loss_by_tau`) are set study-wide
    (StudyConfig.temperature_scale_loss), so they are not part of the name.
    """
    suffix = "".join(f"_{k.rstrip('_')}{v:g}" for k, v in self.hparams
                     if not isinstance(v, bool))
    return self.objective + suffix

  @property
  def run_id(self) -> str:
    return f"{self.variant}/seed{self.seed}"

  @property
  def tuned_key(self) -> str:
    """Its key in StudyConfig.tuned: the variant, with the objective's canonical name."""
    return dataclasses.replace(self, objective=losses.canonical_name(self.objective)).variant


@dataclasses.dataclass
class StudyConfig:
  """The settings of a study. Every field that changes a result is part of its fingerprint."""
  experiment: str = "demo"
  objectives: tuple = losses.NAMES
  seeds: tuple = (0, 1)
  # Pretraining: an "experiment" preset (PRESETS["experiment"]) plus dotted overrides.
  pretrain_experiment: str = "demo"
  pretrain_overrides: dict = dataclasses.field(default_factory=dict)
  # The pretraining dataset (an official.data.datasets spec, e.g. "folder:/data/x") and class
  # subset (e.g. "0-4"); None keeps the preset's (its data.dataset / data.classes).
  pretrain_dataset: Optional[str] = None
  pretrain_classes: Optional[str] = None
  # Table 4: cosine softmax temperatures (empty: not run). With `temperature_scale_loss` the
  # runs below tau = 0.05 multiply the loss by tau (paper §3.4, footnote 1).
  temperature_sweep: tuple = ()
  temperature_seeds: tuple = (0,)
  temperature_scale_loss: bool = True
  # Transfer with fixed features (Table 1).
  transfer_datasets: tuple = ()
  feature_batch_size: int = 256
  knn_k_max: int = 25
  linear_max_iterations: int = 1000
  # Compile the linear probes' L-BFGS with XLA (None: by problem size,
  # linear_probe.XLA_MAX_ENTRIES).
  linear_jit_compile: Optional[bool] = None
  # Fine-tuning (Table 2): costly, off unless asked.
  finetune: bool = False
  finetune_experiment: str = "demo"
  finetune_datasets: tuple = ()
  finetune_seeds: tuple = (0,)
  # Representations (§3.2-3.4) on the pretraining dataset.
  class_separation_split: str = "train"
  class_separation_examples: int = 2560
  analysis_split: str = "test"
  analysis_examples: int = 1280
  relearn_head: bool = True
  # Figure 6: held-out examples per class of the analysis split that score both heads, the
  # new head trained on the rest.
  relearn_test_per_class: int = 5
  # Minibatch CKA (Figure 2): the first `cka_examples` of the analysis split in minibatches of
  # `cka_batch_size`, `cka_passes` passes, each after the first in a seeded random order.
  cka_examples: int = 1024
  cka_batch_size: int = 256
  cka_passes: int = 1
  cka_seeds: tuple = (0, 1)
  # Deterministic ops: a killed and resumed study reproduces an uninterrupted one exactly.
  deterministic: bool = True
  # The tuning mode (docs/protocol.md §3): `tune` pretrains every configuration of each
  # objective's grid (`tuning_grid`: objective -> keyword -> values; None:
  # losses.hyperparameters.TUNING_GRIDS) x seeds and writes tuning.json instead of transfer.
  tune: bool = False
  tuning_grid: Optional[dict] = None
  # A final study's tuning.json choices (official.study.driver.read_tuning): run variant ->
  # {"hparams", "epoch", "schedule_epochs"}, its runs' hyperparameters and early stop.
  tuned: dict = dataclasses.field(default_factory=dict)
  # Infrastructure (not part of any result).
  data_dir: Optional[str] = None
  strategy: str = "default"

  def runs(self) -> list[Run]:
    """The pretraining grid: objectives x seeds, then the temperature sweep; when tuning,
    every configuration of `tuning_sets` x seeds."""
    if self.tune:
      return list(dict.fromkeys(
          dataclasses.replace(run, seed=seed) for configurations in self.tuning_sets().values()
          for run in configurations for seed in self.seeds))
    return list(dict.fromkeys(
        [Run(objective, seed) for objective in self.objectives for seed in self.seeds]
        + [self._sweep_run(tau, seed) for tau in self.temperature_sweep
           for seed in self.temperature_seeds]))

  def _sweep_run(self, tau: float, seed: int, hparams: Optional[dict] = None) -> Run:
    """The sweep's run at `tau`; the switch only where it acts (so a tuning configuration
    the sweep shares with cosine softmax's grid is one run)."""
    hparams = {**(hparams or {}), "tau": float(tau)}
    if tau < losses.hyperparameters.TAU_LOSS_SCALING_BELOW:
      hparams["scale_loss_by_tau"] = self.temperature_scale_loss
    return Run("cosine_softmax", seed, tuple(sorted(hparams.items())))

  def tuning_sets(self) -> dict[str, list[Run]]:
    """Tuning: run variant -> the runs (seed 0) of its configurations, among which holdout
    top-1 chooses. Each objective's grid (`configurations`); each sweep temperature with
    every LEARNING_RATE of cosine softmax's grid (none: the sweep is not tuned)."""
    sets = {Run(objective, 0).tuned_key: [Run(objective, 0, tuple(sorted(hparams.items())))
                        for hparams in self.configurations(objective)]
            for objective in self.objectives}
    rates = self._grids().get("cosine_softmax", {}).get(LEARNING_RATE, ())
    for tau in self.temperature_sweep if rates else ():
      sets[self._sweep_run(tau, 0).variant] = [self._sweep_run(tau, 0, {LEARNING_RATE: rate})
                                               for rate in rates]
    return sets

  def _grids(self) -> dict:
    return (losses.hyperparameters.TUNING_GRIDS if self.tuning_grid is None
            else self.tuning_grid)

  def configurations(self, objective: str) -> list[dict]:
    """Every combination of the tuning grid of `objective` ([{}] without hyperparameters)."""
    grids = self._grids()
    if objective not in grids:
      raise ValueError(f"tuning_grid has no entry for objective {objective!r}; it has "
                       f"{', '.join(grids) or 'none'}")
    keys = sorted(grids[objective])
    return [dict(zip(keys, values))
            for values in itertools.product(*(grids[objective][k] for k in keys))]

  def validate(self) -> None:
    for name in self.objectives:
      losses.get_objective(name)  # raises a one-line ValueError listing valid names
      for hparams in self.configurations(name) if self.tune else ():
        losses.get_objective(name, **{k: v for k, v in hparams.items() if k != LEARNING_RATE})
    if self.tune and self.tuned:
      raise ValueError("a tuning study (tune=True) cannot also use tuned settings (--tuning)")
    missing = [name for name in self.objectives
               if self.tuned and Run(name, 0).tuned_key not in self.tuned]
    if missing:
      raise ValueError(f"--tuning holds no choice for {', '.join(missing)} (it has "
                       f"{', '.join(self.tuned)}); tune them or leave them out of --objectives")
    if not self.seeds:
      raise ValueError("--seeds: at least one seed is needed")
    if len(set(self.seeds)) != len(self.seeds):
      raise ValueError(f"--seeds: duplicate seeds in {list(self.seeds)}")
    for tau in self.temperature_sweep:
      if tau <= 0:
        raise ValueError(f"--temperature_sweep: temperatures must be > 0, got {tau}")
    _require_positive_ints(self, "study", ("cka_passes", "relearn_test_per_class"))


# ---------------------------------------------------------------------------------------------
# Presets.

def demo() -> ExperimentConfig:
  """The embedded demo: 32x32 generated images, a ResNet-10, 2 epochs on two CPU cores.

  Its network, optimisation, crops and squared-error hyperparameters (loss_scale = 1/K,
  M = 6) and the reason for each: docs/protocol.md §7.3, items 20-23.
  """
  return ExperimentConfig(
      model=ModelConfig(depth=18, block_counts=(1, 1, 1, 1), width_multiplier=0.125,
                        small_input_stem=True, small_input_stem_stride=2, image_size=32),
      data=DataConfig(dataset="demo_pretrain", train_split="train_full", eval_split="test",
                      train_preprocess="train", eval_preprocess="eval",
                      crop_area_range=(0.5, 1.0)),
      objective=ObjectiveConfig(
          name="softmax",
          preset_hparams={"squared_error": {"loss_scale": 1 / 48, "m": 6.0}}),
      train=TrainConfig(
          batch_size=128, epochs=2, base_learning_rate=0.4, warmup_epochs=0.2,
          ema_decay=0.98, steps_per_loop=10, log_every_steps=50,
          checkpoint_every_steps=0, eval_batch_size=512, eval_every_epochs=1,
          class_separation_examples=1024))


def imagenet_resnet50() -> ExperimentConfig:
  """The paper's ImageNet pretraining (docs/protocol.md §2-3): train + validation -> test."""
  return ExperimentConfig(
      model=ModelConfig(depth=50, width_multiplier=1.0, small_input_stem=False,
                        image_size=224),
      data=DataConfig(dataset="imagenet2012", train_split="train_full", eval_split="test"),
      # The released cosine softmax head (normalises only the kernel columns), which produced
      # the paper's numbers; paper eq. 7 (features normalised too) stays the losses' default.
      objective=ObjectiveConfig(
          name="softmax", preset_hparams={"cosine_softmax": {"normalize_features": False}}),
      train=TrainConfig(
          batch_size=4096, epochs=90, base_learning_rate=0.1, warmup_epochs=5,
          weight_decay=8e-5, ema_decay=0.9999, mixed_precision=True, steps_per_loop=100,
          log_every_steps=100, checkpoint_every_steps=1000, eval_batch_size=1000,
          class_separation_examples=10_000))


# The middle scale: downsampled ImageNet on one GPU (README "Three scales").
IMAGENET32_EPOCHS = 30
IMAGENET32_TEMPERATURES = (0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08)


def imagenet32_resnet18() -> ExperimentConfig:
  """ImageNet downsampled to 32x32, a ResNet-18: the paper's recipe on one GPU
  (docs/protocol.md §7.4, items 30-32).

  - network: ResNet-18 at full width with the 3x3/1 stem, so block1 works at 32x32 as the
    paper's ResNet-50 at 56x56.
  - the paper's schedule shape at global batch 1024 (peak 0.4), so the EMA's ~10,000-step
    horizon spans ~8 of 30 epochs (the paper's ~32 of 90); warm-up 2 epochs (5 of 90 scaled).
  - 30 epochs, so the 35 runs of study_imagenet32 fit a day on one A100
    (benchmarks/study_cost.py); Chrabaszcz et al. (2017) trained 40.
  - crops of 25-100% of the area; the released hyperparameters and cosine softmax head.
  """
  return ExperimentConfig(
      model=ModelConfig(depth=18, width_multiplier=1.0, small_input_stem=True,
                        small_input_stem_stride=1, image_size=32),
      data=DataConfig(dataset="imagenet32", train_split="train_full", eval_split="test",
                      crop_area_range=(0.25, 1.0)),
      objective=ObjectiveConfig(
          name="softmax", preset_hparams={"cosine_softmax": {"normalize_features": False}}),
      train=TrainConfig(
          batch_size=1024, epochs=IMAGENET32_EPOCHS, base_learning_rate=0.1, warmup_epochs=2,
          weight_decay=8e-5, ema_decay=0.9999, mixed_precision=True, steps_per_loop=100,
          log_every_steps=100, checkpoint_every_steps=1000, eval_batch_size=1000,
          eval_every_epochs=5, class_separation_examples=10_000))


def imagenet64_resnet18() -> ExperimentConfig:
  """`imagenet32_resnet18` on 64x64 images, stem stride 2: the same cost, 4x the pixels."""
  config = imagenet32_resnet18()
  config.model = dataclasses.replace(config.model, small_input_stem_stride=2, image_size=64)
  config.data.dataset = "imagenet64"
  return config


def imagenet32_resnet50() -> ExperimentConfig:
  """`imagenet32_resnet18` with the paper's ResNet-50: 1.3 G multiply-adds, 2.3x the cost."""
  config = imagenet32_resnet18()
  config.model = dataclasses.replace(config.model, depth=50)
  return config


def _holdout(preset: Callable[[], ExperimentConfig]) -> ExperimentConfig:
  """`preset` on the tuning split: train -> validation (held-out training examples)."""
  config = preset()
  config.data.train_split = "train"
  config.data.eval_split = "validation"
  return config


def finetune_paper() -> FinetuneConfig:
  """docs/protocol.md §5: 7 x 8 grid, 20,000 steps at batch 256, cosine decay."""
  return FinetuneConfig()


def finetune_demo() -> FinetuneConfig:
  """The embedded 32x32 demo data on a CPU: 2 x 2 grid, 300 steps at batch 64."""
  return FinetuneConfig(learning_rates=(0.01, 0.1), weight_decays=(0.0, 1e-4), steps=300,
                        batch_size=64, eval_batch_size=500, steps_per_loop=25,
                        log_every_steps=100, checkpoint_every_steps=100)


def finetune_imagenet32() -> FinetuneConfig:
  """docs/protocol.md §5's grid, every third value, for 32x32 CIFAR: 3 x 3, 5,000 steps at
  batch 256 (~28 epochs of CIFAR's 45,000 training images)."""
  return FinetuneConfig(learning_rates=(1e-3, 1e-2, 1e-1), weight_decays=(0.0, 1e-5, 1e-4),
                        steps=5000, batch_size=256, eval_batch_size=1000, steps_per_loop=100,
                        log_every_steps=500, checkpoint_every_steps=1000)


# The demo's transfer tasks (docs/protocol.md §7.3, item 19).
DEMO_TRANSFER = ("demo_size", "demo_novel_shapes", "demo_digits")

# Table 4's temperatures in the demo: the fewest for a rank test at p < 0.05 (item 28).
DEMO_TEMPERATURES = (0.01, 0.02, 0.04, 0.06, 0.08)

# The demo's base learning rate (per 256 examples) and hyperparameters per objective and per
# sweep temperature, chosen by `reproduce --experiment=demo_tuning` (DEMO_TUNING_GRID); the
# chosen epoch is not taken (docs/protocol.md §7.3, item 21a).
DEMO_TUNED = {
    "softmax": {LEARNING_RATE: 0.4}, "label_smoothing": {"alpha": 0.1, LEARNING_RATE: 0.4},
    "sigmoid": {LEARNING_RATE: 0.4},
    "extra_final_layer_l2": {"lambda_": 1.6e-3, LEARNING_RATE: 0.4},
    "dropout": {"keep_prob": 0.9, LEARNING_RATE: 0.4},
    "logit_penalty": {"beta": 6e-4, LEARNING_RATE: 0.4},
    "logit_normalization": {"tau": 0.04, LEARNING_RATE: 0.4},
    "cosine_softmax": {"tau": 0.1, LEARNING_RATE: 0.4},
    "squared_error": {"m": 6.0, LEARNING_RATE: 0.4},
    **{f"cosine_softmax_tau{tau:g}": {LEARNING_RATE: rate} for tau, rate in (
        (0.01, 1.6), (0.02, 1.6), (0.03, 1.6), (0.04, 1.6), (0.05, 0.1), (0.06, 0.1),
        (0.07, 0.4), (0.08, 0.4))},
}


def study_demo(quick: bool = False) -> StudyConfig:
  """All nine objectives x 2 seeds (the disjoint seed sets {0} and {1} of the report's rank
  correlations) and the temperature sweep (Table 4, one seed) on the embedded data; `quick`:
  a ~2-minute smoke run (one seed, so no CKA or standard errors; 16 steps per run; no sweep;
  the digits task only). Every run takes its row of DEMO_TUNED.
  """
  config = StudyConfig(experiment="demo", transfer_datasets=DEMO_TRANSFER,
                       finetune_datasets=("demo_size",),
                       temperature_sweep=DEMO_TEMPERATURES,
                       tuned={name: {"hparams": row} for name, row in DEMO_TUNED.items()})
  if quick:
    config = dataclasses.replace(
        config, experiment="demo_quick", seeds=(0,), transfer_datasets=("demo_digits",),
        temperature_sweep=(),
        pretrain_overrides={"train.epochs": 1, "data.train_examples": 2048},
        class_separation_examples=1024, analysis_examples=512, cka_examples=256,
        cka_batch_size=128, knn_k_max=10, relearn_test_per_class=2)
  return config


def study_demo_long() -> StudyConfig:
  """The demo at 8 epochs, 4 seeds per objective and the paper's eight temperatures x 2
  seeds: 52 runs, about an hour on 2 CPU cores (docs/protocol.md §7.3, item 28c)."""
  return dataclasses.replace(
      study_demo(), experiment="demo_long", seeds=(0, 1, 2, 3),
      pretrain_overrides={"train.epochs": 8},
      temperature_sweep=IMAGENET32_TEMPERATURES, temperature_seeds=(0, 1))


# The paper's transfer datasets (Tables 1 and 2).
PAPER_TRANSFER = ("food101", "cifar10", "cifar100", "birdsnap", "sun397", "cars196", "pets",
                  "flowers")
# The paper's representation analysis on 50,000 images of ImageNet (docs/protocol.md §6).
_PAPER_ANALYSIS = dict(class_separation_examples=50_000, analysis_examples=50_000,
                       cka_examples=50_000, cka_batch_size=1500, cka_passes=10,
                       relearn_test_per_class=10)


def study_paper() -> StudyConfig:
  """The paper's scale: ResNet-50 on ImageNet (TFDS manual download), 8 seeds, 8 datasets;
  one run is ~a day on 8 V100s or hours on a TPU pod."""
  return StudyConfig(
      experiment="paper", seeds=tuple(range(8)), pretrain_experiment="imagenet_resnet50",
      temperature_seeds=(0, 1, 2), transfer_datasets=PAPER_TRANSFER,
      finetune_experiment="paper", finetune_datasets=PAPER_TRANSFER, finetune_seeds=(0, 1, 2),
      feature_batch_size=512, **_PAPER_ANALYSIS)


def study_imagenet32() -> StudyConfig:
  """The middle scale (`imagenet32_resnet18`), one GPU in ~a day: 9 objectives x 3 seeds,
  Table 4's sweep, transfer and fine-tuning on both CIFARs at 32x32, the representations
  on ImageNet32 at the paper's sizes.
  """
  return StudyConfig(
      experiment="imagenet32", seeds=(0, 1, 2), pretrain_experiment="imagenet32_resnet18",
      temperature_sweep=IMAGENET32_TEMPERATURES, temperature_seeds=(0,),
      transfer_datasets=("cifar10", "cifar100"), finetune_experiment="imagenet32",
      finetune_datasets=("cifar10", "cifar100"), finetune_seeds=(0,), feature_batch_size=1000,
      **_PAPER_ANALYSIS)


# The demo's tuning grid (docs/protocol.md §7.3, item 21a): two values per hyperparameter,
# the demo preset's first, each with base learning rates 0.1 and 0.4 per 256; cosine softmax's
# (and so every sweep temperature's) also 1.6 and 6.4.
DEMO_TUNING_GRID = {name: {LEARNING_RATE: (0.1, 0.4), **grid} for name, grid in {
    "softmax": {}, "label_smoothing": {"alpha": (0.1, 0.2)}, "sigmoid": {},
    "extra_final_layer_l2": {"lambda_": (8e-4, 1.6e-3)}, "dropout": {"keep_prob": (0.7, 0.9)},
    "logit_penalty": {"beta": (6e-4, 1.2e-3)}, "logit_normalization": {"tau": (0.04, 0.08)},
    "cosine_softmax": {"tau": (0.05, 0.1), LEARNING_RATE: (0.1, 0.4, 1.6, 6.4)},
    "squared_error": {"m": (6.0, 3.0)}}.items()}


def tuning_study(final: StudyConfig, holdout: str, seeds: tuple,
                 grid: Optional[dict] = None) -> StudyConfig:
  """The tuning study of the study preset `final` (docs/protocol.md §3; paper §3: 3 runs per
  configuration on the holdout): each objective's grid (and each sweep temperature's learning
  rates, StudyConfig.tuning_sets) x `seeds` on the pretraining preset `holdout`, every epoch
  evaluated on the holdout and the best one exported; no transfer."""
  return dataclasses.replace(
      final, experiment=final.experiment + "_tuning", tune=True, seeds=seeds,
      pretrain_experiment=holdout, tuning_grid=grid, tuned={}, transfer_datasets=(),
      finetune=False,
      pretrain_overrides={**final.pretrain_overrides, "train.select_best_epoch": True,
                          "train.eval_every_epochs": 1})


# ---------------------------------------------------------------------------------------------
# The preset registry: section -> name -> a function returning a fresh config.

PRESETS: dict[str, dict[str, Callable[[], Any]]] = {
    # Each pretraining preset, then its tuning variant `<name>_holdout`.
    "experiment": {
        name: preset
        for base in (demo, imagenet_resnet50, imagenet32_resnet18, imagenet64_resnet18,
                     imagenet32_resnet50)
        for name, preset in ((base.__name__, base),
                             (f"{base.__name__}_holdout", functools.partial(_holdout, base)))},
    "finetune": {"paper": finetune_paper, "demo": finetune_demo,
                 "imagenet32": finetune_imagenet32},
    "study": {"demo": study_demo, "demo_long": study_demo_long, "paper": study_paper,
              "imagenet32": study_imagenet32,
              # Tuning: the paper's 26 configurations (TUNING_GRIDS) x 3 seeds on ImageNet's
              # (ImageNet32's) holdout; the demo's 48 (DEMO_TUNING_GRID: 16 configurations and
              # the 8 temperatures of demo and demo_long, x 2 learning rates), one seed each.
              "paper_tuning": lambda: tuning_study(study_paper(), "imagenet_resnet50_holdout",
                                                   (0, 1, 2)),
              "imagenet32_tuning": lambda: tuning_study(
                  study_imagenet32(), "imagenet32_resnet18_holdout", (0, 1, 2)),
              "demo_tuning": lambda: dataclasses.replace(
                  tuning_study(study_demo(), "demo_holdout", (0,), DEMO_TUNING_GRID),
                  temperature_sweep=IMAGENET32_TEMPERATURES)},
}
EXPERIMENTS = PRESETS["experiment"]
# What an unknown name is called in the error (the flag that names it).
_PRESET_KINDS = {"experiment": "experiment", "finetune": "fine-tuning preset",
                 "study": "--experiment"}


def get_preset(section: str, name: str) -> Any:
  """A fresh copy of preset `name` of `section` ("experiment", "finetune" or "study")."""
  if section not in PRESETS:
    raise ValueError(f"unknown preset section {section!r}; valid: {', '.join(PRESETS)}")
  if name not in PRESETS[section]:
    valid = PRESETS[section] if section != "study" else sorted(PRESETS[section])
    raise ValueError(f"unknown {_PRESET_KINDS[section]} {name!r}; valid: {', '.join(valid)}")
  return PRESETS[section][name]()


def get_experiment(name: str) -> ExperimentConfig:
  """A fresh copy of the pretraining preset `name`."""
  return get_preset("experiment", name)


def get_study(name: str, quick: bool = False) -> "StudyConfig":
  """The study preset `name`; `quick` shrinks the demo to a smoke run (study_demo)."""
  study = get_preset("study", name)
  if quick and name != "demo":
    raise ValueError("--quick shrinks the demo only; use it with --experiment=demo")
  return study_demo(quick=True) if quick else study


def to_dict(config: ExperimentConfig) -> dict[str, Any]:
  """JSON-ready nested dict (the layout of <model_dir>/config.json)."""
  return {**dataclasses.asdict(config), "model": config.model.to_dict()}


def from_dict(values: Mapping[str, Any]) -> ExperimentConfig:
  """Inverse of `to_dict`; missing keys take the dataclass defaults, unknown keys are refused."""
  if not isinstance(values, Mapping):
    raise ValueError(f"an experiment config must be a dict of sections, got "
                     f"{type(values).__name__}")
  unknown = sorted(set(values) - set(SECTIONS))
  if unknown:
    raise ValueError(f"unknown config section(s) {', '.join(unknown)}; valid: "
                     f"{', '.join(SECTIONS)}")
  sections = {}
  for section, cls in SECTIONS.items():
    fields = values.get(section, {})
    if not isinstance(fields, Mapping):
      raise ValueError(f"config section {section!r} must be a dict, got "
                       f"{type(fields).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    bad = sorted(set(fields) - names)
    if bad:
      raise ValueError(f"unknown config key(s) {', '.join(section + '.' + k for k in bad)}; "
                       f"valid: {', '.join(section + '.' + n for n in sorted(names))}")
    sections[section] = _build(cls, fields, section)
  return ExperimentConfig(**sections)


def override(config, overrides: Optional[Mapping[str, Any]]):
  """A new, re-validated config (an Experiment-, Finetune- or StudyConfig) with `overrides`.

  For an ExperimentConfig, dotted keys ({"train.epochs": 3, "objective.hparams.tau": 0.02})
  or nested dicts ({"train": {"epochs": 3}}); for the finetune and study sections, field
  names, bare or prefixed ("steps" or "finetune.steps"), a None value leaving the field as it
  is (a flag not given). Strings are parsed into the field's type ("3" -> 3, "true" -> True,
  "none" -> None, "[1,1,1,1]" -> (1, 1, 1, 1)).
  """
  if not isinstance(config, ExperimentConfig):
    return _override_section(config, overrides or {})
  values = to_dict(config)
  for key, value in flatten(overrides).items():
    parts = key.split(".")
    if parts[0] not in SECTIONS:
      raise ValueError(f"cannot override {key!r}: unknown section {parts[0]!r}; valid: "
                       f"{', '.join(SECTIONS)}")
    if parts[:2] == ["objective", "hparams"] and len(parts) == 3:
      values["objective"]["hparams"][parts[2]] = _parse_literal(value)
      continue
    if len(parts) != 2:
      raise ValueError(f"cannot override {key!r}: expected <section>.<field> (or "
                       "objective.hparams.<name>)")
    section, field = parts
    names = {f.name for f in dataclasses.fields(SECTIONS[section])}
    if field not in names:
      raise ValueError(f"cannot override {key!r}: no such field; valid: "
                       f"{', '.join(section + '.' + n for n in sorted(names))}")
    values[section][field] = value
  return from_dict(values)


_FLAT_SECTIONS = {"FinetuneConfig": ("finetune", "fine-tuning"), "StudyConfig": ("study", "study")}


def _override_section(config, overrides: Mapping[str, Any]):
  """`override` of a FinetuneConfig or StudyConfig: fields replaced, then validated."""
  if type(config).__name__ not in _FLAT_SECTIONS:
    raise ValueError(f"cannot override a {type(config).__name__}; expected an "
                     "ExperimentConfig, FinetuneConfig or StudyConfig")
  section, label = _FLAT_SECTIONS[type(config).__name__]
  names = [f.name for f in dataclasses.fields(config)]
  changes = {}
  for key, value in overrides.items():
    field = key[len(section) + 1:] if key.startswith(section + ".") else key
    if field not in names:
      raise ValueError(f"unknown {label} setting {field!r}; valid: {', '.join(names)}")
    if value is not None:
      changes[field] = value
  result = _build(type(config), changes, section, base=config)
  if isinstance(result, StudyConfig):
    result.validate()
  return result


def parse_params_override(text: str) -> dict[str, str]:
  """"a.b=1,c.d=[1,2]" -> {"a.b": "1", "c.d": "[1,2]"} (commas inside brackets are kept)."""
  result = {}
  for item in _split_top_level(text or ""):
    item = item.strip()
    if not item:
      continue
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
      raise ValueError(f"--params_override item {item!r} is not of the form key=value")
    result[key.strip()] = value.strip()
  return result


def resolve(config: ExperimentConfig) -> ExperimentConfig:
  """Fills what the data and the objective decide; the result is what a run records.

  model.num_classes (if 0) and data.class_names come from the dataset, the latter checked
  against a value already there (a resumed run or a copied config cannot silently train on
  other classes); data.dataset and objective.name become canonical, objective.hparams
  complete and validated (official.losses.get_objective). Bad values: a one-line ValueError.
  """
  from official.data import datasets  # pylint: disable=g-import-not-at-top

  name = losses.canonical_name(config.objective.name)
  hparams = {**config.objective.preset_hparams.get(name, {}), **config.objective.hparams}
  objective = losses.get_objective(name, **hparams)
  model, data = config.model, config.data
  info = datasets.get(data.dataset, data_dir=data.data_dir, classes=data.classes)
  if model.num_classes == 0:
    model = dataclasses.replace(model, num_classes=int(info.num_classes))
  names = tuple(info.class_names) if info.class_names else None
  difference = (datasets.class_name_difference(names, data.class_names)
                if data.class_names is not None and names is not None else None)
  if difference:
    raise ValueError(f"data.class_names: {info.name} has {difference}; use the dataset and "
                     "classes the names come from")
  data = dataclasses.replace(data, dataset=datasets.canonical_spec(data.dataset),
                             class_names=names or data.class_names)
  return dataclasses.replace(
      config, model=model, data=data,
      objective=ObjectiveConfig(name=objective.name,
                                hparams={k: _builtin(v) for k, v in objective.hparams.items()},
                                preset_hparams=config.objective.preset_hparams))


def differences(a, b, ignore=RUN_ONLY_KEYS) -> list[tuple[str, Any, Any]]:
  """(dotted key, value in a, value in b) for every differing key not in `ignore`.

  `a` and `b` are ExperimentConfigs or nested dicts of settings (fine-tuning's config.json).
  """
  flat_a, flat_b = (flatten(x if isinstance(x, Mapping) else to_dict(x)) for x in (a, b))
  # An empty section (objective.hparams of softmax) has no key of its own to compare.
  keys = sorted(k for k in set(flat_a) | set(flat_b)
                if flat_a.get(k, {}) != {} or flat_b.get(k, {}) != {})
  return [(k, flat_a.get(k), flat_b.get(k)) for k in keys
          if k not in ignore and flat_a.get(k) != flat_b.get(k)]


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  flat = {}
  for key, value in values.items():
    name = f"{prefix}{key}"
    if isinstance(value, Mapping) and value:
      flat.update(flatten(value, name + "."))
    else:
      flat[name] = value
  return flat


def _split_top_level(text: str) -> list[str]:
  items, depth, current = [], 0, []
  for ch in text:
    if ch in "[(":
      depth += 1
    elif ch in "])":
      depth -= 1
    if ch == "," and depth == 0:
      items.append("".join(current))
      current = []
    else:
      current.append(ch)
  items.append("".join(current))
  return items


def _parse_literal(text: Any) -> Any:
  """A flag's string as the Python value it spells ("3" -> 3, "none" -> None); others as is."""
  if not isinstance(text, str):
    return text
  stripped = text.strip()
  if stripped.lower() in ("none", "null"):
    return None
  if stripped.lower() in ("true", "false"):
    return stripped.lower() == "true"
  try:
    return ast.literal_eval(stripped)
  except (ValueError, SyntaxError):
    pass
  if stripped.startswith("[") and stripped.endswith("]"):
    # A list of bare words ("[softmax,mse]"), items parsed one by one.
    return [_parse_literal(item.strip()) for item in _split_top_level(stripped[1:-1])
            if item.strip()]
  return text


def _builtin(value: Any) -> Any:
  """NumPy scalars -> Python numbers (so configs compare equal after a JSON round trip)."""
  return value.item() if hasattr(value, "item") else value


def _build(cls, values: Mapping[str, Any], section: str, base=None):
  """`cls(**values)` (or `base` with `values` replaced), each coerced to its field's type."""
  hints = typing.get_type_hints(cls)
  values = {k: _coerce(v, hints[k], f"{section}.{k}") for k, v in values.items()}
  return cls(**values) if base is None else dataclasses.replace(base, **values)


def _coerce(value: Any, hint: Any, key: str) -> Any:
  """Converts `value` (possibly a string from a flag) to the type `hint` of field `key`."""
  origin = typing.get_origin(hint)
  if origin in (Union, types.UnionType):
    options = typing.get_args(hint)
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null")):
      if type(None) in options:
        return None
    non_none = [t for t in options if t is not type(None)]
    return _coerce(value, non_none[0], key)
  if hint is not str:
    value = _parse_literal(value)
  if hint is bool:
    if isinstance(value, bool):
      return value
    if value in (0, 1):
      return bool(value)
  elif hint is int:
    if isinstance(value, int) and not isinstance(value, bool):
      return value
    if isinstance(value, float) and value.is_integer():
      return int(value)
  elif hint is float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
      return float(value)
  elif hint is str:
    if isinstance(value, str):
      return value
  elif origin is tuple or hint is tuple:
    if isinstance(value, (list, tuple)):
      return tuple(value)
  elif hint is dict or origin is dict:
    if isinstance(value, Mapping):
      return {k: _parse_literal(v) for k, v in value.items()}
  else:
    return value
  type_name = getattr(hint, "__name__", str(hint))
  raise ValueError(f"{key}={value!r} is not a valid {type_name}")


def read_run_config(model_dir: str) -> ExperimentConfig:
  """The ExperimentConfig recorded in <model_dir>/config.json (the one reader of it).

  Raises:
    FileNotFoundError: no config.json in `model_dir`.
    ValueError: config.json is not JSON, lacks the "model" / "objective" sections, or holds
      a value the schema refuses (one line naming the file).
  """
  path = io.join(os.fspath(model_dir), CONFIG_FILE)
  if not io.exists(path):
    raise FileNotFoundError(f"{path} does not exist: expected a training model_dir "
                            f"({CONFIG_FILE} with {CHECKPOINT_DIR}/)")
  try:
    values = json.loads(io.read_text(path))
  except ValueError as e:
    raise ValueError(f"{path} is not valid JSON ({e})") from None
  if not isinstance(values, dict) or not all(
      isinstance(values.get(k), dict) for k in ("model", "objective")) or (
          "name" not in values["objective"]):
    raise ValueError(f"{path} must have 'model' and 'objective' sections, the latter with a "
                     "'name'")
  try:
    return from_dict(values)
  except (TypeError, ValueError) as e:
    raise ValueError(f"{path}: {str(e).splitlines()[0]}") from None
