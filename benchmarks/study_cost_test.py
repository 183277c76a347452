"""Tests for benchmarks/study_cost: the multiply-add counter against hand counts, the cost
arithmetic against the presets."""

import math

from absl.testing import absltest
import keras

from benchmarks import study_cost
from official.core import config as config_lib


class MultiplyAddsTest(absltest.TestCase):

  def test_small_conv_net_by_hand(self):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)  # 8*8 positions x 3*3*3*4
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same")(x)  # 4*4 x 3*3*4*6
    x = keras.layers.Conv2D(5, 1, padding="valid")(x)  # 4*4 x 1*1*6*5
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(7)(x)  # 5*7
    model = keras.Model(inputs, outputs)
    expected = 8 * 8 * 27 * 4 + 4 * 4 * 36 * 6 + 4 * 4 * 6 * 5 + 5 * 7
    self.assertEqual(study_cost.multiply_adds(model), expected)

  def test_nested_model_is_counted(self):
    inner_in = keras.Input((4, 4, 2))
    inner = keras.Model(inner_in, keras.layers.Conv2D(3, 3, padding="same")(inner_in))
    outer_in = keras.Input((4, 4, 2))
    outer = keras.Model(outer_in, keras.layers.Dense(2)(inner(outer_in)))
    self.assertEqual(study_cost.multiply_adds(outer), 4 * 4 * 18 * 3 + 3 * 2)

  def test_resnets(self):
    # ResNet-50 v1.5 at 224 px: the commonly cited 4.1 G multiply-adds.
    resnet50 = study_cost.network_multiply_adds(
        config_lib.get_experiment("imagenet_resnet50"), 1000)
    self.assertBetween(resnet50, 4.05e9, 4.15e9)
    # ResNet-18 with a 3x3/1 stem at 32 px, by hand: stem 32*32*27*64, four groups of basic
    # blocks (3x3 convolutions; a 1x1 projection shortcut in each group's first block, as
    # official.modeling.resnet builds it), the 512 x 1000 head.
    expected = 32 * 32 * 27 * 64
    for side, width, previous in ((32, 64, 64), (16, 128, 64), (8, 256, 128), (4, 512, 256)):
      expected += side * side * (9 * (previous * width + 3 * width * width) + previous * width)
    expected += 512 * 1000
    small = study_cost.network_multiply_adds(
        config_lib.get_experiment("imagenet32_resnet18"), 1000)
    self.assertEqual(small, expected)
    # The 64 px variant's stride-2 stem puts block1 at 32x32 again: only the stem's input
    # differs, and a convolution's cost depends on its output size.
    self.assertEqual(study_cost.network_multiply_adds(
        config_lib.get_experiment("imagenet64_resnet18"), 1000), expected)


class CostTableTest(absltest.TestCase):

  def test_rows_follow_from_the_ratio(self):
    rows = {r["preset"]: r for r in study_cost.cost_table("a100")}
    paper, middle = rows["imagenet_resnet50"], rows["imagenet32_resnet18"]
    self.assertEqual(paper["ratio"], 1.0)
    self.assertEqual(paper["images_per_second"], 2375.0)
    experiment = config_lib.get_experiment("imagenet32_resnet18")
    images = (experiment.train.epochs * 1_281_167
              + math.ceil(experiment.train.epochs / experiment.train.eval_every_epochs)
              * 50_000 / 3)
    self.assertAlmostEqual(middle["run_hours"],
                           images / (2375.0 / middle["ratio"]) / 3600, places=9)
    self.assertEqual(middle["runs"], 9 * 3 + 8)
    self.assertAlmostEqual(middle["study_hours_8"], 5 * middle["run_hours"], places=9)
    self.assertEqual(paper["runs"], 9 * 8)
    # The middle scale is what its name promises: the study in about a day on one A100.
    self.assertLess(middle["study_hours_1"], 24.0)


if __name__ == "__main__":
  absltest.main()
