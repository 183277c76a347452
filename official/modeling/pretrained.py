"""Pretrained networks as functions images -> endpoints; SavedModel export for training.

`load(path)` takes a SavedModel (ours, or a released one whose "serving_default" signature
returns the docs/protocol.md §2 endpoints) or a training model_dir (its export/saved_model, else
the network rebuilt from config.json with the EMA weights of the latest checkpoint). The
released models' unused background class 0 is dropped from final_layer and outputs, and their
final_avg_pool [B, 1, 1, D] is returned as [B, D].
"""

import dataclasses
import os
import uuid
from typing import Callable, Mapping, Sequence

import keras
import tensorflow as tf

from official import losses
from official.core import config as config_lib
from official.core import io
from official.core.config import CHECKPOINT_DIR, CONFIG_FILE, EXPORT_DIR
from official.modeling import resnet

SERVING_SIGNATURE = "serving_default"
INPUT_NAME = "images"
# Written into <export_dir>/assets/ by export_saved_model: endpoint_names, image_size,
# num_classes of the exported network.
ENDPOINTS_FILE = "endpoints.json"
# Resolution of the released SavedModels when their signature leaves it open (docs/protocol.md §3).
RELEASED_IMAGE_SIZE = 224
# Released checkpoints' output count: 1000 ImageNet classes after an unused class 0.
CLASSES_WITH_BACKGROUND = 1001


class EndpointModel:
  """A pretrained network as a function images [B, H, W, 3] -> dict of endpoints.

  `num_classes` is K after dropping the background class of CLASSES_WITH_BACKGROUND outputs;
  `keras_model` is the keras.Model when rebuilt from a checkpoint, else None.
  """

  def __init__(self, fn: Callable[[tf.Tensor], Mapping[str, tf.Tensor]], *, path: str,
               endpoint_names: Sequence[str], input_size: tuple[int, int],
               num_classes: int, keras_model: keras.Model | None = None):
    self._fn = fn
    self._drop_background = num_classes == CLASSES_WITH_BACKGROUND
    self.path = path
    self.endpoint_names = list(endpoint_names)
    self.input_size = tuple(input_size)
    self.num_classes = num_classes - 1 if self._drop_background else num_classes
    self.keras_model = keras_model

  def __call__(self, images, endpoints: Sequence[str] | None = None) -> dict[str, tf.Tensor]:
    """`endpoints` (default: all) of normalised float32 images, in inference mode."""
    names = self.endpoint_names if endpoints is None else list(endpoints)
    missing = [n for n in names if n not in self.endpoint_names]
    if missing:
      raise ValueError(f"model {self.path} has no endpoint {missing[0]!r}; its endpoints: "
                       f"{', '.join(self.endpoint_names)}")
    images = tf.convert_to_tensor(images, tf.float32)
    expected = (*self.input_size, 3)
    if images.shape.rank != 4 or tuple(images.shape[1:]) != expected:
      raise ValueError(f"images of shape {tuple(images.shape)} do not fit model {self.path}: "
                       f"expected [batch, {expected[0]}, {expected[1]}, 3]")
    result = self._fn(images)
    out = {}
    for name in names:
      value = result[name]
      if name == resnet.PENULTIMATE and value.shape.rank == 4:
        value = tf.squeeze(value, axis=(1, 2))
      if self._drop_background and name in resnet.CLASS_ENDPOINTS:
        value = value[:, 1:]
      out[name] = value
    return out


def export_saved_model(model: keras.Model, export_dir: str,
                       image_size: int | Sequence[int]) -> str:
  """Exports a `resnet.build_model` network (image_size H or (H, W)) as a SavedModel.

  "serving_default" maps `images` [None, H, W, 3] to the endpoints; assets/endpoints.json
  records their names, image_size and num_classes. Written to a temporary sibling and
  renamed into place, so `export_dir` never holds a partial SavedModel. Returns export_dir.
  """
  height, width = _image_size(image_size)
  names = resnet.endpoint_names(model)
  model_size = tuple(model.input_shape[1:3])
  if None not in model_size and model_size != (height, width):
    raise ValueError(f"image_size={image_size!r} does not match the model's input size "
                     f"{model_size}")
  num_classes = int(model.output["final_layer"].shape[-1])

  module = tf.Module()
  module.model = model
  module.serve = serve = _serving_function(model, height, width)
  export_dir = os.fspath(export_dir).rstrip("/")
  parent = io.dirname(export_dir)
  if parent:
    io.makedirs(parent)
  suffix = uuid.uuid4().hex
  tmp_dir = f"{export_dir}.tmp-{suffix}"
  try:
    tf.saved_model.save(module, tmp_dir, signatures={SERVING_SIGNATURE: serve})
    io.atomic_write_json(io.join(tmp_dir, "assets", ENDPOINTS_FILE), {
        "endpoint_names": names, "image_size": height if height == width else [height, width],
        "num_classes": num_classes})
    if io.exists(export_dir):
      old_dir = f"{export_dir}.old-{suffix}"
      io.rename(export_dir, old_dir)
      io.rename(tmp_dir, export_dir)
      io.rmtree(old_dir)
    else:
      io.rename(tmp_dir, export_dir)
  finally:
    if io.exists(tmp_dir):
      io.rmtree(tmp_dir)
  return export_dir


