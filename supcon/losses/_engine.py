"""The contrastive-loss engine shared by SupCon, SimCLR and GenSCL.

Every loss of the family is, for an anchor view ``i`` and the other views ``j`` of
the (global) batch,

    loss_i = - sum_j  w_ij * log( exp(z_i . z_j / tau) / D_ij )  /  sum_j w_ij

with non-negative pair weights ``w`` (binary positives for SupCon / SimCLR,
label similarities for GenSCL) and a denominator ``D`` (Khosla et al.,
arXiv 2004.11362, Eq. 2; the "inside" summation of Eq. 3 moves the mean inside
the log). The ``j`` may also run over extra contrast keys (a MoCo-style memory
queue, He et al., arXiv 1911.05722): key columns follow the batch columns,
are never anchors and are not gathered across replicas. This module computes
that for a block of anchor rows against every contrast column, and runs the
blocks either densely or with recomputation.

Why this is hand-written: neither Keras 3, keras-cv nor keras-hub ship a
supervised contrastive loss; TF Model Garden and the official code materialize
the full ``(VB) x (VB)`` logits, mask with large constants, and do not gather
negatives across replicas in the loss.

Numerics (all in float32 whatever the input dtype):
  * Row maxima are taken over the entries a log-sum-exp actually sums, and are
    detached (``stop_gradient``): they cancel mathematically, so they only
    guard ``exp`` against overflow; taking them over the summed set also keeps
    the largest term at ``exp(0) = 1``, so a denominator never underflows to 0
    even at temperature 0.01.
  * Self-contrast and dropped positives are removed *multiplicatively*, after
    clamping the shifted logits at 0, so no ``+-1e9`` fill ever appears (such
    fills overflow in float16 and produce ``inf * 0 = nan``).
  * An anchor with no positive (or, for ``denominator="only_negatives"``, no
    negative) is marked invalid and contributes exactly 0 with zero gradient.
"""

import collections

import tensorflow as tf

SUMMATIONS = ("outside", "inside")
DENOMINATORS = ("all", "one_positive", "only_negatives")
CONTRAST_MODES = ("all", "one")


# What a pair-weight function sees for a block of anchor rows and all contrast
# columns. Sample indices index the global batch; `anchor_local` indexes this
# replica's batch; `gathered` holds the loss's extra per-sample tensors (labels,
# label distributions) gathered over the global batch.
Pairs = collections.namedtuple(
    "Pairs",
    ["anchor_samples", "anchor_local", "anchor_views", "contrast_samples", "contrast_views", "gathered"],
)


def _masked_logsumexp(values, mask):
    """Row-wise log-sum-exp over the entries where `mask` is true.

    Args:
      values: float32 `[rows, cols]`.
      mask: bool `[rows, cols]`.

    Returns:
      `(lse, nonempty)`: float32 `[rows]` (0 for empty rows, with zero
      gradient) and bool `[rows]`.
    """
    nonempty = tf.reduce_any(mask, axis=1)
    lowest = tf.constant(values.dtype.min, values.dtype)
    row_max = tf.reduce_max(tf.where(mask, values, lowest), axis=1, keepdims=True)
    row_max = tf.stop_gradient(tf.where(nonempty[:, None], row_max, 0.0))
    # Excluded entries (which may exceed the row max and overflow exp) are
    # zeroed before exp and removed by the multiplicative mask afterwards.
    # (Not `tf.minimum(shifted, 0)`: at the row max the tie sends the whole
    # gradient to the constant under XLA.)
    shifted = tf.where(mask, values - row_max, 0.0)
    total = tf.reduce_sum(tf.exp(shifted) * tf.cast(mask, values.dtype), axis=1)
    safe_total = tf.where(nonempty, total, 1.0)
    return tf.squeeze(row_max, 1) + tf.math.log(safe_total), nonempty


