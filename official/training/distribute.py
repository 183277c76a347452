"""tf.distribute strategies by name, and what the training loop asks of them.

  default                 no distribution (one device; TF's default strategy)
  mirrored                all local GPUs (or the CPU) of one machine, synchronous
  multi_worker_mirrored   synchronous over several machines described by TF_CONFIG
  tpu                     a TPU (slice) found with TPUClusterResolver(tpu=tpu_address)

The global batch is split evenly across `num_replicas_in_sync` replicas; gradients are summed
across replicas, so every term of a replica's loss must be a share of the global-batch mean
(see official.training.trainer).
"""

import os
from typing import Optional

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker_mirrored", "tpu")


def get_strategy(name: str = "default",
                 tpu_address: Optional[str] = None) -> tf.distribute.Strategy:
  """The strategy called `name` (one of STRATEGIES); `tpu_address` for "tpu": the TPU name or
  grpc:// address ("" or "local" on a TPU VM)."""
  if name not in STRATEGIES:
    raise ValueError(f"unknown strategy {name!r}; valid: {', '.join(STRATEGIES)}")
  if tpu_address and name != "tpu":
    raise ValueError(f"--tpu={tpu_address!r} needs --strategy=tpu, not {name!r}")
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "mirrored":
    return tf.distribute.MirroredStrategy()
  if name == "multi_worker_mirrored":
    if "TF_CONFIG" not in os.environ:
      raise ValueError("strategy 'multi_worker_mirrored' needs the TF_CONFIG environment "
                       "variable describing the cluster")
    return tf.distribute.MultiWorkerMirroredStrategy()
  resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address or "")
  tf.config.experimental_connect_to_cluster(resolver)
  tf.tpu.experimental.initialize_tpu_system(resolver)
  return tf.distribute.TPUStrategy(resolver)


def split_cpu(num_devices: int) -> None:
  """Splits the host CPU into `num_devices` logical devices (before TF initialises), so that
  MirroredStrategy runs one replica on each (how the tests vary the number of replicas)."""
  cpus = tf.config.list_physical_devices("CPU")
  tf.config.set_logical_device_configuration(
      cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)])


def worker_info(strategy: tf.distribute.Strategy) -> tuple[int, int, bool]:
  """(number of workers, this worker's index, whether it is the chief: the one that writes)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or isinstance(strategy, tf.distribute.TPUStrategy):
    return 1, 0, True
  spec = resolver.cluster_spec().as_dict()
  task_type, task_id = resolver.task_type, resolver.task_id or 0
  workers = len(spec.get("worker", [])) + len(spec.get("chief", []))
  if not workers:
    return 1, 0, True
  has_chief = bool(spec.get("chief"))
  is_chief = (task_type == "chief") or (not has_chief and task_type == "worker" and task_id == 0)
  index = task_id + (1 if has_chief and task_type == "worker" else 0)
  return workers, index, is_chief
