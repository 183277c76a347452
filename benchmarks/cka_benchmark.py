r"""All-pairs minibatch CKA of two networks: MinibatchCKA against a per-pair baseline.

Figure 2 of the paper compares all 17 endpoints (16 ResNet-50 blocks and final_avg_pool) of
one network with all 17 of another by minibatch CKA (official/analysis/cka.py). Two ways to
compute it on the same synthetic activations, both in float64 TensorFlow:

  per-pair baseline  for each of the 17 x 17 pairs and each minibatch, compute both layers'
                     Gram matrices from scratch and HSIC1(K, L), HSIC1(K, K), HSIC1(L, L) with
                     the formula of Song et al. (2012): 2 x 289 Grams per minibatch;
  MinibatchCKA       one U-centred Gram per layer per minibatch (34), every HSIC1 from one
                     product G G^T (official/analysis/cka.py).

The activations are ReLU features of a shared latent with ResNet-50's relative widths scaled
to fit a CPU (flattened [n, h*w*c]: 16384 in stage 1 down to 2048 in stage 4, 512 for the
pooled features). The two methods alternate minibatch by minibatch. Reports wall and CPU
times, the speed-up and the largest difference between the two CKA matrices; exits with
status 1 unless the wall-time speed-up is at least --min_speedup and the matrices agree within
--tolerance (status 2 for bad flags).

  python -m benchmarks.cka_benchmark
  python -m benchmarks.cka_benchmark --batch_size=256 --num_batches=2
"""

import time
from typing import Sequence

from absl import flags
import numpy as np
import tensorflow as tf

from official.analysis import cka
from official.core import cli

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch_size", 128, "Examples per minibatch (n >= 4).")
flags.DEFINE_integer("num_batches", 3, "Minibatches accumulated.")
flags.DEFINE_integer("seed", 0, "Seed of the synthetic activations.")
flags.DEFINE_float("min_speedup", 10.0, "Required speed-up of MinibatchCKA over the baseline.")
flags.DEFINE_float("tolerance", 1e-6, "Largest allowed |difference| between the CKA matrices.")

# ResNet-50 endpoints: blocks per stage (3, 4, 6, 3) and final_avg_pool.
ENDPOINTS = tuple(f"block{i}" for i in range(1, 17)) + ("final_avg_pool",)
WIDTHS = (16384,) * 3 + (8192,) * 4 + (4096,) * 6 + (2048,) * 3 + (512,)
LATENT_SIZE = 16


def synthetic_minibatches(batch_size: int, num_batches: int, seed: int):
  """[(activations_a, activations_b)] per minibatch: 17 float32 [n, width] ReLU layers each.

  Both networks read the same latent through projections that share a common part, with noise
  growing with depth, so CKA spans a range of values across the 17 x 17 pairs.
  """
  rng = np.random.default_rng(seed)
  shared = [rng.standard_normal((LATENT_SIZE, w), dtype=np.float32) for w in WIDTHS]
  projections = [[s + rng.standard_normal(s.shape, dtype=np.float32) for s in shared]
                 for _ in range(2)]
  noise = np.linspace(1.0, 12.0, len(WIDTHS), dtype=np.float32)
  batches = []
  for _ in range(num_batches):
    latent = rng.standard_normal((batch_size, LATENT_SIZE), dtype=np.float32)
    batches.append(tuple(
        [tf.constant(np.maximum(latent @ w + s * rng.standard_normal(
            (batch_size, w.shape[1]), dtype=np.float32), 0.0))
         for w, s in zip(network, noise)]
        for network in projections))
  return batches


def _centred_gram(x: tf.Tensor) -> tf.Tensor:
  x = tf.cast(x, tf.float64)
  x -= tf.reduce_mean(x, axis=0, keepdims=True)
  return tf.matmul(x, x, transpose_b=True)


def _hsic1(gram_x: tf.Tensor, gram_y: tf.Tensor) -> float:
  """HSIC1 of Song et al. (2012), written from its formula."""
  n = float(gram_x.shape[0])
  zeros = tf.zeros([gram_x.shape[0]], tf.float64)
  k = tf.linalg.set_diag(gram_x, zeros)
  l = tf.linalg.set_diag(gram_y, zeros)
  value = (tf.reduce_sum(k * l) +
           tf.reduce_sum(k) * tf.reduce_sum(l) / ((n - 1.0) * (n - 2.0)) -
           2.0 / (n - 2.0) * tf.tensordot(tf.reduce_sum(k, 0), tf.reduce_sum(l, 0), 1)) / (
               n * (n - 3.0))
  return float(value)


class PerPairCKA:
  """Minibatch CKA of every pair, each pair's Grams and HSIC1 terms computed from scratch."""

  def __init__(self, num_layers_a: int, num_layers_b: int):
    self.hsic_ab = np.zeros((num_layers_a, num_layers_b))
    self.hsic_aa = np.zeros((num_layers_a, num_layers_b))
    self.hsic_bb = np.zeros((num_layers_a, num_layers_b))

  def update_state(self, layers_a, layers_b) -> None:
    for i, a in enumerate(layers_a):
      for j, b in enumerate(layers_b):
        gram_a, gram_b = _centred_gram(a), _centred_gram(b)
        self.hsic_ab[i, j] += _hsic1(gram_a, gram_b)
        self.hsic_aa[i, j] += _hsic1(gram_a, gram_a)
        self.hsic_bb[i, j] += _hsic1(gram_b, gram_b)

  def result(self) -> np.ndarray:
    return self.hsic_ab / np.sqrt(self.hsic_aa * self.hsic_bb)