def block_losses(
    anchors,
    contrasts,
    pair_weights,
    is_self,
    *,
    temperature,
    summation,
    denominator,
    drop_mask=None,
):
    """Per-anchor losses for a block of anchors against all contrasts.

    Args:
      anchors: float32 `[rows, dim]`.
      contrasts: float32 `[cols, dim]`.
      pair_weights: float32 `[rows, cols]`, non-negative; 0 on self-contrast.
        Binary for SupCon, label similarities for GenSCL.
      is_self: bool `[rows, cols]`, true where the column is the anchor itself.
      temperature: python float.
      summation: "outside" (Eq. 2) or "inside" (Eq. 3).
      denominator: "all", "one_positive" or "only_negatives".
      drop_mask: optional bool `[rows, cols]`: pairs removed from both the
        numerator and the denominator (positives beyond `positives_cap`).

    Returns:
      `(losses, valid)`: float32 `[rows]` (0 where invalid) and bool `[rows]`.
    """
    # 1/tau scales the [rows, dim] anchors, not the [rows, cols] logits.
    logits = tf.matmul(anchors * (1.0 / temperature), contrasts, transpose_b=True)
    excluded = is_self if drop_mask is None else tf.logical_or(is_self, drop_mask)

    if denominator == "all":
        log_denominator, valid = _masked_logsumexp(logits, tf.logical_not(excluded))
        log_denominator = log_denominator[:, None]
    else:
        negative = tf.logical_not(tf.logical_or(pair_weights > 0.0, excluded))
        log_negatives, has_negative = _masked_logsumexp(logits, negative)
        if denominator == "only_negatives":
            log_denominator, valid = log_negatives[:, None], has_negative
        else:  # "one_positive": exp(z_p) + sum over negatives, per pair.
            # log(e^a + e^b) = a + softplus(b - a): stable, and tie-free gradients.
            log_sum = logits + tf.nn.softplus(log_negatives[:, None] - logits)
            log_denominator = tf.where(has_negative[:, None], log_sum, logits)
            valid = tf.ones_like(has_negative)

    weight_sum = tf.reduce_sum(pair_weights, axis=1)
    valid = tf.logical_and(valid, weight_sum > 0.0)
    safe_weight_sum = tf.where(valid, weight_sum, 1.0)
    if summation == "outside":
        weighted_logits = tf.reduce_sum(pair_weights * logits, axis=1)
        if denominator == "all":  # Row-constant denominator: sum_p w_p (z_p - lse).
            weighted_log_prob = weighted_logits - weight_sum * log_denominator[:, 0]
        else:
            weighted_log_prob = weighted_logits - tf.reduce_sum(pair_weights * log_denominator, axis=1)
        losses = -weighted_log_prob / safe_weight_sum
    else:
        # Eq. 3: -log( sum_p w_p exp(log_prob_p) / sum_p w_p ), in log space.
        positive = pair_weights > 0.0
        log_weights = tf.math.log(tf.where(positive, pair_weights, 1.0))
        lse, _ = _masked_logsumexp(logits - log_denominator + log_weights, positive)
        losses = -(lse - tf.math.log(safe_weight_sum))
    return tf.where(valid, losses, 0.0), valid


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


def _rows(tensor, start, size):
    """`tensor[start:start + size]` with a static `size` (XLA needs static slice sizes)."""
    begin = tf.concat([[start], tf.zeros([tensor.shape.rank - 1], tf.int32)], axis=0)
    return tf.slice(tensor, begin, tf.concat([[size], tf.shape(tensor)[1:]], axis=0))


