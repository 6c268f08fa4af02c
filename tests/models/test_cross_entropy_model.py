"""Tests for supcon.models.CrossEntropyModel."""

import keras
import numpy as np
import pytest

from supcon import models

from tests.models.conftest import NUM_CLASSES


def _log_softmax(logits):
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def test_label_smoothed_cross_entropy_matches_numpy(tiny_encoder, views_and_labels):
    views, labels = views_and_labels
    model = models.CrossEntropyModel(tiny_encoder, NUM_CLASSES, label_smoothing=0.1)
    y_pred = model(views)  # Views are folded: every view is an example with its sample's label.
    logits = y_pred["logits"].numpy().reshape(-1, NUM_CLASSES)
    targets = np.eye(NUM_CLASSES)[np.repeat(labels, 2)] * 0.9 + 0.1 / NUM_CLASSES
    expected = -np.mean(np.sum(targets * _log_softmax(logits), -1))
    assert float(model.compute_loss(y=labels, y_pred=y_pred)) == pytest.approx(expected, rel=1e-5)
    # Soft labels [B, V, C] (MixUp/CutMix) use the distribution of each view.
    soft = np.random.default_rng(0).dirichlet(np.ones(NUM_CLASSES), size=(8, 2)).astype("float32")
    smoothed = soft.reshape(-1, NUM_CLASSES) * 0.9 + 0.1 / NUM_CLASSES
    expected = -np.mean(np.sum(smoothed * _log_softmax(logits), -1))
    assert float(model.compute_loss(y=soft, y_pred=y_pred)) == pytest.approx(expected, rel=1e-5)


def test_fit_on_views_and_images_and_save(tiny_encoder, views_and_labels, tmp_path):
    views, labels = views_and_labels
    model = models.CrossEntropyModel(tiny_encoder, NUM_CLASSES)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    history = model.fit(views, labels, batch_size=8, epochs=5, verbose=0, shuffle=False).history
    assert sorted(history) == ["accuracy", "loss"] and history["loss"][-1] < history["loss"][0]
    result = model.evaluate(views[:, 0], labels, verbose=0, return_dict=True)
    assert 0.0 <= result["accuracy"] <= 1.0
    predicted = model.predict(views[:, 0], verbose=0)
    assert sorted(predicted) == ["embedding", "logits", "probabilities"]
    np.testing.assert_allclose(predicted["probabilities"].sum(-1), 1.0, rtol=1e-5)
    model.save(tmp_path / "ce.keras")
    restored = keras.saving.load_model(tmp_path / "ce.keras")
    assert restored.label_smoothing == model.label_smoothing
    np.testing.assert_array_equal(restored.predict(views[:, 0], verbose=0)["logits"], predicted["logits"])


def test_rejects_a_compiled_loss_and_bad_arguments(tiny_encoder):
    model = models.CrossEntropyModel(tiny_encoder, NUM_CLASSES)
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="optimizer only"):
        model.compute_loss(y=np.zeros(2, "int32"), y_pred=model(np.zeros((2, 16, 16, 3), "float32")))
    with pytest.raises(ValueError, match="Received: label_smoothing=1.0"):
        models.CrossEntropyModel(tiny_encoder, NUM_CLASSES, label_smoothing=1.0)
