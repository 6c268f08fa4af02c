"""Extra contrast keys (a labelled memory queue) in SupCon, SimCLR and GenSCL.

The expected values come from a brute-force NumPy transcription (float64, one
anchor and one pair at a time, no masks) of the definition, not of the
engine: for each anchor view `i` of the batch, with the valid keys `Q`,

    A(i) = (batch views other than i) + (valid keys),  P(i) = {p in A(i) : label(p) = label(i)},

Eq. 2 / Eq. 3 of Khosla et al. (arXiv 2004.11362) over those sets; without
labels a key is a negative; GenSCL's target runs over the same `A(i)`. A
positives cap keeps the first `cap // views` other positive batch samples (all
their views), then positive keys in slot order while the count of positive
views stays within the cap.

Tolerances (float32 computation vs float64 reference): float32 rounds at
eps = 1.2e-7; a loss sums ~20 exponentials of logits up to 1/tau and takes
logs, so a value is off by at most a few 1e-7 relative. Values use rtol 1e-5
(~80 ulps; atol 1e-6 only for "inside" losses near 0). Gradients against
central finite differences of the float64 reference (step 1e-5: truncation
and rounding both ~1e-10) use rtol 1e-4 and an atol of 1e-5 times the
largest entry (float32 gradient entries are sums of O(1/tau) terms that may
cancel to near 0). Samples without a positive are exactly 0 on both sides.
Float32 against float32 (blocked vs dense, 2 replicas vs 1 device): the same
terms summed in another order, rtol 1e-5 on values and 1e-4 on gradients, as
in test_blocked.py and test_distributed.py.
"""

import itertools
import math
import re

import numpy as np
import pytest
import tensorflow as tf

import supcon.losses as losses

BATCH, DIM = 5, 4
# Sample 4 (label 2) has no other positive sample in the batch, only keys; sample 1 has one key.
BATCH_LABELS = [0, 1, 0, 0, 2]
KEY_LABELS = {
    "keys_share_labels": [2, 0, 2, 1, 2, 2, 0, 3],
    "no_positive_key": [5, 6, 7, 8, 5, 6, 7, 8],
}
KEY_VALID = {
    "all_valid": [True] * 8,
    "some_invalid": [True, False, True, True, False, True, False, True],
}

VALUE_RTOL = 1e-5
GRAD_RTOL, GRAD_ATOL_FRACTION = 1e-4, 1e-5


def _unit(shape, seed):
    x = np.random.default_rng(seed).normal(size=shape)
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _keys(valid, seed):
    """Keys with garbage (NaN, huge values) in the invalid slots: they must be ignored."""
    keys = _unit((len(valid), DIM), seed)
    garbage = np.array([np.nan, 1e30, -1e30, 0.0], np.float32)
    for slot in np.flatnonzero(~np.asarray(valid)):
        keys[slot] = garbage
    return keys


# ---- The NumPy reference. ----


def _items(batch, views, key_valid):
    """Every batch view (view-major) then every valid key, in slot order."""
    views_items = [("view", t, w) for w in range(views) for t in range(batch)]
    return views_items, [("key", k) for k, ok in enumerate(key_valid) if ok]