def load(path: str) -> EndpointModel:
  """Loads a SavedModel directory or a training model_dir as an EndpointModel (see module)."""
  path = os.fspath(path)
  if not io.exists(path):
    raise FileNotFoundError(f"pretrained model path {path} does not exist: expected a "
                            "SavedModel directory or a training model_dir")
  if not io.isdir(path):
    raise ValueError(f"pretrained model path {path} is not a directory: expected a "
                     "SavedModel directory or a training model_dir")
  if tf.saved_model.contains_saved_model(path):
    return _load_saved_model(path)
  exported = os.path.join(path, EXPORT_DIR)
  if io.isdir(exported) and tf.saved_model.contains_saved_model(exported):
    return _load_saved_model(exported)
  if io.exists(os.path.join(path, CONFIG_FILE)):
    return _load_checkpoint(path)
  raise ValueError(f"{path} holds no model: expected saved_model.pb, {EXPORT_DIR}/, or "
                   f"{CONFIG_FILE} with {CHECKPOINT_DIR}/")


def _load_saved_model(path: str) -> EndpointModel:
  loaded = tf.saved_model.load(path)
  signature = loaded.signatures.get(SERVING_SIGNATURE)
  if signature is None:
    raise ValueError(f"SavedModel {path} has no {SERVING_SIGNATURE!r} signature; it has: "
                     f"{', '.join(loaded.signatures.keys()) or 'none'}")
  _, inputs = signature.structured_input_signature
  if len(inputs) != 1:
    raise ValueError(f"SavedModel {path}: the {SERVING_SIGNATURE!r} signature takes "
                     f"{sorted(inputs)}; expected one image input")
  (input_name, spec), = inputs.items()
  outputs = signature.structured_outputs
  if "final_layer" not in outputs:
    raise ValueError(f"SavedModel {path} returns no 'final_layer' endpoint; it returns: "
                     f"{', '.join(sorted(outputs))}")

  metadata_path = os.path.join(path, "assets", ENDPOINTS_FILE)
  if io.exists(metadata_path):
    metadata = io.read_json(metadata_path)
    input_size = _image_size(metadata["image_size"])
    num_classes = int(metadata["num_classes"])
  else:
    static = tuple(spec.shape[1:3]) if spec.shape.rank == 4 else (None, None)
    input_size = (RELEASED_IMAGE_SIZE, RELEASED_IMAGE_SIZE) if None in static else static
    num_classes = int(outputs["final_layer"].shape[-1])

  def fn(images):
    # Through `loaded`, which owns the variables the signature reads, so they stay alive.
    return loaded.signatures[SERVING_SIGNATURE](**{input_name: images})

  return EndpointModel(
      fn, path=path, endpoint_names=resnet.sort_endpoint_names(outputs.keys()),
      input_size=input_size, num_classes=num_classes)


@dataclasses.dataclass(frozen=True)
class ModelDir:
  """A training model_dir's network as its config.json and latest checkpoint describe it;
  `objective` is the pretraining losses.Objective, whose head makes it match the checkpoint."""
  model_dir: str
  config_path: str
  checkpoint: str
  model_config: resnet.ResNetConfig
  num_classes: int
  image_size: tuple[int, int]
  objective: losses.Objective


