"""mCE / relative mCE and top-k against hand-computed values."""

import numpy as np
import pytest

from supcon.evaluation import corruption_params as cp
from supcon.evaluation import corruption_summary, top_k_accuracy


def test_unnormalized_mce_by_hand():
    acc = {"fog": {1: 0.9, 2: 0.7}, "contrast": {1: 0.8, 2: 0.6}, "saturate": {1: 0.1, 2: 0.1}}
    out = corruption_summary(acc, clean_accuracy=0.95)
    # fog: mean error (0.1 + 0.3) / 2 = 0.2; contrast: (0.2 + 0.4) / 2 = 0.3; saturate is an extra.
    assert out["ce"] == pytest.approx({"fog": 0.2, "contrast": 0.3})
    assert out["mce"] == pytest.approx(0.25)
    # Relative: minus the clean error 0.05.
    assert out["relative_ce"] == pytest.approx({"fog": 0.15, "contrast": 0.25})
    assert out["relative_mce"] == pytest.approx(0.2)
    assert out["accuracy_per_severity"] == pytest.approx({1: 0.6, 2: 0.4667}, abs=1e-4)
    assert not out["mce_complete"] and out["normalization"] == "none"


def test_alexnet_normalized_mce_by_hand():
    # Every corruption at 50% error, clean error 20%.
    acc = {name: {s: 0.5 for s in range(1, 6)} for name in cp.BENCHMARK_CORRUPTIONS}
    out = corruption_summary(acc, clean_accuracy=0.8, normalization="alexnet")
    assert out["ce"]["gaussian_noise"] == pytest.approx(0.5 / 0.886428)
    assert out["ce"]["brightness"] == pytest.approx(0.5 / 0.564592)
    expected_mce = np.mean([0.5 / e for e in cp.ALEXNET_ERRORS.values()])
    assert out["mce"] == pytest.approx(expected_mce)
    expected_rel = np.mean([(0.5 - 0.2) / (e - 0.43478) for e in cp.ALEXNET_ERRORS.values()])
    assert out["relative_mce"] == pytest.approx(expected_rel)
    assert out["mce_complete"]


def test_published_alexnet_constants():
    assert len(cp.ALEXNET_ERRORS) == 15
    assert cp.ALEXNET_ERRORS["gaussian_noise"] == 0.886428
    assert cp.ALEXNET_ERRORS["jpeg_compression"] == 0.606500


def test_bad_inputs():
    with pytest.raises(ValueError, match="Unknown corruption 'rain'"):
        corruption_summary({"rain": {1: 0.5}}, 0.9)
    with pytest.raises(ValueError, match="normalization='resnet'"):
        corruption_summary({}, 0.9, normalization="resnet")


def test_top_k():
    logits = np.array([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0], [1.0, 3.0, 2.0]])
    labels = np.array([1, 2, 0])
    assert top_k_accuracy(logits, labels, 1) == pytest.approx(1 / 3)
    assert top_k_accuracy(logits, labels, 2) == pytest.approx(2 / 3)
    assert top_k_accuracy(logits, labels, 5) == 1.0
