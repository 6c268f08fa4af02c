"""Cross-replica negatives: 2 replicas on 2 logical CPUs equal one device on the global batch."""

import numpy as np
import pytest
import tensorflow as tf

import supcon.losses as losses
from tests.conftest import LOGICAL_CPUS


pytestmark = pytest.mark.skipif(len(LOGICAL_CPUS) < 2, reason="needs 2 logical CPU devices")

BATCH, VIEWS, DIM, OUT = 8, 2, 5, 4


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(BATCH, VIEWS, DIM)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2, 3, 0], np.int32)
    return x, labels


def _project(x, kernel):
    return tf.math.l2_normalize(tf.einsum("bvd,do->bvo", x, kernel), axis=-1)


def _split(strategy, array):
    halves = np.split(array, 2)
    return strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant(halves[context.replica_id_in_sync_group])
    )


LOSS_FNS = {
    "supcon": lambda z, y: losses.supcon_loss(z, y, temperature=0.2),
    "supcon_inside_cap": lambda z, y: losses.supcon_loss(
        z, y, temperature=0.2, summation="inside", positives_cap=2, denominator="one_positive"
    ),
    "supcon_blocked": lambda z, y: losses.supcon_loss(z, y, temperature=0.2, block_size=3),
    "simclr": lambda z, y: losses.supcon_loss(z, None, temperature=0.5),
    "genscl": lambda z, y: losses.genscl_loss(z, tf.one_hot(y, 4) * 0.8 + 0.05, temperature=0.2),
}


@pytest.mark.parametrize("name", sorted(LOSS_FNS))
def test_two_replicas_equal_one_device_on_the_global_batch(name, two_replica_strategy):
    loss_fn = LOSS_FNS[name]
    x, labels = _data()
    kernel_init = np.random.default_rng(1).normal(size=(DIM, OUT)).astype(np.float32)

    # Single device, full batch.
    kernel = tf.Variable(kernel_init)
    features = tf.constant(x)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(features)
        full_loss = tf.reduce_mean(loss_fn(_project(features, kernel), labels))
    full_kernel_grad = tape.gradient(full_loss, kernel).numpy()
    full_feature_grad = tape.gradient(full_loss, features).numpy()

    strategy = two_replica_strategy
    with strategy.scope():
        dist_kernel = tf.Variable(kernel_init)

    @tf.function
    def replica_step(local_x, local_labels):
        with tf.GradientTape() as tape:
            tape.watch(local_x)
            local_loss = tf.reduce_mean(loss_fn(_project(local_x, dist_kernel), local_labels))
            scaled = local_loss / strategy.num_replicas_in_sync
        kernel_grad, feature_grad = tape.gradient(scaled, [dist_kernel, local_x])
        return local_loss, kernel_grad, feature_grad

    @tf.function
    def run(dx, dy):
        return strategy.run(replica_step, args=(dx, dy))

    local_losses, kernel_grads, feature_grads = run(_split(strategy, x), _split(strategy, labels))
    local_losses = [t.numpy() for t in strategy.experimental_local_results(local_losses)]
    kernel_grad_sum = sum(t.numpy() for t in strategy.experimental_local_results(kernel_grads))
    feature_grad = np.concatenate([t.numpy() for t in strategy.experimental_local_results(feature_grads)])

    np.testing.assert_allclose(np.mean(local_losses), full_loss.numpy(), rtol=1e-5)
    np.testing.assert_allclose(kernel_grad_sum, full_kernel_grad, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(feature_grad, full_feature_grad, rtol=1e-4, atol=1e-6)

    # ... and not what two independent half-batch losses give.
    halves = [
        tf.reduce_mean(loss_fn(_project(tf.constant(h), kernel), l)).numpy()
        for h, l in zip(np.split(x, 2), np.split(labels, 2))
    ]
    assert not np.allclose(np.mean(halves), full_loss.numpy(), rtol=1e-3)


def test_keras_loss_under_two_replicas_sums_to_the_global_mean_over_valid_samples(two_replica_strategy):
    x, _ = _data(seed=2)
    z = tf.math.l2_normalize(tf.constant(x[:, :1]), axis=-1).numpy()  # one view: some samples lack positives
    labels = np.array([0, 1, 0, 2, 3, 4, 5, 1], np.int32)  # valid: 0, 1, 2, 7 -> 3 on replica 0, 1 on replica 1
    loss = losses.SupConLoss(temperature=0.3)
    expected = loss(labels, z).numpy()
    strategy = two_replica_strategy

    @tf.function
    def run(dz, dy):
        return strategy.run(lambda a, b: loss(b, a), args=(dz, dy))

    per_replica = run(_split(strategy, z), _split(strategy, labels))
    total = sum(t.numpy() for t in strategy.experimental_local_results(per_replica))
    np.testing.assert_allclose(total, expected, rtol=1e-5)
