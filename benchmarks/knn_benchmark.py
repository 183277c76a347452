r"""kNN leave-one-out choice of k: one neighbour search against scikit-learn per k.

Table 1's kNN column chooses k by leave-one-out on the training set (docs/protocol.md §4). Two ways
on the same features (cosine similarity, i.e. Euclidean distance between L2-normalised features):

  scikit-learn  for each k = 1..k_max, `KNeighborsClassifier(n_neighbors=k, algorithm="brute")`
                fitted on train and `kneighbors()` without a query (each point's k neighbours
                with itself left out), majority vote by `scipy.stats.mode` (ties: lowest class,
                scikit-learn's rule);
  knn           `knn.fit`: one chunked top-(k_max) search of train against itself in
                TensorFlow, self excluded by index, every k scored from cumulative votes.

Both use the lowest-class tie rule so their answers can be compared exactly. Features imitate
ResNet-50 penultimate features (10,000 x 2048, 100 classes; benchmarks/synthetic_features.py).
Exits with status 1 unless both choose the same k with leave-one-out accuracies within
--max_accuracy_gap points and the speed-up is at least --min_speedup. Times include TensorFlow's
one-off graph tracing.

  python -m benchmarks.knn_benchmark
  python -m benchmarks.knn_benchmark --quick   # smoke run: at 2000 x 512 TensorFlow's fixed
                                               # costs dominate and the speed-up is smaller
"""

import time
from typing import Sequence

from absl import flags
import numpy as np
from scipy import stats
from sklearn import neighbors

from benchmarks import synthetic_features
from official.core import cli
from official.evaluation import knn

FLAGS = flags.FLAGS
flags.DEFINE_integer("num_train", 10000, "Training examples.")
flags.DEFINE_integer("num_features", 2048, "Feature dimension D.")
flags.DEFINE_integer("num_classes", 100, "Classes K.")
flags.DEFINE_float("separation", 0.5, "Spread of the synthetic class centres.")
flags.DEFINE_integer("seed", 0, "Seed of the synthetic features.")
flags.DEFINE_integer("k_max", 20, "Largest k tried (scikit-learn's time grows with it).")
flags.DEFINE_integer("chunk_size", knn.CHUNK_SIZE, "Query rows per similarity block.")
flags.DEFINE_bool("quick", False, "Shrink to 2000 examples, D = 512, K = 20 (k_max stays).")
flags.DEFINE_float("min_speedup", 20.0, "Required speed-up over scikit-learn.")
flags.DEFINE_float("max_accuracy_gap", 0.1,
                   "Largest allowed leave-one-out accuracy gap at the chosen k, in points.")


def sklearn_leave_one_out(x: np.ndarray, y: np.ndarray, k_max: int) -> np.ndarray:
  """[k_max] leave-one-out top-1 accuracy, one scikit-learn fit and search per k."""
  unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
  accuracy = np.zeros(k_max)
  for k in range(1, k_max + 1):
    model = neighbors.KNeighborsClassifier(n_neighbors=k, algorithm="brute").fit(unit, y)
    index = model.kneighbors(return_distance=False)  # the query point itself left out
    votes = stats.mode(y[index], axis=1, keepdims=False).mode
    accuracy[k - 1] = np.mean(votes == y)
  return accuracy


def main(argv: Sequence[str]) -> int:
  if len(argv) > 1:
    raise cli.UsageError(f"unexpected arguments {argv[1:]}; this binary takes flags only")
  num_train, num_features, num_classes, k_max = (FLAGS.num_train, FLAGS.num_features,
                                                 FLAGS.num_classes, FLAGS.k_max)
  if FLAGS.quick:
    num_train, num_features, num_classes = 2000, 512, 20
  for flag, value in (("num_train", num_train), ("num_features", num_features),
                      ("num_classes", num_classes)):
    if value < 2:
      raise ValueError(f"--{flag}: got {value}; expected at least 2")
  if not 1 <= k_max < num_train:
    raise ValueError(f"--k_max: got {k_max}; expected 1..{num_train - 1}")
  x, y = synthetic_features.make_splits(
      {"train": num_train}, num_features=num_features, num_classes=num_classes,
      separation=FLAGS.separation, seed=FLAGS.seed)["train"]

  start = time.perf_counter()
  model = knn.fit(x, y, k_max=k_max, distance="cosine", chunk_size=FLAGS.chunk_size,
                  tie_break="lowest_class")
  ours_seconds = time.perf_counter() - start
  ours = np.array([model.loo_accuracy[k] for k in range(1, k_max + 1)])
  start = time.perf_counter()
  theirs = sklearn_leave_one_out(x, y, k_max)
  theirs_seconds = time.perf_counter() - start

  ours_k, theirs_k = int(np.argmax(ours)) + 1, int(np.argmax(theirs)) + 1
  speedup = theirs_seconds / ours_seconds
  gap = 100.0 * abs(ours[ours_k - 1] - theirs[theirs_k - 1])
  same_ok = ours_k == theirs_k and gap <= FLAGS.max_accuracy_gap
  speed_ok = speedup >= FLAGS.min_speedup

  print(f"kNN leave-one-out over k = 1..{k_max}: {num_train} train, D = {num_features}, "
        f"K = {num_classes}, cosine similarity, vote ties to the lowest class")
  print()
  print(f"{'method':<44}{'k':>4}{'LOO top1':>10}{'seconds':>10}")
  print("-" * 68)
  print(f"{'scikit-learn KNeighborsClassifier, per k':<44}{theirs_k:>4}"
        f"{100 * theirs[theirs_k - 1]:>10.2f}{theirs_seconds:>10.1f}")
  print(f"{'knn.fit (one top-k_max search)':<44}{ours_k:>4}{100 * ours[ours_k - 1]:>10.2f}"
        f"{ours_seconds:>10.1f}")
  print(f"{'  of which neighbour search / votes':<44}{'':>14}"
        f"{model.seconds_search:>7.1f} / {model.seconds_vote:.2f}")
  print("-" * 68)
  print(f"{'speed-up (scikit-learn / knn)':<44}{speedup:>8.1f}x   required >= "
        f"{FLAGS.min_speedup:g}x   {'PASS' if speed_ok else 'FAIL'}")
  print(f"{'same k; |LOO accuracy difference| (points)':<44}{gap:>8.2f}    required <= "
        f"{FLAGS.max_accuracy_gap:g}   {'PASS' if same_ok else 'FAIL'}")
  print(f"largest |difference| over all k: {100 * np.max(np.abs(ours - theirs)):.2f} points")
  print("LOO top-1 per k (ours): " + " ".join(f"{100 * v:.2f}" for v in ours))
  return 0 if same_ok and speed_ok else 1


if __name__ == "__main__":
  cli.run(main)
