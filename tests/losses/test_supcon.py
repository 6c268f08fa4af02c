"""Tests of `supcon.losses.supcon_loss` and its Keras forms against the NumPy reference."""

import dataclasses
import doctest
import itertools
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import supcon.losses as losses
from supcon.losses import options as options_module
from supcon.losses import supcon as supcon_module
from tests.losses import reference


def _unit(shape, seed):
    x = np.random.default_rng(seed).normal(size=shape)
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


LABEL_PATTERNS = {
    "distinct": [0, 1, 2, 3, 4],
    "all_equal": [7, 7, 7, 7, 7],
    "singletons_and_pairs": [0, 1, 1, 2, 3],
    "random": [2, 0, 2, 1, 0],
    "self_supervised": None,
}


@pytest.mark.parametrize("views", [1, 2, 3])
@pytest.mark.parametrize("pattern", sorted(LABEL_PATTERNS))
def test_matches_reference_for_every_option(views, pattern):
    labels = LABEL_PATTERNS[pattern]
    features = _unit((5, views, 6), seed=views * 10 + len(pattern))
    for summation, denominator, cap, mode in itertools.product(
        # positives_cap counts whole samples: a multiple of the views.
        ["outside", "inside"], ["all", "one_positive", "only_negatives"], [None, 0, views, 2 * views], ["all", "one"]
    ):
        options = dict(
            temperature=0.3,
            summation=summation,
            denominator=denominator,
            positives_cap=cap,
            contrast_mode=mode,
        )
        expected = reference.supcon(features, labels, **options)
        got = losses.supcon_loss(features, labels, **options).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5, err_msg=str(options))


def test_one_hot_labels_equal_class_ids():
    features = _unit((6, 2, 4), seed=1)
    ids = np.array([0, 2, 1, 2, 0, 1])
    np.testing.assert_allclose(
        losses.supcon_loss(features, ids).numpy(),
        losses.supcon_loss(features, np.eye(3)[ids]).numpy(),
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        losses.supcon_loss(features, ids[:, None]).numpy(),
        losses.supcon_loss(features, ids).numpy(),
        rtol=1e-6,
    )


def test_explicit_mask_matches_reference_and_labels():
    features = _unit((4, 2, 5), seed=2)
    labels = [0, 1, 0, 1]
    mask = (np.array(labels)[:, None] == np.array(labels)[None, :]).astype(np.float32)
    np.testing.assert_allclose(
        losses.supcon_loss(features, mask=mask).numpy(),
        losses.supcon_loss(features, labels).numpy(),
        rtol=1e-6,
    )
    # A mask with a zero diagonal makes a sample's other views negatives.
    odd_mask = np.array([[0, 1, 0, 0], [1, 0, 0, 1], [0, 0, 0, 1], [1, 0, 1, 0]], np.float32)
    np.testing.assert_allclose(
        losses.supcon_loss(features, mask=odd_mask, temperature=0.5).numpy(),
        reference.supcon(features, mask=odd_mask, temperature=0.5),
        rtol=1e-5,
    )


@pytest.mark.parametrize("views", [1, 2])
def test_explicit_mask_with_positives_cap_matches_reference(views):
    # An explicit mask takes the cap's row-by-row path (labels take per-sample ranks):
    # a label mask gives the labels' losses, and a mask that is no equivalence (not
    # symmetric, some rows with many positives) the reference's.
    features = _unit((6, views, 5), seed=50 + views)
    labels = [0, 1, 0, 0, 1, 0]
    label_mask = (np.array(labels)[:, None] == np.array(labels)[None, :]).astype(np.float32)
    odd_mask = np.array([[1, 1, 0, 1, 1, 0], [0, 1, 1, 1, 0, 1], [1, 1, 1, 0, 1, 1],
                         [0, 0, 1, 0, 1, 1], [1, 0, 0, 1, 1, 0], [1, 1, 1, 1, 1, 1]], np.float32)
    for summation, denominator, cap in itertools.product(
        ["outside", "inside"], ["all", "one_positive", "only_negatives"], [0, views, 2 * views]
    ):
        options = dict(temperature=0.4, summation=summation, denominator=denominator, positives_cap=cap)
        np.testing.assert_allclose(
            losses.supcon_loss(features, mask=label_mask, **options).numpy(),
            losses.supcon_loss(features, labels, **options).numpy(),
            rtol=1e-5, atol=1e-6, err_msg=str(options),
        )
        np.testing.assert_allclose(
            losses.supcon_loss(features, mask=odd_mask, **options).numpy(),
            reference.supcon(features, mask=odd_mask, **options),
            rtol=1e-5, atol=1e-5, err_msg=str(options),
        )


