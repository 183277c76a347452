"""Objectives, ResNet, data, training, transfer evaluation and representation analysis.

A library reproducing Kornblith, Chen, Lee & Norouzi, "Why Do Better Loss Functions Lead to
Less Transferable Features?" (NeurIPS 2021). One sub-package per stage of the study:

  losses -> modeling -> data -> training -> evaluation | analysis
"""

import os as _os

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN, CPU features) hides the project's
# own output (CPU-only machines also get a spurious cuInit error); set TF_CPP_MIN_LOG_LEVEL=0
# to see it.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
