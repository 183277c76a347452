r"""k-nearest-neighbour transfer with fixed features (paper Table 1 "kNN", SPEC §4).

  python -m experiments.knn --model=runs/demo/softmax-seed0
  python -m experiments.knn --model=runs/demo/softmax-seed0 --datasets=demo_texture \
      --k_max=50 --distance=euclidean
  bazel run //experiments:knn -- --model=/models/softmax/seed0 \
      --datasets=food101,cifar10,cifar100,sun397,cars196,pets,flowers --data_dir=/tfds

For every dataset: penultimate (`final_avg_pool`) features of its train, validation and test
splits (transfer preprocessing; cached and shared with experiments/linear_probe, see
experiments/frozen_transfer.py); k in 1..--k_max chosen by leave-one-out on train +
validation by the dataset's metric, then test scored by a vote of the k nearest of
train + validation (official.evaluation.knn.evaluate; cosine similarity of L2-normalised
features by default, an assumed convention). Results:

  <output_dir>/knn/<dataset>.json   chosen k, leave-one-out score of every k, test score,
                                    class names, timings, model path
  <output_dir>/tensorboard/knn/     scalars "<dataset>/test_<metric>" and "<dataset>/k"
                                    (step 0), "<dataset>/loo_<metric>" with k as the step
"""

from official.core import native_logging  # pylint: disable=unused-import  (first: before TF)

from absl import flags
import numpy as np

from experiments import frozen_transfer as ft
from official.core import cli
from official.evaluation import knn

METHOD = "knn"
SPLITS = ("train", "validation", "test")
# Neighbours come from train + validation ("train_full"): test must hold only their classes.
CHECKS = (ft.SplitCheck("test", ("train", "validation")),)

_K_MAX = flags.DEFINE_integer(
    "k_max", knn.K_MAX, "Largest k tried by leave-one-out (capped at the training examples "
    "minus one).")
_DISTANCE = flags.DEFINE_string(
    "distance", "cosine", f"Similarity of neighbours: {', '.join(knn.DISTANCES)} (cosine: "
    "on L2-normalised features).")


# --help lists the shared flags (--model, --datasets, ...) with this binary's own.
flags.adopt_module_key_flags(ft)


def main(argv):
  ft.begin(argv)
  if _K_MAX.value < 1:
    raise cli.UsageError(f"--k_max: {_K_MAX.value}; valid is a positive integer")
  if _DISTANCE.value not in knn.DISTANCES:
    raise cli.UsageError(f"--distance: {_DISTANCE.value!r}; valid are "
                         f"{', '.join(knn.DISTANCES)}")

  ft.evaluate_datasets(ft.prepare(), METHOD, SPLITS, CHECKS, _evaluate)


def _evaluate(info, name: str, data: dict) -> ft.Evaluation:
  """kNN on one dataset: neighbours from train + validation (in stored order: the dataset's
  train_full split), k by leave-one-out, test scored."""
  train_x = np.concatenate([data["train"][0], data["validation"][0]])
  train_y = np.concatenate([data["train"][1], data["validation"][1]])
  test_x, test_y = data["test"]
  scores = knn.evaluate(train_x, train_y, test_x, test_y, metric=info.metric,
                        k_max=_K_MAX.value, distance=_DISTANCE.value)
  metric = info.metric
  record = {
      "k": scores["k"],
      "loo_score": scores["loo_score"],
      "test_score": scores["test_score"],
      "loo_scores": [{"k": int(k), "score": float(s)}
                     for k, s in sorted(scores["loo_scores"].items())],
      "k_max": _K_MAX.value,
      "distance": scores["distance"],
      "num_train": scores["num_train"],
      "num_test": scores["num_test"],
      "feature_dim": scores["feature_dim"],
  }
  scalars = [(f"{name}/test_{metric}", 0, scores["test_score"]), (f"{name}/k", 0, scores["k"])]
  scalars += [(f"{name}/loo_{metric}", int(k), s) for k, s in scores["loo_scores"].items()]
  line = (f"{info.name}: test {metric} {scores['test_score']:.4f} (k {scores['k']}, "
          f"leave-one-out {scores['loo_score']:.4f}; {scores['num_train']} train+validation, "
          f"{scores['num_test']} test)")
  timings = {f"{key}_seconds": scores[f"seconds_{key}"] for key in ("search", "vote", "test")}
  return ft.Evaluation(record, scalars, line, timings)


if __name__ == "__main__":
  cli.run(main)