def test_base_temperature_scales_by_ratio():
    features = _unit((4, 2, 3), seed=3)
    plain = losses.supcon_loss(features, [0, 0, 1, 1], temperature=0.1)
    scaled = losses.supcon_loss(features, [0, 0, 1, 1], temperature=0.1, base_temperature=0.07)
    np.testing.assert_allclose(scaled.numpy(), plain.numpy() * 0.1 / 0.07, rtol=1e-6)
    # The official TF code's `scale_by_temperature` (loss *= tau, google-research supcon/losses.py)
    # is base_temperature=1.0; the PyTorch code's tau / 0.07 is base_temperature=0.07 (above).
    by_tau = losses.supcon_loss(features, [0, 0, 1, 1], temperature=0.1, base_temperature=1.0)
    np.testing.assert_allclose(by_tau.numpy(), plain.numpy() * 0.1, rtol=1e-6)


# ---- Closed-form cases derived by hand. ----


def test_identical_features_give_log_of_other_views():
    # 2 samples x 2 views, one class, every z equal: every logit is 1/tau, each
    # anchor has 3 others, all positives: L_out = -log(1/3) = log 3 (any tau).
    features = np.ones((2, 2, 4), np.float32) / 2.0
    for temperature in (0.07, 1.0):
        got = losses.supcon_loss(features, [5, 5], temperature=temperature).numpy()
        np.testing.assert_allclose(got, [math.log(3)] * 2, rtol=1e-6)


def test_orthogonal_samples_simclr_closed_form():
    # Sample 0's views are e1, sample 1's are e2. Anchor (0, 0): positive (0, 1)
    # with logit 1/tau, negatives (1, *) with logit 0:
    # loss = -log(e^{1/t} / (e^{1/t} + 2)) = log(1 + 2 e^{-1/t}).
    e1, e2 = np.eye(2, dtype=np.float32)
    features = np.stack([[e1, e1], [e2, e2]])
    t = 0.5
    expected = math.log(1 + 2 * math.exp(-1 / t))
    np.testing.assert_allclose(losses.supcon_loss(features, temperature=t).numpy(), [expected] * 2, rtol=1e-6)
    # "only_negatives": -log(e^{1/t} / 2) = log 2 - 1/t.
    np.testing.assert_allclose(
        losses.supcon_loss(features, temperature=t, denominator="only_negatives").numpy(),
        [math.log(2) - 1 / t] * 2,
        rtol=1e-6,
    )


def test_inside_vs_outside_closed_form():
    # One anchor-view of sample 0 with two positives at logits a, b and one
    # negative at 0 (batch of 3, one view, labels [0, 0, 0] except sample 2).
    # Take z0 = e1, z1 = e1 (logit 1/t), z2 = e2 (negative, logit 0), z3 = -e1 positive (logit -1/t).
    e1, e2 = np.eye(2, dtype=np.float32)
    features = np.stack([[e1], [e1], [e2], [-e1]])
    labels = [0, 0, 1, 0]
    t = 1.0
    denom = math.exp(1) + math.exp(0) + math.exp(-1)
    outside = -0.5 * ((1 - math.log(denom)) + (-1 - math.log(denom)))
    inside = -math.log(0.5 * (math.exp(1) + math.exp(-1)) / denom)
    got_out = losses.supcon_loss(features, labels, temperature=t).numpy()[0]
    got_in = losses.supcon_loss(features, labels, temperature=t, summation="inside").numpy()[0]
    np.testing.assert_allclose([got_out, got_in], [outside, inside], rtol=1e-6)
    assert got_in <= got_out  # Jensen: L_in <= L_out (paper §3.2.2).


# ---- positives_cap as the official code counts it. ----


