"""Representation analysis (paper §3.2-3.3): CKA, activation sparsity and class separation.

Math over activations only: NumPy arrays or eager tensors in, Python floats / NumPy arrays out.

  cka               linear CKA (eq. 10), unbiased HSIC1, all-pairs minibatch CKA
  class_separation  R^2 (eq. 11) with cosine or squared Euclidean distance, streaming
  sparsity          share of non-zero activations (Figure 3), streaming per endpoint
"""

from official.analysis import activations
from official.analysis import cka
from official.analysis import class_separation
from official.analysis import sparsity
