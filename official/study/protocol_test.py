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


if __name__ == "__main__":
  absltest.main()
