"""Tests of presets, dict/JSON round trips, overrides, the run-dir reader and the
resume-compatibility check."""

import json
import os

from absl.testing import absltest
from absl.testing import parameterized

from official.core import config


class PresetTest(parameterized.TestCase):

  def test_registry(self):
    self.assertEqual(set(config.EXPERIMENTS),
                     {"demo", "demo_holdout", "imagenet_resnet50", "imagenet_resnet50_holdout",
                      "imagenet32_resnet18", "imagenet32_resnet18_holdout",
                      "imagenet64_resnet18", "imagenet64_resnet18_holdout",
                      "imagenet32_resnet50", "imagenet32_resnet50_holdout"})
    with self.assertRaisesRegex(ValueError, "unknown experiment 'nope'; valid: demo"):
      config.get_experiment("nope")

  def test_imagenet_is_the_papers_recipe(self):
    c = config.get_experiment("imagenet_resnet50")
    self.assertEqual((c.model.depth, c.model.image_size, c.model.small_input_stem),
                     (50, 224, False))
    self.assertEqual((c.train.batch_size, c.train.epochs, c.train.warmup_epochs), (4096, 90, 5))
    self.assertAlmostEqual(c.train.peak_learning_rate, 1.6)  # 0.1 * 4096 / 256
    self.assertEqual((c.train.momentum, c.train.nesterov, c.train.weight_decay),
                     (0.9, True, 8e-5))
    self.assertEqual(c.train.ema_decay, 0.9999)
    self.assertTrue(c.train.mixed_precision)
    self.assertEqual((c.data.train_split, c.data.eval_split), ("train_full", "test"))
    holdout = config.get_experiment("imagenet_resnet50_holdout")
    self.assertEqual((holdout.data.train_split, holdout.data.eval_split),
                     ("train", "validation"))

  def test_tuning_presets_tune_on_the_holdout(self):
    for name, holdout in (("demo", "demo_holdout"), ("paper", "imagenet_resnet50_holdout"),
                          ("imagenet32", "imagenet32_resnet18_holdout")):
      study = config.get_study(name + "_tuning")
      self.assertTrue(study.tune)
      self.assertEqual(study.pretrain_experiment, holdout)
      self.assertIs(study.pretrain_overrides["train.select_best_epoch"], True)
      self.assertEqual(study.transfer_datasets, ())
    self.assertLen(config.get_study("paper_tuning").runs(), 26 * 3)
    # (6 objectives x 2 values, softmax, sigmoid) x 2 learning rates, cosine softmax 2 x 4, and
    # 8 temperatures x 4 learning rates, of which the four at tau = 0.05 are cosine softmax's.
    self.assertLen(config.get_study("demo_tuning").runs(), (6 * 2 + 2) * 2 + 2 * 4 + 8 * 4 - 4)
    with self.assertRaisesRegex(ValueError, r"train.stop_after_epochs=3 must be an integer in "
                                r"\[0, train.epochs=2\]"):
      config.override(config.get_experiment("demo"), {"train.stop_after_epochs": 3})

  def test_linear_scaling_and_explicit_learning_rate(self):
    c = config.override(config.get_experiment("imagenet_resnet50"), {"train.batch_size": 512})
    self.assertAlmostEqual(c.train.peak_learning_rate, 0.2)
    c = config.override(c, {"train.learning_rate": 0.05})
    self.assertAlmostEqual(c.train.peak_learning_rate, 0.05)

  def test_presets_are_fresh_copies(self):
    a = config.get_experiment("demo")
    a.train.epochs = 99
    self.assertNotEqual(config.get_experiment("demo").train.epochs, 99)

  @parameterized.parameters(*sorted(config.EXPERIMENTS))
  def test_json_round_trip(self, name):
    c = config.get_experiment(name)
    c = config.override(c, {"model.block_counts": [1, 2, 1, 1],
                            "objective.hparams.tau": 0.02, "objective.name": "cosine_softmax"})
    back = config.from_dict(json.loads(json.dumps(config.to_dict(c))))
    self.assertEqual(back, c)
    self.assertEqual(back.model.block_counts, (1, 2, 1, 1))
    self.assertEqual(config.differences(back, c, ignore=()), [])


