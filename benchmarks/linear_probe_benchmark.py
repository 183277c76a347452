r"""Linear probe selection + refit: TensorFlow L-BFGS against scikit-learn's lbfgs.

The linear transfer protocol (docs/protocol.md §4) fits L2-regularised multinomial logistic
regression at every penalty of Kornblith's grid 10^-6, 10^-4, ..., 10^6 on train, refines the best
by 4 halvings of the log step, picks the penalty on validation, refits on train + validation and
scores test. Both sides run that same procedure (`linear_probe.search_penalty`) on the same features
in one process:

  scikit-learn  `LogisticRegression(solver="lbfgs", C=1/(2 l2))` fitted from scratch at each
                penalty (its default usage), float64 parameters;
  linear_probe  `linear_probe.fit`: L-BFGS in one tf.function, float32, warm starts along the
                penalty path, line-search trials costing no extra pass over the features.

Both stop at the same gradient tolerance (--tolerance, scikit-learn's default 1e-4 on the
per-example objective) or --max_iterations. The features imitate ResNet-50 penultimate
features (10,000 x 2048, 100 classes, nonnegative; benchmarks/synthetic_features.py). Exits with
status 1 unless the test accuracies agree within --max_accuracy_gap points and the speed-up
is at least --min_speedup. Times include TensorFlow's one-off graph tracing.

  python -m benchmarks.linear_probe_benchmark
  python -m benchmarks.linear_probe_benchmark --quick
"""

import time
from typing import Sequence
import warnings

from absl import flags
import numpy as np
from sklearn import exceptions as sklearn_exceptions
from sklearn import linear_model

from benchmarks import synthetic_features
from official.core import cli
from official.evaluation import linear_probe
from official.evaluation import metrics

FLAGS = flags.FLAGS
flags.DEFINE_integer("num_train", 10000, "Training examples.")
flags.DEFINE_integer("num_validation", 2500, "Validation examples.")
flags.DEFINE_integer("num_test", 5000, "Test examples.")
flags.DEFINE_integer("num_features", 2048, "Feature dimension D.")
flags.DEFINE_integer("num_classes", 100, "Classes K.")
flags.DEFINE_float("separation", 0.5, "Spread of the synthetic class centres.")
flags.DEFINE_integer("seed", 0, "Seed of the synthetic features.")
flags.DEFINE_bool("quick", False, "Shrink to 2000 / 500 / 1000 examples, D = 512, K = 20.")
flags.DEFINE_integer("max_iterations", linear_probe.MAX_ITERATIONS, "L-BFGS budget per fit.")
flags.DEFINE_float("tolerance", linear_probe.TOLERANCE, "Gradient tolerance of both solvers.")
flags.DEFINE_float("min_speedup", 5.0, "Required speed-up over scikit-learn.")
flags.DEFINE_float("max_accuracy_gap", 0.5, "Largest allowed test-accuracy gap, in points.")


def sklearn_protocol(train, validation, test, max_iterations: int, tolerance: float) -> dict:
  """The protocol with a fresh scikit-learn LogisticRegression at every penalty."""
  (train_x, train_y), (val_x, val_y), (test_x, test_y) = train, validation, test
  iterations = []

  def train_fn(l2, x, y):
    model = linear_model.LogisticRegression(C=1.0 / (2.0 * l2), solver="lbfgs",
                                            max_iter=max_iterations, tol=tolerance)
    model.fit(x, y)
    iterations.append(int(model.n_iter_[0]))
    return model

  start = time.perf_counter()
  l2, _, scores = linear_probe.search_penalty(
      lambda l2, unused_init: train_fn(l2, train_x, train_y),
      lambda model: metrics.top1(val_y, model.predict(val_x)))
  seconds_search = time.perf_counter() - start
  start = time.perf_counter()
  model = train_fn(l2, np.concatenate([train_x, val_x]), np.concatenate([train_y, val_y]))
  seconds_refit = time.perf_counter() - start
  return dict(l2=l2, validation_scores=scores, validation_score=scores[l2],
              test_score=metrics.top1(test_y, model.predict(test_x)),
              iterations=sum(iterations), seconds_search=seconds_search,
              seconds_refit=seconds_refit)


