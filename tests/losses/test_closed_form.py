"""`_closed_form._symmetric_transposed_product` against NumPy (float64).

The loss-level tests (test_gradients.py, test_blocked.py) cover it inside the
losses: unit-norm features at tau = 0.1 take the rescaled product, features far
from unit norm and tau = 0.01 the transposed one.
"""

import numpy as np
import pytest
import tensorflow as tf

from supcon.losses import _closed_form

ROWS, DIM = 9, 4


def _numerators(logits):
    """`(exps, shifts)` of a logit matrix with the diagonal excluded, as `factored_block` makes them."""
    logits = logits.copy()
    np.fill_diagonal(logits, -np.inf)
    shifts = logits.max(axis=1)
    return np.exp(logits - shifts[:, None]), shifts


def _product(exps, shifts, values):
    return _closed_form._symmetric_transposed_product(
        tf.constant(exps, tf.float32), tf.constant(shifts, tf.float32), tf.constant(values, tf.float32)
    ).numpy()


@pytest.mark.parametrize("norms", [(1.0, 1.0), (0.5, 2.0), (0.1, 10.0)])
def test_equals_the_transposed_product_of_symmetric_logits(norms):
    # Logits 10 x cosines of features with norms from norms[0] to norms[1]: shifts within
    # the rescaled product's range for the first two; the third spans hundreds, where only
    # the transposed product is right (rescaling factors of e^hundreds overflow float32).
    rng = np.random.default_rng(0)
    features = rng.normal(size=(ROWS, DIM))
    features *= (np.geomspace(*norms, ROWS) / np.linalg.norm(features, axis=1))[:, None]
    exps, shifts = _numerators(10.0 * features @ features.T)
    values = rng.normal(size=(ROWS, DIM))
    expected = exps.T @ values
    # Each entry sums ROWS terms of float32 products of exps <= 1 and values ~ 1: rounding of a few
    # ulps of the terms' total (<= ROWS * max|values|), far below a misplaced term (~1e-2 or more).
    tolerance = 1e-6 * ROWS * np.abs(values).max()
    np.testing.assert_allclose(_product(exps, shifts, values), expected, rtol=0, atol=tolerance)


def test_within_range_it_rescales_the_untransposed_product():
    # The rescaled form trusts the symmetry: with exps that are not the numerators of a
    # symmetric matrix it gives D exps D^-1 values, not exps^T values (pins which branch runs).
    rng = np.random.default_rng(1)
    exps = rng.uniform(size=(ROWS, ROWS))
    shifts = rng.uniform(-5.0, 5.0, size=ROWS)
    values = rng.normal(size=(ROWS, DIM))
    scale = np.exp(shifts - shifts.max())
    expected = scale[:, None] * (exps @ (values / scale[:, None]))
    assert not np.allclose(expected, exps.T @ values, atol=1e-2)
    np.testing.assert_allclose(_product(exps, shifts, values), expected, rtol=1e-5, atol=1e-6)


def test_a_row_that_keeps_nothing_stays_finite():
    # A row with every entry excluded has the shift EXCLUDED, values 0 and an all-zero column:
    # it must not turn into 0 * exp(1e30) = NaN, and the other rows keep the rescaled product.
    rng = np.random.default_rng(2)
    features = rng.normal(size=(ROWS, DIM))
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    logits = 10.0 * features @ features.T
    logits[3, :] = logits[:, 3] = -np.inf
    exps, shifts = _numerators(logits)
    exps[3, :] = 1.0  # As factored_block leaves such a row: uniform, finite (it is invalid).
    shifts[3] = _closed_form.EXCLUDED
    values = rng.normal(size=(ROWS, DIM))
    values[3] = 0.0
    got = _product(exps, shifts, values)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, exps.T @ values, rtol=0, atol=1e-6 * ROWS * np.abs(values).max())
