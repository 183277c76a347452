r"""Fine-tunes a pretrained network on transfer datasets (paper Table 2, docs/protocol.md §5).

  python -m experiments.finetune --model=runs/demo/softmax-seed0 --datasets=demo_size
  python -m experiments.finetune --model=runs/demo/softmax-seed0 --datasets=demo_size \
      --steps=100 --learning_rates=0.03 --weight_decays=none,1e-4
  python -m experiments.finetune --model=runs/photos/softmax-seed0 \
      --datasets=folder:data/photos --classes=5-9
  python -m experiments.finetune --preset=paper --model=gs://.../softmax/seed0 \
      --datasets=cifar10,pets --data_dir=gs://... --strategy=tpu --tpu=my-tpu

For every dataset, the grid search of docs/protocol.md §5 (official.evaluation.finetune).
Each dataset's grid points, checkpoints and TensorBoard logs go
to <output_dir>/<dataset>/ and its result to <output_dir>/<dataset>.json (default output_dir:
<model>/finetune). Rerunning the same command skips finished grid points and resumes an
unfinished one from its latest checkpoint; SIGTERM saves a checkpoint of the grid point being
trained and exits 0.
"""

from official.core import native_logging  # pylint: disable=unused-import  (first: before TF)

import os
import time

from absl import flags

from experiments import common_flags
from official.core import cli
from official.core import config
from official.core import io
from official.data import datasets
from official.evaluation import finetune
from official.training import distribute
from official.training import loop

_MODEL = flags.DEFINE_string(
    "model", None, "Training model_dir of the pretrained network (config.json + "
    "checkpoints/), or its export/saved_model.")
_DATASETS = flags.DEFINE_list(
    "datasets", None, "Transfer datasets (official.data.datasets specs: registry names, demo "
    "names, folder:/path, each optionally with a class subset '@5-9'), comma-separated.")
_CLASSES = flags.DEFINE_string(
    "classes", None, "Class subset applied to every dataset, e.g. '5-9' or '0,2,5' (ids of "
    "the full dataset, relabelled 0..K-1 in the given order).")
_PRESET = flags.DEFINE_string("preset", "demo",
                              f"Fine-tuning preset: {', '.join(config.PRESETS['finetune'])}.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None,
                                  "Where results go (default: <model>/finetune).")
_STEPS = flags.DEFINE_integer("steps", None, "Training steps of every grid point.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", None, "Global batch size.")
_LEARNING_RATES = flags.DEFINE_list("learning_rates", None,
                                    "Learning rates of the grid, comma-separated.")
_WEIGHT_DECAYS = flags.DEFINE_list(
    "weight_decays", None, "Weight decays of the grid, comma-separated ('none' or 0: none); "
    "the penalty's coefficient is weight decay / learning rate.")
_SEED = flags.DEFINE_integer("seed", None, "Seed of the head's initialisation and data order.")


# --help lists --data_dir, --strategy and --tpu with this binary's own flags.
flags.adopt_module_key_flags(common_flags)

def overrides() -> dict:
  """The finetune section's fields set by flags (official.core.config.FinetuneConfig)."""
  return {k: v for k, v in {
      "steps": _STEPS.value, "batch_size": _BATCH_SIZE.value, "seed": _SEED.value,
      "learning_rates": common_flags.parse_numbers("learning_rates", _LEARNING_RATES.value),
      "weight_decays": common_flags.parse_numbers("weight_decays", _WEIGHT_DECAYS.value, 0.0),
  }.items() if v is not None}


def main(argv):
  if len(argv) > 1:
    raise cli.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not _MODEL.value:
    raise cli.UsageError("--model is required: a training model_dir")
  names = [d.strip() for d in (_DATASETS.value or []) if d.strip()]
  if not names:
    raise cli.UsageError("--datasets is required: comma-separated dataset specs, e.g. "
                         "demo_size or cifar10,pets")
  # Every input is checked before any training starts.
  settings = overrides()
  config.override(config.get_preset("finetune", _PRESET.value), settings)
  network = finetune.find_pretrained(_MODEL.value)
  infos = {}
  for name in names:
    info = datasets.get(name, data_dir=common_flags.DATA_DIR.value, classes=_CLASSES.value)
    # With --classes, the canonical spec ("<dataset>@<classes>") names the task.
    infos[info.name if _CLASSES.value is not None else name] = info
  strategy = common_flags.strategy()
  _, _, is_chief = distribute.worker_info(strategy)
  output_dir = _OUTPUT_DIR.value or os.path.join(network.model_dir, "finetune")

  for name, info in infos.items():
    start = time.time()
    try:
      result = finetune.run(network.model_dir, name,
                            os.path.join(output_dir, datasets.result_name(name)),
                            preset=_PRESET.value, data_dir=common_flags.DATA_DIR.value,
                            strategy=strategy,
                            overrides=settings, log=lambda line: print(line, flush=True))
    except loop.Preempted as e:
      print(f"preempted: {e}", flush=True)
      return
    result = dict(result, model=io.absolute(network.model_dir), **info.class_record())
    result["timings"] = dict(result["timings"], wall_seconds=time.time() - start)
    path = os.path.join(output_dir, datasets.result_name(name) + ".json")
    if is_chief:
      io.atomic_write_json(path, result)
    print(f"{name}: test {result['metric']} {result['test']:.4f} (lr {result['learning_rate']:.3g}"
          f", wd {result['weight_decay']:.3g}, validation {result['validation']:.4f}) -> {path}",
          flush=True)


if __name__ == "__main__":
  cli.run(main)
