"""Objectives, ResNet, data, training, transfer evaluation and representation analysis.

A library reproducing Kornblith, Chen, Lee & Norouzi, "Why Do Better Loss Functions Lead to
Less Transferable Features?" (NeurIPS 2021). One sub-package per stage of the study:

  losses -> modeling -> data -> training -> evaluation | analysis
"""

from official.core import native_logging as _native_logging

# TensorFlow's C++ start-up lines (CUDA probing, oneDNN, CPU features; a spurious cuInit error on
# CPU-only machines) hide the project's own output: kept off unless TF_CPP_MIN_LOG_LEVEL says
# otherwise (TF_CPP_MIN_LOG_LEVEL=0 shows them). Effective when `official` is imported before
# TensorFlow, which is why every binary imports official.core.native_logging first.
_native_logging.install()
