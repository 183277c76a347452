"""Objectives, ResNet, data, training, transfer evaluation and representation analysis.

A library reproducing Kornblith, Chen, Lee & Norouzi, "Why Do Better Loss Functions Lead to
Less Transferable Features?" (NeurIPS 2021). One sub-package per stage of the study:

  losses -> modeling -> data -> training -> evaluation | analysis
"""
