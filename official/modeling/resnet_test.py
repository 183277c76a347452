"""Tests for the ResNet v1 of docs/protocol.md §2: sizes, endpoints, padding, init, batch norm."""

import keras
import numpy as np
import tensorflow as tf

from official import losses
from official.modeling import resnet

RESNET50_BLOCK_SHAPES_64 = (
    [(16, 16, 256)] * 3 + [(8, 8, 512)] * 4 + [(4, 4, 1024)] * 6 + [(2, 2, 2048)] * 3)


def _small_resnet18(num_classes=10, objective="softmax", **kwargs):
  config = resnet.ResNetConfig(depth=18, width_multiplier=0.25, small_input_stem=True,
                               **kwargs)
  return resnet.build_model(config, num_classes, losses.get_objective(objective),
                            input_shape=(32, 32, 3))


def _images(shape, seed=0):
  return np.random.RandomState(seed).standard_normal(shape).astype(np.float32)


def _count(variables):
  return sum(int(np.prod(v.shape)) for v in variables)


class ResNet50Test(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    # Parameter counts do not depend on the input size: 64x64 keeps the forward pass cheap.
    cls.model = resnet.build_model(resnet.ResNetConfig(), 1000,
                                   losses.get_objective("softmax"), input_shape=(64, 64, 3))

  def test_parameter_count_matches_keras_applications(self):
    # keras.applications.ResNet50 is the same network except that its convolutions carry a
    # bias (use_bias=True); the released model, like this one, has none: every convolution
    # is followed by batch norm, whose beta makes a bias redundant. So the counts differ by
    # exactly the number of convolution output channels, 26,560.
    reference = keras.applications.ResNet50(weights=None, classes=1000)
    conv_bias = sum(int(layer.bias.shape[0]) for layer in reference.layers
                    if isinstance(layer, keras.layers.Conv2D))
    self.assertEqual(reference.count_params(), 25_636_712)
    self.assertEqual(conv_bias, 26_560)
    self.assertEqual(_count(self.model.trainable_weights),
                     _count(reference.trainable_weights) - conv_bias)
    self.assertEqual(_count(self.model.non_trainable_weights),
                     _count(reference.non_trainable_weights))
    self.assertEqual(self.model.count_params(), 25_610_152)
    # Trainable parameters without conv biases: torchvision's resnet50 count.
    self.assertEqual(_count(self.model.trainable_weights), 25_557_032)

    def kernel_shapes(model):
      return sorted(tuple(layer.kernel.shape) for layer in model.layers
                    if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)))

    self.assertEqual(kernel_shapes(self.model), kernel_shapes(reference))

  def test_stride_on_3x3_and_projection_in_first_block_of_each_group(self):
    for group in (2, 3, 4):
      prefix = f"group{group}_block1"
      self.assertEqual(self.model.get_layer(prefix + "_conv1").strides, (1, 1))
      self.assertEqual(self.model.get_layer(prefix + "_conv2").strides, (2, 2))
      self.assertEqual(self.model.get_layer(prefix + "_conv2").kernel.shape[:2], (3, 3))
      self.assertEqual(self.model.get_layer(prefix + "_proj_conv").strides, (2, 2))
    names = {layer.name for layer in self.model.layers}
    projections = sorted(n for n in names if n.endswith("_proj_conv"))
    self.assertEqual(projections, [f"group{g}_block1_proj_conv" for g in (1, 2, 3, 4)])

  def test_endpoints_at_64x64(self):
    model = self.model
    names = resnet.endpoint_names(model)
    self.assertEqual(names, [f"block{i}" for i in range(1, 17)] +
                     ["final_avg_pool", "final_layer", "outputs"])
    out = model(_images((2, 64, 64, 3)), training=False)
    self.assertEqual(sorted(out), sorted(names))
    for i, shape in enumerate(RESNET50_BLOCK_SHAPES_64):
      self.assertEqual(tuple(out[f"block{i + 1}"].shape), (2,) + shape)
    self.assertEqual(tuple(out["final_avg_pool"].shape), (2, 2048))
    self.assertEqual(tuple(out["final_layer"].shape), (2, 1000))
    # final_avg_pool is the spatial mean of the last block (global average pool).
    self.assertAllClose(out["final_avg_pool"], np.mean(out["block16"], axis=(1, 2)),
                        atol=1e-5)
    # Identity blocks start as their shortcut (gamma of the last batch norm = 0).
    for i in (2, 3, 5, 6, 7, 9, 16):
      self.assertAllEqual(out[f"block{i}"], out[f"block{i - 1}"])


class BasicBlockTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.models = {depth: resnet.build_model(resnet.ResNetConfig(depth=depth), 1000,
                                            losses.get_objective("softmax"))
                  for depth in (18, 34)}

  def test_parameter_counts(self):
    # torchvision's resnet18/resnet34 trainable counts (11,689,512 / 21,797,672: no conv bias,
    # BN gamma and beta) plus the released model's projection shortcut in the first block of
    # group 1, which torchvision omits there (64 -> 64 channels, stride 1): a 1x1x64x64
    # kernel and a batch norm's gamma and beta, 4,096 + 128 = 4,224 parameters.
    for depth, expected in ((18, 11_689_512 + 4_224), (34, 21_797_672 + 4_224)):
      model = self.models[depth]
      self.assertEqual(_count(model.trainable_weights), expected)
      self.assertLen([n for n in resnet.endpoint_names(model) if n.startswith("block")],
                     sum(resnet.ResNetConfig(depth=depth).blocks_per_group))

  def test_endpoint_shapes_at_224(self):
    # 7x7/2 stem with fixed padding: 224 -> 112; 3x3/2 max-pool: -> 56; groups: 56, 28, 14, 7.
    outputs = self.models[18].output
    self.assertEqual(tuple(outputs["block1"].shape), (None, 56, 56, 64))
    self.assertEqual(tuple(outputs["block3"].shape), (None, 28, 28, 128))
    self.assertEqual(tuple(outputs["block8"].shape), (None, 7, 7, 512))
    self.assertEqual(tuple(outputs["final_avg_pool"].shape), (None, 512))
    self.assertEqual(tuple(outputs["final_layer"].shape), (None, 1000))

  def test_conv_kernel_initializer_is_fan_in_variance_scaling(self):
    model = self.models[18]
    kernel = model.get_layer("group4_block2_conv1").kernel.numpy()  # 3x3x512x512
    fan_in = 3 * 3 * 512
    self.assertAllClose(np.std(kernel), np.sqrt(1.0 / fan_in), rtol=0.02)
    # Truncated at two standard deviations of the untruncated normal.
    self.assertLessEqual(np.max(np.abs(kernel)), 2.0 * np.sqrt(1.0 / fan_in) / 0.8796 + 1e-6)
    head = model.get_layer("final_layer").kernel.numpy()
    self.assertAllClose(np.std(head), 0.01, rtol=0.02)


