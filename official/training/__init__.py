"""Pretraining (SPEC §3): experiment presets, tf.distribute strategies, the training loop.

  config        ExperimentConfig, presets "demo" and "imagenet_resnet50", overrides
  distribute    strategies by name (default, mirrored, multi_worker_mirrored, tpu)
  optimization  warm-up + cosine schedule, SGD + Nesterov, weight decay, weight averaging
  trainer       train(config, model_dir, strategy) -> final metrics; checkpoints, export
"""
