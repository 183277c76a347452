"""Runs a study: plans every step, skips the finished ones, runs the rest, writes the report.

Each finished step is one result file (official.study.store), so a rerun skips what is done
and a killed driver loses at most the step in progress. A tuning study (docs/protocol.md §3)
plans only its pretraining runs and writes <workdir>/tuning.json instead of the report.

Several drivers on one workdir cooperate through the storage alone (README "Paper scale on a
cluster"): pretraining run i and the steps that read only it belong to worker i % num_workers
(runs dominate the cost and are alike in size), every step runs under a lease
(official.study.leases), and each worker writes its results before checking the others' on
read-after-write consistent storage, so the last one to finish finds every input done.
Sharded workers write the report once per set of results (leases/report-written.json); a
single driver rewrites it on every run.
"""

import dataclasses
import os
import socket
import subprocess
import sys
import time
from typing import Callable, Optional

from official.core import io
from official.core.config import Run, StudyConfig
from official.data import datasets
from official.study import leases as leases_lib
from official.study import report as report_lib
from official.study import steps
from official.study import store as store_lib

TUNING_FILE = "tuning.json"


@dataclasses.dataclass
class Step:
  key: str
  kind: str
  label: str
  fingerprint: str
  settings: dict
  action: Callable[[], dict]
  # Index of the pretraining run whose share this step belongs to; None: every worker's.
  share: Optional[int] = None
  upstream: tuple = ()  # keys of the steps whose results this step reads


def plan(study: StudyConfig, workdir: str, strategy=None) -> list[Step]:
  """Every step of the study in execution order, with fingerprints chaining dependencies."""
  planned, fingerprints, runs = [], {}, study.runs()

  def add(key, label, settings, action, share, upstream=()):
    # A step's kind is its key's first part ("transfer/<run>/<dataset>" -> "transfer").
    fingerprints[key] = steps.fingerprint(settings, sorted(fingerprints[k] for k in upstream))
    planned.append(Step(key, key.split("/")[0], label, fingerprints[key], settings, action,
                        share, tuple(upstream)))

  # Each run's evaluation follows its pretraining, so results (and the time estimate) build
  # up run by run.
  for index, run in enumerate(runs):
    pretrain = f"pretrain/{run.run_id}"
    add(pretrain, f"pretrain {run.run_id}", steps.pretrain_settings(study, run),
        lambda run=run, key=pretrain: steps.pretrain(study, run, workdir, fingerprints[key],
                                                     strategy), index)
    if study.tune:  # tuning reads the pretraining results only
      continue
    add(f"representations/{run.run_id}", f"representations {run.run_id}",
        steps.representation_settings(study),
        lambda run=run: steps.representations(study, run, workdir), index, (pretrain,))
    for dataset in study.transfer_datasets:
      add(f"transfer/{run.run_id}/{datasets.result_name(dataset)}",
          f"transfer {run.run_id} {dataset}", steps.transfer_settings(study, dataset),
          lambda run=run, d=dataset: steps.transfer(study, run, d, workdir), index, (pretrain,))
  if study.finetune and not study.tune:
    for index, run in enumerate(runs):
      if run.hparams or run.seed not in study.finetune_seeds:
        continue
      for dataset in study.finetune_datasets:
        add(f"finetune/{run.run_id}/{datasets.result_name(dataset)}",
            f"finetune {run.run_id} {dataset}", steps.finetune_settings(study, dataset),
            lambda run=run, d=dataset: steps.finetune(study, run, d, workdir, strategy),
            index, (f"pretrain/{run.run_id}",))
  if not study.tune and len(study.cka_seeds) == 2 and all(
      Run(o, s) in runs for o in study.objectives[:1] for s in study.cka_seeds):
    cka_runs = [r for r in runs if not r.hparams and r.seed in study.cka_seeds]
    add("cka", "CKA across objectives", steps.cka_settings(study),
        lambda: steps.cka(study, runs, workdir), None,
        tuple(f"pretrain/{r.run_id}" for r in cka_runs))
  return planned