class SmallResNetTest(tf.test.TestCase):

  def test_resnet18_small_stem_endpoints_at_32x32(self):
    model = _small_resnet18()
    self.assertEqual(resnet.endpoint_names(model),
                     [f"block{i}" for i in range(1, 9)] +
                     ["final_avg_pool", "final_layer", "outputs"])
    self.assertNotIn("stem_pool", {layer.name for layer in model.layers})
    self.assertEqual(model.get_layer("stem_conv").kernel.shape, (3, 3, 3, 16))
    self.assertEqual(model.get_layer("stem_conv").strides, (1, 1))
    out = model(_images((3, 32, 32, 3)), training=False)
    expected = [(32, 32, 16)] * 2 + [(16, 16, 32)] * 2 + [(8, 8, 64)] * 2 + [(4, 4, 128)] * 2
    for i, shape in enumerate(expected):
      self.assertEqual(tuple(out[f"block{i + 1}"].shape), (3,) + shape)
    self.assertEqual(tuple(out["final_avg_pool"].shape), (3, 128))
    self.assertEqual(tuple(out["final_layer"].shape), (3, 10))
    self.assertEqual(resnet.ResNetConfig(depth=18, width_multiplier=0.25).feature_dim, 128)

  def test_block_counts_override(self):
    model = _small_resnet18(block_counts=(1, 1, 1, 1))
    blocks = [n for n in resnet.endpoint_names(model) if n.startswith("block")]
    self.assertEqual(blocks, ["block1", "block2", "block3", "block4"])
    self.assertEqual(tuple(model.output["block4"].shape), (None, 4, 4, 128))

  def test_strided_small_stem_halves_every_map_with_fixed_padding(self):
    one = _small_resnet18(block_counts=(1, 1, 1, 1))
    two = _small_resnet18(block_counts=(1, 1, 1, 1), small_input_stem_stride=2)
    self.assertEqual(_count(one.weights), _count(two.weights))
    self.assertEqual(two.get_layer("stem_conv").strides, (2, 2))
    for i, shape in enumerate([(16, 16, 16), (8, 8, 32), (4, 4, 64), (2, 2, 128)]):
      self.assertEqual(tuple(two.output[f"block{i + 1}"].shape), (None,) + shape)
    # The 3x3/2 stem pads 1 on each side (fixed padding: "same" would pad 0 before and 1
    # after on this even-sized input).
    stem = keras.Model(two.input, two.get_layer("stem_conv").output)
    x = _images((1, 32, 32, 3), seed=2)
    kernel = two.get_layer("stem_conv").kernel.numpy()
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    expected = np.stack([np.stack([
        np.einsum("hwc,hwco->o", padded[0, 2 * i:2 * i + 3, 2 * j:2 * j + 3, :], kernel)
        for j in range(16)]) for i in range(16)])[None]
    self.assertAllClose(stem(x), expected, atol=1e-4)

  def test_fixed_padding_of_strided_stem(self):
    # The 7x7/2 stem pads 3 on each side (fixed padding); "same" padding would pad 2 before
    # and 3 after on this even-sized input and give different numbers.
    model = resnet.build_model(resnet.ResNetConfig(depth=18, width_multiplier=0.125), 3,
                               losses.get_objective("softmax"), input_shape=(10, 10, 3))
    stem = keras.Model(model.input, model.get_layer("stem_conv").output)
    x = _images((1, 10, 10, 3), seed=1)
    kernel = model.get_layer("stem_conv").kernel.numpy()
    padded = np.pad(x, ((0, 0), (3, 3), (3, 3), (0, 0)))
    expected = np.zeros((1, 5, 5, kernel.shape[-1]), np.float32)
    for i in range(5):
      for j in range(5):
        patch = padded[0, 2 * i:2 * i + 7, 2 * j:2 * j + 7, :]
        expected[0, i, j] = np.einsum("hwc,hwco->o", patch, kernel)
    self.assertAllClose(stem(x), expected, atol=1e-4)
    self.assertEqual(tuple(model.output["block1"].shape), (None, 3, 3, 8))

  def test_zero_gamma_makes_identity_blocks_start_as_shortcut(self):
    model = _small_resnet18()
    for layer in model.layers:
      if isinstance(layer, keras.layers.BatchNormalization):
        last = layer.name.endswith("_bn2")  # last batch norm of a basic block
        self.assertAllEqual(layer.gamma.numpy(), np.full(layer.gamma.shape, 0.0 if last
                                                         else 1.0), msg=layer.name)
    x = _images((4, 32, 32, 3), seed=2)
    for training in (False, True):
      out = model(x, training=training)
      for i in (2, 4, 6, 8):
        # relu(0 + shortcut) with a shortcut that is already a ReLU output.
        self.assertAllEqual(out[f"block{i}"], out[f"block{i - 1}"])
      self.assertGreater(float(np.mean(out["block1"] > 0)), 0.1)

  def test_batch_norm_momentum_and_epsilon(self):
    model = _small_resnet18()
    bn_layers = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    self.assertLen(bn_layers, 1 + 8 * 2 + 4)  # stem, 2 per block, 1 projection per group
    for layer in bn_layers:
      self.assertEqual(layer.momentum, 0.9)
      self.assertEqual(layer.epsilon, 1e-5)
    stem_conv = keras.Model(model.input, model.get_layer("stem_conv").output)
    x = _images((4, 32, 32, 3), seed=3)
    conv = stem_conv(x).numpy()
    model(x, training=True)
    bn = model.get_layer("stem_bn")
    # moving = 0.9 * moving + 0.1 * batch statistic, from mean 0 and variance 1.
    self.assertAllClose(bn.moving_mean, 0.1 * conv.mean(axis=(0, 1, 2)), atol=1e-5)
    self.assertAllClose(bn.moving_variance, 0.9 + 0.1 * conv.var(axis=(0, 1, 2)),
                        rtol=1e-4)
    # Inference: (x - mean) / sqrt(var + 1e-5) * gamma + beta, with gamma 1 and beta 0.
    bn_out = keras.Model(model.input, model.get_layer("stem_bn").output)(x, training=False)
    expected = (conv - bn.moving_mean.numpy()) / np.sqrt(bn.moving_variance.numpy() + 1e-5)
    self.assertAllClose(bn_out, expected, atol=1e-4)

  def test_dropout_objective_changes_outputs_only_in_training(self):
    x = _images((8, 32, 32, 3), seed=4)
    model = _small_resnet18(objective="dropout", block_counts=(1, 1, 1, 1))
    self.assertAlmostEqual(model.get_layer("penultimate_dropout").rate, 0.3)
    keras.utils.set_random_seed(0)
    train_a, train_b = model(x, training=True), model(x, training=True)
    self.assertAllEqual(train_a["final_avg_pool"], train_b["final_avg_pool"])
    self.assertNotAllClose(train_a["final_layer"], train_b["final_layer"])
    eval_a, eval_b = model(x, training=False), model(x, training=False)
    self.assertAllEqual(eval_a["final_layer"], eval_b["final_layer"])
    # In inference the head sees final_avg_pool unchanged: z = x W + b.
    head = model.get_layer("final_layer")
    self.assertAllClose(eval_a["final_layer"],
                        eval_a["final_avg_pool"].numpy() @ head.kernel.numpy() +
                        head.bias.numpy(), atol=1e-6)

    softmax_model = _small_resnet18(objective="softmax", block_counts=(1, 1, 1, 1))
    first, second = softmax_model(x, training=True), softmax_model(x, training=True)
    self.assertAllEqual(first["final_layer"], second["final_layer"])

  def test_objective_output_transform_is_the_outputs_endpoint(self):
    model = _small_resnet18(objective="logit_normalization")
    out = model(_images((3, 32, 32, 3), seed=5), training=False)
    z = out["final_layer"].numpy()
    tau = losses.DEFAULT_HPARAMS["logit_normalization"]["tau"]
    self.assertAllClose(out["outputs"], z / (tau * np.linalg.norm(z, axis=1, keepdims=True)),
                        rtol=1e-4)