def run_blocks(block_fn, anchors, contrasts, row_info, block_size):
    """Runs `block_fn` over row blocks of `anchors`, densely or blockwise.

    With `block_size=None` the whole anchor matrix is one block and autodiff
    keeps every intermediate, `O(rows x cols)` memory. Otherwise the anchors
    are zero-padded to whole blocks, blocks run in a `tf.while_loop`, and the
    backward pass recomputes each block from the inputs, so peak memory is
    `O(block_size x cols)`; values and gradients are the dense ones. Every
    block has the same static shape, so the loop also compiles with XLA.

    Args:
      block_fn: `(anchor_block, contrasts, row_info_block, is_real) ->
        (losses, valid)`; `is_real` is None on the dense path, else bool
        `[block]` false on padding rows (which must come out invalid).
      anchors: float32 `[rows, dim]`.
      contrasts: float32 `[cols, dim]`.
      row_info: tuple of `[rows]` tensors describing each anchor row, sliced
        alongside the anchors.
      block_size: None or a positive int.

    Returns:
      `(losses, valid)`: float32 `[rows]`, bool `[rows]`.
    """
    if block_size is None:
        return block_fn(anchors, contrasts, row_info, None)

    rows = tf.shape(anchors)[0]
    num_blocks = (rows + block_size - 1) // block_size
    padding = num_blocks * block_size - rows
    # Padding rows repeat the last row's description (so indices stay valid)
    # and are flagged by `is_real`.
    padded_info = tuple(tf.concat([info, tf.repeat(info[-1:], padding, axis=0)], 0) for info in row_info)
    is_real = tf.range(num_blocks * block_size) < rows

    def run_block(anchors, contrasts, index):
        start = index * block_size
        anchor_block = _rows(anchors, start, block_size)
        info_block = tuple(_rows(info, start, block_size) for info in padded_info)
        return anchor_block, block_fn(anchor_block, contrasts, info_block, _rows(is_real, start, block_size))

    @tf.custom_gradient
    def blocked(anchors, contrasts):
        def forward_body(index, losses_array, valid_array):
            _, (losses, valid) = run_block(anchors, contrasts, index)
            return (
                index + 1,
                losses_array.write(index, losses),
                valid_array.write(index, tf.cast(valid, tf.float32)),
            )

        # parallel_iterations=1: one block's [block, cols] intermediates alive at a time (the
        # default of 10 concurrent iterations multiplies the peak memory by up to 10 in graph mode).
        _, losses_array, valid_array = tf.while_loop(
            lambda index, *_: index < num_blocks,
            forward_body,
            parallel_iterations=1,
            loop_vars=(
                tf.constant(0),
                tf.TensorArray(tf.float32, size=num_blocks, element_shape=[block_size]),
                tf.TensorArray(tf.float32, size=num_blocks, element_shape=[block_size]),
            ),
        )
        # `valid` leaves as float32: custom_gradient outputs must be differentiable dtypes.
        losses, valid = losses_array.concat(), valid_array.concat()

        def grad(upstream_losses, unused_upstream_valid):
            def backward_body(index, anchor_grads, contrast_grad):
                with tf.GradientTape() as tape:
                    tape.watch([anchors, contrasts])
                    anchor_block, (block_values, _) = run_block(anchors, contrasts, index)
                grad_anchor_block, grad_contrast = tape.gradient(
                    block_values,
                    [anchor_block, contrasts],
                    output_gradients=_rows(upstream_losses, index * block_size, block_size),
                    unconnected_gradients=tf.UnconnectedGradients.ZERO,
                )
                return (
                    index + 1,
                    anchor_grads.write(index, grad_anchor_block),
                    contrast_grad + grad_contrast,
                )

            _, anchor_grads, contrast_grad = tf.while_loop(
                lambda index, *_: index < num_blocks,
                backward_body,
                parallel_iterations=1,
                loop_vars=(
                    tf.constant(0),
                    tf.TensorArray(
                        tf.float32, size=num_blocks, element_shape=[block_size, anchors.shape[1]]
                    ),
                    tf.zeros_like(contrasts),
                ),
            )
            return anchor_grads.concat(), contrast_grad

        return (losses, valid), grad

    padded_anchors = tf.pad(anchors, [[0, padding], [0, 0]])
    losses, valid = blocked(padded_anchors, contrasts)
    return losses[:rows], valid[:rows] > 0.5


