"""The tuning study end to end on the demo data, shrunk: tuning.json's choices (hyperparameters
and learning rate, per objective and sweep temperature) against a brute force over the
recorded holdout curves, and a final study's runs trained with them; the demo presets' table."""

import itertools
import os
import tempfile

import numpy as np
import tensorflow as tf

from official import losses
from official.core import config as config_lib
from official.core import io
from official.study import driver
from official.study import steps

TINY = {"data.train_examples": 128, "data.eval_examples": 64,
        "model.block_counts": [1, 1, 1, 1], "model.width_multiplier": 0.125,
        "train.batch_size": 32, "train.epochs": 3, "train.warmup_epochs": 0.5,
        "train.steps_per_loop": 2, "train.log_every_steps": 4,
        "train.checkpoint_every_steps": 0, "train.eval_batch_size": 32,
        "train.class_separation_examples": 48}
OBJECTIVES = ("softmax", "label_smoothing")
SEEDS = (0, 1)
TAU = 0.02  # one sweep temperature, tuned over cosine softmax's learning rates
SWEEP = f"cosine_softmax_tau{TAU:g}"


def _study(name, data_dir, **changes):
  study = config_lib.get_study(name)
  return config_lib.override(study, {
      "objectives": OBJECTIVES, "pretrain_dataset": "demo_pretrain/small",
      "pretrain_overrides": {**study.pretrain_overrides, **TINY}, "data_dir": data_dir,
      "transfer_datasets": (), **changes})


class TuningTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    root = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
    cls.data_dir = os.path.join(root, "tfds")
    cls.workdir = os.path.join(root, "tuning")
    cls.final_dir = os.path.join(root, "final")
    cls.study = _study("demo_tuning", cls.data_dir, seeds=SEEDS, temperature_sweep=(TAU,))
    cls.path = driver.run(cls.study, cls.workdir, log=lambda line: None)

  def test_choices_are_the_argmax_of_the_recorded_holdout_curves(self):
    self.assertEqual(self.path, os.path.join(self.workdir, "tuning.json"))
    tuning = io.read_json(self.path)
    self.assertEqual(sorted(tuning["objectives"]), sorted(OBJECTIVES + (SWEEP,)))
    rates = config_lib.DEMO_TUNING_GRID["cosine_softmax"]["base_learning_rate"]
    sets = [(o, config_lib.DEMO_TUNING_GRID[o], {}) for o in OBJECTIVES] + [
        (SWEEP, {"base_learning_rate": rates}, {"tau": TAU, "scale_loss_by_tau": True})]
    for name, grid, fixed in sets:
      keys = sorted(grid)
      configurations = [{**dict(zip(keys, values)), **fixed}
                        for values in itertools.product(*(grid[k] for k in keys))]
      self.assertLen(configurations, np.prod([len(v) for v in grid.values()]))
      scores = {}  # (configuration index, epoch) -> mean holdout top-1 over the seeds
      for index, hparams in enumerate(configurations):
        variant = name.split("_tau")[0] + "".join(
            f"_{k.rstrip('_')}{v:g}" for k, v in sorted(hparams.items()) if v is not True)
        curves = []
        for seed in SEEDS:
          run_dir = os.path.join(self.workdir, "runs", variant, f"seed{seed}")
          run_config = io.read_json(os.path.join(run_dir, "config.json"))
          self.assertEqual(run_config["data"]["train_split"], "train")  # the holdout preset
          self.assertEqual(run_config["data"]["eval_split"], "validation")
          for key, value in hparams.items():
            section = (run_config["train"] if key == "base_learning_rate"
                       else run_config["objective"]["hparams"])
            self.assertEqual(section[key], value)
          curve = dict(io.read_json(os.path.join(run_dir, "metrics.json"))["top1_curve"])
          curves.append([curve[e] for e in (1, 2, 3)])
        for epoch, value in enumerate(np.mean(curves, axis=0), start=1):
          scores[index, epoch] = value
      best = max(scores.values())
      index, epoch = min(k for k, v in scores.items() if np.isclose(v, best, atol=1e-12))
      chosen = tuning["objectives"][name]
      self.assertEqual(chosen["hparams"], configurations[index])
      self.assertEqual(chosen["epoch"], epoch)
      self.assertEqual(chosen["schedule_epochs"], 3)
      self.assertAllClose(chosen["top1"], best)
      self.assertAllClose([c["top1"] for c in chosen["configurations"]],
                          [max(scores[i, e] for e in (1, 2, 3))
                           for i in range(len(configurations))])
    # A rerun finds every run done and rewrites the same file.
    again = driver.run(self.study, self.workdir, log=lambda line: None)
    self.assertEqual(io.read_json(again), tuning)

  def test_final_study_trains_with_the_tuned_settings(self):
    tuned = driver.read_tuning(self.path)
    study = _study("demo", self.data_dir, seeds=(0,), tuned=tuned, temperature_sweep=(TAU,),
                   pretrain_overrides={**TINY, "train.epochs": 8})
    study.validate()
    planned = [s for s in driver.plan(study, self.final_dir) if s.kind == "pretrain"]
    self.assertLen(planned, len(OBJECTIVES) + 1)
    for step in planned:
      step.action()
    for variant in OBJECTIVES + (SWEEP,):
      run_dir = os.path.join(self.final_dir, "runs", variant, "seed0")
      config = config_lib.read_run_config(run_dir)
      self.assertEqual(config.data.train_split, "train_full")  # all of train
      chosen = tuned[variant]
      for key, value in chosen["hparams"].items():
        self.assertEqual(config.train.base_learning_rate if key == "base_learning_rate"
                         else config.objective.hparams[key], value)
      # The tuning runs' 3-epoch schedule (not the 8 asked for), stopped at the chosen epoch.
      self.assertEqual(config.train.epochs, 3)
      self.assertEqual(config.train.stop_after_epochs, chosen["epoch"])
      metrics = io.read_json(os.path.join(run_dir, "metrics.json"))
      self.assertEqual(metrics["epochs"], chosen["epoch"])

  def test_grids_hold_the_released_values_and_valid_keywords(self):
    for name, grid in losses.hyperparameters.TUNING_GRIDS.items():
      for keyword, values in grid.items():
        self.assertIn(losses.hyperparameters.released_default(name, keyword), values)
      study = config_lib.override(config_lib.get_study("paper_tuning"), {"objectives": (name,)})
      study.validate()  # every configuration builds
    self.assertEqual(sorted(config_lib.DEMO_TUNING_GRID), sorted(losses.NAMES))

  def test_bad_tuning_input_is_one_line(self):
    with self.assertRaisesRegex(ValueError, r"--tuning '/nonexistent/tuning.json' does not "
                                r"exist; run a tuning study"):
      driver.read_tuning("/nonexistent/tuning.json")
    with self.assertRaisesRegex(ValueError, r"^--tuning holds no choice for dropout \(it has "
                                r"cosine_softmax_tau0.02, label_smoothing, softmax\)"):
      _study("demo", self.data_dir, tuned=driver.read_tuning(self.path),
             objectives=("softmax", "dropout")).validate()


class DemoTableTest(tf.test.TestCase):

  def test_every_demo_run_trains_with_its_row_of_the_table(self):
    variants = set()
    for study in (config_lib.get_study("demo"), config_lib.get_study("demo_long"),
                  config_lib.get_study("demo", quick=True)):
      study.validate()
      for run in study.runs():
        variants.add(run.variant)
        chosen = config_lib.DEMO_TUNED[run.variant]  # no run falls back to the preset's rate
        recorded = steps.pretrain_settings(study, run)["train_config"]  # config.json's values
        self.assertEqual(recorded["train"]["base_learning_rate"],
                         chosen["base_learning_rate"], run)
        self.assertEqual(recorded["train"]["epochs"], 8 if study.experiment == "demo_long"
                         else 1 if study.experiment == "demo_quick" else 2)
        for key, value in chosen.items():
          if key != "base_learning_rate":
            self.assertEqual(recorded["objective"]["hparams"][key], value, run)
        self.assertEqual(recorded["objective"]["hparams"].get("tau"),
                         dict(run.hparams).get("tau", chosen.get("tau")))
    self.assertEqual(variants, set(config_lib.DEMO_TUNED))  # every row is used


if __name__ == "__main__":
  tf.test.main()
