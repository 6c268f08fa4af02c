"""The closed-form gradients (`supcon.losses._closed_form`) equal autodiff, for every loss option.

The autodiff side is a float64 TensorFlow transcription of Khosla et al. Eq. 2 / 3
(and Kim et al.'s soft weights) from explicit pair weights and exclusions, which
`_pairs` builds one anchor and one column at a time, as `reference.py` does: no
code shared with the engine. Each case checks values and gradients, dense and
blocked, with a non-uniform upstream gradient per sample.
"""

import math

import numpy as np
import pytest
import tensorflow as tf

import supcon.losses as losses

BATCH, DIM, KEYS = 6, 5, 4
LABELS = np.array([0, 1, 0, 2, 1, 0], np.int32)
KEY_LABELS = np.array([1, 0, 3, 0], np.int32)
KEY_VALID = np.array([True, True, False, True])


def _unit(shape, seed):
    x = np.random.default_rng(seed).normal(size=shape)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _pairs(case, views):
    """`(weights [rows, cols], excluded [rows, cols], anchor sample of each row)` in float64 / bool.

    Rows are the anchors view-major (view 0 of every sample, then view 1, ...);
    columns the views view-major, then the keys.
    """
    anchor_views = views if case.get("contrast_mode", "all") == "all" else 1
    columns = [(t, w) for w in range(views) for t in range(BATCH)]
    keys = case.get("keys", False)
    cols = len(columns) + (KEYS if keys else 0)
    labels = case.get("labels", "ids")
    distributions = case.get("distributions")
    cap = case.get("positives_cap")
    weights, excluded, samples = [], [], []
    for v in range(anchor_views):
        for s in range(BATCH):
            w_row, e_row = np.zeros(cols), np.zeros(cols, bool)
            for j, (t, w) in enumerate(columns):
                if (t, w) == (s, v):
                    e_row[j] = True
                elif distributions is not None:
                    a, b = distributions[s], distributions[t]
                    w_row[j] = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
                elif labels is None:
                    w_row[j] = float(s == t)
                else:
                    w_row[j] = float(LABELS[s] == LABELS[t])
            for k in range(KEYS if keys else 0):
                j = len(columns) + k
                if not KEY_VALID[k]:
                    e_row[j] = True
                elif distributions is not None:
                    a, b = distributions[s], case["key_distributions"][k]
                    w_row[j] = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
                elif labels is not None:
                    w_row[j] = float(LABELS[s] == KEY_LABELS[k])
            if cap is not None:
                # The official count: the first cap // views other positive samples keep every
                # view; then positive keys, in slot order, while the count stays within the cap.
                foreign = sorted({t for j, (t, _) in enumerate(columns) if w_row[j] > 0 and t != s})
                kept = foreign[: cap // views]
                for j, (t, _) in enumerate(columns):
                    if w_row[j] > 0 and t != s and t not in kept:
                        w_row[j], e_row[j] = 0.0, True
                room = cap - views * len(kept)
                for j in range(len(columns), cols):
                    if w_row[j] > 0:
                        if room > 0:
                            room -= 1
                        else:
                            w_row[j], e_row[j] = 0.0, True
            weights.append(w_row)
            excluded.append(e_row)
            samples.append(s)
    return np.array(weights), np.array(excluded), np.array(samples)


def _autodiff_loss(features, keys, weights, excluded, samples, *, temperature, summation, denominator):
    """Per-sample loss, float64, by plain TF ops (differentiated by autodiff)."""
    views = features.shape[1]
    contrasts = tf.reshape(tf.transpose(features, [1, 0, 2]), [-1, DIM])
    anchors = contrasts[: len(samples)]
    if keys is not None:
        contrasts = tf.concat([contrasts, keys], axis=0)
    logits = tf.matmul(anchors, contrasts, transpose_b=True) / temperature
    positive = weights > 0
    negative = np.logical_and(~excluded, ~positive)
    in_denominator = ~excluded if denominator == "all" else negative
    minus_inf = tf.constant(-np.inf, tf.float64)
    log_denominator = tf.reduce_logsumexp(tf.where(in_denominator, logits, minus_inf), axis=1, keepdims=True)
    if denominator == "one_positive":
        log_ratio = logits - tf.experimental.numpy.logaddexp(logits, log_denominator)
    else:
        log_ratio = logits - log_denominator
    weight_sum = weights.sum(axis=1)
    valid = weight_sum > 0
    if denominator == "only_negatives":
        valid &= negative.any(axis=1)
    safe_sum = np.where(valid, weight_sum, 1.0)
    log_ratio = tf.where(positive, log_ratio, 0.0)
    if summation == "outside":
        per_anchor = -tf.reduce_sum(weights * log_ratio, axis=1) / safe_sum
    else:
        per_anchor = -tf.math.log(tf.reduce_sum(tf.where(positive, weights * tf.exp(log_ratio), 0.0), axis=1) / safe_sum)
    per_anchor = tf.where(valid, per_anchor, 0.0)
    anchor_views = len(samples) // BATCH
    return tf.reduce_mean(tf.reshape(per_anchor, [anchor_views, BATCH]), axis=0)


def _weighted_value_and_grads(fn, *tensors):
    """`(per_sample, gradients)`, the upstream weighting samples by 1, 2, ..., B."""
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        per_sample = fn(*tensors)
        value = tf.reduce_sum(per_sample * tf.range(1.0, BATCH + 1.0, dtype=per_sample.dtype))
    gradients = tape.gradient(value, tensors, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return per_sample.numpy(), [g.numpy() for g in gradients]


CASES = {
    "supcon": {},
    "simclr": {"labels": None},
    "supcon_queue": {"keys": True},
    "simclr_queue": {"labels": None, "keys": True},
    "inside_all": {"summation": "inside"},
    "inside_one_positive": {"summation": "inside", "denominator": "one_positive"},
    "inside_only_negatives": {"summation": "inside", "denominator": "only_negatives", "keys": True},
    "outside_one_positive": {"denominator": "one_positive", "keys": True},
    "outside_only_negatives": {"denominator": "only_negatives"},
    "positives_cap": {"positives_cap": 2, "keys": True},
    "contrast_one": {"contrast_mode": "one", "keys": True, "temperature": 0.07},
    "genscl": {"genscl": True},
    "genscl_queue": {"genscl": True, "keys": True, "contrast_mode": "one"},
    "mask": {"mask": True, "summation": "inside"},
}


def _call(case, views, block_size):
    """`(engine per-sample fn(features, keys), autodiff per-sample fn(features, keys))` for a case."""
    case = dict(case)
    rng = np.random.default_rng(5)
    mask = None
    temperature = case.pop("temperature", 0.1)
    settings = {
        name: case[name] for name in ("summation", "denominator", "positives_cap", "contrast_mode") if name in case
    }
    keyed = case.get("keys", False)
    if case.pop("genscl", False):
        distributions = rng.dirichlet(np.ones(3), size=BATCH)
        key_distributions = rng.dirichlet(np.ones(3), size=KEYS)
        case.update(distributions=distributions, key_distributions=key_distributions)

        def engine(x, keys):
            extra = {}
            if keyed:
                extra = dict(contrast_features=keys, contrast_label_distributions=key_distributions.astype(np.float32),
                             contrast_valid=KEY_VALID)
            return losses.genscl_loss(x, distributions.astype(np.float32), temperature=temperature,
                                      block_size=block_size, **settings, **extra)
    elif case.pop("mask", False):
        mask = (LABELS[:, None] == LABELS[None, :]).astype(np.float32)
        mask[0, 3] = 1.0  # Not an equivalence: only the mask path can express it.

        def engine(x, keys):
            return losses.supcon_loss(x, mask=mask, temperature=temperature, block_size=block_size, **settings)
    else:
        labels = case.get("labels", "ids")
        labels = None if labels is None else LABELS

        def engine(x, keys):
            extra = {}
            if keyed:
                extra = dict(contrast_features=keys, contrast_valid=KEY_VALID,
                             contrast_labels=None if labels is None else KEY_LABELS)
            return losses.supcon_loss(x, labels, temperature=temperature, block_size=block_size, **settings, **extra)

    weights, excluded, samples = _pairs(case, views)
    if mask is not None:
        weights = np.where(excluded, 0.0, mask[samples][:, np.tile(np.arange(BATCH), views)])

    def autodiff(x, keys):
        return _autodiff_loss(
            x, keys if keyed else None, weights, excluded, samples, temperature=temperature,
            summation=settings.get("summation", "outside"), denominator=settings.get("denominator", "all"),
        )

    return engine, autodiff


@pytest.mark.parametrize("block_size", [None, 4])
@pytest.mark.parametrize("name", list(CASES))
def test_closed_form_equals_autodiff(name, block_size):
    views = 3 if name in ("supcon", "inside_all") else 2
    case = dict(CASES[name])
    features = _unit((BATCH, views, DIM), seed=1)
    keys = _unit((KEYS, DIM), seed=2)
    engine, autodiff = _call(case, views, block_size)
    got, got_grads = _weighted_value_and_grads(engine, tf.constant(features, tf.float32), tf.constant(keys, tf.float32))
    expected, expected_grads = _weighted_value_and_grads(autodiff, tf.constant(features), tf.constant(keys))
    # float32 against float64: each value / gradient entry sums `cols` terms of size up to
    # 1/tau, so rounding grows like sqrt(cols) float32 ulps of that (~1e-6 here); 1e-5 *
    # sqrt(cols) of the largest entry is far above it and far below any wrong term (>= 1e-2).
    cols = views * BATCH + KEYS
    tolerance = 1e-5 * math.sqrt(cols)
    np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance * np.abs(expected).max())
    for got_grad, expected_grad in zip(got_grads, expected_grads):
        np.testing.assert_allclose(
            got_grad, expected_grad, rtol=tolerance, atol=tolerance * np.abs(expected_grad).max()
        )


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
@pytest.mark.parametrize("name", ["supcon", "inside_one_positive", "genscl"])
def test_half_precision_features_get_the_float32_gradients(name, dtype):
    # Mixed precision hands the loss float16/bfloat16 projections: the engine computes in
    # float32, so value and gradient are those of the same (rounded) features in float32.
    views = 2
    features = tf.cast(_unit((BATCH, views, DIM), seed=3), dtype)
    engine, _ = _call(CASES[name], views, None)
    keys = tf.constant(_unit((KEYS, DIM), seed=2), tf.float32)
    half, (half_grad, _) = _weighted_value_and_grads(engine, features, keys)
    full, (full_grad, _) = _weighted_value_and_grads(engine, tf.cast(features, tf.float32), keys)
    assert half_grad.dtype == dtype.as_numpy_dtype
    np.testing.assert_allclose(half, full, rtol=1e-6)
    # The gradient is rounded to the input dtype on the way out: its ulp is the tolerance.
    ulp = {tf.float16: 2.0**-10, tf.bfloat16: 2.0**-7}[dtype]
    np.testing.assert_allclose(half_grad.astype(np.float32), full_grad, rtol=ulp, atol=ulp * np.abs(full_grad).max())


@pytest.mark.parametrize("name", ["supcon", "simclr_queue", "inside_one_positive", "positives_cap"])
def test_xla_closed_form_equals_autodiff(name):
    views = 2
    engine, autodiff = _call(CASES[name], views, None)
    features = _unit((BATCH, views, DIM), seed=4)
    keys = _unit((KEYS, DIM), seed=2)
    compiled = tf.function(lambda x, k: _weighted_value_and_grads_graph(engine, x, k), jit_compile=True)
    got, got_grad = [t.numpy() for t in compiled(tf.constant(features, tf.float32), tf.constant(keys, tf.float32))]
    expected, (expected_grad, _) = _weighted_value_and_grads(autodiff, tf.constant(features), tf.constant(keys))
    tolerance = 1e-5 * math.sqrt(views * BATCH + KEYS)
    np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance * np.abs(expected).max())
    np.testing.assert_allclose(got_grad, expected_grad, rtol=tolerance, atol=tolerance * np.abs(expected_grad).max())


