"""LARS against a NumPy reference written from You et al. 2017 (arXiv 1708.03888), Algorithm 1."""

import keras
import numpy as np
import pytest

from supcon.training.lars import LARS


def _reference(w, grads, lr, momentum, wd, eta, exclude, nesterov=False):
    v = np.zeros_like(w)
    for g in grads:
        if not exclude:
            g = g + wd * w
            w_norm, g_norm = np.linalg.norm(w), np.linalg.norm(g)
            local_lr = lr * (eta * w_norm / g_norm if w_norm > 0 and g_norm > 0 else 1.0)
        else:
            local_lr = lr
        v = momentum * v + local_lr * g
        w = w - (momentum * v + local_lr * g if nesterov else v)
    return w


@pytest.mark.parametrize("name,exclude", [("kernel", False), ("gamma", True), ("bias", True)])
@pytest.mark.parametrize("nesterov", [False, True])
def test_matches_reference(name, exclude, nesterov):
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(3, 4)).astype("float32")
    grads = [rng.normal(size=(3, 4)).astype("float32") for _ in range(3)]
    opt = LARS(learning_rate=0.5, momentum=0.9, weight_decay_rate=0.01, eta=0.01, nesterov=nesterov)
    w = keras.Variable(w0, name=name)
    for g in grads:
        opt.apply([keras.ops.convert_to_tensor(g)], [w])
    expected = _reference(w0, grads, 0.5, 0.9, 0.01, 0.01, exclude, nesterov)
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_zero_weights_use_trust_ratio_one():
    opt = LARS(learning_rate=0.1, momentum=0.0, eta=0.001)
    w = keras.Variable(np.zeros((2,), "float32"), name="kernel")
    opt.apply([keras.ops.ones((2,))], [w])
    np.testing.assert_allclose(w.numpy(), [-0.1, -0.1], rtol=1e-6)


def test_without_layer_adaptation_is_sgd_with_l2():
    w0 = np.array([1.0, -2.0], "float32")
    opt = LARS(learning_rate=0.1, momentum=0.9, weight_decay_rate=0.1, layer_adaptation=False)
    w = keras.Variable(w0, name="kernel")
    g = np.array([0.5, 0.5], "float32")
    opt.apply([keras.ops.convert_to_tensor(g)], [w])
    np.testing.assert_allclose(w.numpy(), w0 - 0.1 * (g + 0.1 * w0), rtol=1e-6)


def test_config_round_trip_keeps_exclusions():
    opt = LARS(
        learning_rate=0.3,
        weight_decay_rate=1e-6,
        eta=0.002,
        nesterov=True,
        exclude_from_weight_decay=("bias", "my_bn"),
        exclude_from_layer_adaptation=("bias",),
    )
    config = keras.saving.serialize_keras_object(opt)
    restored = keras.saving.deserialize_keras_object(config)
    assert isinstance(restored, LARS)
    assert restored.get_config() == opt.get_config()
    assert restored.exclude_from_weight_decay_patterns == ("bias", "my_bn")
    assert restored.exclude_from_layer_adaptation == ("bias",)


@pytest.mark.parametrize(
    "kwargs,name",
    [({"momentum": 1.0}, "momentum"), ({"weight_decay_rate": -1.0}, "weight_decay_rate"),
     ({"eta": 0.0}, "eta"), ({"weight_decay": 0.1}, "weight_decay")],
)
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"Received: {name}="):
        LARS(**kwargs)


def test_docstring_example():
    opt = LARS(learning_rate=0.1, weight_decay_rate=1e-6)
    w = keras.Variable([[3.0, 4.0]], name="kernel")
    opt.apply([keras.ops.ones((1, 2))], [w])
    assert w.shape == (1, 2)
