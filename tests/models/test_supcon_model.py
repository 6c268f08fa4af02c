"""Tests for supcon.models.SupConModel: fit with every loss, joint classifier, saving."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import supcon.losses
from supcon import models

from tests.models.conftest import NUM_CLASSES
from tests.models.conftest import make_tiny_encoder


def _model(encoder, num_classes=None, **kwargs):
    return models.SupConModel(encoder, models.ProjectionHead(dims=(32, 8)), num_classes, **kwargs)


def _sgd():
    return keras.optimizers.SGD(learning_rate=0.05, momentum=0.9)


def test_fit_lowers_supcon_loss_and_reports_metrics(resnet_encoder, views_and_labels):
    views, labels = views_and_labels
    model = _model(resnet_encoder)
    model.compile(optimizer=_sgd(), loss=supcon.losses.SupConLoss(temperature=0.1))
    history = model.fit(views, labels, batch_size=8, epochs=4, verbose=0, shuffle=False).history
    assert sorted(history) == ["loss", "negative_similarity", "positive_similarity"]
    assert history["loss"][-1] < history["loss"][0]
    assert all(np.isfinite(history["loss"]))


def test_joint_classifier_on_stop_gradient_embedding(tiny_encoder, views_and_labels):
    views, labels = views_and_labels
    model = _model(tiny_encoder, num_classes=NUM_CLASSES)
    model.compile(optimizer=_sgd(), loss=supcon.losses.SupConLoss())
    dataset = tf.data.Dataset.from_tensor_slices((views, labels)).batch(4)
    val = tf.data.Dataset.from_tensor_slices((views[:, 0], labels)).batch(4)  # eval-style single view
    history = model.fit(dataset, validation_data=val, epochs=2, verbose=0).history
    assert {"accuracy", "val_accuracy", "val_loss", "positive_similarity"} <= set(history)
    assert all(0.0 <= a <= 1.0 for a in history["accuracy"] + history["val_accuracy"])

    # The classifier's cross-entropy never reaches the encoder (stop-gradient) ...
    with tf.GradientTape() as tape:
        logits = model(views, training=True)["logits"]
        ce = keras.losses.sparse_categorical_crossentropy(np.repeat(labels[:, None], 2, 1), logits, from_logits=True)
    grads = tape.gradient(ce, model.encoder.trainable_weights + model.classifier_head.trainable_weights)
    n = len(model.encoder.trainable_weights)
    assert all(g is None for g in grads[:n]) and all(g is not None for g in grads[n:])
    # ... unless ce_weight asks for the hybrid objective.
    hybrid = _model(model.encoder, num_classes=NUM_CLASSES, ce_weight=0.5)
    with tf.GradientTape() as tape:
        logits = hybrid(views, training=True)["logits"]
        ce = keras.losses.sparse_categorical_crossentropy(np.repeat(labels[:, None], 2, 1), logits, from_logits=True)
    grads = tape.gradient(ce, hybrid.encoder.trainable_weights)
    assert any(g is not None and np.any(g.numpy() != 0) for g in grads)


def test_ce_weight_adds_cross_entropy_to_the_loss(tiny_encoder, views_and_labels):
    views, labels = views_and_labels
    loss_fn = supcon.losses.SupConLoss()
    model = _model(tiny_encoder, num_classes=NUM_CLASSES, ce_weight=0.5)
    model.compile(optimizer="sgd", loss=loss_fn)
    y_pred = model(views)
    logits = y_pred["logits"].numpy().reshape(-1, NUM_CLASSES)
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    ce = -np.mean(log_p[np.arange(16), np.repeat(labels, 2)])
    expected = float(loss_fn(labels, y_pred["projection"])) + 0.5 * ce
    assert float(model.compute_loss(y=labels, y_pred=y_pred)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("loss", ["supcon", "simclr"])
def test_similarity_metrics_equal_the_brute_force_pair_means(tiny_encoder, views_and_labels, loss):
    # The metrics come from per-class sums (no [B V, B V] matrix): they must equal the
    # plain mean over pairs, self-pairs excluded, computed here from the projections.
    views, labels = views_and_labels
    model = _model(tiny_encoder)
    compiled = supcon.losses.SupConLoss() if loss == "supcon" else supcon.losses.SimCLRLoss()
    model.compile(optimizer="sgd", loss=compiled)
    metrics = model.evaluate(views, labels, batch_size=8, verbose=0, return_dict=True)
    z = model.predict(views, verbose=0)["projection"].reshape(-1, 8)  # [B * V, D], sample-major.
    ids = np.repeat(labels if loss == "supcon" else np.arange(8), 2)
    similarity = z @ z.T
    same = ids[:, None] == ids[None, :]
    not_self = ~np.eye(len(ids), dtype=bool)
    # float32 sums of ~256 terms of size <= 1 (one-pass identities with cancellation): 1e-5.
    assert metrics["positive_similarity"] == pytest.approx(similarity[same & not_self].mean(), abs=1e-5)
    assert metrics["negative_similarity"] == pytest.approx(similarity[~same].mean(), abs=1e-5)


def test_simclr_ignores_labels_and_trains_without_them(tiny_encoder, views_and_labels):
    views, labels = views_and_labels
    model = _model(tiny_encoder)
    model.compile(optimizer=_sgd(), loss=supcon.losses.SimCLRLoss(temperature=0.5))
    y_pred = model(views)
    with_labels = float(model.compute_loss(y=labels, y_pred=y_pred))
    other_labels = float(model.compute_loss(y=np.zeros_like(labels), y_pred=y_pred))
    assert with_labels == pytest.approx(other_labels, rel=1e-6)
    history = model.fit(tf.data.Dataset.from_tensor_slices(views).batch(8), epochs=2, verbose=0).history
    assert np.all(np.isfinite(history["loss"]))


def test_genscl_with_label_distributions(tiny_encoder, views_and_labels):
    views, labels = views_and_labels
    rng = np.random.default_rng(0)
    distributions = rng.dirichlet(np.ones(NUM_CLASSES), size=(8, 2)).astype("float32")  # [B, V, C]
    model = _model(tiny_encoder, num_classes=NUM_CLASSES)
    model.compile(optimizer=_sgd(), loss=supcon.losses.GenSCLLoss())
    history = model.fit(views, distributions, batch_size=8, epochs=2, verbose=0).history
    assert np.all(np.isfinite(history["loss"])) and "accuracy" in history
    # Per-sample distributions [B, C] are shared by the views.
    loss = model.compute_loss(y=distributions[:, 0], y_pred=model(views))
    assert np.isfinite(float(loss))


def test_views_layouts_are_equivalent_and_predict_returns_a_dict(tiny_encoder, views_and_labels):
    views, _ = views_and_labels
    model = _model(tiny_encoder)
    stacked = model(views)
    as_tuple = model((views[:, 0], views[:, 1]))
    single = model(views[:, 1])
    for key in ("embedding", "projection"):
        np.testing.assert_allclose(stacked[key].numpy(), as_tuple[key].numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(stacked[key].numpy()[:, 1], single[key].numpy(), rtol=1e-5, atol=1e-6)
    predicted = model.predict(views[:, 0], verbose=0)
    assert sorted(predicted) == ["embedding", "projection"]  # No classifier: no None entries.
    assert predicted["projection"].shape == (8, 8) and predicted["embedding"].shape == (8, 16)
    assert model.predict(views, verbose=0)["projection"].shape == (8, 2, 8)
    assert model.predict(views[:, 1], verbose=0)["projection"].shape == (8, 8)


def test_save_load_round_trip(tiny_encoder, views_and_labels, tmp_path):
    views, labels = views_and_labels
    model = _model(tiny_encoder, num_classes=NUM_CLASSES, classifier_normalize=True)
    model.compile(optimizer=_sgd(), loss=supcon.losses.SupConLoss(temperature=0.2))
    model.fit(views, labels, batch_size=8, epochs=1, verbose=0)
    clone = models.SupConModel.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras")
    assert isinstance(restored, models.SupConModel) and restored.num_classes == NUM_CLASSES
    assert isinstance(restored.loss, supcon.losses.SupConLoss) and restored.loss.temperature == 0.2
    expected, actual = model.predict(views[:, 0], verbose=0), restored.predict(views[:, 0], verbose=0)
    assert sorted(actual) == ["embedding", "logits", "probabilities", "projection"]
    for key in expected:
        np.testing.assert_array_equal(actual[key], expected[key])


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_keeps_the_loss_float32(policy, views_and_labels, restore_policy):
    keras.config.set_dtype_policy(policy)
    keras.utils.set_random_seed(0)
    encoder = make_tiny_encoder()
    model = _model(encoder, num_classes=NUM_CLASSES)
    model.compile(optimizer="sgd", loss=supcon.losses.SupConLoss())
    if policy == "mixed_float16":
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    views, labels = views_and_labels
    y_pred = model(views, training=True)
    assert model.encoder.layers[2].compute_dtype == policy.split("_")[1]
    assert all(v.dtype == "float32" for v in y_pred.values())
    loss = model.compute_loss(y=labels, y_pred=y_pred)
    assert loss.dtype == "float32" and np.isfinite(float(loss))
    history = model.fit(views, labels, batch_size=8, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])


def test_two_replicas_give_the_single_device_loss(views_and_labels, two_replica_strategy):
    views, labels = views_and_labels
    keras.utils.set_random_seed(0)
    single = _model(make_tiny_encoder(), NUM_CLASSES)
    single.compile(optimizer="sgd", loss=supcon.losses.SupConLoss())
    with two_replica_strategy.scope():
        mirrored = _model(make_tiny_encoder(), NUM_CLASSES)
        mirrored.compile(optimizer="sgd", loss=supcon.losses.SupConLoss())
    mirrored.set_weights(single.get_weights())
    # Inference-mode batch norm makes both forward passes identical; the SupCon loss
    # gathers negatives across replicas and Keras' per-replica scaling is undone for the metric.
    # (The similarity metrics are per-replica by design, so they differ.)
    expected = single.evaluate(views, labels, batch_size=8, verbose=0, return_dict=True)
    actual = mirrored.evaluate(views, labels, batch_size=8, verbose=0, return_dict=True)
    assert actual["loss"] == pytest.approx(expected["loss"], rel=1e-4)
    history = mirrored.fit(views, labels, batch_size=8, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])


def test_two_replicas_without_labels_keep_samples_apart(views_and_labels, two_replica_strategy):
    views, _ = views_and_labels
    keras.utils.set_random_seed(0)
    single = _model(make_tiny_encoder())
    single.compile(optimizer="sgd", loss=supcon.losses.SupConLoss())
    with two_replica_strategy.scope():
        mirrored = _model(make_tiny_encoder())
        mirrored.compile(optimizer="sgd", loss=supcon.losses.SupConLoss())
    mirrored.set_weights(single.get_weights())
    # Every sample its own class over the global batch: sample i of one replica is no
    # positive of sample i of the other (their own-class ids differ).
    expected = single.evaluate(views, batch_size=8, verbose=0, return_dict=True)["loss"]
    actual = mirrored.evaluate(views, batch_size=8, verbose=0, return_dict=True)["loss"]
    assert actual == pytest.approx(expected, rel=1e-4)


def test_invalid_arguments_and_inputs(tiny_encoder):
    with pytest.raises(ValueError, match="Received: ce_weight=1.0"):
        models.SupConModel(tiny_encoder, ce_weight=1.0)
    with pytest.raises(ValueError, match="Received: num_classes=0"):
        models.SupConModel(tiny_encoder, num_classes=0)
    with pytest.raises(TypeError, match="Received: encoder="):
        models.SupConModel(keras.layers.Dense(3))
    model = _model(tiny_encoder)
    with pytest.raises(ValueError, match="rank 3"):
        model(np.zeros((16, 16, 3), "float32"))