def read_model_dir(model_dir: str) -> ModelDir:
  """Reads <model_dir>/config.json and finds the latest checkpoint, without building anything."""
  model_dir = os.fspath(model_dir)
  config = config_lib.read_run_config(model_dir)
  config_path = os.path.join(model_dir, CONFIG_FILE)
  if not config.model.num_classes:
    raise ValueError(f"{config_path}: the 'model' section lacks 'num_classes'")
  checkpoint_dir = os.path.join(model_dir, CHECKPOINT_DIR)
  checkpoint = tf.train.latest_checkpoint(checkpoint_dir)
  if checkpoint is None:
    raise FileNotFoundError(f"no checkpoint in {checkpoint_dir}: expected ckpt-* files "
                            f"written by tf.train.CheckpointManager, or {EXPORT_DIR}/")
  try:
    objective = losses.get_objective(config.objective.name, **config.objective.hparams)
  except (TypeError, ValueError) as e:
    raise ValueError(f"{config_path}: {str(e).splitlines()[0]}") from None
  return ModelDir(
      model_dir=model_dir, config_path=config_path, checkpoint=checkpoint,
      model_config=config.model, num_classes=config.model.num_classes,
      image_size=_image_size(config.model.image_size), objective=objective)


def load_keras_model(model_dir: str, *, image_size: int | Sequence[int] | None = None,
                     checkpoint: str | None = None) -> keras.Model:
  """The network of a training model_dir, rebuilt, with its EMA weights restored.

  resnet.build_model of config.json with its objective's head and the checkpoint's
  `ema_model` restored (default: the latest), at input `image_size` (default: the trained
  one; the weights do not depend on it), built in the current strategy's scope. Raises as
  read_model_dir, and ValueError when the checkpoint has no matching ema_model.
  """
  network = read_model_dir(model_dir)
  checkpoint = checkpoint or network.checkpoint
  height, width = network.image_size if image_size is None else _image_size(image_size)
  try:
    model = resnet.build_model(network.model_config, network.num_classes, network.objective,
                               input_shape=(height, width, 3))
  except ValueError as e:
    raise ValueError(f"{network.config_path}: {str(e).splitlines()[0]}") from None
  status = tf.train.Checkpoint(ema_model=model).restore(checkpoint).expect_partial()
  try:
    status.assert_existing_objects_matched()
  except AssertionError as e:
    raise ValueError(f"checkpoint {checkpoint} has no ema_model matching "
                     f"{network.config_path}: {str(e).splitlines()[0]}") from None
  return model


def _load_checkpoint(model_dir: str) -> EndpointModel:
  model = load_keras_model(model_dir)
  height, width = model.input_shape[1:3]
  num_classes = int(model.output["final_layer"].shape[-1])
  return EndpointModel(
      _serving_function(model, height, width), path=model_dir,
      endpoint_names=resnet.endpoint_names(model),
      input_size=(height, width), num_classes=num_classes, keras_model=model)


def _serving_function(model: keras.Model, height: int, width: int):
  """images float32 [None, H, W, 3] -> the endpoints in inference mode, as a tf.function."""

  @tf.function(input_signature=[
      tf.TensorSpec([None, height, width, 3], tf.float32, name=INPUT_NAME)])
  def serve(images):
    return model(images, training=False)

  return serve


def _image_size(image_size) -> tuple[int, int]:
  """H or (H, W) -> (H, W)."""
  size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
  if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
    raise ValueError(f"image_size={image_size!r} must be a positive integer or (H, W)")
  return size


def training_model_dir(path: str) -> str | None:
  """The training model_dir of a model path (itself, or above export/saved_model), or None
  (a SavedModel outside one, such as released weights)."""
  path = io.absolute(os.fspath(path))
  if io.exists(os.path.join(path, CONFIG_FILE)):
    return path
  suffix = "/" + EXPORT_DIR.replace(os.sep, "/")
  if path.replace(os.sep, "/").endswith(suffix):
    parent = path[:-len(suffix)]
    if io.exists(os.path.join(parent, CONFIG_FILE)):
      return parent
  return None


def training_config(path: str) -> dict:
  """The config.json (config.read_run_config) of a model path's training run as a dict, {}
  outside one; ValueError when it is not a valid experiment config."""
  model_dir = training_model_dir(path)
  if model_dir is None:
    return {}
  return config_lib.to_dict(config_lib.read_run_config(model_dir))


def resolve(path: str, endpoints: Sequence[str] = ()) -> tuple[EndpointModel, str | None]:
  """A model path -> (the network, its training model_dir or None), checked to have
  `endpoints`; FileNotFoundError / ValueError when there is no such model."""
  model = load(path)
  missing = [e for e in endpoints if e not in model.endpoint_names]
  if missing:
    raise ValueError(f"model {path} has no {missing[0]!r} endpoint; it has: "
                     f"{', '.join(model.endpoint_names)}; expected a network exported with "
                     "its named endpoints (docs/protocol.md §2)")
  return model, training_model_dir(path)
