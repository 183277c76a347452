r"""Reproduces the study end to end: pretrain every objective x seed, evaluate transfer,
analyse the representations, and write the report (Tables 1-4, Figures 1-6).

  python -m experiments.reproduce                       # the demo: ~15 min on 2 CPU cores
  python -m experiments.reproduce --quick               # a 2-minute smoke run (one seed)
  python -m experiments.reproduce --experiment=demo_long  # 8 epochs, 4 seeds: ~1 hour
  python -m experiments.reproduce --experiment=paper --data_dir=... --strategy=tpu --tpu=...
  python -m experiments.reproduce --experiment=paper_tuning ...  # workdir/paper_tuning/tuning.json
  python -m experiments.reproduce --experiment=paper --tuning=workdir/paper_tuning/tuning.json ...
  python -m experiments.reproduce --pretrain_dataset=folder:/data/photos --pretrain_classes=0-4 \
      --transfer_datasets=folder:/data/photos@5-9     # class-disjoint study on an image folder

Resumable: rerun the same command to continue after an interruption; finished steps are
skipped, and a step whose settings changed is moved to <workdir>/stale and recomputed.

Sharded across machines, every worker on one shared workdir (a local path or gs://...):

  python -m experiments.reproduce --workdir=gs://bucket/study --num_workers=8 --worker_index=3
"""

from official.core import native_logging  # pylint: disable=unused-import  (first: before TF)

import os

from absl import flags

from official import losses
from experiments import common_flags
from official.core import cli
from official.core import config
from official.core import io

_EXPERIMENT = flags.DEFINE_enum("experiment", "demo", sorted(config.PRESETS["study"]),
                                "Study preset: the embedded demo (demo_long: 8 epochs, "
                                "4 seeds, 8 temperatures) or the paper's scale.")
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Folder for runs, result files, logs and the report "
    "(default: ./workdir/<experiment>).")
_QUICK = flags.DEFINE_bool(
    "quick", False, "Shrink the demo to a smoke run of about 2 minutes: all nine objectives, "
    "one seed (no CKA), 16 training steps each, no temperature sweep, demo_digits transfer "
    "only.")
_OBJECTIVES = flags.DEFINE_list(
    "objectives", None, f"Objectives to train (default: all nine: {','.join(losses.NAMES)}).")
_SEEDS = flags.DEFINE_list("seeds", None, "Seeds per objective (default: the preset's).")
_TEMPERATURE_SWEEP = flags.DEFINE_list(
    "temperature_sweep", None, "Cosine softmax temperatures for Table 4, e.g. "
    "0.01,0.02,0.05 (default: not run).")
_PRETRAIN_DATASET = flags.DEFINE_string(
    "pretrain_dataset", None, "Pretraining dataset (an official.data.datasets spec such as "
    "folder:/path; default: the training preset's).")
_PRETRAIN_CLASSES = flags.DEFINE_string(
    "pretrain_classes", None, "Class subset pretrained on, e.g. '0-4' (default: all).")
_PRETRAIN_OVERRIDE = flags.DEFINE_string(
    "pretrain_params_override", None, "Training config values for every pretraining run, "
    "section.field=value,... as experiments/train's --params_override (e.g. "
    "train.batch_size=32,train.epochs=3).")
_TRANSFER = flags.DEFINE_list("transfer_datasets", None,
                              "Transfer datasets (default: the preset's); a class subset is "
                              "written <spec>@<classes>, e.g. folder:/path@5-9.")
_KNN_K_MAX = flags.DEFINE_integer("knn_k_max", None,
                                  "Largest k tried by kNN's leave-one-out (default: preset's).")
_FINETUNE = flags.DEFINE_bool("finetune", False, "Also fine-tune (Table 2; costly).")
_TUNING = flags.DEFINE_string(
    "tuning", None, "A tuning study's tuning.json (--experiment=<preset>_tuning writes it): "
    "each objective trains with its chosen hyperparameters and stops at its chosen epoch.")
# A study sharded across machines (official.study.driver): N workers on one shared workdir.
_NUM_WORKERS = flags.DEFINE_integer(
    "num_workers", 1, "Cooperating study workers sharing --workdir (e.g. a Slurm job array's "
    "or Kubernetes Indexed Job's size); pretraining run i goes to worker i % num_workers.")
_WORKER_INDEX = flags.DEFINE_integer(
    "worker_index", None, "This worker's index in [0, num_workers) (default: "
    "$SLURM_ARRAY_TASK_ID or $JOB_COMPLETION_INDEX when --num_workers > 1, else 0).")
_LEASE_TIMEOUT = flags.DEFINE_float(
    "lease_timeout", 300.0, "Seconds without a heartbeat after which a step claimed by another "
    "process counts as abandoned (its worker died) and is taken over.")
_WAIT = flags.DEFINE_float(
    "wait", 0.0, "Seconds to keep polling for steps other workers still compute (e.g. the "
    "report, which needs every run) before exiting; 0 exits at once, saying what is left.")


