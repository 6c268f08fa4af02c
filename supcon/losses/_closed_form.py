"""Per-block contrastive losses with their closed-form gradients.

For a block of anchor rows `a_i` and every contrast column `c_j` the logits
are `z_ij = a_i . c_j / tau`, and (Khosla et al., arXiv 2004.11362, Eq. 2, 3;
Kim et al., arXiv 2206.00384 for soft weights `w_ij >= 0`, `s_i = sum_j w_ij`)

    outside (Eq. 2):  loss_i = -sum_j (w_ij / s_i) log r_ij
    inside  (Eq. 3):  loss_i = -log sum_j (w_ij / s_i) r_ij
    r_ij = exp(z_ij) / D_ij,   D_ij = sum_{k in A_i} exp(z_ik)          ("all", "only_negatives")
                               D_ij = exp(z_ij) + sum_{k in N_i} exp(z_ik)   ("one_positive")

with `A_i` every non-excluded column ("all") or the negatives `N_i` (weight 0,
not excluded; "only_negatives"). Every case has the same derivative with
respect to the logits,

    d loss_i / d z_ij = q_ij * sum_k v_ik - v_ij                                (*)

where `q_i` is the softmax of `z_i` over the denominator's set and the "pull"
`v_ij >= 0` lives on the positives:
  * outside: `v_ij = w_ij / s_i`;  inside: `v_ij` = the softmax over the
    positives of `log w_ij + log r_ij` (each positive's share of the sum);
  * "one_positive" multiplies that by `1 - exp(z_ij) / D_ij` (the positive's
    own part of its denominator cancels);
  * for "all" and "only_negatives" `sum_k v_ik = 1`.
So the gradients of the anchors and contrasts are two matmuls of that one
`[rows, cols]` matrix with the features, over tau, each row scaled by the
anchor's upstream gradient (a row scaling that commutes with the matmuls, so it
is applied to the `[rows, dim]` side). Every option of the engine takes this
closed form; none falls back to autodiff. (Second derivatives are not
provided: the losses are only ever differentiated once.)

For SupCon and SimCLR with the paper's L_out and denominator (the default and
the hot path), `w_ij` is 1 exactly where the column's id (class or sample)
equals the anchor's, so `sum_j w_ij c_j` is a per-id sum of the contrasts
minus the anchor itself: `same_id_block` never builds the `[rows, cols]`
weights, and keeps the softmax as its only `[rows, cols]` buffer. Its `(*)` is
`q_ij - w_ij / s_i`, and the `w / s` part of both gradient matmuls is a
segment sum, `O((rows + cols) * dim)`.

Numerics (float32 whatever the input dtype):
  * Excluded entries are set to `EXCLUDED = -1e30` before the softmax: `exp`
    of it underflows to exactly 0, and unlike `-inf` a row with nothing left
    stays finite (uniform) instead of NaN; such rows are invalid and get a
    zero upstream. (This is float32 only: the fill never meets float16.)
  * `tf.nn.softmax` subtracts the row max itself; the log-sum-exp is read off
    its largest entry, `max_j q_ij = exp(max_j z_ij - lse_i)` in `[1/cols, 1]`,
    so it needs no second `exp` pass and never underflows.
  * "one_positive" uses `log r = -softplus(log S - z)` and
    `1 - r = sigmoid(log S - z)`: stable, and exactly 0 / 1 without negatives.
"""

import collections

import tensorflow as tf

EXCLUDED = -1e30

# A block's per-anchor losses, validity, and the function
# `upstream [rows] -> (d anchors [rows, dim], d contrasts [cols, dim])`.
Block = collections.namedtuple("Block", ["losses", "valid", "backward"])


def _softmax_and_lse(values):
    """Row softmax `[rows, cols]` and log-sum-exp `[rows]` of float32 `values` (one exp pass)."""
    row_max = tf.reduce_max(values, axis=1)
    probabilities = tf.nn.softmax(values, axis=1)
    lse = row_max - tf.math.log(tf.reduce_max(probabilities, axis=1))
    return probabilities, lse


def _features_backward(grad_logits, anchors, contrasts, valid, temperature):
    """`upstream -> (d anchors, d contrasts)` for logits `anchors contrasts^T / tau` with `d loss / d logits = grad_logits`."""

    def backward(upstream):
        scale = tf.where(valid, upstream, 0.0)[:, None] * (1.0 / temperature)
        grad_anchors = scale * tf.matmul(grad_logits, contrasts)
        grad_contrasts = tf.matmul(grad_logits, scale * anchors, transpose_a=True)
        return grad_anchors, grad_contrasts

    return backward