def reference_supcon(
    features,
    labels,
    keys,
    key_labels,
    key_valid,
    *,
    temperature,
    base_temperature=None,
    contrast_mode="all",
    summation="outside",
    denominator="all",
    positives_cap=None,
):
    f = np.asarray(features, np.float64)
    q = np.asarray(keys, np.float64)
    batch, views = f.shape[:2]
    view_items, key_items = _items(batch, views, key_valid)

    def vector(item):
        return f[item[1], item[2]] if item[0] == "view" else q[item[1]]

    per_sample = np.zeros(batch)
    anchor_views = range(views) if contrast_mode == "all" else range(1)
    for s in range(batch):

        def is_positive(item):
            if item[0] == "view":
                return item[1] == s if labels is None else labels[item[1]] == labels[s]
            return labels is not None and key_labels[item[1]] == labels[s]

        total = 0.0
        for v in anchor_views:
            others = [it for it in view_items if it != ("view", s, v)] + key_items
            positives = [it for it in others if is_positive(it)]
            if positives_cap is not None:
                other_samples = sorted({it[1] for it in positives if it[0] == "view" and it[1] != s})
                kept_samples = other_samples[: positives_cap // views]
                positive_keys = [it for it in positives if it[0] == "key"]
                kept_keys = positive_keys[: positives_cap - views * len(kept_samples)]
                dropped = [
                    it
                    for it in positives
                    if (it[0] == "view" and it[1] != s and it[1] not in kept_samples)
                    or (it[0] == "key" and it not in kept_keys)
                ]
                others = [it for it in others if it not in dropped]
                positives = [it for it in positives if it not in dropped]
            negatives = [it for it in others if it not in positives]
            if not positives or (denominator == "only_negatives" and not negatives):
                continue

            def logit(item):
                return float(np.dot(f[s, v], vector(item))) / temperature

            negatives_sum = sum(math.exp(logit(n)) for n in negatives)
            all_sum = sum(math.exp(logit(o)) for o in others)
            ratios = []
            for p in positives:
                denom = {
                    "all": all_sum,
                    "only_negatives": negatives_sum,
                    "one_positive": math.exp(logit(p)) + negatives_sum,
                }[denominator]
                ratios.append(math.exp(logit(p)) / denom)
            if summation == "outside":
                total += -np.mean([math.log(r) for r in ratios])
            else:
                total += -math.log(np.mean(ratios))
        per_sample[s] = total / len(anchor_views)
    if base_temperature is not None:
        per_sample *= temperature / base_temperature
    return per_sample


def reference_genscl(features, distributions, keys, key_distributions, key_valid, *, temperature, contrast_mode="all"):
    f = np.asarray(features, np.float64)
    q = np.asarray(keys, np.float64)
    batch, views = f.shape[:2]
    d = np.repeat(np.asarray(distributions, np.float64)[:, None], views, axis=1)
    kd = np.asarray(key_distributions, np.float64)
    view_items, key_items = _items(batch, views, key_valid)

    def vector(item):
        return f[item[1], item[2]] if item[0] == "view" else q[item[1]]

    def label_vector(item):
        return d[item[1], item[2]] if item[0] == "view" else kd[item[1]]

    def cosine(a, b):
        return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))

    per_sample = np.zeros(batch)
    anchor_views = range(views) if contrast_mode == "all" else range(1)
    for s in range(batch):
        total = 0.0
        for v in anchor_views:
            others = [it for it in view_items if it != ("view", s, v)] + key_items
            sims = np.array([cosine(d[s, v], label_vector(it)) for it in others])
            if sims.sum() <= 0:
                continue
            target = sims / sims.sum()
            logits = np.array([np.dot(f[s, v], vector(it)) / temperature for it in others])
            total += -float(np.sum(target * (logits - math.log(np.sum(np.exp(logits))))))
        per_sample[s] = total / len(anchor_views)
    return per_sample


def _finite_difference(fn, features, weights, step=1e-5):
    features = np.asarray(features, np.float64)
    numeric = np.zeros_like(features)
    for index in np.ndindex(features.shape):
        plus, minus = features.copy(), features.copy()
        plus[index] += step
        minus[index] -= step
        numeric[index] = (np.dot(weights, fn(plus)) - np.dot(weights, fn(minus))) / (2 * step)
    return numeric


def _value_and_grad(fn, features):
    """Per-sample values and d(sum_s (s + 1) * loss_s)/d features: non-uniform weights route gradients."""
    x = tf.Variable(features)
    weights = np.arange(1.0, 1.0 + features.shape[0])
    with tf.GradientTape() as tape:
        per_sample = fn(x)
        value = tf.reduce_sum(per_sample * tf.constant(weights, tf.float32))
    return per_sample.numpy(), tape.gradient(value, x).numpy(), weights


def _assert_grad_close(got, expected, message=""):
    atol = GRAD_ATOL_FRACTION * max(np.abs(expected).max(), 1e-3)
    np.testing.assert_allclose(got, expected, rtol=GRAD_RTOL, atol=atol, err_msg=message)


# ---- SupCon against the reference. ----


