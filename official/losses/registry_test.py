"""Tests for the objective registry: names, released defaults, checks, Objective parts."""

import inspect
import json
import os
import warnings

from absl.testing import parameterized
import keras
import numpy as np
import tensorflow as tf

from official import losses


def perturbed_hparams(name):
  """Non-default, valid hyperparameters: every number halved, every switch flipped."""
  return {k: (not v) if isinstance(v, bool) else v * 0.5
          for k, v in losses.DEFAULT_HPARAMS[name].items()}


def _named():
  return [(f"_{name}", name) for name in losses.NAMES]


class RegistryTest(tf.test.TestCase, parameterized.TestCase):

  def test_names_and_released_defaults(self):
    self.assertEqual(losses.NAMES, (
        "softmax", "label_smoothing", "sigmoid", "extra_final_layer_l2", "dropout",
        "logit_penalty", "logit_normalization", "cosine_softmax", "squared_error"))
    released = {  # docs/protocol.md §1 / released LOSS_HYPERPARAMETERS
        "label_smoothing": {"alpha": 0.1},
        "extra_final_layer_l2": {"lambda_": 8e-4},
        "dropout": {"keep_prob": 0.7},
        "logit_penalty": {"beta": 6e-4},
        "logit_normalization": {"tau": 0.04},
        "cosine_softmax": {"tau": 0.05},
        "squared_error": {"kappa": 9.0, "m": 60.0, "loss_scale": 10.0},
    }
    for name in losses.NAMES:
      numbers = {k: v for k, v in losses.DEFAULT_HPARAMS[name].items()
                 if not isinstance(v, bool)}
      self.assertEqual(numbers, released.get(name, {}), msg=name)
    self.assertEqual(losses.DEFAULT_HPARAMS["cosine_softmax"]["normalize_features"], True)
    self.assertEqual(losses.DEFAULT_HPARAMS["cosine_softmax"]["scale_loss_by_tau"], False)

  @parameterized.named_parameters(_named())
  def test_constructor_defaults_are_the_one_table(self, name):
    # Every keyword default of the loss class (and of the head layers that take one) is the
    # entry of hyperparameters.RELEASED_DEFAULTS, so a default is written in one place.
    table = losses.hyperparameters.RELEASED_DEFAULTS[name]
    self.assertEqual(losses.DEFAULT_HPARAMS[name], table)
    parameters = inspect.signature(type(losses.get_objective(name).loss).__init__).parameters
    self.assertEqual({k: parameters[k].default for k in table}, table)
    self.assertEqual(type(losses.get_objective(name).loss)().get_config(),
                     losses.get_objective(name).loss.get_config())

  def test_head_layer_defaults_are_the_one_table(self):
    table = losses.hyperparameters.RELEASED_DEFAULTS
    self.assertEqual(losses.FinalLayerL2().lambda_, table["extra_final_layer_l2"]["lambda_"])
    self.assertEqual(losses.TemperatureScaling().tau, table["cosine_softmax"]["tau"])
    self.assertEqual(losses.LogitNormalization().tau, table["logit_normalization"]["tau"])
    self.assertEqual(losses.CosineSoftmaxHead(3).normalize_features,
                     table["cosine_softmax"]["normalize_features"])

  @parameterized.parameters("dropout", "extra_final_layer_l2")
  def test_get_warns_when_the_objective_lives_in_the_model(self, name):
    with self.assertWarnsRegex(UserWarning, f"losses.get\\('{name}'\\) is softmax "
                               "cross-entropy alone: .*get_objective"):
      loss = losses.get(name)
    # What the warning says: alone, the loss value is softmax cross-entropy.
    z = np.array([[2.0, -1.0, 0.5], [0.0, 0.3, -0.2]])
    self.assertAllClose(loss([2, 1], z), losses.get("softmax")([2, 1], z))
    with warnings.catch_warnings():
      warnings.simplefilter("error")
      losses.get_objective(name)  # the whole objective: no warning

  @parameterized.parameters(n for n in losses.NAMES
                            if n not in ("dropout", "extra_final_layer_l2"))
  def test_get_is_silent_for_objectives_in_the_loss(self, name):
    with warnings.catch_warnings():
      warnings.simplefilter("error")
      losses.get(name)

  @parameterized.named_parameters(_named())
  def test_get_uses_defaults_and_config_records_every_hparam(self, name):
    loss = losses.get(name)
    self.assertIsInstance(loss, keras.losses.Loss)
    config = loss.get_config()
    self.assertEqual({k: config[k] for k in losses.DEFAULT_HPARAMS[name]},
                     losses.DEFAULT_HPARAMS[name])
    self.assertEqual(loss.name, name)

  @parameterized.named_parameters(_named())
  def test_overrides_and_objective_config_round_trip(self, name):
    hp = perturbed_hparams(name)
    objective = losses.get_objective(name, **hp)
    self.assertEqual(objective.hparams, {**losses.DEFAULT_HPARAMS[name], **hp})
    config = json.loads(json.dumps(objective.get_config()))
    restored = losses.Objective.from_config(config)
    self.assertEqual(restored.name, name)
    self.assertEqual(restored.hparams, objective.hparams)
    self.assertEqual(restored.loss.get_config(), objective.loss.get_config())

  def test_mse_alias(self):
    objective = losses.get_objective("mse", kappa=2)
    self.assertEqual(objective.name, "squared_error")
    self.assertEqual(objective.hparams, {"kappa": 2.0, "m": 60.0, "loss_scale": 10.0})
    self.assertIsInstance(losses.get("mse"), losses.SquaredError)
    self.assertAllClose(losses.get("mse")([1], [[0.0, 60.0]]), 0.0)
    self.assertAllClose(losses.get("mse")([0], [[1.0, 2.0]]), 10.0 * (9.0 * 59.0 ** 2 + 4.0))

  def test_integer_hparams_become_floats(self):
    objective = losses.get_objective("squared_error", kappa=np.int64(1), m=1, loss_scale=1)
    self.assertEqual(objective.hparams, {"kappa": 1.0, "m": 1.0, "loss_scale": 1.0})
    self.assertIsInstance(objective.hparams["kappa"], float)
    # kappa = M = 1 (and scale 1) is the plain squared error against the one-hot target.
    self.assertAllClose(objective.loss([2], [[0.5, -1.0, 3.0]]), 0.25 + 1.0 + 4.0)