def ours_protocol(train, validation, test, max_iterations: int, tolerance: float) -> dict:
  start = time.perf_counter()
  probe = linear_probe.fit(*train, *validation, max_iterations=max_iterations,
                           tolerance=tolerance)
  seconds = time.perf_counter() - start
  return dict(l2=probe.l2, validation_scores=probe.validation_scores,
              validation_score=probe.validation_score, test_score=probe.score(*test),
              iterations=sum(probe.iterations.values()) + probe.refit_iterations,
              seconds_search=seconds - probe.seconds_refit, seconds_refit=probe.seconds_refit)


def main(argv: Sequence[str]) -> int:
  if len(argv) > 1:
    raise cli.UsageError(f"unexpected arguments {argv[1:]}; this binary takes flags only")
  sizes = dict(train=FLAGS.num_train, validation=FLAGS.num_validation, test=FLAGS.num_test)
  num_features, num_classes = FLAGS.num_features, FLAGS.num_classes
  if FLAGS.quick:
    sizes = dict(train=2000, validation=500, test=1000)
    num_features, num_classes = 512, 20
  for flag, value in (("num_train", sizes["train"]), ("num_validation", sizes["validation"]),
                      ("num_test", sizes["test"]), ("num_features", num_features),
                      ("num_classes", num_classes)):
    if value < 2:
      raise ValueError(f"--{flag}: got {value}; expected at least 2")
  splits = synthetic_features.make_splits(sizes, num_features=num_features,
                                          num_classes=num_classes,
                                          separation=FLAGS.separation, seed=FLAGS.seed)
  args = (splits["train"], splits["validation"], splits["test"], FLAGS.max_iterations,
          FLAGS.tolerance)
  ours = ours_protocol(*args)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", sklearn_exceptions.ConvergenceWarning)
    theirs = sklearn_protocol(*args)

  seconds = {name: r["seconds_search"] + r["seconds_refit"]
             for name, r in (("ours", ours), ("theirs", theirs))}
  speedup = seconds["theirs"] / seconds["ours"]
  gap = 100.0 * abs(ours["test_score"] - theirs["test_score"])
  speed_ok = speedup >= FLAGS.min_speedup
  accuracy_ok = gap <= FLAGS.max_accuracy_gap

  print(f"Linear probe protocol: {sizes['train']} train / {sizes['validation']} validation / "
        f"{sizes['test']} test, D = {num_features}, K = {num_classes}; penalty grid "
        f"10^-6..10^6 + 4 refinements, refit on train + validation; tolerance "
        f"{FLAGS.tolerance:g}, at most {FLAGS.max_iterations} iterations per fit")
  print()
  print(f"{'method':<32}{'l2':>10}{'val top1':>10}{'test top1':>11}{'iters':>7}"
        f"{'search s':>10}{'refit s':>9}{'total s':>9}")
  print("-" * 98)
  for name, r, total in (("scikit-learn lbfgs (cold)", theirs, seconds["theirs"]),
                         ("linear_probe (TF L-BFGS, warm)", ours, seconds["ours"])):
    print(f"{name:<32}{r['l2']:>10.3g}{100 * r['validation_score']:>10.2f}"
          f"{100 * r['test_score']:>11.2f}{r['iterations']:>7}{r['seconds_search']:>10.1f}"
          f"{r['seconds_refit']:>9.1f}{total:>9.1f}")
  print("-" * 98)
  print(f"{'speed-up (scikit-learn / linear_probe)':<44}{speedup:>8.1f}x   required >= "
        f"{FLAGS.min_speedup:g}x   {'PASS' if speed_ok else 'FAIL'}")
  print(f"{'|test accuracy difference| (points)':<44}{gap:>8.2f}    required <= "
        f"{FLAGS.max_accuracy_gap:g}    {'PASS' if accuracy_ok else 'FAIL'}")
  print()
  print("validation top-1 per penalty (ours / scikit-learn):")
  for l2 in sorted(set(ours["validation_scores"]) | set(theirs["validation_scores"])):
    mine = ours["validation_scores"].get(l2)
    other = theirs["validation_scores"].get(l2)
    text = lambda v: "      -" if v is None else f"{100 * v:7.2f}"
    print(f"  l2 = {l2:<10.4g}{text(mine)} {text(other)}")
  return 0 if speed_ok and accuracy_ok else 1


if __name__ == "__main__":
  cli.run(main)
