"""Early stopping (train.select_best_epoch): the selected epoch, its exported weights, resuming.

A tiny deterministic run of 4 epochs (4 steps each) keeps a checkpoint at every epoch end, so
the EMA weights of each epoch can be restored and compared with the export; two more runs are
killed (an exception from the log) at different points and resumed.
"""

import os
import tempfile

import numpy as np
import tensorflow as tf

from official import losses
from official.core import config as config_lib
from official.core import io
from official.modeling import pretrained
from official.training import trainer
from official.training import trainer_test

EPOCHS, STEPS_PER_EPOCH = 4, 4


class Killed(Exception):
  pass


def _config(data_dir, **overrides):
  return trainer_test.tiny_config(data_dir, **{
      "objective.name": "softmax", "train.epochs": EPOCHS, "train.learning_rate": 1.0,
      "train.select_best_epoch": True, "train.deterministic": True,
      "train.checkpoint_every_steps": 0, **overrides})


def _kill_at(prefix):
  def log(line):
    if line.strip().startswith(prefix):
      raise Killed(line)
  return log


class EarlyStoppingTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
    cls.data_dir = os.path.join(cls.root, "tfds")
    cls.model_dir = os.path.join(cls.root, "run")
    cls.metrics = trainer.train(_config(cls.data_dir), cls.model_dir, log=lambda line: None)
    cls.images = tf.random.stateless_normal([8, 32, 32, 3], seed=[3, 4])

  def _outputs_of_export(self, model_dir):
    model = pretrained.load(os.path.join(model_dir, "export", "saved_model"))
    return model(self.images)["outputs"].numpy()

  def _ema_outputs_at(self, step):
    config = config_lib.resolve(_config(self.data_dir))
    ema = trainer.build_model(config, losses.get_objective("softmax"))
    path = os.path.join(self.model_dir, "checkpoints", f"ckpt-{step}")
    tf.train.Checkpoint(ema_model=ema).restore(path).expect_partial()
    return ema(self.images, training=False)["outputs"].numpy()

  def test_selected_epoch_is_the_first_argmax_of_the_recorded_curve(self):
    saved = io.read_json(os.path.join(self.model_dir, "metrics.json"))
    self.assertEqual(saved, self.metrics)
    curve = {int(e): v for e, v in saved["top1_curve"]}
    self.assertEqual(sorted(curve), list(range(1, EPOCHS + 1)))
    best = max(curve.values())
    self.assertEqual(saved["selected_epoch"], min(e for e, v in curve.items() if v == best))
    self.assertEqual(saved["top1"], curve[saved["selected_epoch"]])
    self.assertEqual(saved["steps"], EPOCHS * STEPS_PER_EPOCH)  # trained to the end

  def test_export_holds_the_selected_epochs_ema_weights(self):
    selected = self.metrics["selected_epoch"]
    exported = self._outputs_of_export(self.model_dir)
    self.assertAllClose(exported, self._ema_outputs_at(selected * STEPS_PER_EPOCH), atol=1e-5)
    for epoch in range(1, EPOCHS + 1):  # and no other epoch's
      if epoch != selected:
        self.assertGreater(np.max(np.abs(
            exported - self._ema_outputs_at(epoch * STEPS_PER_EPOCH))), 1e-4)

  def test_killed_runs_resume_to_the_same_selection(self):
    # Killed after epoch 2's evaluation, which its epoch-end checkpoint precedes; and in epoch
    # 3 after a periodic checkpoint that holds the best weights so far.
    for name, prefix, overrides in (("after_eval", "epoch 2/", {}),
                                    ("mid_epoch", "step 10/",
                                     {"train.checkpoint_every_steps": 2})):
      model_dir = os.path.join(self.root, name)
      config = _config(self.data_dir, **overrides)
      with self.assertRaises(Killed):
        trainer.train(config, model_dir, log=_kill_at(prefix))
      lines = []
      resumed = trainer.train(config, model_dir, log=lines.append)
      self.assertIn("resuming at step", lines[0])
      self.assertEqual(resumed["top1_curve"], self.metrics["top1_curve"])
      self.assertEqual(resumed["selected_epoch"], self.metrics["selected_epoch"])
      self.assertAllClose(self._outputs_of_export(model_dir),
                          self._outputs_of_export(self.model_dir), atol=1e-6)

  def test_stop_after_epochs_ends_inside_the_schedule(self):
    model_dir = os.path.join(self.root, "stopped")
    metrics = trainer.train(_config(self.data_dir, **{"train.stop_after_epochs": 2}),
                            model_dir, log=lambda line: None)
    self.assertEqual(metrics["steps"], 2 * STEPS_PER_EPOCH)
    # The same schedule as the full run up to epoch 2: the same curve there.
    self.assertEqual(metrics["top1_curve"],
                     [[e, v] for e, v in self.metrics["top1_curve"] if e <= 2])
    stopped = config_lib.read_run_config(model_dir)
    self.assertEqual((stopped.train.epochs, stopped.train.stop_after_epochs), (EPOCHS, 2))

  def test_selection_refuses_to_resume_with_another_evaluation_cadence(self):
    with self.assertRaisesRegex(ValueError, r"train.eval_every_epochs: 1 -> 2"):
      trainer.check_resumable(
          config_lib.resolve(_config(self.data_dir, **{"train.eval_every_epochs": 2})),
          self.model_dir)
    # Without selection the cadence is a run-only setting.
    plain = config_lib.resolve(_config(
        self.data_dir, **{"train.eval_every_epochs": 2, "train.select_best_epoch": False}))
    with self.assertRaisesRegex(ValueError, r"\(train\.select_best_epoch: True -> False\)"):
      trainer.check_resumable(plain, self.model_dir)


if __name__ == "__main__":
  tf.test.main()