class BadInputTest(tf.test.TestCase, parameterized.TestCase):

  def _assert_one_line(self, regex, fn, *args, **kwargs):
    with self.assertRaisesRegex(ValueError, regex) as raised:
      fn(*args, **kwargs)
    self.assertNotIn("\n", str(raised.exception))

  def test_unknown_name_lists_valid_names(self):
    self._assert_one_line(r"objective='softmx' is unknown; valid names: softmax, .*, mse",
                          losses.get, "softmx")
    self._assert_one_line(r"objective=None is unknown", losses.get_objective, None)

  def test_unknown_hyperparameter(self):
    self._assert_one_line(r"tau: not a hyperparameter of objective 'softmax'; valid: none",
                          losses.get, "softmax", tau=1.0)
    self._assert_one_line(r"temperature: .*'cosine_softmax'; valid: tau, normalize_features",
                          losses.get_objective, "cosine_softmax", temperature=1.0)

  @parameterized.parameters(
      ("label_smoothing", "alpha", 1.0, r"alpha=1.0 is outside \[0, 1\)"),
      ("label_smoothing", "alpha", -0.1, r"alpha=-0.1 is outside \[0, 1\)"),
      ("logit_normalization", "tau", 0.0, r"tau=0.0 is outside \(0, inf\)"),
      ("cosine_softmax", "tau", -1.0, r"tau=-1.0 is outside \(0, inf\)"),
      ("dropout", "keep_prob", 0.0, r"keep_prob=0.0 is outside \(0, 1\]"),
      ("dropout", "keep_prob", 1.5, r"keep_prob=1.5 is outside \(0, 1\]"),
      ("logit_penalty", "beta", -1e-4, r"beta=-0.0001 is outside \[0, inf\)"),
      ("extra_final_layer_l2", "lambda_", -1.0, r"lambda_=-1.0 is outside \[0, inf\)"),
      ("squared_error", "kappa", 0.0, r"kappa=0.0 is outside \(0, inf\)"),
      ("squared_error", "loss_scale", -2.0, r"loss_scale=-2.0 is outside \(0, inf\)"),
      ("squared_error", "m", float("nan"), r"m=nan is not finite"),
      ("label_smoothing", "alpha", "0.1", r"alpha='0.1' is not a real number"),
      ("cosine_softmax", "normalize_features", 1, r"normalize_features=1 is not a bool"),
  )
  def test_out_of_range_hyperparameter(self, name, key, value, regex):
    self._assert_one_line(regex, losses.get, name, **{key: value})
    # The loss classes check the same ranges when built directly.
    loss_class = type(losses.get(name))
    self._assert_one_line(f"{key}=", loss_class, **{key: value})

  def test_boundary_values_are_accepted(self):
    self.assertEqual(losses.get("label_smoothing", alpha=0.0).alpha, 0.0)
    self.assertEqual(losses.get("dropout", keep_prob=1.0).keep_prob, 1.0)
    self.assertEqual(losses.get("logit_penalty", beta=0.0).beta, 0.0)

  def test_layers_check_their_hyperparameters(self):
    self._assert_one_line(r"tau=0.0 is outside", losses.TemperatureScaling, tau=0)
    self._assert_one_line(r"tau=-1.0 is outside", losses.LogitNormalization, tau=-1)
    self._assert_one_line(r"lambda_=-1.0 is outside", losses.FinalLayerL2, -1)
    self._assert_one_line(r"normalize_features='no'", losses.CosineSoftmaxHead, 3,
                          normalize_features="no")


class ObjectiveModelTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(_named())
  def test_model_with_objective_parts_saves_and_loads(self, name):
    objective = losses.get_objective(name, **perturbed_hparams(name))
    features = keras.Input((6,))
    z = objective.head(4)(objective.penultimate()(features))
    model = keras.Model(features, {"final_layer": z, "outputs": objective.outputs()(z)})
    x = np.random.default_rng(0).standard_normal((3, 6)).astype(np.float32)
    path = os.path.join(self.create_tempdir().full_path, "model.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    expected, got = model(x), restored(x)
    for key in ("final_layer", "outputs"):
      self.assertAllClose(got[key], expected[key], atol=1e-6)
    self.assertLen(restored.losses, len(model.losses))
    labels = np.array([0, 3, 1])
    self.assertAllClose(objective.loss(labels, got["final_layer"]),
                        objective.loss(labels, expected["final_layer"]))

  @parameterized.named_parameters(_named())
  def test_outputs_rank_classes_like_the_head_output(self, name):
    # Every output transform rescales each row of z by a positive factor.
    objective = losses.get_objective(name, **perturbed_hparams(name))
    z = np.random.default_rng(2).standard_normal((50, 7)).astype(np.float32)
    outputs = keras.ops.convert_to_numpy(objective.outputs()(z))
    self.assertAllEqual(np.argmax(outputs, -1), np.argmax(z, -1))
    self.assertTrue(np.all(outputs * z >= 0))

  @parameterized.parameters("logit_normalization", "cosine_softmax")
  def test_tau_losses_are_softmax_cross_entropy_of_outputs(self, name):
    objective = losses.get_objective(name)
    z = np.random.default_rng(3).standard_normal((5, 4)).astype(np.float32)
    labels = np.array([0, 1, 2, 3, 0])
    softmax = losses.get("softmax")
    self.assertAllClose(objective.loss(labels, z), softmax(labels, objective.outputs()(z)),
                        rtol=1e-6)
    # tau < 0.05 with the paper's loss scaling multiplies the loss by tau; tau >= 0.05 does not.
    for tau, factor in ((0.02, 0.02), (0.05, 1.0), (0.08, 1.0)):
      scaled = losses.get_objective(name, tau=tau, scale_loss_by_tau=True)
      plain = losses.get_objective(name, tau=tau)
      self.assertAllClose(scaled.loss(labels, z), factor * plain.loss(labels, z), rtol=1e-6)


if __name__ == "__main__":
  tf.test.main()
