"""The steps of a study, each a pure function of its settings and the steps it reads.

  pretrain(run)                 -> results/pretrain/<run>.json     (Table 1 top-1/top-5)
  transfer(run, dataset)        -> results/transfer/<run>/<dataset>.json (linear + kNN)
  representations(run)          -> results/representations/<run>.json
                                   (class separation and sparsity per endpoint, relearned head)
  finetune(run, dataset)        -> results/finetune/<run>/<dataset>.json
  cka(runs)                     -> results/cka.json                 (Figure 2)

<dataset> spells the spec as a file name (datasets.result_name: "folder:/d/x@5-9" ->
"folder__d_x_5-9").
"""

import dataclasses
import os
import time
from typing import Optional

from official.core import config as train_config
from official.core import io
from official.core.config import Run, StudyConfig
from official.data import datasets
from official.evaluation import evaluators
from official.evaluation import features
from official.evaluation import representations as representations_lib
from official.modeling import pretrained
from official.study import store as store_lib
from official.training import trainer


def pretrain_config(study: StudyConfig, run: Run):
  """The training config of one run: the study's preset, its overrides, pretraining dataset
  and class subset, objective (with its tuned settings, StudyConfig.tuned) and seed."""
  config = train_config.get_experiment(study.pretrain_experiment)
  overrides = dict(study.pretrain_overrides)
  if study.pretrain_dataset is not None:
    overrides["data.dataset"] = study.pretrain_dataset
  if study.pretrain_classes is not None:
    overrides["data.classes"] = study.pretrain_classes
  overrides.update({"objective.name": run.objective, "train.seed": run.seed,
                    "train.deterministic": study.deterministic})
  tuned = study.tuned.get(run.tuned_key, {})  # the tuning's choice: hyperparameters, epoch
  for name, value in [*tuned.get("hparams", {}).items(), *run.hparams]:
    overrides[train_config.hparam_override(name)] = value
  if "epoch" in tuned:
    overrides.update({"train.epochs": tuned["schedule_epochs"],
                      "train.stop_after_epochs": tuned["epoch"]})
  if study.data_dir:
    overrides["data.data_dir"] = study.data_dir
  return train_config.override(config, overrides)


def folder_content(spec: str, data_dir: Optional[str] = None) -> dict:
  """{"content_hash": ...} of an image-folder spec (its files' names, sizes and times), so
  a step's fingerprint changes with the folder; {} for TFDS datasets."""
  if not datasets.canonical_spec(spec).startswith(datasets.FOLDER_PREFIX):
    return {}
  return {"content_hash": datasets.get(spec, data_dir=data_dir).content_hash}


def _pretraining_data(study: StudyConfig, run: Run):
  """The DatasetInfo of the data (and class subset) `run` pretrains on."""
  data = pretrain_config(study, run).data
  return datasets.get(data.dataset, data_dir=study.data_dir, classes=data.classes)


def pretrain_settings(study: StudyConfig, run: Run) -> dict:
  config = pretrain_config(study, run)
  settings = train_config.to_dict(config)
  settings.get("data", {}).pop("data_dir", None)
  return {"step": "pretrain", "train_config": settings,
          **folder_content(config.data.dataset, study.data_dir)}


def run_dir(workdir: str, run: Run) -> str:
  return os.path.join(workdir, "runs", run.variant, f"seed{run.seed}")


_LOADED = {}


def load_model(path: str):
  """pretrained.load, remembered for the life of the process (a study reads each run's
  export several times); a re-export (new fingerprint file: the SavedModel's hashes) is loaded
  afresh."""
  stamp = os.path.join(path, "export", "saved_model", "fingerprint.pb")
  key = (io.absolute(path), io.read_bytes(stamp) if io.exists(stamp) else None)
  if key not in _LOADED:
    _LOADED.clear()  # keep one study step's worth of models, not every run's
    _LOADED[key] = pretrained.load(path)
  return _LOADED[key]


def pretrain(study: StudyConfig, run: Run, workdir: str, fp: str, strategy) -> dict:
  """Trains (or resumes) one run; a model dir of other settings is moved to stale/ first."""
  model_dir = run_dir(workdir, run)
  stamp_path = os.path.join(model_dir, "study_fingerprint.json")
  if io.isdir(model_dir):
    previous = io.read_json(stamp_path).get("fingerprint") if io.exists(stamp_path) else None
    if previous != fp:
      target = os.path.join(workdir, "stale", "runs", run.variant,
                            f"seed{run.seed}.{time.strftime('%Y%m%d-%H%M%S')}")
      io.makedirs(io.dirname(target))
      io.rename(model_dir, target)
  io.makedirs(model_dir)
  io.atomic_write_json(stamp_path, {"fingerprint": fp})
  metrics = trainer.train(pretrain_config(study, run), model_dir, strategy)
  return {k: v for k, v in metrics.items() if not evaluators.is_timing(k)} | {
      "timings": {k: v for k, v in metrics.items() if evaluators.is_timing(k)}}


def transfer_settings(study: StudyConfig, dataset: str) -> dict:
  return {"step": "transfer", "dataset": dataset, "knn_k_max": study.knn_k_max,
          "linear_max_iterations": study.linear_max_iterations,
          "linear_jit_compile": study.linear_jit_compile,
          "features": features.PENULTIMATE, **folder_content(dataset, study.data_dir)}