@pytest.mark.parametrize("valid_name", sorted(KEY_VALID))
@pytest.mark.parametrize("labels_name", sorted(KEY_LABELS))
@pytest.mark.parametrize("views", [1, 2, 3])
def test_supcon_with_keys_matches_reference_for_every_option(views, labels_name, valid_name):
    features = _unit((BATCH, views, DIM), seed=views)
    valid = np.array(KEY_VALID[valid_name])
    keys, key_labels = _keys(valid, seed=10 + views), KEY_LABELS[labels_name]
    for summation, denominator, cap, mode in itertools.product(
        ["outside", "inside"], ["all", "one_positive", "only_negatives"], [None, 0, views, 2 * views], ["all", "one"]
    ):
        options = dict(
            temperature=0.3, summation=summation, denominator=denominator, positives_cap=cap, contrast_mode=mode
        )
        expected = reference_supcon(features, BATCH_LABELS, keys, key_labels, valid, **options)
        got = losses.supcon_loss(
            features,
            BATCH_LABELS,
            contrast_features=keys,
            contrast_labels=key_labels,
            contrast_valid=valid,
            **options,
        ).numpy()
        np.testing.assert_allclose(got, expected, rtol=VALUE_RTOL, atol=1e-6, err_msg=str(options))


def test_keys_change_the_loss_and_caps_reach_the_keys():
    # Guards the reference test against vacuous agreement: keys matter, and a
    # cap drops keys (sample 4's positives are all keys: cap 2 keeps 2 of 4).
    features = _unit((BATCH, 2, DIM), seed=2)
    valid = np.ones(8, bool)
    keys, key_labels = _keys(valid, seed=3), KEY_LABELS["keys_share_labels"]

    def loss(**options):
        return losses.supcon_loss(features, BATCH_LABELS, temperature=0.3, **options).numpy()

    with_keys = loss(contrast_features=keys, contrast_labels=key_labels)
    assert not np.allclose(with_keys, loss(), rtol=1e-3)
    capped = loss(contrast_features=keys, contrast_labels=key_labels, positives_cap=2)
    assert not np.isclose(capped[4], with_keys[4], rtol=1e-3)
    # Only keys 0 and 2 (the first two positive slots) survive for sample 4.
    kept = [0, 1, 2, 3, 6, 7]
    two_keys = loss(contrast_features=keys[kept], contrast_labels=np.array(key_labels)[kept])
    np.testing.assert_allclose(capped[4], two_keys[4], rtol=VALUE_RTOL)


@pytest.mark.parametrize("views", [1, 2, 3])
def test_supcon_gradients_match_finite_differences(views):
    features = _unit((BATCH, views, DIM), seed=20 + views)
    valid = np.array(KEY_VALID["some_invalid"])
    keys, key_labels = _keys(valid, seed=30 + views), KEY_LABELS["keys_share_labels"]
    cases = [
        dict(summation="outside", denominator="all"),
        dict(summation="inside", denominator="one_positive", positives_cap=views),
        dict(summation="outside", denominator="only_negatives", contrast_mode="one"),
        dict(summation="inside", denominator="all", positives_cap=2 * views, contrast_mode="one"),
    ]
    for options in cases:
        options = dict(temperature=0.3, **options)
        got_value, got_grad, weights = _value_and_grad(
            lambda x: losses.supcon_loss(
                x, BATCH_LABELS, contrast_features=keys, contrast_labels=key_labels, contrast_valid=valid, **options
            ),
            features,
        )

        def reference(f):
            return reference_supcon(f, BATCH_LABELS, keys, key_labels, valid, **options)

        np.testing.assert_allclose(got_value, reference(features), rtol=VALUE_RTOL, atol=1e-6)
        _assert_grad_close(got_grad, _finite_difference(reference, features, weights), str(options))


# ---- SimCLR: keys are negatives only. ----


@pytest.mark.parametrize("views", [1, 2, 3])
def test_simclr_keys_are_negatives(views):
    features = _unit((BATCH, views, DIM), seed=40 + views)
    valid = np.array(KEY_VALID["some_invalid"])
    keys = _keys(valid, seed=41)
    for summation, denominator in itertools.product(["outside", "inside"], ["all", "one_positive", "only_negatives"]):
        options = dict(temperature=0.5, summation=summation, denominator=denominator)
        expected = reference_supcon(features, None, keys, None, valid, **options)
        got = losses.supcon_loss(features, contrast_features=keys, contrast_valid=valid, **options).numpy()
        np.testing.assert_allclose(got, expected, rtol=VALUE_RTOL, atol=1e-6, err_msg=str(options))
    # More negatives, same positives: the "all" loss can only grow.
    without = losses.supcon_loss(features, temperature=0.5).numpy()
    with_keys = losses.supcon_loss(features, temperature=0.5, contrast_features=keys, contrast_valid=valid)
    assert np.all(with_keys.numpy() >= without)

    # The Keras form ignores the keys' labels as it ignores y_true.
    loss = losses.SimCLRLoss(temperature=0.5)
    value = loss.with_contrast(None, features, keys, KEY_LABELS["keys_share_labels"], valid).numpy()
    expected = reference_supcon(features, None, keys, None, valid, temperature=0.5)
    np.testing.assert_allclose(value, expected.mean() if views > 1 else 0.0, rtol=VALUE_RTOL)