def _format_seconds(seconds: float) -> str:
  seconds = int(round(seconds))
  return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def check_writable(workdir: str) -> None:
  """Fails early, in one line, when the workdir cannot hold results."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    io.makedirs(workdir)
    probe = io.join(workdir, f".write_test.{socket.gethostname()}.{os.getpid()}")
    with tf.io.gfile.GFile(probe, "w") as f:
      f.write("ok")
    io.remove(probe)
  except (OSError, tf.errors.OpError) as e:
    reason = (e.strerror if isinstance(e, OSError) else
              (e.message or type(e).__name__).splitlines()[0])
    raise PermissionError(f"--workdir {workdir!r} is not writable ({reason})") from None


def prepare_data(study: StudyConfig) -> None:
  """Generates the study's datasets in a child process before anything trains, so that every
  run starts from the same TensorFlow state whether or not it found its data prepared."""
  specs = [steps.pretrain_config(study, study.runs()[0]).data.dataset]
  specs += list(study.transfer_datasets) + (
      list(study.finetune_datasets) if study.finetune else [])
  code = ("import sys; from official.data import datasets; "
          "datasets.prepare(sys.argv[1:-1], data_dir=sys.argv[-1] or None)")
  # The project's own source folder (local, as every module file is), for the child's imports.
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  env = dict(os.environ)
  env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
  result = subprocess.run([sys.executable, "-c", code, *specs, study.data_dir or ""],
                          env=env, capture_output=True, text=True)
  if result.returncode != 0:
    lines = (result.stderr.strip() or "unknown error").splitlines()
    raise ValueError(f"preparing the datasets {', '.join(specs)} failed: {lines[-1]}")


def run(study: StudyConfig, workdir: str, strategy=None,
        log: Callable[[str], None] = print, num_workers: int = 1, worker_index: int = 0,
        lease_timeout: float = leases_lib.DEFAULT_TIMEOUT_SECONDS,
        wait_seconds: float = 0.0) -> Optional[str]:
  """Runs this worker's steps not yet done; returns the report's path, or None when steps of
  other workers (or held by other drivers) remain and this worker leaves them to those.

  Args:
    workdir: the study's folder (a local path or a URL such as gs://bucket/study).
    strategy: the tf.distribute strategy every run trains and extracts features under.
    num_workers: how many cooperating workers share the workdir; worker `worker_index`
      (0-based) runs pretraining runs i with i % num_workers == worker_index, their dependent
      steps, and the shared steps (CKA, report) once their inputs exist.
    lease_timeout: seconds without a heartbeat after which another process's lease on a step
      counts as abandoned and the step is taken over.
    wait_seconds: how long to keep polling for steps held by others or waiting for other
      workers' runs before exiting (0: exit at once, saying what is left).
  """
  study.validate()
  if num_workers < 1:
    raise ValueError(f"--num_workers must be >= 1, got {num_workers}")
  if not 0 <= worker_index < num_workers:
    raise ValueError(f"--worker_index must be in [0, {num_workers - 1}] for "
                     f"--num_workers={num_workers}, got {worker_index}")
  workdir = io.absolute(workdir)
  check_writable(workdir)
  me = f"worker {worker_index}/{num_workers}" if num_workers > 1 else "driver"
  prefix = f"[{me}] " if num_workers > 1 else ""
  say = lambda line: log(prefix + line)
  store = store_lib.ResultStore(workdir)
  from official.training import distribute  # pylint: disable=g-import-not-at-top
  # One multi-worker training cluster is one study worker; its hosts run in lockstep.
  lockstep = strategy is not None and distribute.worker_info(strategy)[0] > 1
  if lockstep and num_workers > 1:
    raise ValueError("--strategy=multi_worker_mirrored trains each run across the TF_CONFIG "
                     "cluster, whose hosts run the study together: use --num_workers=1 "
                     "with it, or one study worker per machine with --strategy=mirrored")
  table = (leases_lib.Lockstep if lockstep else leases_lib.LeaseTable)(
      workdir, owner=me, timeout_seconds=lease_timeout)
  io.atomic_write_json(io.join(workdir, store_lib.STUDY_FILE), dataclasses.asdict(study))
  planned = plan(study, workdir, strategy)
  _remove_abandoned_temporaries(store.root, lease_timeout)
  _prepare_data_once(study, table)
  fingerprints = {s.key: s.fingerprint for s in planned}
  mine = [s for s in planned if s.share is None or s.share % num_workers == worker_index]
  done = {s.key for s in planned if store.status(s.key, s.fingerprint) == "done"}
  todo = [s for s in mine if s.key not in done]

  def finished(key: str) -> bool:  # done by now, here or by another process
    if key not in done and store.status(key, fingerprints[key]) == "done":
      done.add(key)
    return key in done

  share = f" ({len(mine)} in this worker's share)" if num_workers > 1 else ""
  say(f"study {study.experiment}: {len(planned)} steps{share}, {len(mine) - len(todo)} done, "
      f"{len(todo)} to run; workdir {workdir}")
  durations: dict[str, list[float]] = {}
  started = time.time()
  count = 0
  waited_since = None
  while True:
    blocked = []  # (step, why) of steps this worker cannot start now
    for step in todo:
      if finished(step.key):
        continue
      missing = [k for k in step.upstream if not finished(k)]
      if missing:
        blocked.append((step, f"needs {missing[0]}"))
        continue
      lease = table.try_acquire(step.key)
      if lease is None:
        holder = table.holder(step.key)
        blocked.append((step, f"held by {table.describe(holder)}" if holder else "contended"))
        continue
      with lease:
        status = store.status(step.key, step.fingerprint)
        if status == "done":  # finished by another process since the check above
          done.add(step.key)
          continue
        if status == "stale":
          moved = store.mark_stale(step.key)
          say(f"  stale: {step.key} was computed with other settings; moved to {moved}")
        count += 1
        remaining = _estimate([s for s in todo if s.key not in done], durations)
        eta = f", ~{_format_seconds(remaining)} left" if remaining is not None else ""
        say(f"[{count}/{len(todo)}] {step.label} "
            f"(elapsed {_format_seconds(time.time() - started)}{eta})")
        t0 = time.time()
        result = step.action()
        if lease.lost:
          say(f"  lease lost: {step.key} was taken over while this worker stalled; "
              "its result is discarded")
          continue
        store.put(step.key, step.fingerprint, result, step.settings)
        done.add(step.key)
        durations.setdefault(step.kind, []).append(time.time() - t0)
        if num_workers > 1:
          say(f"  finished {step.key} in {_format_seconds(time.time() - t0)}")
      break  # a step ran: rescan from the first (plan order, and freed leases are retried)
    else:  # no step could run now
      if not blocked:  # this worker's share is done; are the other workers' shares?
        blocked = [(s, f"worker {s.share % num_workers}'s share") for s in planned
                   if not finished(s.key)]
        if not blocked:
          break
      if waited_since is None and wait_seconds > 0:
        say(_waiting_line(blocked, planned, done, num_workers, wait_seconds))
      waited_since = waited_since or time.time()
      if time.time() - waited_since < wait_seconds:
        time.sleep(min(5.0, table.heartbeat_seconds))
        continue
      say(_waiting_line(blocked, planned, done, num_workers))
      return None
    waited_since = None
  if study.tune:  # cheap and deterministic: every worker that gets here writes the same file
    path = io.join(workdir, TUNING_FILE)
    results = {s.key: store.get(s.key, s.fingerprint) for s in planned}
    io.atomic_write_json(path, tuning_results(study, results))
    say(f"done in {_format_seconds(time.time() - started)}; tuning: {path}")
    return path
  # The report, once: by a single driver on every run (as a rerun refreshes it), by sharded
  # workers only if no worker has written it for these exact results yet.
  written = io.join(table.root, "report-written.json")
  results_fp = store_lib.fingerprint(sorted(fingerprints.items()))
  lease = table.try_acquire("report")
  if lease is None:
    holder = table.holder("report")
    say(f"the report is being written by {table.describe(holder) if holder else 'another'}")
    return None
  with lease:
    report_path = io.join(workdir, "report", "report.md")
    previous = leases_lib.LeaseTable.read(written) or {}
    if (num_workers == 1 or previous.get("results") != results_fp
        or not io.exists(report_path)):
      report_path = report_lib.write(workdir)
      io.atomic_write_json(written, {"results": results_fp, "by": me})
    else:
      say(f"the report for these results was written already, by {previous.get('by')}: "
          f"{report_path}")
      return report_path
  say(f"done in {_format_seconds(time.time() - started)}; report: {report_path}")
  return report_path


def tuning_results(study: StudyConfig, results: dict) -> dict:
  """tuning.json of a tuning study from its pretraining results (step key -> metrics): per
  configuration set (StudyConfig.tuning_sets) the configuration and epoch of highest
  seed-averaged holdout top-1 (docs/protocol.md §3)."""
  objectives = {}
  for name, candidates in study.tuning_sets().items():
    configurations = []
    for candidate in candidates:
      hparams = dict(candidate.hparams)
      runs = [dataclasses.replace(candidate, seed=seed) for seed in study.seeds]
      curves = [{int(e): v for e, v in results[f"pretrain/{run.run_id}"]["top1_curve"]}
                for run in runs]
      mean = {e: sum(c[e] for c in curves) / len(curves) for e in curves[0]}
      epoch = max(mean, key=lambda e: (mean[e], -e))
      configurations.append({"hparams": hparams, "epoch": epoch, "top1": mean[epoch],
                             "top1_per_epoch": {str(e): v for e, v in sorted(mean.items())}})
    best = max(configurations, key=lambda c: c["top1"])  # the first of equal ones
    schedule = steps.pretrain_config(study, runs[0]).train.epochs
    objectives[name] = {"hparams": best["hparams"], "epoch": best["epoch"],
                        "schedule_epochs": schedule, "top1": best["top1"],
                        "configurations": configurations}
  return {"experiment": study.experiment, "pretrain_experiment": study.pretrain_experiment,
          "seeds": list(study.seeds), "selected_by": "holdout top-1, mean over seeds",
          "objectives": objectives}


def read_tuning(path: str) -> dict:
  """StudyConfig.tuned from a tuning.json: run variant -> {"hparams", "epoch",
  "schedule_epochs"}."""
  if not io.exists(path):
    raise ValueError(f"--tuning {path!r} does not exist; run a tuning study "
                     "(--experiment=<preset>_tuning) to write it")
  try:
    objectives = io.read_json(path)["objectives"]
    return {name: {"hparams": dict(choice["hparams"]), "epoch": int(choice["epoch"]),
                   "schedule_epochs": int(choice["schedule_epochs"])}
            for name, choice in objectives.items()}
  except (ValueError, KeyError, TypeError, AttributeError) as e:
    raise ValueError(f"--tuning {path!r} is not a tuning study's {TUNING_FILE} "
                     f"({type(e).__name__}: {e})") from None


def _waiting_line(blocked, planned, done, num_workers, wait_seconds=0.0) -> str:
  """One line: what this worker waits for (polling up to `wait_seconds`) or leaves to others."""
  shown = ", ".join(f"{s.key} ({why})" for s, why in blocked[:3])
  more = f" and {len(blocked) - 3} more" if len(blocked) > 3 else ""
  left = sum(1 for s in planned if s.key not in done)
  last = ("the last worker to finish writes the report" if num_workers > 1 else
          "the other driver writes the report")
  if wait_seconds:
    return (f"waiting up to {_format_seconds(wait_seconds)} for {shown}{more} "
            f"({left} steps not done)")
  return (f"nothing more to run here now: {left} steps not done, waiting for {shown}{more}; "
          f"{last} (rerun to take part again)")


def _remove_abandoned_temporaries(root: str, older_than: float) -> None:
  """Deletes temporary result files that interrupted writes left (on Cloud Storage a rename
  is a copy and a delete, so a crash can leave one), if older than any live write."""
  now = time.time()
  for relative in io.walk_files(root):
    path = io.join(root, relative)
    if io.is_temporary(relative) and now - io.mtime(path) > older_than:
      io.remove(path)


def _prepare_data_once(study: StudyConfig, table: leases_lib.LeaseTable) -> None:
  """prepare_data, by one worker per data folder at a time (TFDS generation is not safe to run
  twice concurrently into one folder); the others wait, then find the data prepared."""
  shared = study.data_dir is not None and io.is_remote(study.data_dir)
  key = "prepare/shared" if shared else f"prepare/{table.host}"
  while (lease := table.try_acquire(key)) is None:
    time.sleep(1.0)
  with lease:
    prepare_data(study)


def _estimate(remaining: list[Step], durations: dict) -> Optional[float]:
  if not durations:
    return None
  overall = sum(sum(v) for v in durations.values()) / sum(len(v) for v in durations.values())
  mean = {kind: sum(seen) / len(seen) for kind, seen in durations.items()}
  return sum(mean.get(step.kind, overall) for step in remaining)
