"""Under tf.distribute the losses are scaled by the replica count once (by Keras), not twice."""

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from official import losses

# Two logical CPU devices, as in Keras' backend/tensorflow/distribute_test.py. This must run
# before TensorFlow initialises its devices, i.e. at import, before any test executes an op.
try:
  tf.config.set_logical_device_configuration(
      tf.config.list_physical_devices("CPU")[0],
      [tf.config.LogicalDeviceConfiguration()] * 2)
except RuntimeError:
  # Devices were initialised by an earlier module in this process; the test below skips.
  pass


class MirroredLossTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters([(f"_{name}", name) for name in losses.NAMES])
  def test_sum_over_replicas_is_the_global_batch_mean(self, name):
    if len(tf.config.list_logical_devices("CPU")) < 2:
      self.skipTest("two logical CPU devices must be configured before TF initialises")
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((8, 5)).astype(np.float32) * 3
    labels = rng.integers(0, 5, size=8)
    loss = losses.get(name)
    global_mean = float(loss(labels, logits))

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    shards = strategy.experimental_distribute_values_from_function(
        lambda ctx: (labels[ctx.replica_id_in_sync_group::2],
                     logits[ctx.replica_id_in_sync_group::2]))
    per_replica = strategy.run(lambda shard: loss(*shard), args=(shards,))
    replica_values = strategy.experimental_local_results(per_replica)
    # Each replica returns its local mean / 2; their sum (what gradient all-reduce adds) is the
    # global mean.
    local_means = [float(loss(labels[i::2], logits[i::2])) for i in range(2)]
    self.assertAllClose([float(v) for v in replica_values], np.array(local_means) / 2,
                        rtol=1e-6)
    self.assertAllClose(float(strategy.reduce("SUM", per_replica, axis=None)), global_mean,
                        rtol=1e-6)


if __name__ == "__main__":
  tf.test.main()
