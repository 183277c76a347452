"""ResNet v1 with the named endpoints of the study (docs/protocol.md §2), in `keras.layers` only.

As in the released code, a group's first block alone has a projection shortcut (also in group 1,
where a basic block keeps 64 channels), and strided convolutions zero-pad by (k - 1) // 2 before
and k - 1 - (k - 1) // 2 after, then run "valid", so the padding does not depend on the input
size. The model's output is the dict of every endpoint, final_avg_pool taken before the
objective's penultimate transform (such as dropout).
"""

import dataclasses
import re
from typing import Any, Mapping, Sequence

import keras

# depth -> (block type, blocks per group) of the released `resnet_v1`.
DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
GROUP_FILTERS = (64, 128, 256, 512)
BOTTLENECK_EXPANSION = 4
STEM_FILTERS = 64
# The penultimate features (global average pool of the last block): what transfer reads.
PENULTIMATE = "final_avg_pool"
# The class endpoints: z (final_layer, paper notation) and the head's outputs; every other
# endpoint is a representation of the image.
CLASS_ENDPOINTS = ("final_layer", "outputs")
# Endpoints after the residual blocks, in network order.
FINAL_ENDPOINTS = (PENULTIMATE,) + CLASS_ENDPOINTS
_BLOCK_ENDPOINT = re.compile(r"^block(\d+)$")


