"""The integer-id helpers (`supcon.losses._ids`), against plain Python."""

import numpy as np
import pytest
import tensorflow as tf

from supcon.losses import _ids


@pytest.mark.parametrize("ids", [[3], [5, 5, 5], [2, 0, 2, 1, 0, 2, 7], [-4, 9, -4, 9, 9, 0, -4, 2**31 - 1]])
def test_rank_among_equal_counts_earlier_equal_ids(ids):
    expected = [sum(1 for earlier in ids[:i] if earlier == value) for i, value in enumerate(ids)]
    np.testing.assert_array_equal(_ids.rank_among_equal(tf.constant(ids, tf.int32)).numpy(), expected)


def test_dense_ids_are_equal_exactly_where_ids_are():
    ids = tf.constant([7, -1, 7, 3, -1, 12], tf.int32)
    dense = _ids.dense_ids(ids).numpy()
    assert dense.min() >= 0 and dense.max() < 6
    same = ids.numpy()[:, None] == ids.numpy()[None, :]
    np.testing.assert_array_equal(dense[:, None] == dense[None, :], same)


@pytest.mark.parametrize("ids", [[3], [5, 5, 5], [2, 0, 2, 1, 0, 2, 7], [-4, 9, -4, 9, 9, 0, -4, 2**31 - 1]])
def test_count_equal_counts_and_sums_over_equal_ids(ids):
    weights = np.arange(1, len(ids) + 1, dtype=np.int32)
    np.testing.assert_array_equal(
        _ids.count_equal(tf.constant(ids, tf.int32)).numpy(), [ids.count(value) for value in ids]
    )
    np.testing.assert_array_equal(
        _ids.count_equal(tf.constant(ids, tf.int32), tf.constant(weights)).numpy(),
        [sum(w for other, w in zip(ids, weights) if other == value) for value in ids],
    )
