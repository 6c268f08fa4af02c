"""Tests for supcon.data.mixing: MixUp/CutMix per view against a NumPy reference."""

import numpy as np
import pytest
import tensorflow as tf

from supcon import data

BATCH, VIEWS, SIZE = 6, 2, 8


def _batch():
    # Sample i has class i and constant pixel value 40 * i: a mixed image's mean pixel
    # is then the label distribution's expectation of 40 * class.
    labels = np.arange(BATCH, dtype=np.int32)
    values = 40.0 * labels
    views = np.broadcast_to(values[:, None, None, None, None],
                            (BATCH, VIEWS, SIZE, SIZE, 3)).astype(np.float32)
    return tf.constant(views), tf.constant(labels), values


@pytest.mark.parametrize("mixup,cutmix", [(1.0, 0.0), (0.0, 1.0), (0.4, 1.0)])
def test_distributions_sum_to_one_and_match_the_pixels(mixup, cutmix):
    views, labels, values = _batch()
    mixed, dists = data.mix_views(views, labels, BATCH, tf.constant([5, 6]),
                                  mixup=mixup, cutmix=cutmix)
    mixed, dists = mixed.numpy(), dists.numpy()
    assert mixed.shape == (BATCH, VIEWS, SIZE, SIZE, 3) and dists.shape == (BATCH, VIEWS, BATCH)
    assert dists.dtype == np.float32 and dists.min() >= 0.0
    np.testing.assert_allclose(dists.sum(-1), 1.0, atol=1e-5)
    expected_mean = dists @ values  # [B, V]
    # CutMix's weight comes from the continuous box: up to one row+column of 8 pixels off.
    atol = 1e-3 if cutmix == 0 else 40.0 * BATCH * (2 * SIZE) / SIZE**2
    np.testing.assert_allclose(mixed.mean(axis=(2, 3, 4)), expected_mean, atol=atol)
    # Each view is mixed on its own: the two views' distributions differ.
    assert not np.allclose(dists[:, 0], dists[:, 1])
    again = data.mix_views(views, labels, BATCH, tf.constant([5, 6]), mixup=mixup, cutmix=cutmix)
    np.testing.assert_array_equal(again[1].numpy(), dists)


def test_no_mixing_gives_one_hot():
    views, labels, _ = _batch()
    mixed, dists = data.mix_views(views, labels, BATCH, tf.constant([0, 1]))
    np.testing.assert_array_equal(mixed.numpy(), views.numpy())
    np.testing.assert_array_equal(dists.numpy()[:, 1], np.eye(BATCH))


def test_mixing_argument_errors():
    views, labels, _ = _batch()
    with pytest.raises(ValueError, match="cutmix=2"):
        data.mix_views(views, labels, BATCH, tf.constant([0, 1]), cutmix=2)
    with pytest.raises(ValueError, match="mixup=-1"):
        data.mix_views(views, labels, BATCH, tf.constant([0, 1]), mixup=-1)