def run(batches) -> dict:
  """CKA matrices and wall / CPU seconds of both methods, timed minibatch by minibatch.

  The two methods alternate on each minibatch so that both see the same load of a shared
  machine; CPU seconds (all threads of this process) are the work done, insensitive to other
  processes.
  """
  num_a, num_b = len(batches[0][0]), len(batches[0][1])
  methods = {"per_pair": PerPairCKA(num_a, num_b), "minibatch": cka.MinibatchCKA(num_a, num_b)}
  wall = dict.fromkeys(methods, 0.0)
  cpu = dict.fromkeys(methods, 0.0)
  for layers_a, layers_b in batches:
    for name, method in methods.items():
      wall_start, cpu_start = time.perf_counter(), time.process_time()
      method.update_state(layers_a, layers_b)
      wall[name] += time.perf_counter() - wall_start
      cpu[name] += time.process_time() - cpu_start
  results = {}
  for name, method in methods.items():
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    results[name] = method.result()
    wall[name] += time.perf_counter() - wall_start
    cpu[name] += time.process_time() - cpu_start
  return {"cka": results, "wall": wall, "cpu": cpu}


def main(argv: Sequence[str]) -> int:
  if len(argv) > 1:
    raise cli.UsageError(f"unexpected arguments {argv[1:]}; this binary takes flags only")
  if FLAGS.batch_size < cka.MIN_EXAMPLES_UNBIASED:
    raise ValueError(f"--batch_size: got {FLAGS.batch_size}; the unbiased HSIC1 estimator "
                     f"needs at least {cka.MIN_EXAMPLES_UNBIASED} examples")
  if FLAGS.num_batches < 1:
    raise ValueError(f"--num_batches: got {FLAGS.num_batches}; expected at least 1")

  batches = synthetic_minibatches(FLAGS.batch_size, FLAGS.num_batches, FLAGS.seed)
  # Warm-up, untimed: the first kernels and large allocations of a process pay one-off costs.
  layers_a, layers_b = batches[0]
  cka.MinibatchCKA(len(layers_a), len(layers_b)).update_state(layers_a, layers_b)
  PerPairCKA(1, 1).update_state(layers_a[:1], layers_b[:1])
  measured = run(batches)
  fast, slow = measured["cka"]["minibatch"], measured["cka"]["per_pair"]
  wall, cpu = measured["wall"], measured["cpu"]
  speedup = wall["per_pair"] / wall["minibatch"]
  cpu_speedup = cpu["per_pair"] / cpu["minibatch"]
  difference = float(np.max(np.abs(fast - slow)))
  pairs = len(ENDPOINTS) ** 2
  speed_ok = speedup >= FLAGS.min_speedup
  agree_ok = difference <= FLAGS.tolerance

  print(f"All-pairs minibatch CKA: {len(ENDPOINTS)} x {len(ENDPOINTS)} endpoints of two "
        f"networks, {FLAGS.num_batches} minibatches of {FLAGS.batch_size} examples, float64")
  print(f"Flattened widths: {' '.join(str(w) for w in WIDTHS)} ({sum(WIDTHS)} per network)")
  print()
  print(f"{'method':<34}{'Grams/minibatch':>16}{'wall s':>9}{'CPU s':>9}{'wall s/minibatch':>18}")
  print("-" * 86)
  for name, key, grams in (("per-pair baseline (from scratch)", "per_pair", 2 * pairs),
                           ("MinibatchCKA (one G G^T)", "minibatch", 2 * len(ENDPOINTS))):
    print(f"{name:<34}{grams:>16}{wall[key]:>9.2f}{cpu[key]:>9.2f}"
          f"{wall[key] / FLAGS.num_batches:>18.2f}")
  print("-" * 86)
  print(f"speed-up, wall time (baseline / MinibatchCKA): {speedup:9.1f}x   required >= "
        f"{FLAGS.min_speedup:g}x   {'PASS' if speed_ok else 'FAIL'}")
  print(f"speed-up, CPU time:                            {cpu_speedup:9.1f}x")
  print(f"max |CKA difference| over {pairs} pairs:        {difference:10.1e}   required <= "
        f"{FLAGS.tolerance:g}   {'PASS' if agree_ok else 'FAIL'}")
  print(f"CKA range over pairs: [{fast.min():.3f}, {fast.max():.3f}]; matching endpoints: "
        f"block1 {fast[0, 0]:.3f}, block16 {fast[15, 15]:.3f}, "
        f"final_avg_pool {fast[16, 16]:.3f}")
  return 0 if speed_ok and agree_ok else 1


if __name__ == "__main__":
  cli.run(main)