# ---- GenSCL with key label distributions. ----


@pytest.mark.parametrize("views", [1, 2, 3])
@pytest.mark.parametrize("contrast_mode", ["all", "one"])
def test_genscl_with_key_distributions_matches_reference(views, contrast_mode):
    rng = np.random.default_rng(views)
    features = _unit((BATCH, views, DIM), seed=50 + views)
    distributions = rng.dirichlet(np.ones(3), size=BATCH).astype(np.float32)
    valid = np.array(KEY_VALID["some_invalid"])
    keys = _keys(valid, seed=51)
    key_distributions = rng.dirichlet(np.ones(3), size=8).astype(np.float32)
    key_distributions[~valid] = 0.0  # An unfilled queue's zeros are accepted on invalid slots.
    got_value, got_grad, weights = _value_and_grad(
        lambda x: losses.genscl_loss(
            x,
            distributions,
            temperature=0.2,
            contrast_mode=contrast_mode,
            contrast_features=keys,
            contrast_label_distributions=key_distributions,
            contrast_valid=valid,
        ),
        features,
    )

    def reference(f):
        return reference_genscl(
            f, distributions, keys, key_distributions, valid, temperature=0.2, contrast_mode=contrast_mode
        )

    np.testing.assert_allclose(got_value, reference(features), rtol=VALUE_RTOL, atol=1e-6)
    _assert_grad_close(got_grad, _finite_difference(reference, features, weights))


def test_one_hot_genscl_with_keys_equals_supcon_with_keys():
    # Cosines of one-hot vectors are 1 up to ~4 ulps of the rsqrt (see test_genscl): rtol 1e-5.
    features = _unit((BATCH, 2, DIM), seed=60)
    valid = np.array(KEY_VALID["some_invalid"])
    keys, key_labels = _keys(valid, seed=61), np.array(KEY_LABELS["keys_share_labels"])
    genscl = losses.genscl_loss(
        features,
        np.eye(4)[BATCH_LABELS],
        contrast_features=keys,
        contrast_label_distributions=np.eye(4, dtype=np.float32)[key_labels],
        contrast_valid=valid,
    )
    supcon = losses.supcon_loss(
        features, BATCH_LABELS, contrast_features=keys, contrast_labels=key_labels, contrast_valid=valid
    )
    np.testing.assert_allclose(genscl.numpy(), supcon.numpy(), rtol=1e-5)


# ---- Invalid slots are absent. ----


