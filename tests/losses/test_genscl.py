"""Tests of `supcon.losses.genscl_loss` / `GenSCLLoss` against the NumPy reference."""

import doctest

import numpy as np
import pytest
import tensorflow as tf

import supcon.losses as losses
from supcon.losses import genscl as genscl_module
from tests.losses import reference


def _unit(shape, seed):
    x = np.random.default_rng(seed).normal(size=shape)
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("views", [1, 2, 3])
@pytest.mark.parametrize("contrast_mode", ["all", "one"])
def test_one_hot_genscl_equals_supcon_l_out(views, contrast_mode):
    # Same engine, but GenSCL's pair weights are cosines of l2-normalized one-hot vectors, not an
    # equality mask: Eigen's vectorized rsqrt gives 1 - 2 ulps on some rows (which rows depends on
    # the CPU's SIMD width), so weights are 1 only up to ~4 ulps and the losses differ by a few ulps
    # (up to 2.3e-7 relative seen). rtol 1e-5 (~80 float32 ulps) leaves room for other SIMD paths;
    # a wrong formula (L_in, another normalization) is off by > 1e-3. Samples without a positive
    # are 0 in both (a tf.where), so no atol.
    features = _unit((6, views, 5), seed=views)
    labels = np.array([0, 1, 1, 2, 0, 3])
    for temperature, base in ((0.1, None), (0.5, 0.07)):
        genscl = losses.genscl_loss(
            features, np.eye(4)[labels], temperature=temperature, base_temperature=base, contrast_mode=contrast_mode
        )
        supcon = losses.supcon_loss(
            features, labels, temperature=temperature, base_temperature=base, contrast_mode=contrast_mode
        )
        np.testing.assert_allclose(genscl.numpy(), supcon.numpy(), rtol=1e-5, atol=0)
    np.testing.assert_allclose(
        losses.GenSCLLoss()(np.eye(4)[labels], features).numpy(),
        losses.SupConLoss()(labels, features).numpy(),
        rtol=1e-5,
        atol=0,
    )


@pytest.mark.parametrize("per_view", [False, True])
def test_soft_labels_match_reference(per_view):
    rng = np.random.default_rng(3)
    features = _unit((5, 2, 4), seed=4)
    shape = (5, 2, 3) if per_view else (5, 3)
    distributions = rng.dirichlet(np.ones(3), size=shape[:-1]).astype(np.float32)
    for mode in ("all", "one"):
        got = losses.genscl_loss(features, distributions, temperature=0.2, contrast_mode=mode).numpy()
        expected = reference.genscl(features, distributions, temperature=0.2, contrast_mode=mode)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_mixup_like_targets_and_orthogonal_labels():
    # Sample 2 shares no class with anyone and has one view: no target, loss 0.
    features = _unit((3, 1, 4), seed=5)
    distributions = np.array([[0.6, 0.4, 0.0], [0.3, 0.7, 0.0], [0.0, 0.0, 1.0]], np.float32)
    got = losses.genscl_loss(features, distributions, temperature=0.5).numpy()
    np.testing.assert_allclose(got, reference.genscl(features, distributions, temperature=0.5), rtol=1e-5)
    assert got[2] == 0.0


def test_gradients_finite_at_low_temperature():
    features = _unit((4, 2, 3), seed=6)
    features[0] = 0.0
    x = tf.Variable(features)
    with tf.GradientTape() as tape:
        value = losses.GenSCLLoss(temperature=0.01)(np.eye(3)[[0, 1, 1, 2]] * 0.9 + 0.05, x)
    assert np.isfinite(value.numpy()) and np.all(np.isfinite(tape.gradient(value, x).numpy()))


def test_bad_distributions_raise():
    features = _unit((4, 2, 3), seed=7)
    with pytest.raises(ValueError, match=r"Received: label_distributions.shape=\(4,\)"):
        losses.genscl_loss(features, np.ones(4, np.float32))
    with pytest.raises(ValueError, match=r"one distribution per view.*Received"):
        losses.genscl_loss(features, np.ones((4, 3, 2), np.float32))
    with pytest.raises(ValueError, match=r"one row per sample"):
        losses.genscl_loss(features, np.ones((3, 2), np.float32))
    with pytest.raises(ValueError, match=r"Received: contrast_mode='x'"):
        losses.genscl_loss(features, np.ones((4, 2), np.float32), contrast_mode="x")


def test_docstring_examples_run():
    result = doctest.testmod(genscl_module, extraglobs={"tf": tf})
    assert result.failed == 0 and result.attempted > 0