def _official_contrastive_loss(features, labels, *, temperature, contrast_mode, summation, denominator, cap):
    """NumPy transcription of the official `contrastive_loss` on one device.

    google-research/google-research supcon/losses.py (commit 0c1bbe5): the
    [batch, batch] label mask (l.502), `_cap_positives_mask` (l.177-237: the
    diagonal removed, `top_k(row, cap // views)` over a 0/1 row, which keeps
    the lowest column indices, then the diagonal put back), tiling by
    [anchor views, views] in view-major order (l.305, l.321), negatives =
    1 - the *uncapped* tiled mask (l.307), the three denominators (l.546-555),
    `scale_by_temperature=True` (l.570-571) and, with one view, a further
    division by the number of positives (l.574-582).
    """
    f = np.asarray(features, np.float64)
    batch, views = f.shape[:2]
    ids = np.asarray(labels)
    mask = (ids[:, None] == ids[None, :]).astype(np.float64)
    diagonal = np.eye(batch)
    if cap is not None:
        no_diagonal = np.minimum(mask, 1.0 - diagonal)
        picked = np.zeros_like(mask)
        for row in range(batch):
            # A stable descending sort: equal values keep the lower index first, like tf.math.top_k.
            picked[row, np.argsort(-no_diagonal[row], kind="stable")[: cap // views]] = 1.0
        capped_mask = mask * np.maximum(picked, diagonal)
    anchor_views = views if contrast_mode == "all" else 1
    contrasts = f.transpose(1, 0, 2).reshape(views * batch, -1)
    anchors = f[:, :anchor_views].transpose(1, 0, 2).reshape(anchor_views * batch, -1)
    logits = anchors @ contrasts.T / temperature
    logits = logits - logits.max(axis=1, keepdims=True)
    exp_logits = np.exp(logits)
    not_self = 1.0 - np.eye(anchor_views * batch, views * batch)
    uncapped = np.tile(mask, (anchor_views, views))
    negatives = 1.0 - uncapped
    positives = (uncapped if cap is None else np.tile(capped_mask, (anchor_views, views))) * not_self
    num_positives = positives.sum(axis=1)
    negatives_sum = (exp_logits * negatives).sum(axis=1, keepdims=True)
    if denominator == "all":
        denominators = negatives_sum + (exp_logits * positives).sum(axis=1, keepdims=True)
    elif denominator == "one_positive":
        denominators = exp_logits + negatives_sum
    else:
        denominators = negatives_sum

    def divide_no_nan(a, b):
        return np.where(b == 0, 0.0, a / np.where(b == 0, 1.0, b))

    with np.errstate(divide="ignore"):
        if summation == "outside":
            log_probs = divide_no_nan(((logits - np.log(denominators)) * positives).sum(axis=1), num_positives)
        else:
            log_probs = np.log(divide_no_nan((exp_logits / denominators * positives).sum(axis=1), num_positives))
    loss = (-log_probs * temperature).reshape(anchor_views, batch)
    if views != 1:
        return loss.mean(axis=0)
    return divide_no_nan(loss[0], num_positives)


@pytest.mark.parametrize("views", [1, 2, 3])
def test_positives_cap_matches_official_transcription(views):
    # Classes with 3 and 2 members, so caps of 1 and 2 other samples both bite;
    # every anchor has a negative (the official "only_negatives" is NaN without one).
    labels = [0, 1, 0, 0, 1, 2]
    features = _unit((6, views, 3), seed=40 + views)
    # With one view the official code divides by |P(i)| a second time; with
    # at most one positive per anchor (caps 0 and 1) that division is a no-op.
    caps = [0, 1] if views == 1 else [None, 0, views, 2 * views]
    for summation, denominator, cap, mode in itertools.product(
        ["outside", "inside"], ["all", "one_positive", "only_negatives"], caps, ["all", "one"]
    ):
        options = dict(temperature=0.4, summation=summation, denominator=denominator, contrast_mode=mode)
        expected = _official_contrastive_loss(features, labels, cap=cap, **options)
        # The official code scales by tau (scale_by_temperature): base_temperature = 1.
        got = losses.supcon_loss(features, labels, positives_cap=cap, base_temperature=1.0, **options).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6, err_msg=f"cap={cap} {options}")


def test_positives_cap_hand_computed():
    # 4 samples, every view of a sample equal: z0 = e1, z1 = e2, z2 = -e1,
    # z3 = -e2; labels [0, 0, 0, 1]; tau = 1. positives_cap = views keeps one
    # other sample, the lowest index: 1 for anchor 0, 0 for anchors 1 and 2;
    # the other class-0 sample leaves numerator and denominator. Sample 3 has
    # only its own views. With V views an anchor has V - 1 own views (logit
    # 1), V views of the kept sample and V of each negative sample:
    #   s0: kept z1 (0), negatives z3 (0):  log((V-1)e + 2V) - (V-1)/(2V-1)
    #   s1: kept z0 (0), negatives z3 (-1): log((V-1)e + V + V/e) - (V-1)/(2V-1)
    #   s2: kept z0 (-1), negatives z3 (0): log((V-1)e + V/e + V) - (V-1-V)/(2V-1)
    #   s3: no kept sample, negatives z0 (0), z1 (-1), z2 (0): log((V-1)e + 2V + V/e) - 1
    # With V = 1, s3 has no positive (0) and the own-view terms vanish.
    e = math.e
    expected = {
        1: [math.log(2), math.log(1 + 1 / e), math.log(1 / e + 1) + 1, 0.0],
        2: [
            math.log(e + 4) - 1 / 3,
            math.log(e + 2 + 2 / e) - 1 / 3,
            math.log(e + 2 / e + 2) + 1 / 3,
            math.log(e + 4 + 2 / e) - 1,
        ],
        3: [
            math.log(2 * e + 6) - 2 / 5,
            math.log(2 * e + 3 + 3 / e) - 2 / 5,
            math.log(2 * e + 3 / e + 3) + 1 / 5,
            math.log(2 * e + 6 + 3 / e) - 1,
        ],
    }
    e1, e2 = np.eye(2, dtype=np.float32)
    for views, values in expected.items():
        features = np.stack([[z] * views for z in (e1, e2, -e1, -e2)])
        got = losses.supcon_loss(features, [0, 0, 0, 1], temperature=1.0, positives_cap=views).numpy()
        np.testing.assert_allclose(got, values, rtol=1e-6, atol=1e-7, err_msg=f"views={views}")
        blocked = losses.supcon_loss(features, [0, 0, 0, 1], temperature=1.0, positives_cap=views, block_size=3)
        np.testing.assert_allclose(blocked.numpy(), values, rtol=1e-6, atol=1e-7, err_msg=f"views={views}")


def test_positives_cap_must_be_a_multiple_of_the_views():
    features = _unit((4, 2, 3), seed=14)
    with pytest.raises(ValueError, match=r"multiple of the number of views.*positives_cap=3, views=2"):
        losses.supcon_loss(features, [0, 0, 1, 1], positives_cap=3)

    @tf.function(input_signature=[tf.TensorSpec([4, None, 3])])
    def unknown_views(x):
        return losses.supcon_loss(x, [0, 0, 1, 1], positives_cap=3)

    with pytest.raises(tf.errors.InvalidArgumentError, match="multiple of the number of views"):
        unknown_views(features)
    np.testing.assert_allclose(
        unknown_views(np.repeat(features[:, :1], 3, axis=1)).numpy(),
        losses.supcon_loss(np.repeat(features[:, :1], 3, axis=1), [0, 0, 1, 1], positives_cap=3).numpy(),
        rtol=1e-6,
    )


# ---- Numerics. ----


def test_gradient_matches_finite_differences_of_reference():
    features = _unit((3, 2, 3), seed=4).astype(np.float64)
    labels = [0, 1, 0]
    options = dict(temperature=0.5, summation="inside", denominator="one_positive")
    x = tf.Variable(features.astype(np.float32))
    with tf.GradientTape() as tape:
        value = tf.reduce_mean(losses.supcon_loss(x, labels, **options))
    grad = tape.gradient(value, x).numpy()
    numeric = np.zeros_like(features)
    eps = 1e-5
    for index in np.ndindex(features.shape):
        plus, minus = features.copy(), features.copy()
        plus[index] += eps
        minus[index] -= eps
        numeric[index] = (
            reference.supcon(plus, labels, **options).mean() - reference.supcon(minus, labels, **options).mean()
        ) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, atol=2e-4, rtol=1e-3)


