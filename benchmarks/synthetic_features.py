"""Synthetic penultimate features for the transfer benchmarks.

Features shaped like a ResNet-50 `final_avg_pool` on a transfer dataset: each class is a
Gaussian cluster in a low-rank subspace, embedded in D dimensions with isotropic noise and passed
through a ReLU (post-ReLU averages are nonnegative and sparse-ish). Classes overlap enough that
neither the weakest nor the strongest L2 penalty is best for a linear probe.
"""

import numpy as np


def make_splits(sizes: dict, *, num_features: int = 2048, num_classes: int = 100,
                rank: int = 64, separation: float = 1.0, noise: float = 1.0,
                seed: int = 0) -> dict:
  """Draws labelled features for each named split.

  Args:
    sizes: split name -> number of examples (classes balanced, order shuffled).
    rank: dimension of the subspace holding the class structure.
    separation: spread of the class centres relative to the within-class spread.
    noise: standard deviation of the isotropic noise in D = num_features dimensions.

  Returns:
    split name -> (features float32 [n, D], labels int64 [n]).
  """
  rng = np.random.default_rng(seed)
  basis = (rng.standard_normal((rank, num_features)) / np.sqrt(rank)).astype(np.float32)
  centres = (separation * rng.standard_normal((num_classes, rank))).astype(np.float32)
  splits = {}
  for name, size in sizes.items():
    labels = rng.permutation(np.arange(size) % num_classes).astype(np.int64)
    latent = centres[labels] + rng.standard_normal((size, rank), dtype=np.float32)
    features = latent @ basis
    features += noise * rng.standard_normal((size, num_features), dtype=np.float32)
    np.maximum(features, 0.0, out=features)
    splits[name] = (features, labels)
  return splits
