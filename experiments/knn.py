r"""k-nearest-neighbour transfer with fixed features (paper Table 1 "kNN", docs/protocol.md §4).

  python -m experiments.knn --model=runs/demo/softmax-seed0
  python -m experiments.knn --model=runs/demo/softmax-seed0 --datasets=demo_size \
      --k_max=50 --distance=euclidean
  bazel run //experiments:knn -- --model=/models/softmax/seed0 \
      --datasets=food101,cifar10,cifar100,sun397,cars196,pets,flowers --data_dir=/tfds

For every dataset, kNN as docs/protocol.md §4 says on the penultimate features (cached and
shared with experiments/linear_probe; official.evaluation.evaluators.KNN). Results:

  <output_dir>/knn/<dataset>.json   chosen k, leave-one-out score of every k, test score,
                                    class names, timings, model path
  <output_dir>/tensorboard/knn/     scalars "<dataset>/test_<metric>" and "<dataset>/k"
                                    (step 0), "<dataset>/loo_<metric>" with k as the step
"""

from official.core import native_logging  # pylint: disable=unused-import  (first: before TF)

from absl import flags

from experiments import frozen_transfer as ft
from official.core import cli
from official.evaluation import evaluators
from official.evaluation import knn

_K_MAX = flags.DEFINE_integer(
    "k_max", knn.K_MAX, "Largest k tried by leave-one-out (capped at the training examples "
    "minus one).")
_DISTANCE = flags.DEFINE_string(
    "distance", "cosine", f"Similarity of neighbours: {', '.join(knn.DISTANCES)} (cosine: "
    "on L2-normalised features).")


# --help lists the shared flags (--model, --datasets, --data_dir, ...) with this binary's own.
flags.adopt_module_key_flags(ft)


def main(argv):
  ft.begin(argv)
  if _K_MAX.value < 1:
    raise cli.UsageError(f"--k_max: {_K_MAX.value}; valid is a positive integer")
  if _DISTANCE.value not in knn.DISTANCES:
    raise cli.UsageError(f"--distance: {_DISTANCE.value!r}; valid are "
                         f"{', '.join(knn.DISTANCES)}")
  ft.run(evaluators.KNN(k_max=_K_MAX.value, distance=_DISTANCE.value), _scalars, _line)


def _scalars(name: str, record: evaluators.Record) -> list:
  s, metric = record.scores, record.metric
  return [(f"{name}/test_{metric}", 0, s["test_score"]), (f"{name}/k", 0, s["k"]),
          *[(f"{name}/loo_{metric}", p["k"], p["score"]) for p in s["loo_scores"]]]


def _line(record: evaluators.Record) -> str:
  s = record.scores
  return (f"{record.dataset}: test {record.metric} {s['test_score']:.4f} (k {s['k']}, "
          f"leave-one-out {s['loo_score']:.4f}; {s['num_train']} train+validation, "
          f"{s['num_test']} test)")


if __name__ == "__main__":
  cli.run(main)