@pytest.mark.parametrize("temperature", [0.01, 0.05])
@pytest.mark.parametrize("denominator", ["all", "one_positive", "only_negatives"])
@pytest.mark.parametrize("summation", ["outside", "inside"])
def test_no_nan_or_inf_at_low_temperature_and_zero_vectors(temperature, denominator, summation):
    features = _unit((6, 2, 4), seed=5)
    features[1] = 0.0  # zero vectors
    features[2, 1] = -features[2, 0]  # antipodal positive: logit -1/tau
    cases = [
        (features, [0, 1, 0, 2, 1, 3]),
        (features[:, :1], [0, 1, 2, 3, 4, 5]),  # one view, singletons: no positives at all
        (features[:, :1], [0, 0, 1, 1, 2, 3]),
    ]
    for feats, labels in cases:
        x = tf.Variable(feats)
        with tf.GradientTape() as tape:
            per_sample = losses.supcon_loss(
                x, labels, temperature=temperature, denominator=denominator, summation=summation
            )
            value = tf.reduce_mean(per_sample)
        grad = tape.gradient(value, x)
        assert np.all(np.isfinite(per_sample.numpy()))
        assert np.all(np.isfinite(grad.numpy()))
    # Anchors without a positive contribute exactly 0.
    per_sample = losses.supcon_loss(features[:, :1], [0, 0, 1, 1, 2, 3], temperature=temperature)
    assert per_sample.numpy()[4] == 0.0 and per_sample.numpy()[5] == 0.0


