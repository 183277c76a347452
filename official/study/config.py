"""What a study runs: presets `demo` (the embedded data, minutes on a CPU) and `paper`
(ImageNet / ResNet-50 and the eight transfer datasets of Table 1)."""

import dataclasses
from typing import Optional

from official import losses


@dataclasses.dataclass(frozen=True)
class Run:
  """One pretraining run of the grid: an objective, its hyperparameter overrides, a seed."""
  objective: str
  seed: int
  hparams: tuple = ()  # sorted (name, value) pairs overriding the objective's defaults

  @property
  def variant(self) -> str:
    """The objective with its overrides, e.g. `cosine_softmax` or `cosine_softmax_tau0.01`."""
    suffix = "".join(f"_{k.rstrip('_')}{v:g}" for k, v in self.hparams)
    return self.objective + suffix

  @property
  def run_id(self) -> str:
    return f"{self.variant}/seed{self.seed}"


@dataclasses.dataclass
class StudyConfig:
  """The settings of a study. Every field that changes a result is part of its fingerprint."""
  experiment: str = "demo"
  objectives: tuple = losses.NAMES
  seeds: tuple = (0, 1)
  # Pretraining: a preset of official.training.config plus dotted overrides.
  pretrain_experiment: str = "demo"
  pretrain_overrides: dict = dataclasses.field(default_factory=dict)
  # The pretraining dataset (an official.data.datasets spec, e.g. "folder:/data/x") and class
  # subset (e.g. "0-4"); None keeps the preset's (its data.dataset / data.classes).
  pretrain_dataset: Optional[str] = None
  pretrain_classes: Optional[str] = None
  # Table 4: cosine softmax temperatures (empty: not run).
  temperature_sweep: tuple = ()
  temperature_seeds: tuple = (0,)
  # Transfer with fixed features (Table 1).
  transfer_datasets: tuple = ()
  feature_batch_size: int = 256
  knn_k_max: int = 25
  linear_max_iterations: int = 1000
  # Compile the linear probes' L-BFGS with XLA: on a CPU each iteration is dominated by
  # per-op overhead, which XLA removes (one compilation per problem size per process).
  linear_jit_compile: bool = True
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
  relearn_train_fraction: float = 0.8
  cka_examples: int = 1024
  cka_batch_size: int = 256
  cka_seeds: tuple = (0, 1)
  # Deterministic ops: a killed and resumed study reproduces an uninterrupted one exactly.
  deterministic: bool = True
  # Infrastructure (not part of any result).
  data_dir: Optional[str] = None
  strategy: str = "default"

  def runs(self) -> list[Run]:
    """The pretraining grid: objectives x seeds, then the temperature sweep."""
    grid = [Run(objective, seed) for objective in self.objectives for seed in self.seeds]
    for tau in self.temperature_sweep:
      for seed in self.temperature_seeds:
        run = Run("cosine_softmax", seed, (("tau", float(tau)),))
        if run not in grid:
          grid.append(run)
    return grid

  def validate(self) -> None:
    for name in self.objectives:
      losses.get_objective(name)  # raises a one-line ValueError listing valid names
    if not self.seeds:
      raise ValueError("--seeds: at least one seed is needed")
    if len(set(self.seeds)) != len(self.seeds):
      raise ValueError(f"--seeds: duplicate seeds in {list(self.seeds)}")
    for tau in self.temperature_sweep:
      if tau <= 0:
        raise ValueError(f"--temperature_sweep: temperatures must be > 0, got {tau}")
    if not 0 < self.relearn_train_fraction < 1:
      raise ValueError("relearn_train_fraction must be in (0, 1), got "
                       f"{self.relearn_train_fraction}")


DEMO_TRANSFER = ("demo_texture", "demo_novel_shapes", "demo_digits")


def demo(quick: bool = False) -> StudyConfig:
  """All nine objectives x 2 seeds on the embedded data.

  `quick` (a smoke run, about 2 minutes on 2 CPU cores): one seed (so no CKA, which
  compares two seeds, and no standard errors), 16 training steps per run, the digits
  transfer task only and smaller analysis sets.
  """
  # L-BFGS stops after 200 iterations instead of 1000: on the demo's features the test
  # accuracies of the three transfer tasks moved by at most 0.2 points and the probes of
  # demo_novel_shapes and demo_digits ran 4x and 6x faster (measured on one softmax network).
  config = StudyConfig(experiment="demo", transfer_datasets=DEMO_TRANSFER,
                       finetune_datasets=("demo_texture",), linear_max_iterations=200)
  if quick:
    config = dataclasses.replace(
        config, experiment="demo_quick", seeds=(0,), transfer_datasets=("demo_digits",),
        pretrain_overrides={"train.epochs": 1, "data.train_examples": 2048},
        class_separation_examples=1024, analysis_examples=512, cka_examples=256,
        cka_batch_size=128, knn_k_max=10)
  return config


def paper() -> StudyConfig:
  """The paper's scale: ResNet-50 on ImageNet, 8 seeds, the eight transfer datasets.

  Needs the ImageNet manual download prepared with TFDS and an accelerator slice (the paper's
  recipe: global batch 4096, 90 epochs; one run is ~a day on 8 V100s or hours on a TPU pod).
  """
  return StudyConfig(
      experiment="paper", seeds=tuple(range(8)), pretrain_experiment="imagenet_resnet50",
      temperature_seeds=(0, 1, 2),
      transfer_datasets=("food101", "cifar10", "cifar100", "birdsnap", "sun397", "cars196",
                         "pets", "flowers"),
      finetune_experiment="paper",
      finetune_datasets=("food101", "cifar10", "cifar100", "birdsnap", "sun397", "cars196",
                         "pets", "flowers"),
      finetune_seeds=(0, 1, 2), feature_batch_size=512,
      class_separation_split="train", class_separation_examples=50_000,
      analysis_split="test", analysis_examples=50_000, cka_examples=15_000,
      cka_batch_size=1500)


PRESETS = {"demo": demo, "paper": paper}


def get(name: str, quick: bool = False) -> StudyConfig:
  if name not in PRESETS:
    raise ValueError(f"unknown --experiment {name!r}; valid: {', '.join(sorted(PRESETS))}")
  if quick and name != "demo":
    raise ValueError("--quick shrinks the demo only; use it with --experiment=demo")
  return PRESETS[name](quick=quick) if name == "demo" else PRESETS[name]()
