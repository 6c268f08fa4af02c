"""Integer-id helpers of the contrastive losses: dense ids, ranks among equal ids, per-id similarity sums.

All of them by one stable sort (`_sorted_runs`) rather than `tf.unique`, whose
output size is data-dependent: XLA compiles them, and under `tf.distribute`
every replica runs the same shapes.
"""

import tensorflow as tf


def _sorted_runs(ids):
    """`(order, run)`: the stable order sorting int `ids` `[n]`, and each sorted entry's run index.

    Runs are the groups of equal ids in sorted order, numbered 0, 1, ... By a sort rather
    than `tf.unique`, whose output size is data-dependent and which XLA cannot compile.
    """
    order = tf.argsort(ids, stable=True)
    sorted_ids = tf.gather(ids, order)
    starts = tf.cast(tf.not_equal(sorted_ids[1:], sorted_ids[:-1]), tf.int32)
    return order, tf.cumsum(tf.concat([tf.zeros([1], tf.int32), starts], axis=0))


def dense_ids(ids):
    """int32 `[n]` in `[0, n)`, equal exactly where `ids` are equal (`_sorted_runs`)."""
    order, run = _sorted_runs(ids)
    return tf.scatter_nd(order[:, None], run, tf.shape(ids))


def rank_among_equal(ids):
    """int32 `[n]`: how many earlier entries (by index) have the same id as each entry.

    `O(n log n)` by the stable sort of `_sorted_runs`: entry `i` is at position `p` of its
    id's run in the sorted order, and `p - start of the run` counts the equal ids before it.
    """
    order, run = _sorted_runs(ids)
    n = tf.shape(ids)[0]
    positions = tf.range(n)
    run_starts = tf.math.unsorted_segment_min(positions, run, n)
    return tf.scatter_nd(order[:, None], positions - tf.gather(run_starts, run), [n])


def count_equal(ids, weights=None):
    """`[n]`: for each entry, how many entries share its id (with `weights [n]`: their weights' sum).

    By the sort of `_sorted_runs`: a sum per run, read back at each entry. The result
    has `weights`' dtype (int32 counts without them).
    """
    order, run = _sorted_runs(ids)
    n = tf.shape(ids)[0]
    values = tf.ones([n], tf.int32) if weights is None else weights
    per_run = tf.math.unsorted_segment_sum(tf.gather(values, order), run, n)
    return tf.scatter_nd(order[:, None], tf.gather(per_run, run), tf.shape(values))


def pair_similarity_sums(features, ids):
    """Sums and counts of `z_i . z_j` over same-id and different-id pairs, without the `[n, n]` matrix.

    With `M_c` the sum of the features of id `c`: the same-id pairs (self
    excluded) sum to `sum_c |M_c|^2 - sum_i |z_i|^2` and all pairs to
    `|sum_i z_i|^2`, so both sums cost `O(n * dim)` (the identity behind the
    loss's `_closed_form.SameId`).

    Args:
      features: float `[n, dim]` (computed in float32).
      ids: int `[n]`.

    Returns:
      `(positive_sum, positive_count, negative_sum, negative_count)`, float32
      scalars: over ordered pairs `i != j` with equal ids, and with different ids.
    """
    features = tf.cast(features, tf.float32)
    n = tf.shape(features)[0]
    segments = dense_ids(ids)
    class_sums = tf.math.unsorted_segment_sum(features, segments, n)
    class_sizes = tf.math.unsorted_segment_sum(tf.ones([n]), segments, n)
    same = tf.reduce_sum(tf.square(class_sums))
    own = tf.reduce_sum(tf.square(features))
    total = tf.reduce_sum(tf.square(tf.reduce_sum(features, axis=0)))
    same_count = tf.reduce_sum(tf.square(class_sizes))
    n = tf.cast(n, tf.float32)
    return same - own, same_count - n, total - same, n * n - same_count
