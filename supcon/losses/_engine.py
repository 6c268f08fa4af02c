"""The contrastive-loss engine shared by SupCon, SimCLR and GenSCL.

Every loss of the family is, for an anchor view ``i`` and the other views ``j`` of
the (global) batch,

    loss_i = - sum_j  w_ij * log( exp(z_i . z_j / tau) / D_ij )  /  sum_j w_ij

with non-negative pair weights ``w`` (binary positives for SupCon / SimCLR,
label similarities for GenSCL) and a denominator ``D`` (Khosla et al.,
arXiv 2004.11362, Eq. 2; the "inside" summation of Eq. 3 moves the mean inside
the log). The ``j`` may also run over extra contrast keys (a MoCo-style memory
queue, He et al., arXiv 1911.05722): key columns follow the batch columns,
are never anchors and are not gathered across replicas. This module lays out
the anchors and contrast columns over the global batch and builds each block's
pair weights; `supcon.losses._blocks` runs the blocks (densely or with
recomputation) and `supcon.losses._ids` holds the integer-id helpers.

Why this is hand-written: neither Keras 3, keras-cv nor keras-hub ship a
supervised contrastive loss; TF Model Garden and the official code materialize
the full ``(VB) x (VB)`` logits, mask with large constants, and do not gather
negatives across replicas in the loss.

The per-block mathematics and their closed-form gradients are
`supcon.losses._closed_form`; everything runs in float32 whatever the input
dtype.
"""

import collections

import tensorflow as tf

from supcon.losses import _blocks
from supcon.losses import _closed_form
from supcon.losses import _ids


# What a pair-weight function sees for a block of anchor rows and all contrast
# columns. Sample indices index the global batch; `anchor_local` indexes this
# replica's batch; `gathered` holds the loss's extra per-sample tensors (labels,
# label distributions) gathered over the global batch.
Pairs = collections.namedtuple(
    "Pairs",
    ["anchor_samples", "anchor_local", "anchor_views", "contrast_samples", "contrast_views", "gathered"],
)