def test_all_invalid_keys_equal_no_keys():
    # Equal up to float32 rounding, not bit for bit: the extra (masked) columns change how
    # the matmul and the row sums are vectorized, ~1 ulp seen. Values rtol 1e-6 (~8 ulps);
    # gradients, sums of more rounded terms, rtol 1e-5.
    features = _unit((BATCH, 2, DIM), seed=70)
    invalid = np.zeros(8, bool)
    keys = _keys(invalid, seed=71)  # every slot garbage
    option_sets = (dict(), dict(positives_cap=2, summation="inside"), dict(denominator="only_negatives", block_size=3))
    for options in option_sets:
        np.testing.assert_allclose(
            losses.supcon_loss(
                features,
                BATCH_LABELS,
                contrast_features=keys,
                contrast_labels=[0] * 8,
                contrast_valid=invalid,
                **options,
            ).numpy(),
            losses.supcon_loss(features, BATCH_LABELS, **options).numpy(),
            rtol=1e-6,
        )
    distributions = np.eye(3, dtype=np.float32)[[0, 1, 0, 0, 2]]
    np.testing.assert_allclose(
        losses.genscl_loss(
            features,
            distributions,
            contrast_features=keys,
            contrast_label_distributions=np.zeros((8, 3), np.float32),
            contrast_valid=invalid,
        ).numpy(),
        losses.genscl_loss(features, distributions).numpy(),
        rtol=1e-6,
    )
    # Gradients too: garbage in invalid slots reaches neither features nor keys.
    x, q = tf.Variable(features), tf.Variable(keys)
    with tf.GradientTape() as tape:
        value = tf.reduce_sum(
            losses.supcon_loss(x, BATCH_LABELS, contrast_features=q, contrast_labels=[0] * 8, contrast_valid=invalid)
        )
    grad_x, grad_q = tape.gradient(value, [x, q])
    with tf.GradientTape() as tape:
        plain = tf.reduce_sum(losses.supcon_loss(x, BATCH_LABELS))
    np.testing.assert_allclose(grad_x.numpy(), tape.gradient(plain, x).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(grad_q.numpy(), np.zeros_like(keys))


def test_no_positive_anywhere_gives_zero():
    # One view, singleton labels, keys of other classes: no positive, loss 0 with zero gradient.
    features = _unit((3, 1, DIM), seed=72)
    keys = _unit((4, DIM), seed=73)
    x = tf.Variable(features)
    with tf.GradientTape() as tape:
        per_sample = losses.supcon_loss(x, [0, 1, 2], contrast_features=keys, contrast_labels=[5, 6, 1, 7])
        value = per_sample[0] + per_sample[2]
    np.testing.assert_array_equal(per_sample.numpy()[[0, 2]], 0.0)
    assert per_sample.numpy()[1] > 0  # Sample 1's only positive is key 2.
    np.testing.assert_array_equal(tape.gradient(value, x).numpy(), 0.0)


# ---- Blocked path, graphs, XLA, variables as keys. ----


@pytest.mark.parametrize("block_size", [1, 3, 64])
def test_blocked_equals_dense_with_keys_variables(block_size):
    features = _unit((7, 2, DIM), seed=80)
    labels = [0, 1, 2, 0, 1, 2, 0]
    valid = np.array(KEY_VALID["some_invalid"])
    keys = _keys(valid, seed=81)
    key_labels = KEY_LABELS["keys_share_labels"]
    for options in (
        dict(),
        dict(summation="inside", denominator="one_positive", positives_cap=2),
        dict(denominator="only_negatives", contrast_mode="one"),
    ):
        results = []
        for size in (None, block_size):
            x, q = tf.Variable(features), tf.Variable(keys)
            with tf.GradientTape() as tape:
                per_sample = losses.supcon_loss(
                    x,
                    labels,
                    contrast_features=q,
                    contrast_labels=key_labels,
                    contrast_valid=valid,
                    block_size=size,
                    **options,
                )
                value = tf.reduce_sum(per_sample * tf.range(1.0, 8.0))
            grads = tape.gradient(value, [x, q])
            results.append([per_sample.numpy()] + [g.numpy() for g in grads])
        (dense_value, dense_x, dense_q), (value, grad_x, grad_q) = results
        assert np.all(np.isfinite(dense_q)) and np.all(dense_q[~valid] == 0.0)
        np.testing.assert_allclose(value, dense_value, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(grad_x, dense_x, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(grad_q, dense_q, rtol=1e-4, atol=1e-6)


def test_genscl_blocked_equals_dense_with_keys():
    rng = np.random.default_rng(0)
    features = _unit((5, 3, DIM), seed=82)
    distributions = rng.dirichlet(np.ones(3), size=(5, 3)).astype(np.float32)
    valid = np.array(KEY_VALID["some_invalid"])
    keys, key_distributions = _keys(valid, seed=83), rng.dirichlet(np.ones(3), size=8).astype(np.float32)
    kwargs = dict(contrast_features=keys, contrast_label_distributions=key_distributions, contrast_valid=valid)
    dense = _value_and_grad(lambda x: losses.genscl_loss(x, distributions, **kwargs), features)
    blocked = _value_and_grad(lambda x: losses.genscl_loss(x, distributions, block_size=4, **kwargs), features)
    np.testing.assert_allclose(blocked[0], dense[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(blocked[1], dense[1], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("block_size", [None, 3])
def test_xla_and_unknown_key_count_equal_eager(block_size):
    # The model's train step may be XLA-compiled (Keras' jit_compile="auto"), and a
    # graph may not know the number of keys.
    features = _unit((BATCH, 2, DIM), seed=90)
    valid = np.array(KEY_VALID["some_invalid"])
    keys, key_labels = _keys(valid, seed=91), np.array(KEY_LABELS["keys_share_labels"], np.int32)
    options = dict(positives_cap=2, summation="inside", block_size=block_size)

    def value_and_grad(x, q, key_ids, ok):
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = tf.reduce_mean(
                losses.supcon_loss(
                    x, BATCH_LABELS, contrast_features=q, contrast_labels=key_ids, contrast_valid=ok, **options
                )
            )
        return value, tape.gradient(value, x)

    eager = value_and_grad(tf.constant(features), keys, key_labels, valid)
    signature = [
        tf.TensorSpec([None, 2, DIM]),
        tf.TensorSpec([None, DIM]),
        tf.TensorSpec([None], tf.int32),
        tf.TensorSpec([None], tf.bool),
    ]
    for compiled in (
        tf.function(value_and_grad, jit_compile=True),
        tf.function(value_and_grad, input_signature=signature),
    ):
        value, grad = compiled(tf.constant(features), tf.constant(keys), tf.constant(key_labels), tf.constant(valid))
        np.testing.assert_allclose(value.numpy(), eager[0].numpy(), rtol=1e-5)
        np.testing.assert_allclose(grad.numpy(), eager[1].numpy(), rtol=1e-4, atol=1e-6)


# ---- Two replicas. ----


def _split(strategy, array):
    halves = np.split(array, 2)
    return strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant(halves[context.replica_id_in_sync_group])
    )


DISTRIBUTED_LOSSES = {
    "supcon": lambda z, y, q, ql, ok: losses.supcon_loss(
        z, y, temperature=0.2, contrast_features=q, contrast_labels=ql, contrast_valid=ok
    ),
    "supcon_inside_cap_blocked": lambda z, y, q, ql, ok: losses.supcon_loss(
        z,
        y,
        temperature=0.2,
        summation="inside",
        positives_cap=2,
        block_size=3,
        contrast_features=q,
        contrast_labels=ql,
        contrast_valid=ok,
    ),
    "simclr": lambda z, y, q, ql, ok: losses.supcon_loss(z, None, contrast_features=q, contrast_valid=ok),
    "genscl": lambda z, y, q, ql, ok: losses.genscl_loss(
        z,
        tf.one_hot(y, 4) * 0.8 + 0.05,
        temperature=0.2,
        contrast_features=q,
        contrast_label_distributions=tf.one_hot(ql, 4) * 0.8 + 0.05,
        contrast_valid=ok,
    ),
}


@pytest.mark.parametrize("name", sorted(DISTRIBUTED_LOSSES))
def test_two_replicas_with_keys_equal_one_device_on_the_global_batch(name, two_replica_strategy):
    # Every replica holds the same keys; they join the contrast set once, not once per replica.
    loss_fn = DISTRIBUTED_LOSSES[name]
    features = _unit((8, 2, DIM), seed=140)
    labels = np.array([0, 1, 2, 0, 1, 2, 3, 0], np.int32)
    valid = np.array(KEY_VALID["some_invalid"])
    keys = tf.constant(_keys(valid, seed=141))
    key_labels = tf.constant([2, 0, 2, 1, 3, 2, 0, 3], tf.int32)
    weights = np.arange(1.0, 9.0, dtype=np.float32)  # non-uniform: gradients routed to the right rows

    x = tf.constant(features)
    with tf.GradientTape() as tape:
        tape.watch(x)
        full = loss_fn(x, labels, keys, key_labels, valid)
        value = tf.reduce_sum(full * weights)
    full_grad = tape.gradient(value, x).numpy()

    strategy = two_replica_strategy

    @tf.function
    def run(dx, dy, dw):
        def replica_step(local_x, local_y, local_w):
            with tf.GradientTape() as tape:
                tape.watch(local_x)
                local = loss_fn(local_x, local_y, keys, key_labels, valid)
                local_value = tf.reduce_sum(local * local_w)
            return local, tape.gradient(local_value, local_x)

        return strategy.run(replica_step, args=(dx, dy, dw))

    per_replica, grads = run(_split(strategy, features), _split(strategy, labels), _split(strategy, weights))
    got = np.concatenate([t.numpy() for t in strategy.experimental_local_results(per_replica)])
    got_grad = np.concatenate([t.numpy() for t in strategy.experimental_local_results(grads)])
    np.testing.assert_allclose(got, full.numpy(), rtol=1e-5, atol=1e-6)
    # Each replica's gradient w.r.t. its own features holds only its anchors' terms; the
    # all_gather gradient sums the other replica's share, as in test_distributed.
    np.testing.assert_allclose(got_grad, full_grad, rtol=1e-4, atol=1e-6)


# ---- Keras wrappers. ----


def test_keras_with_contrast_reduces_as_call():
    features = _unit((BATCH, 1, DIM), seed=100)  # one view: validity depends on the keys
    labels = [0, 1, 4, 0, 2]
    valid = np.array(KEY_VALID["some_invalid"])
    keys, key_labels = _keys(valid, seed=101), KEY_LABELS["keys_share_labels"]
    expected = reference_supcon(features, labels, keys, key_labels, valid, temperature=0.1)
    # Samples 0 and 3 are positives of each other, 1 and 4 only have keys, 2 has nothing.
    has_positive = np.array([True, True, False, True, True])
    assert np.all((expected != 0) == has_positive)
    loss = losses.SupConLoss()
    np.testing.assert_allclose(
        loss.with_contrast(labels, features, keys, key_labels, valid).numpy(),
        expected[has_positive].mean(),
        rtol=VALUE_RTOL,
    )
    per_sample = losses.SupConLoss(reduction=None).with_contrast(labels, features, keys, key_labels, valid)
    np.testing.assert_allclose(per_sample.numpy(), expected, rtol=VALUE_RTOL, atol=1e-6)
    # Without the keys only samples 0 and 3 have a positive: a different mean.
    assert not np.isclose(loss(labels, features).numpy(), expected[has_positive].mean(), rtol=1e-3)
    # The loss object itself is untouched and its config unchanged.
    assert loss._contrast is None  # pylint: disable=protected-access
    assert losses.SupConLoss.from_config(loss.get_config()).get_config() == losses.SupConLoss().get_config()


def test_keras_genscl_with_contrast_and_distillation_targets():
    rng = np.random.default_rng(5)
    features = _unit((BATCH, 2, DIM), seed=110)
    labels, teacher = (rng.dirichlet(np.ones(3), size=BATCH).astype(np.float32) for _ in range(2))
    valid = np.array(KEY_VALID["some_invalid"])
    keys = _keys(valid, seed=111)
    key_labels, key_teacher = (rng.dirichlet(np.ones(3), size=8).astype(np.float32) for _ in range(2))
    loss = losses.GenSCLLoss(kd_alpha=0.5, temperature=0.2)
    value = loss.with_contrast(
        {"labels": labels, "teacher": teacher}, features, keys, {"labels": key_labels, "teacher": key_teacher}, valid
    )
    plain = losses.GenSCLLoss(temperature=0.2)
    expected = plain.with_contrast(labels, features, keys, key_labels, valid) + 0.5 * plain.with_contrast(
        teacher, features, keys, key_teacher, valid
    )
    np.testing.assert_allclose(value.numpy(), expected.numpy(), rtol=1e-6)
    reference = reference_genscl(features, labels, keys, key_labels, valid, temperature=0.2)
    np.testing.assert_allclose(
        plain.with_contrast(labels, features, keys, key_labels, valid).numpy(), reference.mean(), rtol=VALUE_RTOL
    )
    with pytest.raises(ValueError, match=r"keys' targets must take the form of `y_true`.*Received"):
        loss.with_contrast({"labels": labels, "teacher": teacher}, features, keys, key_labels, valid)


def test_keras_with_contrast_in_a_tf_function():
    features = _unit((BATCH, 2, DIM), seed=120)
    keys = _unit((8, DIM), seed=121)
    loss = losses.SupConLoss(block_size=4)

    @tf.function
    def step(x, q, key_ids):
        return loss.with_contrast(BATCH_LABELS, x, q, key_ids)

    value = step(tf.constant(features), tf.constant(keys), tf.constant(KEY_LABELS["keys_share_labels"]))
    key_labels = KEY_LABELS["keys_share_labels"]
    expected = reference_supcon(features, BATCH_LABELS, keys, key_labels, [True] * 8, temperature=0.1)
    np.testing.assert_allclose(value.numpy(), expected.mean(), rtol=VALUE_RTOL)


# ---- Bad input. ----

_Z = _unit((4, 2, 3), seed=130)
_Q = _unit((6, 3), seed=131)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(contrast_features=_Q[None]), r"\[keys, dim\].*Received: contrast_features.shape=\(1, 6, 3\)"),
        (dict(contrast_features=_Q[:, :2]), r"embedding size.*Received: contrast_features.shape=\(6, 2\)"),
        (dict(contrast_features=np.ones((6, 3), np.int32)), r"floating-point.*Received: contrast_features.dtype=int32"),
        (dict(contrast_features=_Q), r"`contrast_labels`.*required.*Received: contrast_labels=None"),
        (
            dict(contrast_features=_Q, contrast_labels=[0] * 5),
            r"one row per key.*Received: contrast_labels.shape=\(5,\)",
        ),
        (dict(contrast_features=_Q, contrast_labels=[0.5] * 6), r"whole-number class ids.*Received: contrast_labels="),
        (
            dict(contrast_features=_Q, contrast_labels=[0] * 6, contrast_valid=[1] * 6),
            r"bool.*Received: contrast_valid.dtype=int32",
        ),
        (
            dict(contrast_features=_Q, contrast_labels=[0] * 6, contrast_valid=[True] * 5),
            r"one row per key.*contrast_valid",
        ),
        (
            dict(contrast_labels=[0] * 6),
            r"`contrast_labels`.*needs `contrast_features`.*Received: contrast_features=None",
        ),
        (dict(contrast_valid=[True] * 6), r"`contrast_valid`.*needs `contrast_features`"),
        (dict(labels=None, contrast_features=_Q, contrast_labels=[0] * 6), r"need `labels`.*Received: labels=None"),
        (
            dict(labels=None, mask=np.eye(4), contrast_features=_Q, contrast_labels=[0] * 6),
            r"explicit `mask`.*Received: mask.shape=\(4, 4\)",
        ),
    ],
)
def test_bad_keys_raise_clear_value_error(kwargs, match):
    kwargs = {"labels": [0, 1, 0, 1], **kwargs}
    with pytest.raises(ValueError, match=match):
        losses.supcon_loss(_Z, **kwargs)


def test_bad_genscl_keys_raise_clear_value_error():
    distributions = np.eye(2, dtype=np.float32)[[0, 1, 0, 1]]
    with pytest.raises(ValueError, match=r"`contrast_label_distributions`.*required.*Received"):
        losses.genscl_loss(_Z, distributions, contrast_features=_Q)
    with pytest.raises(ValueError, match=r"as many classes.*Received: contrast_label_distributions.shape=\(6, 3\)"):
        losses.genscl_loss(_Z, distributions, contrast_features=_Q, contrast_label_distributions=np.ones((6, 3)))
    with pytest.raises(ValueError, match=r"non-negative rows.*Received: contrast_label_distributions="):
        losses.genscl_loss(_Z, distributions, contrast_features=_Q, contrast_label_distributions=-np.ones((6, 2)))
    with pytest.raises(ValueError, match=r"needs `contrast_features`"):
        losses.genscl_loss(_Z, distributions, contrast_label_distributions=np.ones((6, 2), np.float32))


@pytest.mark.parametrize("labels", [[0, 1, 0, 2, 1, 0], None])
def test_an_unused_key_gradient_is_not_computed(labels):
    # The keys are a contrast group of their own, with their own gradient product: a queue's
    # keys are not trained (a non-trainable variable, or stopped), and then that product is
    # dead code. Pinned in XLA's optimized HLO (its dead code elimination; Grappler prunes
    # plain graphs alike): one matrix product fewer than when the keys' gradient is asked for.
    features, keys = tf.constant(_unit((6, 2, 8), seed=0)), tf.constant(_unit((5, 8), seed=1))
    key_labels = None if labels is None else [1, 0, 3, 0, 2]

    def products(with_key_gradient):
        @tf.function(jit_compile=True)
        def gradients(features, keys):
            with tf.GradientTape() as tape:
                tape.watch([features, keys])
                loss = tf.reduce_mean(
                    losses.supcon_loss(features, labels, contrast_features=keys, contrast_labels=key_labels)
                )
            return tape.gradient(loss, [features, keys] if with_key_gradient else features)

        hlo = gradients.experimental_get_compiler_ir(features, keys)(stage="optimized_hlo")
        return len(re.findall(r" dot\(", hlo))

    assert products(with_key_gradient=False) == products(with_key_gradient=True) - 1