class ConfigTest(tf.test.TestCase):

  def test_dict_round_trip(self):
    config = resnet.ResNetConfig(depth=18, width_multiplier=0.5, small_input_stem=True,
                                 block_counts=[1, 1, 1, 1])
    self.assertEqual(config.block_counts, (1, 1, 1, 1))
    as_dict = config.to_dict()
    self.assertEqual(as_dict["block_counts"], [1, 1, 1, 1])
    restored = resnet.ResNetConfig.from_dict({**as_dict, "num_classes": 10, "image_size": 32})
    self.assertEqual(restored, config)
    self.assertEqual(sum(restored.blocks_per_group), 4)
    self.assertEqual(sum(resnet.ResNetConfig().blocks_per_group), 16)
    self.assertEqual(resnet.ResNetConfig().feature_dim, 2048)

  def test_bad_configs_give_one_line_errors(self):
    bad = (dict(depth=20), dict(width_multiplier=0.0), dict(block_counts=(1, 1, 1)),
           dict(block_counts=(1, 0, 1, 1)), dict(bn_momentum=1.0), dict(bn_epsilon=0.0),
           dict(small_input_stem_stride=3))
    for kwargs in bad:
      with self.assertRaises(ValueError) as context:
        resnet.ResNetConfig(**kwargs)
      message = str(context.exception)
      self.assertNotIn("\n", message)
      self.assertIn(next(iter(kwargs)), message)
    with self.assertRaisesRegex(ValueError, "num_classes"):
      resnet.build_model(resnet.ResNetConfig(depth=18), 0, losses.get_objective("softmax"))
    with self.assertRaisesRegex(ValueError, "input_shape"):
      resnet.build_model(resnet.ResNetConfig(depth=18), 2, losses.get_objective("softmax"),
                         input_shape=(32, 32))

  def test_endpoint_names_orders_the_network(self):
    self.assertEqual(
        resnet.sort_endpoint_names(["outputs", "block10", "final_layer", "block2",
                                    "final_avg_pool", "block1"]),
        ["block1", "block2", "block10", "final_avg_pool", "final_layer", "outputs"])
    inputs = keras.Input((2,))
    plain = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    with self.assertRaisesRegex(ValueError, "dict of endpoints"):
      resnet.endpoint_names(plain)


if __name__ == "__main__":
  tf.test.main()
