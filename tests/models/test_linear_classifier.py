"""Tests for supcon.models.LinearClassifier."""

import keras
import numpy as np

from supcon import models

from tests.models.conftest import NUM_CLASSES


def test_encoder_is_frozen_in_inference_mode(tiny_encoder, views_and_labels, tmp_path):
    images, labels = views_and_labels[0][:, 0], views_and_labels[1]
    before = [w.copy() for w in tiny_encoder.get_weights()]  # Includes batch-norm moving statistics.
    classifier = models.LinearClassifier(tiny_encoder, NUM_CLASSES)
    assert not classifier.encoder.trainable
    assert [w.shape for w in classifier.trainable_weights] == [(16, NUM_CLASSES), (NUM_CLASSES,)]
    classifier.compile(
        optimizer=keras.optimizers.SGD(0.5),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = classifier.fit(images, labels, batch_size=4, epochs=5, verbose=0, shuffle=False).history
    assert history["loss"][-1] < history["loss"][0]
    for old, new in zip(before, tiny_encoder.get_weights()):
        np.testing.assert_array_equal(old, new)
    logits = classifier.predict(images, verbose=0)  # Logits, not probabilities.
    assert logits.shape == (8, NUM_CLASSES) and not np.allclose(logits.sum(-1), 1.0)
    classifier.save(tmp_path / "classifier.keras")
    restored = keras.saving.load_model(tmp_path / "classifier.keras")
    assert not restored.encoder.trainable
    np.testing.assert_array_equal(restored.predict(images, verbose=0), logits)