def _weighted_value_and_grads_graph(fn, features, keys):
    with tf.GradientTape() as tape:
        tape.watch(features)
        per_sample = fn(features, keys)
        value = tf.reduce_sum(per_sample * tf.range(1.0, BATCH + 1.0))
    return per_sample, tape.gradient(value, features)


@pytest.mark.parametrize("name", ["supcon", "simclr_queue", "inside_one_positive", "positives_cap", "genscl"])
def test_blocked_mean_upstream_takes_the_one_pass_gradient(name):
    # A uniform upstream (a mean-reduced loss) scales the gradient the blocked forward pass
    # accumulated; the weighted upstream of the other tests recomputes the blocks instead.
    views = 2
    engine, autodiff = _call(CASES[name], views, block_size=4)
    features, keys = _unit((BATCH, views, DIM), seed=7), _unit((KEYS, DIM), seed=2)

    def mean_value_and_grads(fn, x, k):
        with tf.GradientTape() as tape:
            tape.watch([x, k])
            value = 3.0 * tf.reduce_mean(fn(x, k))
        return value.numpy(), [g.numpy() for g in tape.gradient(value, [x, k], unconnected_gradients="zero")]

    got, got_grads = mean_value_and_grads(engine, tf.constant(features, tf.float32), tf.constant(keys, tf.float32))
    expected, expected_grads = mean_value_and_grads(autodiff, tf.constant(features), tf.constant(keys))
    tolerance = 1e-5 * math.sqrt(views * BATCH + KEYS)
    np.testing.assert_allclose(got, expected, rtol=tolerance)
    for got_grad, expected_grad in zip(got_grads, expected_grads):
        np.testing.assert_allclose(got_grad, expected_grad, rtol=tolerance, atol=tolerance * np.abs(expected_grad).max())


