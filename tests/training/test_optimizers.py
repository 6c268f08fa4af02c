"""Every optimizer spares batch-norm and bias variables from weight decay; configs round-trip."""

import keras
import numpy as np
import pytest

from supcon.training.optimizers import OPTIMIZERS, build_optimizer


def _step(optimizer, names):
    """One step with zero gradients: any change is weight decay."""
    variables = [keras.Variable(np.ones((2, 2), "float32"), name=n) for n in names]
    optimizer.apply([keras.ops.zeros((2, 2)) for _ in variables], variables)
    return [v.numpy() for v in variables]


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_decay_spares_batch_norm_and_bias(name):
    optimizer = build_optimizer(name, 0.1, weight_decay=0.1)
    kernel, gamma, beta, bias = _step(optimizer, ["kernel", "gamma", "beta", "bias"])
    assert np.all(kernel < 1.0), name
    for spared in (gamma, beta, bias):
        np.testing.assert_array_equal(spared, np.ones((2, 2)))


def test_sgd_decay_is_coupled():
    # SGD with L2 in the gradient: w <- w - lr * wd * w on the first step (momentum buffer empty),
    # then the momentum carries it: second step moves by lr*wd*w1 + 0.9*(first update).
    optimizer = build_optimizer("sgd", 0.1, weight_decay=0.1, momentum=0.9)
    w = keras.Variable(np.ones((1,), "float32"), name="kernel")
    optimizer.apply([keras.ops.zeros((1,))], [w])
    optimizer.apply([keras.ops.zeros((1,))], [w])
    w1 = 1 - 0.01
    np.testing.assert_allclose(w.numpy(), [w1 - (0.01 * w1 + 0.9 * 0.01)], rtol=1e-6)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_config_round_trip(name):
    optimizer = build_optimizer(name, 0.1, weight_decay=1e-4, exclusions=("bias", "gamma"))
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(optimizer))
    assert type(restored) is type(optimizer)
    assert restored.get_config() == optimizer.get_config()


def test_bad_name():
    with pytest.raises(ValueError, match="Received: name='adagrad'"):
        build_optimizer("adagrad", 0.1)


def test_docstring_example():
    assert build_optimizer("sgd", 0.1, weight_decay=1e-4).name == "sgd"
