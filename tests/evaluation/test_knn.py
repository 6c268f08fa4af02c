"""Weighted cosine kNN (Wu et al. 2018) against a NumPy reference."""

import numpy as np
import pytest

from supcon.evaluation import knn_accuracy, knn_predict


def _reference(train, labels, test, num_classes, k, tau):
    train = train / np.linalg.norm(train, axis=1, keepdims=True)
    test = test / np.linalg.norm(test, axis=1, keepdims=True)
    scores = np.zeros((len(test), num_classes))
    for i, q in enumerate(test):
        sim = train @ q
        top = np.argsort(-sim)[:k]
        for j in top:
            scores[i, labels[j]] += np.exp(sim[j] / tau)
    return scores


def test_matches_reference():
    rng = np.random.default_rng(0)
    train, labels = rng.normal(size=(40, 5)), rng.integers(0, 3, 40)
    test = rng.normal(size=(7, 5))
    got = knn_predict(train, labels, test, num_classes=3, k=5, temperature=0.5)
    np.testing.assert_allclose(got, _reference(train, labels, test, 3, 5, 0.5), rtol=1e-4)


def test_weighting_breaks_a_majority():
    # Two far neighbours of class 1 against one very close neighbour of class 0.
    train = np.array([[1.0, 0.0], [0.0, 1.0], [0.1, 1.0]])
    labels = np.array([0, 1, 1])
    query = np.array([[1.0, 0.05]])
    assert knn_predict(train, labels, query, num_classes=2, k=3, temperature=0.07).argmax() == 0
    assert knn_accuracy(train, labels, query, np.array([0]), num_classes=2, k=3) == 1.0


def test_bad_k():
    with pytest.raises(ValueError, match="k=0"):
        knn_predict(np.ones((2, 2)), np.array([0, 1]), np.ones((1, 2)), num_classes=2, k=0)