def replica_gather(features, *others):
    """Concatenates per-replica tensors over the global batch (differentiable).

    In a `tf.distribute` replica context with more than one replica, returns
    the features of every replica in replica order (gradients flow back to the
    replica that produced them) and this replica's row offset in the result.
    Elsewhere it is the identity with offset 0.

    Args:
      features: float `[local_batch, ...]`.
      *others: further `[local_batch, ...]` tensors (labels), gathered alike.

    Returns:
      `(global_features, global_others, offset)`.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return features, list(others), tf.constant(0, tf.int32)
    # ReplicaContext.all_gather is differentiable: its gradient sums the
    # upstream gradients over replicas and keeps this replica's rows, so every
    # replica's anchors train every replica's features.
    sizes = context.all_gather(tf.shape(features)[:1], axis=0)
    offset = tf.reduce_sum(sizes[: context.replica_id_in_sync_group])
    gathered = context.all_gather(features, axis=0)
    gathered_others = [
        tf.stop_gradient(context.all_gather(other, axis=0)) for other in others
    ]
    return gathered, gathered_others, offset


def num_replicas():
    """Replicas in sync in the current replica context (1 outside tf.distribute)."""
    context = tf.distribute.get_replica_context()
    return 1 if context is None else context.num_replicas_in_sync


class _CappedIdWeights:
    """The positives cap for positives given by ids, from per-sample ranks (no row-wise scans).

    The cap keeps the first `positives_cap // views` other positive samples of an anchor by
    global index, every view of each (see `contrastive_per_sample`). With ids, sample `j`'s
    place among anchor `i`'s other positives is its rank among the samples of its id
    (`rank_among_equal`), less one when it follows `i`: so `j` is kept iff that rank is at
    most `limit` for an anchor ranked below `limit`, below `limit` for the others. The
    ranks cost `O(batch log batch)` once per call; a block of anchors then needs a few
    elementwise `[rows, cols]` comparisons (the explicit-mask cap ranks each row with a
    cumulative sum, `[rows, batch]` per block). Keys (single views) fill what the samples
    left of the cap, `positives_cap - views * kept samples`, in slot order: by their rank
    among the present keys of their id.

    Args:
      sample_ids: int32 `[global_batch]`.
      views: int scalar.
      positives_cap: python int.
      contrast_samples: int32 `[views * global_batch]`, each batch column's sample.
      keys: None, or `(key_labels int32 [keys], key_valid bool [keys])`.
    """

    def __init__(self, sample_ids, views, positives_cap, contrast_samples, keys):
        self._sample_ids, self._contrast_samples = sample_ids, contrast_samples
        self._views, self._cap, self._limit = views, positives_cap, positives_cap // views
        self._column_ids = tf.gather(sample_ids, contrast_samples)
        self._sample_rank = _ids.rank_among_equal(sample_ids)
        self._column_rank = tf.gather(self._sample_rank, contrast_samples)
        self._keys = keys
        self._others = _ids.count_equal(sample_ids) - 1  # Each sample's other positive samples.
        if keys is not None:
            key_labels, key_valid = keys
            # Absent slots share an id no present key has (int64: no overflow), so they do not rank.
            wide = tf.cast(key_labels, tf.int64)
            self._key_rank = _ids.rank_among_equal(tf.where(key_valid, wide, tf.reduce_min(wide) - 1))
            self._key_counts = _key_counts(sample_ids, key_labels, key_valid)

    def __call__(self, anchor_samples):
        """`(positives bool [rows, cols], dropped bool [rows, cols], counts float32 [rows])` of these anchors.

        `counts` is each anchor's kept positives, itself excluded: `views` for each
        kept sample (its own other views, and `min(limit, others)` other samples),
        and the keys that fit in what is left of the cap.
        """
        anchor_ids = tf.gather(self._sample_ids, anchor_samples)
        same = tf.equal(anchor_ids[:, None], self._column_ids[None, :])
        anchor_rank = tf.gather(self._sample_rank, anchor_samples)
        threshold = tf.where(anchor_rank < self._limit, self._limit, self._limit - 1)
        dropped = tf.logical_and(
            tf.logical_and(same, self._column_rank[None, :] > threshold[:, None]),
            tf.not_equal(self._contrast_samples[None, :], anchor_samples[:, None]),
        )
        positives = tf.logical_and(same, tf.logical_not(dropped))
        kept_samples = tf.minimum(self._limit, tf.gather(self._others, anchor_samples))
        counts = tf.cast(self._views * (1 + kept_samples) - 1, tf.float32)
        if self._keys is None:
            return positives, dropped, counts
        key_labels, key_valid = self._keys
        budget = self._cap - self._views * kept_samples
        key_same = tf.logical_and(tf.equal(anchor_ids[:, None], key_labels[None, :]), key_valid[None, :])
        over_cap = self._key_rank[None, :] >= budget[:, None]
        key_dropped = tf.logical_or(tf.logical_not(key_valid)[None, :], tf.logical_and(key_same, over_cap))
        key_positives = tf.logical_and(key_same, tf.logical_not(over_cap))
        kept_keys = tf.clip_by_value(budget, 0, tf.gather(self._key_counts, anchor_samples))
        return (
            tf.concat([positives, key_positives], axis=1),
            tf.concat([dropped, key_dropped], axis=1),
            counts + tf.cast(kept_keys, tf.float32),
        )


def _key_counts(sample_ids, key_labels, key_valid):
    """int32 `[samples]`: how many present keys have each sample's id (int64 ids: no overflow)."""
    samples = tf.cast(sample_ids, tf.int64)
    keys = tf.cast(key_labels, tf.int64)
    absent = tf.minimum(tf.reduce_min(samples), tf.reduce_min(keys)) - 1  # An id nobody has.
    is_key = tf.concat([tf.zeros_like(sample_ids), tf.ones_like(key_labels)], axis=0)
    counts = _ids.count_equal(tf.concat([samples, tf.where(key_valid, keys, absent)], axis=0), is_key)
    return counts[: tf.shape(samples)[0]]


# Traced `contrastive_per_sample` for eager blocked calls, per options and set of given tensors.
_TRACED_BLOCKED = {}
_MAX_TRACED_BLOCKED = 64