# --help lists --data_dir, --strategy and --tpu with this binary's own flags.
flags.adopt_module_key_flags(common_flags)

def build_study():
  """The study preset changed by the flags (the study section of official.core.config)."""
  study = config.get_study(_EXPERIMENT.value, quick=_QUICK.value)
  changes = {"strategy": common_flags.STRATEGY.value}
  if _OBJECTIVES.value:
    changes["objectives"] = tuple(losses.canonical_name(o) for o in _OBJECTIVES.value)
  if _SEEDS.value:
    changes["seeds"] = common_flags.parse_numbers("seeds", _SEEDS.value, kind=int)
  if _TEMPERATURE_SWEEP.value:
    changes["temperature_sweep"] = common_flags.parse_numbers("temperature_sweep",
                                                              _TEMPERATURE_SWEEP.value)
  from official.data import datasets  # pylint: disable=g-import-not-at-top
  if _PRETRAIN_DATASET.value is not None:
    changes["pretrain_dataset"] = datasets.canonical_spec(_PRETRAIN_DATASET.value)
  if _PRETRAIN_CLASSES.value is not None:
    changes["pretrain_classes"] = _PRETRAIN_CLASSES.value.strip()
  if _PRETRAIN_OVERRIDE.value:
    changes["pretrain_overrides"] = {
        **study.pretrain_overrides, **config.parse_params_override(_PRETRAIN_OVERRIDE.value)}
  if _TRANSFER.value:
    names = tuple(datasets.canonical_spec(name) for name in _TRANSFER.value)
    for name in names:
      datasets.get(name, data_dir=common_flags.DATA_DIR.value)
    changes["transfer_datasets"] = names
  if _KNN_K_MAX.value is not None:
    if _KNN_K_MAX.value < 1:
      raise ValueError(f"--knn_k_max must be >= 1, got {_KNN_K_MAX.value}")
    changes["knn_k_max"] = _KNN_K_MAX.value
  if _FINETUNE.value:
    changes["finetune"] = True
  if _TUNING.value:
    from official.study import driver  # pylint: disable=g-import-not-at-top
    changes["tuned"] = driver.read_tuning(_TUNING.value)
  if common_flags.DATA_DIR.value:
    changes["data_dir"] = common_flags.DATA_DIR.value
  study = config.override(study, changes)
  if any(k in changes for k in ("pretrain_dataset", "pretrain_classes", "pretrain_overrides")):
    # The pretraining config, dataset and class subset are checked before anything runs.
    from official.study import steps  # pylint: disable=g-import-not-at-top
    config.resolve(steps.pretrain_config(study, study.runs()[0]))
  return study


def _worker_index() -> int:
  """--worker_index, else the index a Slurm job array or Kubernetes Indexed Job gives."""
  if _WORKER_INDEX.value is not None:
    index, source = _WORKER_INDEX.value, "--worker_index"
  else:  # only for a sharded study: a plain run inside a job array stays one whole study
    source = next((v for v in ("SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX")
                   if os.environ.get(v)), None) if _NUM_WORKERS.value > 1 else None
    try:
      index = int(os.environ[source]) if source else 0
    except ValueError:
      raise ValueError(f"${source} must be an integer, got {os.environ[source]!r}") from None
    source = f"${source}" if source else "--worker_index"
  if _NUM_WORKERS.value < 1:
    raise ValueError(f"--num_workers must be >= 1, got {_NUM_WORKERS.value}")
  if not 0 <= index < _NUM_WORKERS.value:
    raise ValueError(f"{source}={index} is outside [0, {_NUM_WORKERS.value - 1}] for "
                     f"--num_workers={_NUM_WORKERS.value}")
  if _LEASE_TIMEOUT.value <= 0:
    raise ValueError(f"--lease_timeout must be > 0 seconds, got {_LEASE_TIMEOUT.value}")
  return index


def main(argv):
  if len(argv) > 1:
    raise ValueError(f"unexpected arguments: {' '.join(argv[1:])}")
  study = build_study()
  workdir = io.absolute(_WORKDIR.value or os.path.join("workdir", study.experiment))
  worker_index = _worker_index()
  print(f"workdir: {workdir}", flush=True)
  from official.study import driver  # pylint: disable=g-import-not-at-top
  strategy = common_flags.strategy()
  from official.training import loop  # pylint: disable=g-import-not-at-top
  try:
    driver.run(study, workdir, strategy, log=lambda line: print(line, flush=True),
               num_workers=_NUM_WORKERS.value, worker_index=worker_index,
               lease_timeout=_LEASE_TIMEOUT.value, wait_seconds=_WAIT.value)
  except loop.Preempted as e:
    # SIGTERM: the step in progress saved a checkpoint; rerunning resumes it.
    print(f"preempted: {e}; rerun the same command to resume", flush=True)


if __name__ == "__main__":
  cli.run(main)