def contrastive_per_sample(
    features,
    pair_weights_fn,
    *,
    temperature,
    base_temperature,
    contrast_mode,
    summation,
    denominator,
    positives_cap,
    block_size,
    replica_tensors=(),
    keys=None,
    key_valid=None,
    key_weights_fn=None,
):
    """Lays out anchors and contrasts over the global batch and averages per sample.

    Anchors are this replica's views (all of them, or view 0 with
    `contrast_mode="one"`); contrasts are every view of every sample of the
    global batch, view-major (view 0 of all samples, then view 1, ...),
    followed by the keys, if any. `positives_cap` keeps the first
    `positives_cap // views` other positive samples by global index, each with
    all its views, then fills what is left of the cap with positive keys, one
    view each, in slot order.

    Args:
      features: float32 `[local_batch, views, dim]`.
      pair_weights_fn: `(pairs: Pairs) -> float32 [rows, cols]`, the
        non-negative weight of each (anchor, contrast) pair.
      temperature, base_temperature, contrast_mode, summation, denominator,
        positives_cap, block_size: see `supcon.losses.supcon_loss`.
      replica_tensors: `[local_batch, ...]` tensors (labels) that must be
        gathered alongside the features.
      keys: None or float32 `[keys, dim]` extra contrast columns. Every
        replica holds the same keys, so they are appended once, not gathered.
      key_valid: bool `[keys]` (with `keys`): false slots are absent, out of
        both numerator and denominator.
      key_weights_fn: `(pairs: Pairs) -> float32 [rows, keys]` (with `keys`),
        the non-negative weight of each (anchor, key) pair.

    Returns:
      `(per_sample, valid)`: float32 `[local_batch]` (mean over anchor views,
      invalid anchors counting 0) and bool `[local_batch]` (the sample has at
      least one valid anchor view).
    """
    local_batch = tf.shape(features)[0]
    views = tf.shape(features)[1]
    global_features, gathered, offset = replica_gather(features, *replica_tensors)
    global_batch = tf.shape(global_features)[0]
    dim = tf.shape(features)[2]

    contrasts = tf.reshape(tf.transpose(global_features, [1, 0, 2]), [-1, dim])
    contrast_samples = tf.tile(tf.range(global_batch), [views])
    contrast_views = tf.repeat(tf.range(views), global_batch)
    if keys is not None:
        # Absent slots are zeroed as well as masked: whatever an unfilled queue
        # holds (even NaN) must not reach the logits' gradients (0 * NaN = NaN).
        keys = tf.where(key_valid[:, None], keys, 0.0)
        contrasts = tf.concat([contrasts, keys], axis=0)

    anchor_views_count = views if contrast_mode == "all" else 1
    anchor_features = features[:, :anchor_views_count] if contrast_mode == "one" else features
    anchors = tf.reshape(tf.transpose(anchor_features, [1, 0, 2]), [-1, dim])
    anchor_samples = offset + tf.tile(tf.range(local_batch), [anchor_views_count])
    anchor_views = tf.repeat(tf.range(anchor_views_count), local_batch)

    def block_fn(anchor_block, contrasts, row_info, is_real):
        block_samples, block_views = row_info
        pairs = Pairs(
            anchor_samples=block_samples,
            anchor_local=block_samples - offset,
            anchor_views=block_views,
            contrast_samples=contrast_samples,
            contrast_views=contrast_views,
            gathered=gathered,
        )
        # Column of the anchor itself in the view-major contrast layout (never a key column).
        self_column = block_views * global_batch + block_samples
        is_self = tf.equal(self_column[:, None], tf.range(tf.shape(contrasts)[0])[None, :])
        # Batch columns first; the keys' part (if any) is handled alongside.
        weights = pair_weights_fn(pairs)
        weights = tf.where(is_self[:, : views * global_batch], 0.0, weights)
        batch_drop = key_drop = None
        if keys is not None:
            key_absent = tf.logical_not(
                tf.broadcast_to(key_valid[None, :], [tf.shape(weights)[0], tf.shape(keys)[0]])
            )
            key_weights = tf.where(key_absent, 0.0, key_weights_fn(pairs))
            key_drop = key_absent
        if positives_cap is not None:
            # As the official code counts it (google-research supcon/losses.py,
            # `_cap_positives_mask`): the cap keeps whole samples, the first
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
                # Keys are single views: they fill what the batch samples left
                # of the cap (positives_cap - views * kept samples), one
                # positive each, in slot order.
                kept_samples = tf.reduce_sum(tf.cast(tf.logical_and(other_samples, kept), tf.int32), axis=1)
                kept_views = views * kept_samples
                key_rank = tf.cumsum(tf.cast(key_weights > 0.0, tf.int32), axis=1)
                over_cap = key_rank > (positives_cap - kept_views)[:, None]
                key_drop = tf.logical_or(key_drop, tf.logical_and(key_weights > 0.0, over_cap))
                key_weights = tf.where(key_drop, 0.0, key_weights)
        drop_mask = batch_drop
        if keys is not None:
            if batch_drop is None:
                batch_drop = tf.zeros_like(weights, dtype=tf.bool)
            drop_mask = tf.concat([batch_drop, key_drop], axis=1)
            weights = tf.concat([weights, key_weights], axis=1)
        if is_real is not None:  # Padding rows of the blocked path: no positives.
            weights = weights * tf.cast(is_real, tf.float32)[:, None]
        return block_losses(
            anchor_block,
            contrasts,
            weights,
            is_self,
            temperature=temperature,
            summation=summation,
            denominator=denominator,
            drop_mask=drop_mask,
        )

    losses, valid = run_blocks(
        block_fn, anchors, contrasts, (anchor_samples, anchor_views), block_size
    )
    losses = tf.reshape(losses, [anchor_views_count, local_batch])
    valid = tf.reduce_any(tf.reshape(valid, [anchor_views_count, local_batch]), axis=0)
    per_sample = tf.reduce_mean(losses, axis=0)
    if base_temperature is not None:
        per_sample = per_sample * (temperature / base_temperature)
    return per_sample, valid