def _traced_blocked_loss(features, options, **tensors):
    """`contrastive_per_sample` with `block_size`, called eagerly: its block loop runs as a graph.

    An eager `tf.while_loop` is a Python loop running every op of every block
    one at a time, with no overlap between the small `[cols, dim]` ops and the
    matmuls: measured 1.44-1.5x the dense time at 8192x2 in blocks of 512,
    against 0.97-1.07x as a `tf.function`. So an eager call runs the same
    computation as a `tf.function`, traced once per options and set of given
    tensors (and retraced only for new shapes, with relaxed shapes after the
    first retrace). Its gradient is still the blocks' closed form: the tape
    records the function call, whose gradient is the `tf.custom_gradient`
    inside. (Explicit pair-weight functions (`mask=`) are Python closures, not
    tensors: they keep the eager loop.) Variables (`tf.Variable` features or
    keys) are read into tensors first: a traced function takes a variable's
    shape from the trace it matches, so a relaxed trace would compute with a
    previous call's views count (an error at the third views count in a row).
    The read is on the tape, so gradients still reach the variables.
    """
    features = tf.convert_to_tensor(features)
    tensors = {name: None if value is None else tf.convert_to_tensor(value) for name, value in tensors.items()}
    given = tuple(sorted(name for name, value in tensors.items() if value is not None))
    key = (options, given)
    traced = _TRACED_BLOCKED.get(key)
    if traced is None:
        if len(_TRACED_BLOCKED) >= _MAX_TRACED_BLOCKED:  # A bound for sweeps over many options.
            _TRACED_BLOCKED.clear()

        def run(features, given_tensors):
            return contrastive_per_sample(features, options, **given_tensors)

        traced = _TRACED_BLOCKED[key] = tf.function(run, reduce_retracing=True)
    return traced(features, {name: tensors[name] for name in given})