def test_extreme_logits_match_float64_reference():
    # At tau = 0.01 logits span [-100, 100]: exp overflows float32 without the row max.
    features = _unit((4, 2, 3), seed=6)
    expected = reference.supcon(features, [0, 1, 0, 1], temperature=0.01)
    got = losses.supcon_loss(features, [0, 1, 0, 1], temperature=0.01).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4)


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_half_precision_inputs_compute_in_float32(dtype):
    features = _unit((8, 2, 16), seed=7)
    labels = [0, 1, 2, 3, 0, 1, 2, 3]
    half = tf.cast(features, dtype)
    got = losses.supcon_loss(half, labels, temperature=0.05)
    assert got.dtype == tf.float32
    expected = losses.supcon_loss(tf.cast(half, tf.float32), labels, temperature=0.05)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-6)
    x = tf.Variable(half)
    with tf.GradientTape() as tape:
        value = tf.reduce_mean(losses.supcon_loss(x, labels, temperature=0.01))
    grad = tape.gradient(value, x)
    assert grad.dtype == dtype and np.all(np.isfinite(tf.cast(grad, tf.float32).numpy()))


# ---- The Keras wrappers. ----


def test_keras_loss_averages_over_samples_with_a_positive():
    features = _unit((4, 1, 3), seed=8)
    labels = np.array([0, 0, 1, 2])  # samples 2 and 3 have no positive
    per_sample = reference.supcon(features, labels, temperature=1.0)
    got = losses.SupConLoss(temperature=1.0)(labels, features).numpy()
    np.testing.assert_allclose(got, per_sample[:2].mean(), rtol=1e-6)
    none_reduced = losses.SupConLoss(temperature=1.0, reduction=None)(labels, features).numpy()
    np.testing.assert_allclose(none_reduced, per_sample, rtol=1e-5)


def test_keras_loss_without_any_positive_is_zero_with_zero_gradients():
    x = tf.Variable(_unit((3, 1, 4), seed=9))
    with tf.GradientTape() as tape:
        value = losses.SupConLoss()(np.array([0, 1, 2]), x)
    assert float(value) == 0.0
    np.testing.assert_array_equal(tape.gradient(value, x).numpy(), 0.0)


