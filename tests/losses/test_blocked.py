"""The blocked (recomputing) path equals the dense path: values and gradients (big_vision style)."""

import numpy as np
import pytest
import tensorflow as tf

import supcon.losses as losses


def _unit(shape, seed):
    x = np.random.default_rng(seed).normal(size=shape)
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _value_and_grad(loss_fn, features, **kwargs):
    x = tf.Variable(features)
    with tf.GradientTape() as tape:
        per_sample = loss_fn(x, **kwargs)
        # A non-uniform weighting checks that per-anchor upstream gradients are routed right.
        value = tf.reduce_sum(per_sample * tf.range(1.0, 1.0 + tf.cast(tf.shape(per_sample)[0], tf.float32)))
    return per_sample.numpy(), tape.gradient(value, x).numpy()


OPTION_SETS = [
    dict(labels=[0, 1, 2, 0, 1, 2, 0]),
    dict(labels=[0, 0, 0, 1, 1, 2, 3], summation="inside", denominator="one_positive", positives_cap=2),
    dict(labels=None, denominator="only_negatives", contrast_mode="one"),
    dict(labels=[0, 1, 0, 1, 0, 1, 0], temperature=0.01, base_temperature=0.07),
]


@pytest.mark.parametrize("options", OPTION_SETS, ids=range(len(OPTION_SETS)))
@pytest.mark.parametrize("block_size", [1, 3, 5, 64])
def test_supcon_blocked_equals_dense(options, block_size):
    features = _unit((7, 2, 5), seed=block_size)
    dense_value, dense_grad = _value_and_grad(losses.supcon_loss, features, **options)
    value, grad = _value_and_grad(losses.supcon_loss, features, block_size=block_size, **options)
    np.testing.assert_allclose(value, dense_value, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad, dense_grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("block_size", [2, 4])
def test_genscl_blocked_equals_dense(block_size):
    features = _unit((5, 3, 4), seed=1)
    distributions = np.random.default_rng(2).dirichlet(np.ones(3), size=(5, 3)).astype(np.float32)
    dense = _value_and_grad(losses.genscl_loss, features, label_distributions=distributions)
    blocked = _value_and_grad(losses.genscl_loss, features, label_distributions=distributions, block_size=block_size)
    for got, expected in zip(blocked, dense):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_blocked_inside_tf_function_with_unknown_batch():
    features = _unit((9, 2, 4), seed=3)
    labels = np.array([0, 1, 2] * 3, np.int32)

    @tf.function(input_signature=[tf.TensorSpec([None, 2, 4]), tf.TensorSpec([None], tf.int32)])
    def value_and_grad(x, y):
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = tf.reduce_mean(losses.supcon_loss(x, y, block_size=4))
        return value, tape.gradient(value, x)

    value, grad = value_and_grad(features, labels)
    dense_value, dense_grad = _value_and_grad(losses.supcon_loss, features, labels=labels)
    np.testing.assert_allclose(value.numpy(), dense_value.mean(), rtol=1e-5)
    # _value_and_grad weights samples 1..B; recompute the plain-mean gradient for comparison.
    x = tf.Variable(features)
    with tf.GradientTape() as tape:
        mean = tf.reduce_mean(losses.supcon_loss(x, labels))
    np.testing.assert_allclose(grad.numpy(), tape.gradient(mean, x).numpy(), rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("options", OPTION_SETS, ids=range(len(OPTION_SETS)))
@pytest.mark.parametrize("block_size", [None, 3])
def test_xla_compiled_values_and_gradients_equal_eager(options, block_size):
    # Keras compiles train steps with XLA by default ("auto"): the loss must give
    # the eager gradients there too (a tf.minimum tie at the row max once did
    # not), and every block must have a static shape.
    features = _unit((7, 2, 5), seed=4)
    options = dict(options)
    labels = options.pop("labels")

    @tf.function(jit_compile=True)
    def value_and_grad(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = tf.reduce_mean(losses.supcon_loss(x, labels, block_size=block_size, **options))
        return value, tape.gradient(value, x)

    value, grad = value_and_grad(tf.constant(features))
    x = tf.Variable(features)
    with tf.GradientTape() as tape:
        eager = tf.reduce_mean(losses.supcon_loss(x, labels, **options))
    np.testing.assert_allclose(value.numpy(), eager.numpy(), rtol=1e-5)
    np.testing.assert_allclose(grad.numpy(), tape.gradient(eager, x).numpy(), rtol=1e-4, atol=1e-6)


def test_eager_blocked_call_runs_one_traced_function():
    # Eagerly, the block loop would run op by op (measured 1.44-1.5x the dense time at 8192x2):
    # the blocked loss runs as a tf.function, traced once per options and given tensors, and
    # reused for new values of the same shapes. Values and gradients stay the dense ones.
    from supcon.losses import _engine  # noqa: PLC0415

    options = dict(temperature=0.123, block_size=3)
    labels = np.array([0, 1, 0, 2, 1], np.int32)
    for seed in (1, 2):
        features = _unit((5, 2, 4), seed=seed)
        dense_value, dense_grad = _value_and_grad(losses.supcon_loss, features, labels=labels, temperature=0.123)
        value, grad = _value_and_grad(losses.supcon_loss, features, labels=labels, **options)
        np.testing.assert_allclose(value, dense_value, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(grad, dense_grad, rtol=1e-4, atol=1e-6)
    traced = [fn for key, fn in _engine._TRACED_BLOCKED.items() if key[0].temperature == 0.123]
    assert len(traced) == 1 and traced[0].experimental_get_tracing_count() == 1


@pytest.mark.parametrize("loss_name", ["supcon", "genscl_with_keys"])
def test_eager_blocked_call_takes_variables_of_changing_views(loss_name):
    # A notebook passes tf.Variables. The traced blocked function relaxes its shapes at the
    # second shape it meets; a variable handed to it as such kept the shape of the trace it
    # matched, so a third views count computed with the second's (a reshape error in GenSCL).
    rng = np.random.default_rng(3)
    distributions = rng.dirichlet(np.ones(3), size=5).astype(np.float32)
    keys = tf.Variable(_unit((4, 6), seed=9))
    key_distributions = rng.dirichlet(np.ones(3), size=4).astype(np.float32)

    def loss(features, **options):
        if loss_name == "supcon":
            return losses.supcon_loss(features, labels=[0, 1, 0, 2, 1], temperature=0.321, **options)
        return losses.genscl_loss(
            features, distributions, temperature=0.321, contrast_features=keys,
            contrast_label_distributions=key_distributions, **options
        )

    for views in (1, 2, 3):
        features = _unit((5, views, 6), seed=views)
        dense_value, dense_grad = _value_and_grad(loss, features)
        value, grad = _value_and_grad(loss, features, block_size=2)
        np.testing.assert_allclose(value, dense_value, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(grad, dense_grad, rtol=1e-4, atol=1e-6)