def contrastive_per_sample(
    features,
    options,
    *,
    labels=None,
    label_vectors=None,
    pair_weights_fn=None,
    replica_tensors=(),
    keys=None,
    key_valid=None,
    key_labels=None,
    key_vectors=None,
):
    """Lays out anchors and contrasts over the global batch and averages per sample.

    Anchors are this replica's views (all of them, or view 0 with
    `contrast_mode="one"`); contrasts are every view of every sample of the
    global batch, view-major (view 0 of all samples, then view 1, ...),
    followed by the keys, if any. `positives_cap` keeps the first
    `positives_cap // views` other positive samples by global index, each with
    all its views, then fills what is left of the cap with positive keys, one
    view each, in slot order.

    Positives are given by ids (`labels`, or without them, without
    `label_vectors` and without `pair_weights_fn` the sample itself, SimCLR),
    by unit label vectors (GenSCL's cosine weights), or by `pair_weights_fn`.
    With ids or label vectors, L_out with the "all" denominator and no cap
    takes `_closed_form.factored_block`, which never builds the `[rows, cols]`
    weights (with ids, also the "only_negatives" denominator: one `[rows, cols]`
    positive mask); every other case `_closed_form.weighted_block`.

    Args:
      features: float32 `[local_batch, views, dim]`.
      options: a `supcon.losses.ContrastOptions`.
      labels: None or int32 `[local_batch]` class ids: positives are the
        other views with the same id (gathered across replicas).
      label_vectors: None or float32 `[local_batch, views, classes]` unit
        label vectors with non-negative entries: `w_ij = u_i . u_j` (gathered
        across replicas); only with L_out, the "all" denominator and no cap.
      pair_weights_fn: None or `(pairs: Pairs) -> float32 [rows, cols]`, the
        non-negative weight of each (anchor, contrast) pair (an explicit
        mask); exclusive with `labels` and `label_vectors`.
      replica_tensors: `[local_batch, ...]` tensors that `pair_weights_fn`
        needs gathered alongside the features.
      keys: None or float32 `[keys, dim]` extra contrast columns. Every
        replica holds the same keys, so they are appended once, not gathered.
      key_valid: bool `[keys]` (with `keys`): false slots are absent, out of
        both numerator and denominator.
      key_labels: None or int32 `[keys]` (with `keys` and ids): a key is a
        positive of the anchors with its id; None makes every key a negative.
      key_vectors: float32 `[keys, classes]` unit label vectors (with `keys`
        and `label_vectors`).

    Returns:
      `(per_sample, valid)`: float32 `[local_batch]` (mean over anchor views,
      invalid anchors counting 0) and bool `[local_batch]` (the sample has at
      least one valid anchor view).
    """
    if (
        options.block_size is not None
        and pair_weights_fn is None
        and tf.executing_eagerly()
        and num_replicas() == 1  # Not in an eager replica thread: one function, one replica.
    ):
        return _traced_blocked_loss(
            features, options, labels=labels, label_vectors=label_vectors, keys=keys, key_valid=key_valid,
            key_labels=key_labels, key_vectors=key_vectors,
        )
    local_batch = tf.shape(features)[0]
    views = tf.shape(features)[1]
    by_ids = pair_weights_fn is None and label_vectors is None
    per_sample = (labels,) if labels is not None else (label_vectors,) if label_vectors is not None else ()
    global_features, gathered, offset = replica_gather(features, *per_sample, *replica_tensors)
    global_batch = tf.shape(global_features)[0]
    dim = tf.shape(features)[2]
    temperature = options.temperature

    batch_contrasts = tf.reshape(tf.transpose(global_features, [1, 0, 2]), [-1, dim])
    anchor_views_count = views if options.contrast_mode == "all" else 1
    if num_replicas() == 1:
        # One replica: the anchors are the batch's first contrast rows (no second transposed copy),
        # all of them with contrast_mode="all" (no slice, whose gradient would be a padded copy).
        # They are the first contrast group: its logits are symmetric (`_closed_form.factored_block`).
        if options.contrast_mode == "all":
            anchors = batch_contrasts
            contrast_groups = (batch_contrasts,)
        else:
            anchors, other_views = batch_contrasts[:local_batch], batch_contrasts[local_batch:]
            contrast_groups = (anchors, other_views)
    else:
        anchor_features = features[:, :anchor_views_count]
        anchors = tf.reshape(tf.transpose(anchor_features, [1, 0, 2]), [-1, dim])
        contrast_groups = (batch_contrasts,)
    contrasts = batch_contrasts
    contrast_samples = tf.tile(tf.range(global_batch), [views])
    contrast_views = tf.repeat(tf.range(views), global_batch)
    if keys is not None:
        # Absent slots are zeroed as well as masked: whatever an unfilled queue
        # holds (even NaN) must not reach the logits' gradients (0 * NaN = NaN).
        # The keys are a contrast group of their own: a gradient nobody uses is pruned.
        keys = tf.where(key_valid[:, None], keys, 0.0)
        contrast_groups = contrast_groups + (keys,)
        contrasts = tf.concat([batch_contrasts, keys], axis=0)

    anchor_samples = offset + tf.tile(tf.range(local_batch), [anchor_views_count])
    anchor_views = tf.repeat(tf.range(anchor_views_count), local_batch)

    # L_out, "all" denominator (or "only_negatives" with ids), no cap: low-rank weights
    # (`_closed_form.factored_block`).
    factored = (options.summation, options.positives_cap) == ("outside", None) and (
        options.denominator == "all" or (options.denominator == "only_negatives" and by_ids)
    )
    column_weights = column_valid = None
    if factored and keys is not None:
        column_valid = (None,) * (len(contrast_groups) - 1) + (key_valid,)
    if label_vectors is not None:
        if not factored or options.denominator != "all":
            raise ValueError(f"Label-vector weights take L_out with the 'all' denominator. Received: {options}")
        global_vectors, gathered = gathered[0], gathered[1:]
        column_vectors = tf.reshape(tf.transpose(global_vectors, [1, 0, 2]), [views * global_batch, -1])
        if keys is not None:
            column_vectors = tf.concat([column_vectors, tf.where(key_valid[:, None], key_vectors, 0.0)], axis=0)

        column_weights = _closed_form.Cosine(column_vectors, tf.stop_gradient(contrasts)).rows

    if by_ids:
        sample_ids = gathered[0] if labels is not None else tf.range(global_batch)
        gathered = gathered[len(per_sample):]
        if keys is not None and key_labels is None:
            # Every key a negative: an id no sample has (SimCLR's sample ids are >= 0).
            key_labels = tf.fill(tf.shape(keys)[:1], tf.reduce_min(sample_ids) - 1)

        # Positives by ids are a bool [rows, cols] mask, their count per sample comes from the ids
        # (`weighted_block`'s `positive_counts`): no float weights to write and sum per block.
        def pair_weights_fn(pairs):
            anchor_ids = tf.gather(sample_ids, pairs.anchor_samples)
            return tf.equal(anchor_ids[:, None], tf.gather(sample_ids, pairs.contrast_samples)[None, :])

        if not factored and options.positives_cap is None:
            # The other columns of each sample's id: its views times its class size, less itself,
            # and the present keys of its id.
            positive_counts = tf.cast(views * _ids.count_equal(sample_ids) - 1, tf.float32)
            if keys is not None:
                positive_counts += tf.cast(_key_counts(sample_ids, key_labels, key_valid), tf.float32)

        if options.positives_cap is not None:
            capped_id_weights = _CappedIdWeights(
                sample_ids, views, options.positives_cap, contrast_samples,
                None if keys is None else (key_labels, key_valid),
            )

        def key_weights_fn(pairs):
            anchor_ids = tf.gather(sample_ids, pairs.anchor_samples)
            return tf.equal(anchor_ids[:, None], key_labels[None, :])

        if factored:
            column_ids = tf.tile(sample_ids, [views])
            present = None
            if keys is not None:
                column_ids = tf.concat([column_ids, key_labels], axis=0)
                present = tf.concat([tf.ones([views * global_batch]), tf.cast(key_valid, tf.float32)], axis=0)
            segments = _ids.dense_ids(column_ids)

            column_weights = _closed_form.SameId(segments, present, tf.stop_gradient(contrasts)).rows

    def block_fn(anchor_block, contrasts, row_info, is_real):
        block_samples, block_views = row_info
        # Column of the anchor itself in the view-major contrast layout (never a key column).
        self_column = block_views * global_batch + block_samples
        # One replica, dense: anchor row r is contrast column r (same view-major order), so the
        # own columns are the diagonal. (A block's are diagonal `start`, but a graph loop's index
        # is not a constant, and XLA needs one: blocks take the scatter.)
        self_on_diagonal = is_real is None and num_replicas() == 1
        if column_weights is not None:
            return _closed_form.factored_block(
                anchor_block,
                contrasts,
                column_weights(self_column),
                temperature=temperature,
                self_column=self_column,
                column_valid=column_valid,
                is_real=is_real,
                self_on_diagonal=self_on_diagonal,
                denominator=options.denominator,
                # The anchors are the first contrast group (one replica).
                symmetric=self_on_diagonal,
            )

        def weighted(weights, dropped, counts=None):
            if is_real is not None:  # Padding rows of the blocked path: no positives.
                if counts is None:
                    weights = weights * tf.cast(is_real, tf.float32)[:, None]
                else:
                    weights = tf.logical_and(weights, is_real[:, None])
                    counts = tf.where(is_real, counts, 0.0)
            return _closed_form.weighted_block(
                anchor_block,
                contrasts,
                weights,
                dropped,
                temperature=temperature,
                summation=options.summation,
                denominator=options.denominator,
                self_column=self_column,
                self_on_diagonal=self_on_diagonal,
                positive_counts=counts,
            )

        positives_cap = options.positives_cap
        if by_ids and positives_cap is not None:
            return weighted(*capped_id_weights(block_samples))
        pairs = Pairs(
            anchor_samples=block_samples,
            anchor_local=block_samples - offset,
            anchor_views=block_views,
            contrast_samples=contrast_samples,
            contrast_views=contrast_views,
            gathered=gathered,
        )
        # Batch columns first; the keys' part (if any) is handled alongside. The anchor's own
        # column is set aside by weighted_block.
        weights = pair_weights_fn(pairs)
        batch_drop = key_drop = None
        if keys is not None:
            key_absent = tf.logical_not(
                tf.broadcast_to(key_valid[None, :], [tf.shape(weights)[0], tf.shape(keys)[0]])
            )
            key_weights = tf.logical_and(key_weights_fn(pairs), key_valid[None, :])  # Keys only with ids.
            key_drop = key_absent
        if positives_cap is not None:
            # Here only with an explicit mask (ids took `_CappedIdWeights` above, and a mask
            # comes without keys). As the official code counts it (google-research
            # supcon/losses.py, `_cap_positives_mask`): the cap keeps whole samples, the first
            # `positives_cap // views` other positive samples by index in the
            # global batch, with every view of each; the anchor's own other
            # views are always kept. Dropped views leave numerator and denominator.
            same_sample = tf.equal(block_samples[:, None], contrast_samples[None, :])
            others = tf.logical_and(weights > 0.0, tf.logical_not(same_sample))
            # View-major columns: [rows, views * global] -> [rows, views, global].
            by_view = tf.reshape(others, [tf.shape(others)[0], views, global_batch])
            other_samples = tf.reduce_any(by_view, axis=1)
            rank = tf.cumsum(tf.cast(other_samples, tf.int32), axis=1)
            kept = rank <= positives_cap // views
            batch_drop = tf.logical_and(others, tf.logical_not(tf.tile(kept, [1, views])))
            weights = tf.where(batch_drop, 0.0, weights)
        if keys is not None:
            if batch_drop is None:
                batch_drop = tf.zeros_like(weights, dtype=tf.bool)
            batch_drop = tf.concat([batch_drop, key_drop], axis=1)
            weights = tf.concat([weights, key_weights], axis=1)
        return weighted(weights, batch_drop, tf.gather(positive_counts, block_samples) if by_ids else None)

    losses, valid = _blocks.run_blocks(
        block_fn, anchors, contrast_groups, (anchor_samples, anchor_views), options.block_size
    )
    losses = tf.reshape(losses, [anchor_views_count, local_batch])
    valid = tf.reduce_any(tf.reshape(valid, [anchor_views_count, local_batch]), axis=0)
    per_sample = tf.reduce_mean(losses, axis=0)
    if options.base_temperature is not None:
        per_sample = per_sample * (temperature / options.base_temperature)
    return per_sample, valid
