"""Runs a study: plans every step, skips the finished ones, runs the rest, writes the report.

Resumable and idempotent: each finished step is one result file (official.study.store),
written atomically after the step completes. Killing the driver loses at most the step in
progress (pretraining resumes from its last checkpoint); a rerun skips what is done.
"""

import dataclasses
import os
import subprocess
import sys
import time
from typing import Callable, Optional

from official.core import io
from official.study import report as report_lib
from official.study import steps
from official.study import store as store_lib
from official.core.config import Run, StudyConfig


@dataclasses.dataclass
class Step:
  key: str
  kind: str
  label: str
  fingerprint: str
  settings: dict
  action: Callable[[], dict]


def plan(study: StudyConfig, workdir: str, strategy=None) -> list[Step]:
  """Every step of the study in execution order, with fingerprints chaining dependencies."""
  planned = []
  runs = study.runs()
  pretrain_fp = {}
  # Each run's evaluation follows its pretraining, so results (and the time estimate) build
  # up run by run.
  for run in runs:
    settings = steps.pretrain_settings(study, run)
    fp = steps.fingerprint(settings)
    pretrain_fp[run] = fp
    planned.append(Step(
        f"pretrain/{run.run_id}", "pretrain", f"pretrain {run.run_id}", fp, settings,
        lambda run=run, fp=fp: steps.pretrain(study, run, workdir, fp, strategy)))
    settings = steps.representation_settings(study)
    fp = steps.fingerprint(settings, [pretrain_fp[run]])
    planned.append(Step(
        f"representations/{run.run_id}", "representations", f"representations {run.run_id}",
        fp, settings, lambda run=run: steps.representations(study, run, workdir)))
    for dataset in study.transfer_datasets:
      settings = steps.transfer_settings(study, dataset)
      fp = steps.fingerprint(settings, [pretrain_fp[run]])
      planned.append(Step(
          f"transfer/{run.run_id}/{steps.result_name(dataset)}", "transfer",
          f"transfer {run.run_id} {dataset}",
          fp, settings, lambda run=run, d=dataset: steps.transfer(study, run, d, workdir)))
  if study.finetune:
    for run in runs:
      if run.hparams or run.seed not in study.finetune_seeds:
        continue
      for dataset in study.finetune_datasets:
        settings = steps.finetune_settings(study, dataset)
        fp = steps.fingerprint(settings, [pretrain_fp[run]])
        planned.append(Step(
            f"finetune/{run.run_id}/{steps.result_name(dataset)}", "finetune",
            f"finetune {run.run_id} {dataset}",
            fp, settings,
            lambda run=run, d=dataset: steps.finetune(study, run, d, workdir, strategy)))
  if len(study.cka_seeds) == 2 and all(
      Run(o, s) in runs for o in study.objectives[:1] for s in study.cka_seeds):
    settings = steps.cka_settings(study)
    upstream = sorted(pretrain_fp[r] for r in runs
                      if not r.hparams and r.seed in study.cka_seeds)
    fp = steps.fingerprint(settings, upstream)
    planned.append(Step("cka", "cka", "CKA across objectives", fp, settings,
                        lambda: steps.cka(study, runs, workdir)))
  return planned


def _format_seconds(seconds: float) -> str:
  seconds = int(round(seconds))
  return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def check_writable(workdir: str) -> None:
  """Fails early, in one line, when the workdir cannot hold results."""
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, ".write_test")
    with open(probe, "w") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    raise PermissionError(f"--workdir {workdir!r} is not writable ({e.strerror})") from None


def prepare_data(study: StudyConfig) -> None:
  """Generates the study's datasets in a child process before anything trains.

  Generating TFDS data in the training process changes the state TensorFlow starts a run
  from, so a run that generated its data would not match one that found it prepared; in a
  child process every run of the study, interrupted or not, starts from the same state.
  """
  specs = [steps.pretrain_config(study, study.runs()[0]).data.dataset]
  specs += list(study.transfer_datasets) + (
      list(study.finetune_datasets) if study.finetune else [])
  code = ("import sys; from official.data import datasets; "
          "datasets.prepare(sys.argv[1:-1], data_dir=sys.argv[-1] or None)")
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  env = dict(os.environ)
  env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
  result = subprocess.run([sys.executable, "-c", code, *specs, study.data_dir or ""],
                          env=env, capture_output=True, text=True)
  if result.returncode != 0:
    lines = (result.stderr.strip() or "unknown error").splitlines()
    raise ValueError(f"preparing the datasets {', '.join(specs)} failed: {lines[-1]}")


def run(study: StudyConfig, workdir: str, strategy=None,
        log: Callable[[str], None] = print) -> str:
  """Runs every step not yet done and writes the report; returns the report's path."""
  study.validate()
  workdir = os.path.abspath(workdir)
  check_writable(workdir)
  store = store_lib.ResultStore(workdir)
  io.atomic_write_json(os.path.join(workdir, "study.json"), dataclasses.asdict(study))
  planned = plan(study, workdir, strategy)
  prepare_data(study)
  statuses = [store.status(s.key, s.fingerprint) for s in planned]
  todo = [s for s, status in zip(planned, statuses) if status != "done"]
  log(f"study {study.experiment}: {len(planned)} steps, {len(planned) - len(todo)} done, "
      f"{len(todo)} to run; workdir {workdir}")
  durations: dict[str, list[float]] = {}
  started = time.time()
  for index, step in enumerate(todo):
    status = store.status(step.key, step.fingerprint)
    if status == "stale":
      moved = store.mark_stale(step.key)
      log(f"  stale: {step.key} was computed with other settings; moved to {moved}")
    remaining = _estimate(todo[index:], durations)
    eta = f", ~{_format_seconds(remaining)} left" if remaining is not None else ""
    log(f"[{index + 1}/{len(todo)}] {step.label} "
        f"(elapsed {_format_seconds(time.time() - started)}{eta})")
    t0 = time.time()
    result = step.action()
    store.put(step.key, step.fingerprint, result, step.settings)
    durations.setdefault(step.kind, []).append(time.time() - t0)
  report_path = report_lib.write(workdir)
  log(f"done in {_format_seconds(time.time() - started)}; report: {report_path}")
  return report_path


def _estimate(remaining: list[Step], durations: dict) -> Optional[float]:
  if not durations:
    return None
  overall = sum(sum(v) for v in durations.values()) / sum(len(v) for v in durations.values())
  total = 0.0
  for step in remaining:
    seen = durations.get(step.kind)
    total += sum(seen) / len(seen) if seen else overall
  return total