def test_simclr_loss_ignores_labels():
    features = _unit((4, 2, 3), seed=10)
    expected = reference.supcon(features, None, temperature=0.5).mean()
    for y_true in (None, np.array([0, 0, 0, 0]), np.array([1, 2, 3, 4])):
        np.testing.assert_allclose(losses.SimCLRLoss()(y_true, features).numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize(
    "loss",
    [
        losses.SupConLoss(temperature=0.2, base_temperature=0.07, summation="inside", positives_cap=3, block_size=8),
        losses.SimCLRLoss(contrast_mode="one"),
        losses.GenSCLLoss(temperature=0.3, block_size=4, kd_alpha=0.5),
    ],
    ids=lambda loss: type(loss).__name__,
)
def test_keras_loss_config_round_trip(loss):
    config = loss.get_config()
    restored = type(loss).from_config(config)
    assert restored.get_config() == config
    via_registry = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(via_registry) is type(loss) and via_registry.get_config() == config


def _functional_model_with_layer():
    images = keras.Input((2, 6), name="views")
    labels = keras.Input((), dtype="int32", name="labels")
    projected = keras.layers.Dense(4, name="project")(images)
    normalized = keras.layers.UnitNormalization(axis=-1)(projected)
    out = losses.SupConLossLayer(temperature=0.2, name="supcon")([normalized, labels])
    return keras.Model({"views": images, "labels": labels}, out)


def test_loss_layer_trains_with_fit_and_survives_keras_save(tmp_path):
    keras.utils.set_random_seed(0)
    model = _functional_model_with_layer()
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=64).astype(np.int32)
    centers = rng.normal(size=(3, 6))
    views = (centers[labels][:, None, :] + 0.8 * rng.normal(size=(64, 2, 6))).astype(np.float32)
    data = {"views": views, "labels": labels}
    history = model.fit(data, epochs=8, batch_size=16, verbose=0, shuffle=False)
    assert history.history["loss"][-1] < history.history["loss"][0]

    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(restored.predict(data, verbose=0), model.predict(data, verbose=0), rtol=1e-6)
    layer = restored.get_layer("supcon")
    assert layer.loss.temperature == 0.2
    np.testing.assert_allclose(restored.evaluate(data, verbose=0), model.evaluate(data, verbose=0), rtol=1e-5)


def test_compiled_loss_survives_keras_save(tmp_path):
    inputs = keras.Input((2, 5))
    outputs = keras.layers.UnitNormalization(axis=-1)(keras.layers.Dense(3)(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss=losses.SupConLoss(temperature=0.25, denominator="one_positive"))
    x, y = _unit((8, 2, 5), seed=11), np.array([0, 1] * 4)
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(restored.loss, losses.SupConLoss)
    assert restored.loss.get_config() == model.loss.get_config()
    np.testing.assert_allclose(restored.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0), rtol=1e-5)


# ---- Bad input: a clear ValueError naming what was expected and received. ----


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(features=np.zeros((4, 3), np.float32)), r"\[batch, views, dim\].*Received: features.shape"),
        (dict(features=np.zeros((4, 2, 3), np.int32)), r"floating-point.*Received: features.dtype=int32"),
        (dict(labels=[0, 1, 2]), r"one row per sample.*Received: labels.shape"),
        (dict(labels=np.zeros((4, 2, 2))), r"Received: labels.shape"),
        (dict(labels=[0, 1, 0, 1], mask=np.eye(4)), r"either `labels` or `mask`"),
        (dict(mask=np.eye(3)), r"Received: mask.shape"),
        (dict(mask=np.ones(4)), r"Received: mask.shape"),
        (dict(summation="middle"), r"`summation` must be one of.*Received: summation='middle'"),
        (dict(denominator="some"), r"`denominator` must be one of.*Received: denominator='some'"),
        (dict(contrast_mode="two"), r"Received: contrast_mode='two'"),
        (dict(positives_cap=-1), r"integer >= 0. Received: positives_cap=-1"),
        (dict(positives_cap=1.5), r"Received: positives_cap=1.5"),
        (dict(positives_cap=True), r"Received: positives_cap=True"),
        (dict(temperature=0.0), r"Received: temperature=0.0"),
        (dict(base_temperature=-1.0), r"Received: base_temperature=-1.0"),
        (dict(block_size=0), r"Received: block_size=0"),
    ],
)
def test_bad_input_raises_clear_value_error(kwargs, match):
    args = dict(features=_unit((4, 2, 3), seed=12), labels=None)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        losses.supcon_loss(args.pop("features"), args.pop("labels"), **args)


