"""Pretraining (docs/protocol.md §3): strategies, the one training loop, the pretraining task.

  distribute    strategies by name (default, mirrored, multi_worker_mirrored, tpu)
  loop          Runner: checkpoints, resumption, preemption, NaN stop, summaries, HParams
  optimization  warm-up + cosine schedule, SGD + Nesterov, weight decay, weight averaging
  trainer       train(config, model_dir, strategy) -> final metrics; the pretraining task

The configs (ExperimentConfig and its presets) are official.core.config's.
"""