class OverrideTest(absltest.TestCase):

  def test_dotted_nested_and_string_values(self):
    c = config.override(config.get_experiment("demo"), {
        "train.epochs": "3", "train.mixed_precision": "true", "train.learning_rate": "0.5",
        "model": {"width_multiplier": "0.5"}, "data.train_examples": "none",
        "objective.hparams.alpha": "0.2", "objective.name": "label_smoothing"})
    self.assertEqual(c.train.epochs, 3)
    self.assertIs(c.train.mixed_precision, True)
    self.assertEqual(c.train.learning_rate, 0.5)
    self.assertEqual(c.model.width_multiplier, 0.5)
    self.assertIsNone(c.data.train_examples)
    self.assertEqual(c.objective.hparams, {"alpha": 0.2})

  def test_parse_params_override_keeps_bracketed_commas(self):
    parsed = config.parse_params_override(
        "train.epochs=2, model.block_counts=[1,1,1,1],objective.hparams.tau=0.02")
    self.assertEqual(parsed, {"train.epochs": "2", "model.block_counts": "[1,1,1,1]",
                              "objective.hparams.tau": "0.02"})
    c = config.override(config.get_experiment("demo"), parsed)
    self.assertEqual(c.model.block_counts, (1, 1, 1, 1))
    self.assertEqual(config.parse_params_override(""), {})
    with self.assertRaisesRegex(ValueError, "not of the form key=value"):
      config.parse_params_override("train.epochs")

  def test_bad_overrides_are_one_line_errors(self):
    demo = config.get_experiment("demo")
    cases = [
        ({"train.nope": 1}, "cannot override 'train.nope': no such field"),
        ({"trian.epochs": 1}, "unknown section 'trian'"),
        ({"train.epochs": "three"}, r"train.epochs='three' is not a valid int"),
        ({"train.epochs": 0}, "train.epochs=0 must be a positive integer"),
        ({"train.batch_size": 2.5}, "is not a valid int"),
        ({"model.depth": 42}, "depth=42 is not supported"),
        ({"data.train_split": "dev"}, "data.train_split='dev' is not a split"),
        ({"train.warmup_epochs": 10, "train.epochs": 5}, "warmup_epochs=10.0 must be in"),
        ({"train.ema_decay": 1.0}, "ema_decay=1.0 must be in"),
    ]
    for overrides, message in cases:
      with self.assertRaisesRegex(ValueError, message):
        config.override(demo, overrides)
      try:
        config.override(demo, overrides)
      except ValueError as e:
        self.assertNotIn("\n", str(e))

  def test_from_dict_rejects_unknown_keys(self):
    with self.assertRaisesRegex(ValueError, "unknown config key.*train.epoch;"):
      config.from_dict({"train": {"epoch": 3}})
    with self.assertRaisesRegex(ValueError, "unknown config section"):
      config.from_dict({"optimizer": {}})


class ResolveAndCompareTest(absltest.TestCase):

  def test_resolve_fills_classes_and_hparams(self):
    c = config.override(config.get_experiment("demo"), {"objective.name": "mse",
                                                        "objective.hparams.m": 2})
    resolved = config.resolve(c)
    self.assertEqual(resolved.objective.name, "squared_error")
    # m explicit (over the demo preset's 6), loss_scale from the demo preset (paper eq. 9's
    # 1/K), kappa released.
    self.assertEqual(resolved.objective.hparams, {"kappa": 9.0, "m": 2.0, "loss_scale": 1 / 48})
    imagenet = config.resolve(config.override(config.get_experiment("imagenet_resnet50"),
                                              {"objective.name": "mse"}))
    self.assertEqual(imagenet.objective.hparams, {"kappa": 9.0, "m": 60.0, "loss_scale": 10.0})
    self.assertEqual(resolved.model.num_classes, 48)  # demo_pretrain: 8 shapes x 6 colours
    self.assertEqual(config.resolve(resolved), resolved)
    with self.assertRaisesRegex(ValueError, "keep_prob"):
      config.resolve(config.override(c, {"objective.name": "dropout",
                                          "objective.hparams": {"keep_prob": 1.5}}))

  def test_differences_ignore_run_only_keys(self):
    a = config.get_experiment("demo")
    b = config.override(a, {"data.data_dir": "/elsewhere", "train.log_every_steps": 7,
                            "train.jit_compile": True})
    self.assertEqual(config.differences(a, b), [])
    c = config.override(b, {"train.seed": 1, "objective.hparams.alpha": 0.2,
                            "objective.name": "label_smoothing"})
    self.assertEqual([k for k, _, _ in config.differences(a, c)],
                     ["objective.hparams.alpha", "objective.name", "train.seed"])