@pytest.mark.parametrize("block_size", [None, 4])
@pytest.mark.parametrize("name", ["supcon", "simclr_queue", "genscl_queue", "outside_only_negatives"])
def test_features_far_from_unit_norm_keep_exact_values(name, block_size):
    # One contrast 50x longer than the others: logits up to ~500 in its column, while the other
    # rows' largest logits stay near 10. The exponentials must be shifted by each row's own
    # largest kept logit: unshifted they overflow, and shifted by a norm bound (|a_i| max_j |c_j|
    # / tau, a cheaper shift) every other row would underflow to a sum of 0 (a loss of inf).
    views = 2
    features = _unit((BATCH, views, DIM), seed=8)
    features[2, 1] *= 50.0
    keys = _unit((KEYS, DIM), seed=2)
    engine, autodiff = _call(CASES[name], views, block_size)
    got, got_grads = _weighted_value_and_grads(engine, tf.constant(features, tf.float32), tf.constant(keys, tf.float32))
    expected, expected_grads = _weighted_value_and_grads(autodiff, tf.constant(features), tf.constant(keys))
    # As in test_closed_form_equals_autodiff, with entries up to 50x larger logits (|z| <= 500,
    # float32 rounding ~500 ulp(1)): relative to the largest entry, the same sqrt(cols) bound.
    tolerance = 1e-5 * math.sqrt(views * BATCH + KEYS)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance * np.abs(expected).max())
    for got_grad, expected_grad in zip(got_grads, expected_grads):
        np.testing.assert_allclose(got_grad, expected_grad, rtol=tolerance, atol=tolerance * np.abs(expected_grad).max())
