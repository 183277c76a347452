"""The study presets follow the paper's protocol (docs/protocol.md §7): the temperature sweep
scales the loss by tau below 0.05 (paper §3.4, footnote 1) and the paper-scale cosine softmax
runs use the released head."""

from absl.testing import absltest
import numpy as np

from official import losses
from official.core import config
from official.study import steps

TEMPERATURES = (0.01, 0.04, 0.05, 0.08)


def _resolved(study, run):
  return config.resolve(steps.pretrain_config(study, run))


def _loss(hparams, logits, labels):
  return float(losses.get_objective("cosine_softmax", **hparams).loss(labels, logits))


class TemperatureSweepTest(absltest.TestCase):

  def test_sweep_scales_the_loss_below_0_05_only(self):
    study = config.override(config.get_study("demo"), {"temperature_sweep": TEMPERATURES})
    sweep = [r for r in study.runs() if r.hparams]
    self.assertEqual([r.run_id for r in sweep],
                     [f"cosine_softmax_tau{t:g}/seed0" for t in TEMPERATURES])
    logits = np.array([[0.3, 0.2, 0.1], [0.1, 0.2, 0.15]], np.float32)
    labels = np.array([0, 1])
    for run in sweep:
      hparams = _resolved(study, run).objective.hparams
      tau = hparams["tau"]
      unscaled = _loss({**hparams, "scale_loss_by_tau": False}, logits, labels)
      # The loss the run trains with, against softmax cross-entropy of z / tau by hand.
      by_hand = float(np.mean([np.log(np.exp(z / tau).sum()) - z[y] / tau
                               for z, y in zip(logits.astype(np.float64), labels)]))
      self.assertAlmostEqual(unscaled, by_hand, places=4)
      expected = tau * by_hand if tau < 0.05 else by_hand
      self.assertAlmostEqual(_loss(hparams, logits, labels), expected, places=4, msg=run)
    # The objectives' own runs are not part of the sweep and keep the unscaled loss.
    plain = _resolved(study, config.Run("cosine_softmax", 0)).objective.hparams
    self.assertFalse(plain["scale_loss_by_tau"])

  def test_the_switch_turns_the_scaling_off(self):
    study = config.override(config.get_study("demo"),
                            {"temperature_sweep": (0.01,), "temperature_scale_loss": "false"})
    (run,) = [r for r in study.runs() if r.hparams]
    self.assertEqual(run.variant, "cosine_softmax_tau0.01")
    self.assertFalse(_resolved(study, run).objective.hparams["scale_loss_by_tau"])


class CosineHeadTest(absltest.TestCase):

  def test_paper_preset_uses_the_released_head(self):
    study = config.override(config.get_study("paper"), {"temperature_sweep": (0.02,)})
    cosine = [r for r in study.runs() if r.objective == "cosine_softmax"]
    self.assertLen(cosine, len(study.seeds) + len(study.temperature_seeds))
    for run in cosine:
      self.assertFalse(_resolved(study, run).objective.hparams["normalize_features"], run)
    # The demo keeps paper eq. 7 (features normalised too), the losses' default.
    demo = config.get_study("demo")
    self.assertTrue(
        _resolved(demo, config.Run("cosine_softmax", 0)).objective.hparams["normalize_features"])


class AnalysisTest(absltest.TestCase):

  def test_paper_preset_cka_and_relearned_head(self):
    paper = config.get_study("paper")
    # Minibatches of 1,500, 10 passes over the 50,000 ImageNet validation images (§3.3).
    self.assertEqual((paper.analysis_split, paper.cka_examples, paper.cka_batch_size,
                      paper.cka_passes), ("test", 50_000, 1500, 10))
    self.assertEqual(steps.cka_settings(paper)["passes"], 10)
    # Figure 6: 10 per class of the 1,000 classes held out -> 40,000 / 10,000.
    self.assertEqual((paper.analysis_examples, paper.relearn_test_per_class), (50_000, 10))
    self.assertEqual(config.get_study("demo").cka_passes, 1)
    with self.assertRaisesRegex(ValueError, "study.cka_passes=0 must be a positive integer"):
      config.override(paper, {"cka_passes": 0})


if __name__ == "__main__":
  absltest.main()
