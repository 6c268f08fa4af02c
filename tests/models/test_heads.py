"""Tests for supcon.models.heads."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from supcon.models import ClassifierHead
from supcon.models import ProjectionHead


def test_projection_head_mlp_is_normalized():
    head = ProjectionHead(dims=(32, 8))
    z = keras.ops.convert_to_numpy(head(np.random.default_rng(0).normal(size=(4, 16)).astype("float32")))
    assert z.shape == (4, 8) and z.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(z, axis=-1), 1.0, rtol=1e-5)
    assert [w.shape for w in head.trainable_weights] == [(16, 32), (32,), (32, 8), (8,)]


def test_projection_head_linear_and_batch_norm_variants():
    linear = ProjectionHead(dims=8, normalize=False)
    linear.build((None, 16))
    assert [w.shape for w in linear.trainable_weights] == [(16, 8), (8,)]
    x = np.ones((2, 16), "float32")
    expected = x @ keras.ops.convert_to_numpy(linear.trainable_weights[0]) + keras.ops.convert_to_numpy(linear.trainable_weights[1])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(linear(x)), expected, rtol=1e-5)
    bn = ProjectionHead(dims=(32, 32, 8), batch_norm=True)
    bn.build((None, 16))
    # Hidden Dense layers lose their bias to the batch norm; the output layer keeps it.
    assert [w.shape for w in bn.trainable_weights] == [(16, 32), (32,), (32,), (32, 32), (32,), (32,), (32, 8), (8,)]


def test_projection_head_output_is_float32_under_mixed_precision(restore_policy):
    keras.config.set_dtype_policy("mixed_float16")
    head = ProjectionHead(dims=(16, 4))
    z = head(np.ones((2, 8), "float32"))
    assert head.compute_dtype == "float16" and z.dtype == "float32"


def test_classifier_head_stop_gradient():
    x = tf.Variable(np.ones((2, 8), "float32"))
    for stop, expect_none in [(True, True), (False, False)]:
        head = ClassifierHead(3, stop_gradient=stop)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(head(x))
        grad = tape.gradient(loss, x)
        assert (grad is None) == expect_none
    assert ClassifierHead(3, normalize=True)(x).shape == (2, 3)


@pytest.mark.parametrize(
    "layer",
    [ProjectionHead(dims=(16, 4), batch_norm=True, normalize=False), ClassifierHead(5, normalize=True, stop_gradient=False)],
)
def test_heads_round_trip_through_config(layer):
    x = np.random.default_rng(0).normal(size=(3, 8)).astype("float32")
    y = keras.ops.convert_to_numpy(layer(x))
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert restored.get_config() == layer.get_config()
    restored.build((None, 8))
    restored.set_weights(layer.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(restored(x)), y, rtol=1e-6)


def test_invalid_head_arguments():
    with pytest.raises(ValueError, match="Received: dims=()"):
        ProjectionHead(dims=())
    with pytest.raises(ValueError, match="Received: num_classes=0"):
        ClassifierHead(0)


def test_training_checkpoints_hold_every_head_variable(tmp_path):
    # tf.train.Checkpoint does not follow Keras' tracked lists; batch-norm moving statistics of
    # the head were missing from the training checkpoints (resumed runs were not exact with them).
    import tensorflow as tf  # noqa: PLC0415

    head = ProjectionHead(dims=(8, 8, 4), batch_norm=True)
    head(keras.ops.ones((2, 6)))
    path = tf.train.Checkpoint(head=head).save(str(tmp_path / "ckpt"))
    saved = [name for name, _ in tf.train.list_variables(path) if name.startswith("head/")]
    assert len(saved) == len(head.variables) == 3 + 1 + 2 * 4  # 3 kernels, 1 bias, 2 x 4 BN.
