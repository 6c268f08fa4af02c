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

For L_out with the "all" denominator and no cap (SupCon's and SimCLR's
default, the hot path, and GenSCL's only form) the weights have low rank:
`w_ij` is 1 exactly where the column's id (class or sample) equals the
anchor's (`SameId`), or the cosine `u_i . u_j` of unit label vectors
(`Cosine`). So `sum_j w_ij c_j` is a per-id sum (or two thin matmuls) minus
the anchor itself: `factored_block` never builds the `[rows, cols]` weights
and keeps the softmax's numerators as its only `[rows, cols]` buffer
(normalized on the `[rows, dim]` side, see `_shifted_exps`). Its `(*)` is
`q_ij - w_ij / s_i`, and the `w / s` part of both gradient matmuls costs
`O((rows + cols) * dim)` (times `classes` for `Cosine`). With ids it also
takes the "only_negatives" denominator: the positives (one `[rows, cols]`
mask, `SameId`'s `positive_mask`) leave the softmax, `q` is over the
negatives and the `w / s` part is unchanged. The columns come in groups,
each with its own logits and products: on one replica the anchors are the
first group (every view, or view 0 with `contrast_mode="one"`; the other
views and a queue's keys are further groups), whose logits are symmetric, so
its gradient matmul needs no transposed operand
(`_symmetric_transposed_product`). `weighted_block` takes every other option
from explicit `[rows, cols]` weights.

Numerics (float32 whatever the input dtype):
  * Excluded entries are set to `EXCLUDED = -1e30` before the softmax: `exp`
    of it underflows to exactly 0, and unlike `-inf` a row with nothing left
    stays finite (uniform) instead of NaN; such rows are invalid and get a
    zero upstream. (This is float32 only: the fill never meets float16.)
  * Every `exp` is of `z_ij - max_k z_ik` (at most 0, and 0 for the row's
    largest kept entry): no overflow, and the row sum is at least 1. In
    `weighted_block` `tf.nn.softmax` subtracts the row max itself and the
    log-sum-exp is read off its largest entry, `max_j q_ij = exp(max_j z_ij -
    lse_i)` in `[1/cols, 1]`, so it needs no second `exp` pass.
  * "one_positive" uses `log r = -softplus(log S - z)` and
    `1 - r = sigmoid(log S - z)`: stable, and exactly 0 / 1 without negatives.
"""

import collections

import tensorflow as tf

EXCLUDED = -1e30

# A block's per-anchor losses, validity, and the function
# `upstream [rows] -> (d anchors [rows, dim], d contrasts: a tuple, [cols_g, dim] per group)`.
Block = collections.namedtuple("Block", ["losses", "valid", "backward"])


def _concat(groups):
    """The contrast groups (a tuple of `[cols_g, dim]`) as one `[cols, dim]` matrix."""
    return groups[0] if len(groups) == 1 else tf.concat(groups, axis=0)


def _split_like(values, groups):
    """`values [cols, ...]` split into the contrast groups' rows (a tuple)."""
    if len(groups) == 1:
        return (values,)
    return tuple(tf.split(values, tf.stack([tf.shape(group)[0] for group in groups]), axis=0))


def _softmax_and_lse(values):
    """Row softmax `[rows, cols]` and log-sum-exp `[rows]` of float32 `values` (one exp pass)."""
    row_max = tf.reduce_max(values, axis=1)
    probabilities = tf.nn.softmax(values, axis=1)
    lse = row_max - tf.math.log(tf.reduce_max(probabilities, axis=1))
    return probabilities, lse


def _features_backward(grad_logits, anchors, contrast_groups, valid, temperature):
    """`upstream -> (d anchors, d contrasts)` for logits `anchors contrasts^T / tau` with `d loss / d logits = grad_logits`."""

    def backward(upstream):
        scale = tf.where(valid, upstream, 0.0)[:, None] * (1.0 / temperature)
        grad_anchors = scale * tf.matmul(grad_logits, _concat(contrast_groups))
        grad_contrasts = tf.matmul(grad_logits, scale * anchors, transpose_a=True)
        return grad_anchors, _split_like(grad_contrasts, contrast_groups)

    return backward


# The pair weights of a block of anchors, in the factored form `factored_block` uses:
#   self_weights       [rows]: w_ii, the anchor's weight to its own column;
#   other_weight_sums  [rows]: s_i = sum_{j != i} w_ij;
#   row_sums           [rows, dim]: sum_j w_ij c_j, the anchor's own column included;
#   column_sums        fn([rows, dim] x -> [cols, dim]): sum_i w_ij x_i, own columns included.
#   positive_mask      None, or fn((begin, end) -> bool [rows, end - begin]): w_ij > 0 for the
#                      columns begin..end-1 (binary weights only).
RowWeights = collections.namedtuple(
    "RowWeights", ["self_weights", "other_weight_sums", "row_sums", "column_sums", "positive_mask"]
)


class SameId:
    """Pair weights `w_ij = 1` where column `j`'s id equals the anchor's (SupCon, SimCLR).

    Built once per loss call: the per-id sums of the contrasts are shared by
    every block of anchors (`rows`), so the blocked path does not recompute
    them (`O(cols * dim)`) block by block.

    Args:
      segments: int32 `[cols]` in `[0, cols)`: the columns' ids, made dense.
      present: None (every column present) or float32 `[cols]`, 0 for absent
        columns (their contrast rows are zero).
      contrasts: float32 `[cols, dim]`, not differentiated through.
    """

    def __init__(self, segments, present, contrasts):
        self._segments, self._present = segments, present
        self._cols = tf.shape(segments)[0]
        self._id_sums = tf.math.unsorted_segment_sum(contrasts, segments, self._cols)
        ones = tf.ones([self._cols]) if present is None else present
        self._id_sizes = tf.math.unsorted_segment_sum(ones, segments, self._cols)

    def rows(self, self_column):
        """`RowWeights` of the anchors whose own columns are `self_column` (int32 `[rows]`)."""
        row_segments = tf.gather(self._segments, self_column)

        def column_sums(values):
            sums = tf.gather(tf.math.unsorted_segment_sum(values, row_segments, self._cols), self._segments)
            return sums if self._present is None else sums * self._present[:, None]

        return RowWeights(
            self_weights=tf.ones(tf.shape(self_column), tf.float32),
            # The anchor's class size less itself: an exact count.
            other_weight_sums=tf.gather(self._id_sizes, row_segments) - 1.0,
            row_sums=tf.gather(self._id_sums, row_segments),
            column_sums=column_sums,
            positive_mask=lambda begin, end: tf.equal(row_segments[:, None], self._segments[None, begin:end]),
        )


class Cosine:
    """Pair weights `w_ij = u_i . u_j` of unit label vectors (GenSCL, Kim et al. Eq. 4).

    GenSCL's weight is `max(cos, 0)`; label distributions are non-negative (the
    loss checks it), so the cosine already is, and `W = U_rows U_cols^T` has rank
    `classes`: its products with the features are two thin matmuls. (The
    anchor's own term is subtracted from them: an anchor whose weights to the
    other columns sum to `s << 1` gets a relative error of about `ulp / s` in
    its positive term, against `ulp` for explicit weights.) Built once per loss
    call, like `SameId`.

    Args:
      vectors: float32 `[cols, classes]`, unit rows (zero for absent columns).
      contrasts: float32 `[cols, dim]`, not differentiated through.
    """

    def __init__(self, vectors, contrasts):
        self._vectors = vectors
        self._vector_sum = tf.reduce_sum(vectors, axis=0)
        self._weighted_contrasts = tf.matmul(vectors, contrasts, transpose_a=True)  # [classes, dim]

    def rows(self, self_column):
        """`RowWeights` of the anchors whose own columns are `self_column` (int32 `[rows]`)."""
        rows = tf.gather(self._vectors, self_column)
        # u_i . (sum_j u_j - u_i): where only the anchor has mass the difference is exactly 0,
        # so an anchor orthogonal to every other column gets exactly no target (invalid).
        others = self._vector_sum[None, :] - rows
        return RowWeights(
            self_weights=tf.reduce_sum(tf.square(rows), axis=1),
            other_weight_sums=tf.reduce_sum(rows * others, axis=1),
            row_sums=tf.matmul(rows, self._weighted_contrasts),
            column_sums=lambda values: tf.matmul(self._vectors, tf.matmul(rows, values, transpose_a=True)),
            positive_mask=None,
        )


def _set_self(values, self_column, self_on_diagonal, value):
    """`values [rows, cols]` (`rows <= cols`) with each row's own column set to `value`.

    With `self_on_diagonal` (`self_column` is `0, 1, ..., rows - 1`) the
    diagonal is overwritten in place (the input's buffer is forwarded when
    nothing else holds it), O(rows); a scatter at arbitrary columns copies the
    whole `[rows, cols]` matrix on CPU (measured: it took more time than `exp`).
    """
    fill = tf.fill(tf.shape(self_column), tf.constant(value, values.dtype))
    if self_on_diagonal:
        return tf.linalg.set_diag(values, fill)
    return tf.tensor_scatter_nd_update(values, tf.stack([tf.range(tf.shape(values)[0]), self_column], axis=1), fill)


def _shifted_exps(scaled, contrast_groups, self_column, self_on_diagonal, column_valid, excluded):
    """The softmax's numerators `exp(z_ij - m_i)`, `m_i` the row's largest kept logit, excluded entries 0.

    Left unnormalized: the caller scales the `[rows, dim]` side by `1 / sums`
    instead of dividing `[rows, cols]`. One `[rows, cols_g]` matrix per
    contrast group (the shift is over all of them).

    Args:
      scaled: float32 `[rows, dim]`, the anchors over tau.
      contrast_groups: tuple of float32 `[cols_g, dim]`; the anchors' own
        columns are in the first.
      self_column: int32 `[rows]`, each anchor's own column (excluded).
      self_on_diagonal: python bool: `self_column` is `0, 1, ..., rows - 1`
        (see `_set_self`).
      column_valid: per group, None or bool `[cols_g]`, false for absent columns.
      excluded: per group, None or bool `[rows, cols_g]`, further entries left
        out (the positives, for the "only_negatives" denominator).

    Returns:
      `(exps: per group [rows, cols_g], row_max [rows], sums [rows])`. A row
      with nothing kept has `row_max = EXCLUDED` and exps of 1 (finite; it is
      invalid).
    """
    logits = []
    for index, contrasts in enumerate(contrast_groups):
        group_logits = tf.matmul(scaled, contrasts, transpose_b=True)
        if index == 0:
            group_logits = _set_self(group_logits, self_column, self_on_diagonal, EXCLUDED)
        if column_valid[index] is not None:
            group_logits = tf.where(column_valid[index][None, :], group_logits, EXCLUDED)
        if excluded[index] is not None:
            group_logits = tf.where(excluded[index], EXCLUDED, group_logits)
        logits.append(group_logits)
    row_max = tf.reduce_max(logits[0], axis=1)
    for group_logits in logits[1:]:
        row_max = tf.maximum(row_max, tf.reduce_max(group_logits, axis=1))
    exps = tuple(tf.exp(group_logits - row_max[:, None]) for group_logits in logits)
    return exps, row_max, tf.add_n([tf.reduce_sum(group_exps, axis=1) for group_exps in exps])


# `_symmetric_transposed_product` takes the untransposed product while every kept row's
# shift lies in [-this, this] (else the transposed one). Its rescaled terms carry the
# rounding of logits and shifts of that size: measured against a float64 reference (gradients
# of SupCon, relative to their largest entry), within 4x of the transposed product's error at
# |z| <= 20 (both <= 1e-6: tau >= 0.05 on unit-norm features), but 40x worse at tau = 0.01
# (|z| ~ 100: 9e-6). In range, the rescaling factors are at most e^40 ~ 2e17 (no overflow) and
# any term of at least float32's ulp in its own row stays a normal float32 (2^-24 e^-40 >> 2^-126).
_SYMMETRIC_MAX_ABS_SHIFT = 20.0


def _symmetric_transposed_product(exps, row_max, values):
    """`exps^T values` for the numerators of a symmetric logit matrix, without a transposed matmul.

    With `exps_ij = exp(z_ij - m_i)` and `z` symmetric, `exps^T = D exps D^-1`
    for `D = diag(exp(m - t))` (any `t`; here the largest shift):

        (exps^T values)_j = exp(m_j - t) sum_i exps_ji exp(t - m_i) values_i.

    On CPU a product with a transposed `[rows, rows]` operand measured 1.3x
    (plain graph) to 1.6x (XLA) an untransposed one; SupCon's forward and
    backward at 1024x2, in one process against the three-matmul bound: 1.38x
    -> 1.24x as a plain graph, 1.25x -> 1.11x under XLA (8192x2: 1.22x ->
    1.02x and 1.22x -> 1.16x). The rescaling is exact math, but its terms carry
    the rounding of the logits and shifts, so it is taken only while every row
    that keeps anything has `|m| <= _SYMMETRIC_MAX_ABS_SHIFT` (unit-norm
    features at tau >= 0.05); otherwise the transposed matmul runs (`tf.cond`:
    one of the two runs, in graphs and under XLA).

    Args:
      exps: float32 `[rows, rows]`, `exp(z_ij - m_i)` of a symmetric `z`
        (excluded entries 0, symmetrically).
      row_max: float32 `[rows]`, the shifts `m`; `EXCLUDED` for a row that
        keeps nothing (its `values` row must be 0; its column of `exps` is 0).
      values: float32 `[rows, dim]`.

    Returns:
      float32 `[rows, dim]`.
    """
    kept = row_max > 0.5 * EXCLUDED
    top = tf.reduce_max(row_max)
    largest = tf.reduce_max(tf.where(kept, tf.abs(row_max), 0.0))

    def rescaled():
        # A row that keeps nothing has values 0: scaled by 0, not by exp(huge) (0 * inf = NaN).
        scale_in = tf.where(kept, tf.exp(top - row_max), 0.0)
        return tf.exp(row_max - top)[:, None] * tf.matmul(exps, scale_in[:, None] * values)

    return tf.cond(
        largest <= _SYMMETRIC_MAX_ABS_SHIFT, rescaled, lambda: tf.matmul(exps, values, transpose_a=True)
    )


def factored_block(
    anchors,
    contrasts,
    weights,
    *,
    temperature,
    self_column,
    column_valid,
    is_real,
    self_on_diagonal=False,
    denominator="all",
    symmetric=False,
):
    """L_out with the "all" (or, for ids, "only_negatives") denominator for low-rank pair weights.

    Besides the three matmuls, its `[rows, cols]` work is `_shifted_exps`: a
    row max, `exp(z - max)` and a row sum. The softmax is never normalized in
    `[rows, cols]`: `1 / sum` scales the `[rows, dim]` operand or result of
    each gradient matmul instead. The contrasts come in groups (the anchors'
    own, other views, a queue's keys), each with its own logits and gradient
    products: a group whose gradient nobody asks for (keys under
    `tf.stop_gradient`, or a non-trainable queue) has its product pruned from
    the graph (for 4096 keys and 2048 rows, 22% of the three products' work).

    Args:
      anchors: float32 `[rows, dim]`.
      contrasts: tuple of float32 `[cols_g, dim]` contrast groups (the
        columns are their concatenation; the anchors' own columns are in the
        first); rows of absent columns must be zero.
      weights: the `RowWeights` of these rows (`SameId.rows`, `Cosine.rows`),
        built from these `contrasts`.
      temperature: python float.
      self_column: int32 `[rows]`, each anchor's own column (excluded).
      column_valid: None, or per group None or bool `[cols_g]`, false for
        absent columns (empty queue slots): out of numerator and denominator.
      is_real: None or bool `[rows]`, false for padding rows (invalid).
      self_on_diagonal: python bool: `self_column` is `0, 1, ..., rows - 1`
        (see `_set_self`).
      denominator: "all", or "only_negatives" for weights with a
        `positive_mask` (`SameId`): the positives leave the softmax, whose
        shift is then the largest negative logit (so no negative underflows
        however far the positives are), and a row without negatives is
        invalid. `(*)` is then `q_ij - w_ij / s_i` with `q` the softmax over
        the negatives: the same two matmuls and factored sums.
      symmetric: python bool: the anchors are the first contrast group (same
        rows, same order), their own columns the diagonal, and that group's
        excluded set symmetric (no `column_valid` there; `positive_mask` of
        ids is): its logits are then a symmetric matrix and its gradient needs
        no transposed product (`_symmetric_transposed_product`).

    Returns:
      A `Block`.
    """
    scaled = anchors * (1.0 / temperature)  # 1/tau scales [rows, dim], not [rows, cols].
    # sum_j w_ij c_j over the other columns, and s_i = sum_j w_ij.
    positive_sums = weights.row_sums - weights.self_weights[:, None] * anchors
    valid = weights.other_weight_sums > 0.0
    if is_real is not None:
        valid = tf.logical_and(valid, is_real)
    safe_sums = tf.where(valid, weights.other_weight_sums, 1.0)
    if denominator == "only_negatives":
        ends = tf.cumsum([tf.shape(group)[0] for group in contrasts])
        begins = tf.concat([[0], ends[:-1]], axis=0)
        excluded = [weights.positive_mask(begins[g], ends[g]) for g in range(len(contrasts))]
    else:
        excluded = [None] * len(contrasts)
    if column_valid is None:
        column_valid = [None] * len(contrasts)
    exps, row_max, exp_sums = _shifted_exps(scaled, contrasts, self_column, self_on_diagonal, column_valid, excluded)
    if denominator == "only_negatives":  # No negative: every logit EXCLUDED, so is the max.
        valid = tf.logical_and(valid, row_max > 0.5 * EXCLUDED)
    positive_logits = tf.reduce_sum(scaled * positive_sums, axis=1)
    log_denominator = row_max + tf.math.log(exp_sums)
    losses = tf.where(valid, log_denominator - positive_logits / safe_sums, 0.0)

    def backward(upstream):
        upstream = tf.where(valid, upstream, 0.0)
        pull = (upstream / safe_sums)[:, None] * (1.0 / temperature)
        # The softmax q = exps / exp_sums: its row normalization scales the [rows, dim] side.
        push = (upstream / exp_sums)[:, None] * (1.0 / temperature)
        # (*) with v = w / s: the softmax part by matmul, the weights' part by their factors.
        products = [tf.matmul(group_exps, group) for group_exps, group in zip(exps, contrasts)]
        grad_anchors = push * tf.add_n(products) - pull * positive_sums
        pulled = pull * anchors
        pushed = push * anchors
        grad_contrasts = []
        pulled_back = _split_like(weights.column_sums(pulled), contrasts)
        for index, group_exps in enumerate(exps):
            if index == 0 and symmetric:
                pushed_back = _symmetric_transposed_product(group_exps, row_max, pushed)
            else:
                pushed_back = tf.matmul(group_exps, pushed, transpose_a=True)
            grad_contrasts.append(pushed_back - pulled_back[index])
        # The own columns' share, added in place (no second [cols, dim] buffer).
        grad_contrasts[0] = tf.tensor_scatter_nd_add(
            grad_contrasts[0], self_column[:, None], weights.self_weights[:, None] * pulled
        )
        return grad_anchors, tuple(grad_contrasts)

    return Block(losses, valid, backward)


def weighted_block(
    anchors,
    contrasts,
    weights,
    dropped,
    *,
    temperature,
    summation,
    denominator,
    self_column,
    self_on_diagonal=False,
    positive_counts=None,
):
    """Any summation and denominator, explicit pair weights (GenSCL, masks, caps, L_in, ...).

    The anchor's own column is excluded by `_set_self` (in place on the
    diagonal), so no `[rows, cols]` exclusion mask is built for it; excluded
    entries carry the logit `EXCLUDED` and the weight 0 throughout.

    Args:
      anchors: float32 `[rows, dim]`.
      contrasts: tuple of float32 `[cols_g, dim]` contrast groups (the
        columns are their concatenation).
      weights: float32 `[rows, cols]`, non-negative, 0 on dropped pairs (an
        explicit mask's weights), or bool `[rows, cols]`, the positives (binary
        weights, from ids: no float matrix to write, no `log w`, and the row
        sums come as `positive_counts`); whatever it holds in each anchor's own
        column is ignored.
      dropped: None or bool `[rows, cols]`: dropped positives and absent
        columns, out of numerator and denominator (the anchor itself is out
        by `self_column`).
      temperature: python float.
      summation: "outside" (Eq. 2) or "inside" (Eq. 3).
      denominator: "all", "one_positive" or "only_negatives".
      self_column: int32 `[rows]`, each anchor's own column.
      self_on_diagonal: python bool: `self_column` is `0, 1, ..., rows - 1`
        (see `_set_self`).
      positive_counts: float32 `[rows]` with bool `weights`: each row's
        positives, its own column excluded (else None).

    Returns:
      A `Block`.
    """
    logits = tf.matmul(anchors * (1.0 / temperature), _concat(contrasts), transpose_b=True)
    logits = _set_self(logits, self_column, self_on_diagonal, EXCLUDED)
    binary = weights.dtype == tf.bool
    weights = _set_self(weights, self_column, self_on_diagonal, False if binary else 0.0)
    if dropped is not None:
        logits = tf.where(dropped, EXCLUDED, logits)
    positive = weights if binary else weights > 0.0
    in_denominator = logits if denominator == "all" else tf.where(positive, EXCLUDED, logits)
    denominator_softmax, log_denominator = _softmax_and_lse(in_denominator)

    weight_sum = positive_counts if binary else tf.reduce_sum(weights, axis=1)
    valid = weight_sum > 0.0
    if denominator == "only_negatives":
        # A row with no negative has only EXCLUDED logits: its log-sum-exp is about EXCLUDED.
        valid = tf.logical_and(valid, log_denominator > 0.5 * EXCLUDED)
    safe_sum = tf.where(valid, weight_sum, 1.0)
    if denominator == "one_positive":
        # log(e^z / (e^z + S)) = -softplus(log S - z); 0 without negatives (log S ~ EXCLUDED).
        gap = log_denominator[:, None] - logits  # Once: softplus here, sigmoid for the pulls.
        log_ratio = -tf.nn.softplus(gap)

    def weighted_sum(values):  # sum_j w_ij values_ij
        if binary:
            return tf.reduce_sum(tf.where(positive, values, 0.0), axis=1)
        return tf.reduce_sum(weights * values, axis=1)

    if summation == "outside":
        if denominator == "one_positive":
            losses = -weighted_sum(log_ratio) / safe_sum
        else:  # Row-constant denominator: lse - sum_j w_j z_j / s.
            losses = log_denominator - weighted_sum(logits) / safe_sum
        if binary:
            pulls = tf.where(positive, (1.0 / safe_sum)[:, None], 0.0)
        else:
            pulls = weights / safe_sum[:, None]
    else:
        # Eq. 3 in log space: -log(sum_p w_p r_p / s) = log s - lse_p(log w_p + log r_p). A
        # row-constant denominator leaves the logits: log r_p = z_p - lse, so lse_p(log w_p +
        # z_p) - lse (one [rows, cols] subtraction fewer; the softmax over the positives is the same).
        log_terms = log_ratio if denominator == "one_positive" else logits
        if not binary:
            log_terms = log_terms + tf.math.log(tf.where(positive, weights, 1.0))
        pulls, log_mean = _softmax_and_lse(tf.where(positive, log_terms, EXCLUDED))
        if denominator != "one_positive":
            log_mean = log_mean - log_denominator
        losses = tf.math.log(safe_sum) - log_mean
    losses = tf.where(valid, losses, 0.0)

    if denominator == "one_positive":
        # Each positive's own exp(z_p) in its denominator: its pull shrinks by 1 - r_p, and the
        # negatives are pushed by the pulls' total.
        pulls = pulls * tf.sigmoid(gap)
        grad_logits = denominator_softmax * tf.reduce_sum(pulls, axis=1, keepdims=True) - pulls
    else:
        grad_logits = denominator_softmax - pulls
    return Block(losses, valid, _features_backward(grad_logits, anchors, contrasts, valid, temperature))
