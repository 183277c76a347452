"""Representation analysis (paper §3.2-3.3): CKA (eq. 10), class separation R^2 (eq. 11) and
activation sparsity (Figure 3), over NumPy arrays or eager tensors."""

from official.analysis import activations
from official.analysis import cka
from official.analysis import class_separation
from official.analysis import sparsity