def test_bad_keras_loss_options_fail_at_construction():
    with pytest.raises(ValueError, match="Received: summation='x'"):
        losses.SupConLoss(summation="x")
    with pytest.raises(ValueError, match="Received: temperature=-0.1"):
        losses.GenSCLLoss(temperature=-0.1)


def test_higher_rank_features_are_flattened_after_views():
    features = _unit((4, 2, 6), seed=13)
    np.testing.assert_allclose(
        losses.supcon_loss(features.reshape(4, 2, 2, 3), [0, 1, 0, 1]).numpy(),
        losses.supcon_loss(features, [0, 1, 0, 1]).numpy(),
        rtol=1e-6,
    )


def test_docstring_examples_run():
    for module in (supcon_module, options_module):
        result = doctest.testmod(module, extraglobs={"tf": tf}, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0 and result.attempted > 0


def test_contrast_options_and_keywords_are_one_setting():
    features = _unit((4, 2, 8), seed=11)
    options = losses.ContrastOptions(temperature=0.2, summation="inside", denominator="one_positive")
    by_options = losses.supcon_loss(features, [0, 0, 1, 1], options=options)
    by_keywords = losses.supcon_loss(features, [0, 0, 1, 1], temperature=0.2, summation="inside",
                                     denominator="one_positive")
    np.testing.assert_allclose(by_options.numpy(), by_keywords.numpy(), rtol=1e-6)
    # Keywords override the object's fields; the Keras wrappers keep the object.
    overridden = losses.supcon_loss(features, [0, 0, 1, 1], options=options, temperature=0.1, summation="outside",
                                    denominator="all")
    np.testing.assert_allclose(overridden.numpy(), losses.supcon_loss(features, [0, 0, 1, 1]).numpy(), rtol=1e-6)
    loss = losses.SupConLoss(options, block_size=2)
    assert loss.options == options.replace(block_size=2) and loss.temperature == 0.2
    assert losses.SupConLoss.from_config(loss.get_config()).options == loss.options
    assert losses.SimCLRLoss().options.temperature == losses.SIMCLR_TEMPERATURE
    assert losses.SupConLossLayer(options).options == options
    with pytest.raises(ValueError, match=r"`summation` must keep its default 'outside' in `GenSCLLoss`"):
        losses.GenSCLLoss(options)
    with pytest.raises(TypeError, match=r"`options` of `supcon_loss` must be a supcon.losses.ContrastOptions"):
        losses.supcon_loss(features, [0, 0, 1, 1], options={"temperature": 0.2})
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['temprature'\]"):
        losses.SupConLoss(temprature=0.2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.temperature = 0.3


@pytest.mark.parametrize("block_size", [None, 2])
@pytest.mark.parametrize("summation", ["outside", "inside"])
def test_only_negatives_without_a_negative_contributes_zero(summation, block_size):
    # Every sample shares one class: no anchor has a negative, so under "only_negatives" none
    # has a denominator (the official code divides by zero there): each contributes exactly 0,
    # with a zero gradient. One sample of another class gives every anchor a negative again.
    features = tf.constant(_unit((4, 2, 3), seed=11), tf.float32)
    options = dict(denominator="only_negatives", summation=summation, block_size=block_size)
    with tf.GradientTape() as tape:
        tape.watch(features)
        per_sample = losses.supcon_loss(features, [7, 7, 7, 7], **options)
    np.testing.assert_array_equal(per_sample.numpy(), np.zeros(4, np.float32))
    np.testing.assert_array_equal(tape.gradient(per_sample, features).numpy(), np.zeros((4, 2, 3), np.float32))
    mixed = losses.supcon_loss(features, [7, 7, 7, 3], **options).numpy()
    expected = reference.supcon(features.numpy(), [7, 7, 7, 3], denominator="only_negatives", summation=summation)
    # Sample 3's only positive is its other view; float32 vs float64 over 8 columns: 1e-5.
    np.testing.assert_allclose(mixed, expected, rtol=1e-5, atol=1e-6)