def same_id_block(anchors, contrasts, *, temperature, self_column, segments, column_valid, is_real):
    """L_out with the "all" denominator, positives = the columns sharing the anchor's id.

    Args:
      anchors: float32 `[rows, dim]`.
      contrasts: float32 `[cols, dim]`; rows of absent columns must be zero.
      temperature: python float.
      self_column: int32 `[rows]`, each anchor's own column (excluded; it
        shares the anchor's id).
      segments: int32 `[cols]` in `[0, cols)`: the columns' ids, made dense.
      column_valid: None or bool `[cols]`, false for absent columns (empty
        queue slots): out of numerator and denominator.
      is_real: None or bool `[rows]`, false for padding rows (invalid).

    Returns:
      A `Block`.
    """
    rows, cols = tf.shape(anchors)[0], tf.shape(contrasts)[0]
    scaled = anchors * (1.0 / temperature)  # 1/tau scales [rows, dim], not [rows, cols].
    logits = tf.matmul(scaled, contrasts, transpose_b=True)
    logits = tf.tensor_scatter_nd_update(
        logits, tf.stack([tf.range(rows), self_column], axis=1), tf.fill([rows], EXCLUDED)
    )
    present = tf.ones([cols]) if column_valid is None else tf.cast(column_valid, tf.float32)
    if column_valid is not None:
        logits = tf.where(column_valid[None, :], logits, EXCLUDED)
    probabilities, log_denominator = _softmax_and_lse(logits)

    # sum_j w_ij c_j: the sum of the anchor's id class, less the anchor itself.
    class_sums = tf.math.unsorted_segment_sum(contrasts, segments, cols)
    class_counts = tf.math.unsorted_segment_sum(present, segments, cols)
    row_segments = tf.gather(segments, self_column)
    positive_sums = tf.gather(class_sums, row_segments) - anchors
    positive_counts = tf.gather(class_counts, row_segments) - 1.0
    valid = positive_counts > 0.5
    if is_real is not None:
        valid = tf.logical_and(valid, is_real)
    safe_counts = tf.where(valid, positive_counts, 1.0)
    positive_logits = tf.reduce_sum(scaled * positive_sums, axis=1)
    losses = tf.where(valid, log_denominator - positive_logits / safe_counts, 0.0)

    def backward(upstream):
        upstream = tf.where(valid, upstream, 0.0)
        pull = (upstream / safe_counts)[:, None] * (1.0 / temperature)
        push = upstream[:, None] * (1.0 / temperature)
        # (*) with v = w / s: softmax part by matmul, positives part by segment sums.
        grad_anchors = push * tf.matmul(probabilities, contrasts) - pull * positive_sums
        pulled = pull * anchors
        class_pulls = tf.math.unsorted_segment_sum(pulled, row_segments, cols)
        own = tf.scatter_nd(self_column[:, None], pulled, tf.shape(contrasts))
        grad_contrasts = (
            tf.matmul(probabilities, push * anchors, transpose_a=True)
            - tf.gather(class_pulls, segments) * present[:, None]
            + own
        )
        return grad_anchors, grad_contrasts

    return Block(losses, valid, backward)


def weighted_block(anchors, contrasts, weights, excluded, *, temperature, summation, denominator):
    """Any summation and denominator, explicit pair weights (GenSCL, masks, caps, L_in, ...).

    Args:
      anchors: float32 `[rows, dim]`.
      contrasts: float32 `[cols, dim]`.
      weights: float32 `[rows, cols]`, non-negative, 0 on excluded pairs
        (binary for SupCon, label similarities for GenSCL).
      excluded: bool `[rows, cols]`: the anchor itself, dropped positives and
        absent columns, out of numerator and denominator.
      temperature: python float.
      summation: "outside" (Eq. 2) or "inside" (Eq. 3).
      denominator: "all", "one_positive" or "only_negatives".

    Returns:
      A `Block`.
    """
    logits = tf.matmul(anchors * (1.0 / temperature), contrasts, transpose_b=True)
    positive = weights > 0.0
    in_denominator = tf.logical_not(excluded)
    if denominator != "all":
        in_denominator = tf.logical_and(in_denominator, tf.logical_not(positive))
    denominator_softmax, log_denominator = _softmax_and_lse(tf.where(in_denominator, logits, EXCLUDED))

    weight_sum = tf.reduce_sum(weights, axis=1)
    valid = weight_sum > 0.0
    if denominator == "only_negatives":
        valid = tf.logical_and(valid, tf.reduce_any(in_denominator, axis=1))
    safe_sum = tf.where(valid, weight_sum, 1.0)
    if denominator == "one_positive":
        # log(e^z / (e^z + S)) = -softplus(log S - z); 0 without negatives (log S ~ EXCLUDED).
        log_ratio = -tf.nn.softplus(log_denominator[:, None] - logits)
    else:
        log_ratio = logits - log_denominator[:, None]

    if summation == "outside":
        if denominator == "one_positive":
            losses = -tf.reduce_sum(weights * log_ratio, axis=1) / safe_sum
        else:  # Row-constant denominator: lse - sum_j w_j z_j / s.
            losses = log_denominator - tf.reduce_sum(weights * logits, axis=1) / safe_sum
        pulls = weights / safe_sum[:, None]
    else:
        # Eq. 3 in log space: -log(sum_p w_p r_p / s) = log s - lse_p(log w_p + log r_p).
        log_weights = tf.math.log(tf.where(positive, weights, 1.0))
        pulls, log_mean = _softmax_and_lse(tf.where(positive, log_ratio + log_weights, EXCLUDED))
        losses = tf.math.log(safe_sum) - log_mean
    losses = tf.where(valid, losses, 0.0)

    if denominator == "one_positive":
        # Each positive's own exp(z_p) in its denominator: its pull shrinks by 1 - r_p, and the
        # negatives are pushed by the pulls' total.
        pulls = pulls * tf.sigmoid(log_denominator[:, None] - logits)
        grad_logits = denominator_softmax * tf.reduce_sum(pulls, axis=1, keepdims=True) - pulls
    else:
        grad_logits = denominator_softmax - pulls
    return Block(losses, valid, _features_backward(grad_logits, anchors, contrasts, valid, temperature))