@dataclasses.dataclass
class ResNetConfig:
  """Architecture of a ResNet v1: `depth` 18 or 34 (basic blocks), 50, 101 or 152 (bottleneck).

  `small_input_stem`: a 3x3 stem convolution of stride `small_input_stem_stride` without
  max-pool (for 32x32 images) instead of 7x7/2 + 3x3/2 max-pool. `block_counts`: blocks per
  group, overriding the depth's: (1, 1, 1, 1) with depth 18 is a ResNet-10.
  """
  depth: int = 50
  width_multiplier: float = 1.0
  small_input_stem: bool = False
  small_input_stem_stride: int = 1
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  block_counts: tuple[int, ...] | None = None

  def __post_init__(self):
    if self.depth not in DEPTHS:
      raise ValueError(f"ResNetConfig.depth={self.depth!r} is not supported; valid depths: "
                       f"{sorted(DEPTHS)}")
    if not self.width_multiplier > 0:
      raise ValueError(f"ResNetConfig.width_multiplier={self.width_multiplier!r} must be a "
                       "positive number")
    if self.small_input_stem_stride not in (1, 2):
      raise ValueError(f"ResNetConfig.small_input_stem_stride={self.small_input_stem_stride!r} "
                       "must be 1 or 2")
    if not 0.0 <= self.bn_momentum < 1.0:
      raise ValueError(f"ResNetConfig.bn_momentum={self.bn_momentum!r} must be in [0, 1)")
    if not self.bn_epsilon > 0:
      raise ValueError(f"ResNetConfig.bn_epsilon={self.bn_epsilon!r} must be positive")
    if self.block_counts is not None:
      counts = tuple(self.block_counts)
      if len(counts) != len(GROUP_FILTERS) or not all(
          isinstance(n, int) and n >= 1 for n in counts):
        raise ValueError(f"ResNetConfig.block_counts={self.block_counts!r} must be "
                         f"{len(GROUP_FILTERS)} positive integers, one per group, or None")
      self.block_counts = counts

  @property
  def block_type(self) -> str:
    """"basic" or "bottleneck"."""
    return DEPTHS[self.depth][0]

  @property
  def blocks_per_group(self) -> tuple[int, ...]:
    return self.block_counts or DEPTHS[self.depth][1]

  @property
  def feature_dim(self) -> int:
    """D, the width of `final_avg_pool` (2048 for ResNet-50, 512 for ResNet-18)."""
    expansion = BOTTLENECK_EXPANSION if self.block_type == "bottleneck" else 1
    return expansion * self.filters(GROUP_FILTERS[-1])

  def filters(self, base: int) -> int:
    """The number of filters of a convolution with `base` filters at width 1."""
    return max(1, int(round(base * self.width_multiplier)))

  def to_dict(self) -> dict[str, Any]:
    config = dataclasses.asdict(self)
    if config["block_counts"] is not None:
      config["block_counts"] = list(config["block_counts"])
    return config

  @classmethod
  def from_dict(cls, config: Mapping[str, Any]) -> "ResNetConfig":
    """Builds a config from the fields of `config`; other keys (num_classes, ...) are ignored."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in config.items() if k in names})


def _conv(x, filters: int, kernel_size: int, strides: int, name: str):
  """Convolution with the released "fixed" padding for strides > 1 (no bias)."""
  if strides > 1 and kernel_size > 1:
    pad_total = kernel_size - 1
    pad = (pad_total // 2, pad_total - pad_total // 2)
    x = keras.layers.ZeroPadding2D(padding=(pad, pad), name=name + "_pad")(x)
  # The released `tf.compat.v1.variance_scaling_initializer()`: LeCun truncated normal.
  initializer = keras.initializers.VarianceScaling(scale=1.0, mode="fan_in",
                                                   distribution="truncated_normal")
  return keras.layers.Conv2D(
      filters, kernel_size, strides=strides,
      padding="same" if strides == 1 else "valid", use_bias=False,
      kernel_initializer=initializer, name=name)(x)


def _batch_norm(x, config: ResNetConfig, name: str, zero_gamma: bool = False):
  # Biased batch variance in the moving variance, unlike the released TF1 (docs/protocol.md
  # §7.1 item 12).
  return keras.layers.BatchNormalization(
      momentum=config.bn_momentum, epsilon=config.bn_epsilon,
      gamma_initializer="zeros" if zero_gamma else "ones", name=name)(x)


def _residual_block(x, config: ResNetConfig, filters: int, strides: int,
                    projection: bool, prefix: str, endpoint: str):
  """One basic or bottleneck block; returns relu(residual(x) + shortcut(x))."""
  if config.block_type == "bottleneck":
    out_filters = BOTTLENECK_EXPANSION * filters
    convs = ((filters, 1, 1), (filters, 3, strides), (out_filters, 1, 1))
  else:
    out_filters = filters
    convs = ((filters, 3, strides), (filters, 3, 1))

  shortcut = x
  if projection:
    shortcut = _conv(x, out_filters, 1, strides, prefix + "_proj_conv")
    shortcut = _batch_norm(shortcut, config, prefix + "_proj_bn")

  last = len(convs) - 1
  for i, (n, k, s) in enumerate(convs):
    x = _conv(x, n, k, s, f"{prefix}_conv{i + 1}")
    x = _batch_norm(x, config, f"{prefix}_bn{i + 1}", zero_gamma=(i == last))
    if i != last:
      x = keras.layers.ReLU(name=f"{prefix}_relu{i + 1}")(x)
  x = keras.layers.Add(name=prefix + "_add")([x, shortcut])
  return keras.layers.ReLU(name=endpoint)(x)


def build_model(config: ResNetConfig, num_classes: int, objective,
                input_shape: Sequence[int] = (224, 224, 3),
                name: str = "resnet") -> keras.Model:
  """Builds the functional ResNet whose output is the dict of endpoints.

  The official.losses.Objective supplies the layers after `final_avg_pool`: its
  `penultimate()` (e.g. dropout), `head(num_classes)` (-> final_layer) and `outputs()`.
  """
  if not isinstance(num_classes, int) or num_classes < 1:
    raise ValueError(f"num_classes={num_classes!r} must be a positive integer")
  input_shape = tuple(input_shape)
  if len(input_shape) != 3 or input_shape[-1] != 3:
    raise ValueError(f"input_shape={input_shape!r} must be (H, W, 3)")

  images = keras.Input(shape=input_shape, name="images")
  kernel, stride = (3, config.small_input_stem_stride) if config.small_input_stem else (7, 2)
  x = _conv(images, config.filters(STEM_FILTERS), kernel, stride, "stem_conv")
  x = _batch_norm(x, config, "stem_bn")
  x = keras.layers.ReLU(name="stem_relu")(x)
  if not config.small_input_stem:
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)

  endpoints = {}
  for group, (base, blocks) in enumerate(zip(GROUP_FILTERS, config.blocks_per_group)):
    for b in range(blocks):
      endpoint = f"block{len(endpoints) + 1}"
      x = _residual_block(
          x, config, config.filters(base),
          strides=2 if (b == 0 and group > 0) else 1, projection=(b == 0),
          prefix=f"group{group + 1}_block{b + 1}", endpoint=endpoint)
      endpoints[endpoint] = x

  features = keras.layers.GlobalAveragePooling2D(name=PENULTIMATE)(x)
  z = objective.head(num_classes)(objective.penultimate()(features))
  endpoints[PENULTIMATE] = features
  endpoints["final_layer"] = z
  endpoints["outputs"] = objective.outputs()(z)
  return keras.Model(inputs=images, outputs=endpoints, name=name)


def sort_endpoint_names(names) -> list[str]:
  """Orders endpoint names as in the network: block1..blockN, then FINAL_ENDPOINTS."""

  def key(name):
    match = _BLOCK_ENDPOINT.match(name)
    if match:
      return (0, int(match.group(1)), name)
    if name in FINAL_ENDPOINTS:
      return (1, FINAL_ENDPOINTS.index(name), name)
    return (2, 0, name)

  return sorted(names, key=key)


def endpoint_names(model) -> list[str]:
  """Endpoint names, in network order, of a `build_model` model or a pretrained.EndpointModel."""
  if isinstance(model, keras.Model):
    structure = model.output
    if not isinstance(structure, Mapping):
      raise ValueError(f"model {model.name!r} does not return a dict of endpoints; build it "
                       "with official.modeling.resnet.build_model")
    return sort_endpoint_names(structure.keys())
  return sort_endpoint_names(model.endpoint_names)