class SectionsTest(absltest.TestCase):
  """The finetune and study sections through the one registry and the one parser."""

  def test_registry_sections(self):
    self.assertEqual({s: set(p) for s, p in config.PRESETS.items()},
                     {"experiment": {"demo", "demo_holdout", "imagenet_resnet50",
                                     "imagenet_resnet50_holdout",
                                     "imagenet32_resnet18", "imagenet32_resnet18_holdout",
                                     "imagenet64_resnet18", "imagenet64_resnet18_holdout",
                                     "imagenet32_resnet50", "imagenet32_resnet50_holdout"},
                      "finetune": {"paper", "demo", "imagenet32"},
                      "study": {"demo", "demo_long", "paper", "imagenet32", "demo_tuning",
                                "paper_tuning", "imagenet32_tuning"}})
    self.assertIs(config.EXPERIMENTS, config.PRESETS["experiment"])
    with self.assertRaisesRegex(ValueError, "unknown preset section 'nope'; valid: experiment"):
      config.get_preset("nope", "demo")
    quick = config.get_study("demo", quick=True)
    self.assertEqual((quick.experiment, quick.seeds, quick.transfer_datasets),
                     ("demo_quick", (0,), ("demo_digits",)))
    self.assertEqual(quick.pretrain_overrides, {"train.epochs": 1, "data.train_examples": 2048})
    self.assertEqual(config.get_study("demo").seeds, (0, 1))
    self.assertEqual(config.get_study("paper").seeds, tuple(range(8)))

  def test_params_override_of_the_finetune_section(self):
    parsed = config.parse_params_override(
        "finetune.steps=7,finetune.learning_rates=[0.01,0.3],weight_decays=[0],schedule=constant")
    demo = config.get_preset("finetune", "demo")
    c = config.override(demo, parsed)
    self.assertEqual((c.steps, c.learning_rates, c.weight_decays, c.schedule),
                     (7, (0.01, 0.3), (0.0,), "constant"))
    self.assertEqual(c.grid(), [(0.01, 0.0), (0.3, 0.0)])
    self.assertEqual(config.override(demo, {"seed": None}), demo)  # an unset flag
    with self.assertRaisesRegex(ValueError, "finetune.steps='many' is not a valid int"):
      config.override(demo, {"finetune.steps": "many"})
    with self.assertRaisesRegex(ValueError, "schedule='linear'; valid: cosine, constant"):
      config.override(demo, {"schedule": "linear"})

  def test_params_override_of_the_study_section(self):
    demo = config.get_study("demo")
    c = config.override(demo, config.parse_params_override(
        "study.seeds=[3,4],study.objectives=[softmax,mse],knn_k_max=5,"
        "study.temperature_sweep=[]"))
    self.assertEqual(c.knn_k_max, 5)
    self.assertEqual([r.run_id for r in c.runs()],
                     ["softmax/seed3", "softmax/seed4", "mse/seed3", "mse/seed4"])
    with self.assertRaisesRegex(ValueError, r"--seeds: duplicate seeds in \[1, 1\]"):
      config.override(demo, {"study.seeds": "[1,1]"})
    with self.assertRaisesRegex(ValueError, "unknown study setting 'seed'; valid: experiment"):
      config.override(demo, {"seed": 1})


class ReadRunConfigTest(absltest.TestCase):

  def _model_dir(self, values) -> str:
    model_dir = self.create_tempdir().full_path
    with open(os.path.join(model_dir, config.CONFIG_FILE), "w") as f:
      f.write(values if isinstance(values, str) else json.dumps(values))
    return model_dir

  def test_reads_what_a_run_records(self):
    c = config.override(config.get_experiment("demo"), {"train.seed": 3, "model.num_classes": 5,
                                                        "objective.name": "label_smoothing"})
    self.assertEqual(config.read_run_config(self._model_dir(config.to_dict(c))), c)

  def test_one_line_errors_name_the_file(self):
    missing = self.create_tempdir().full_path
    with self.assertRaisesRegex(FileNotFoundError, f"{missing}/config.json does not exist"):
      config.read_run_config(missing)
    for values, message in (("{nope", "is not valid JSON"),
                            ({"model": {}}, "must have 'model' and 'objective' sections"),
                            ({"model": {}, "objective": {"name": "softmax"},
                              "train": {"epoch": 3}}, "unknown config key.*train.epoch;")):
      model_dir = self._model_dir(values)
      with self.assertRaisesRegex(ValueError, f"{model_dir}/config.json.*{message}") as e:
        config.read_run_config(model_dir)
      self.assertNotIn("\n", str(e.exception))


if __name__ == "__main__":
  absltest.main()