def transfer(study: StudyConfig, run: Run, dataset: str, workdir: str) -> dict:
  """Linear probe and kNN on the penultimate features of one run (paper §3.1), cached where
  experiments/linear_probe and knn look for them."""
  model_dir = run_dir(workdir, run)
  model = load_model(model_dir)
  info = datasets.get(dataset, data_dir=study.data_dir)
  data = features.transfer_features(
      model, info, evaluators.SPLITS, cache_dir=features.default_cache_dir(model_dir),
      batch_size=study.feature_batch_size, data_dir=study.data_dir, preprocess="transfer")
  linear = evaluators.LinearProbe(max_iterations=study.linear_max_iterations,
                                  jit_compile=study.linear_jit_compile).evaluate(info, data)
  neighbours = evaluators.KNN(k_max=study.knn_k_max).evaluate(info, data)
  return {
      "dataset": dataset, "metric": info.metric,
      "class_names": list(info.class_names) if info.class_names else None,
      "num_test": int(data["test"][1].shape[0]),
      "linear": {"test": float(linear.scores["test_score"]), "l2": float(linear.scores["l2"]),
                 "validation": float(linear.scores["validation_score"])},
      "knn": {"test": float(neighbours.scores["test_score"]), "k": int(neighbours.scores["k"]),
              "loo": float(neighbours.scores["loo_score"])},
      "timings": {"linear_seconds": linear.timings["total_seconds"],
                  "knn_seconds": neighbours.timings["total_seconds"]},
  }


def representation_settings(study: StudyConfig) -> dict:
  return {"step": "representations",
          "class_separation": [study.class_separation_split, study.class_separation_examples],
          "analysis": [study.analysis_split, study.analysis_examples],
          "relearn_head": [study.relearn_head, study.relearn_test_per_class],
          "linear_max_iterations": study.linear_max_iterations,
          "linear_jit_compile": study.linear_jit_compile}


def representations(study: StudyConfig, run: Run, workdir: str) -> dict:
  """Per endpoint: class separation R² (eq. 11) on the pretraining training set (Table 3,
  Figure 4) and the fraction of non-zero activations on its evaluation split (Figure 3);
  plus the relearned head (Figure 6)."""
  model = load_model(run_dir(workdir, run))
  info = _pretraining_data(study, run)
  relearn = evaluators.RelearnHead(
      test_per_class=study.relearn_test_per_class, max_examples=study.analysis_examples,
      max_iterations=study.linear_max_iterations, jit_compile=study.linear_jit_compile)
  return evaluators.Representations(
      separation_split=study.class_separation_split,
      separation_examples=study.class_separation_examples,
      sparsity_split=study.analysis_split, sparsity_examples=study.analysis_examples,
      relearn=relearn if study.relearn_head else None).evaluate(
          model, info, batch_size=study.feature_batch_size, data_dir=study.data_dir).scores


def cka_settings(study: StudyConfig) -> dict:
  return {"step": "cka", "examples": study.cka_examples, "batch_size": study.cka_batch_size,
          "passes": study.cka_passes, "split": study.analysis_split}


def cka(study: StudyConfig, runs: list[Run], workdir: str) -> dict:
  """Minibatch CKA between every endpoint of the first seed's networks and every endpoint of
  the second seed's (Figure 2a: all block pairs; 2b: corresponding blocks across objectives,
  diagonal: two seeds of one), over `cka_passes` passes (docs/protocol.md §6)."""
  seed_a, seed_b = study.cka_seeds
  objectives = [o for o in study.objectives
                if Run(o, seed_a) in runs and Run(o, seed_b) in runs]
  models = {f"{o}@{seed}": pretrained.load(run_dir(workdir, Run(o, seed)))
            for seed in (seed_a, seed_b) for o in objectives}
  info = _pretraining_data(study, Run(objectives[0], seed_a))
  result = representations_lib.analyze(
      models, info, study.analysis_split, batch_size=study.cka_batch_size,
      max_examples=study.cka_examples, data_dir=study.data_dir, progress=False,
      passes=study.cka_passes, shuffle_seed=0)
  per_pair = {
      f"{a}|{b}": result["cka"][representations_lib.pair_key(f"{a}@{seed_a}", f"{b}@{seed_b}")]
      for a in objectives for b in objectives}
  return {"objectives": objectives, "endpoints": result["endpoints"],
          "seeds": [seed_a, seed_b], "examples": result["examples"],
          "passes": result["passes"], "minibatches": result["minibatches"], "cka": per_pair}


def finetune_settings(study: StudyConfig, dataset: str) -> dict:
  preset = train_config.get_preset("finetune", study.finetune_experiment)
  return {"step": "finetune", "dataset": dataset, "preset": dataclasses.asdict(preset),
          **folder_content(dataset, study.data_dir)}


def finetune(study: StudyConfig, run: Run, dataset: str, workdir: str, strategy) -> dict:
  model_dir = run_dir(workdir, run)
  output_dir = os.path.join(model_dir, "finetune", datasets.result_name(dataset))
  return evaluators.FineTune(preset=study.finetune_experiment).evaluate(
      model_dir, dataset, output_dir, data_dir=study.data_dir, strategy=strategy).scores


def fingerprint(settings: dict, upstream: Optional[list[str]] = None) -> str:
  return store_lib.fingerprint({"settings": settings, "upstream": upstream or []})
