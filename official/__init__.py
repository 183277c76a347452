"""Objectives, ResNet, data, training, transfer evaluation and representation analysis.

A library reproducing Kornblith, Chen, Lee & Norouzi, "Why Do Better Loss Functions Lead to
Less Transferable Features?" (NeurIPS 2021). One sub-package per stage of the study:

  losses -> modeling -> data -> training -> evaluation | analysis
"""

from official.core import native_logging as _native_logging

# TensorFlow's C++ start-up lines kept off the console (TF_CPP_MIN_LOG_LEVEL=0 shows them);
# effective when `official` is imported before TensorFlow, as every binary does.
_native_logging.install()
