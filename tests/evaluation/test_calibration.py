"""ECE against a hand-computed case."""

import numpy as np
import pytest

from supcon.evaluation import expected_calibration_error, reliability_bins


def test_ece_hand_computed():
    # Confidences 0.9, 0.9 (one right, one wrong), 0.6 (right), 0.3 (wrong; 3 classes).
    probs = np.array([[0.9, 0.1, 0.0], [0.9, 0.05, 0.05], [0.2, 0.6, 0.2], [0.3, 0.3, 0.4]])
    labels = np.array([0, 1, 1, 0])
    # 15 bins of width 1/15: 0.9 -> bin 13 (0.8667, 0.9333], 0.6 -> bin 8 (0.5333, 0.6],
    # 0.4 (argmax class 2) -> bin 5 (0.3333, 0.4].
    # ECE = 2/4 * |0.5 - 0.9| + 1/4 * |1 - 0.6| + 1/4 * |0 - 0.4| = 0.2 + 0.1 + 0.1.
    assert expected_calibration_error(probs, labels) == pytest.approx(0.4)
    bins = reliability_bins(probs, labels)
    assert bins["count"][13] == 2 and bins["count"][8] == 1 and bins["count"][5] == 1
    assert sum(bins["count"]) == 4
    assert bins["accuracy"][13] == pytest.approx(0.5)
    assert bins["confidence"][8] == pytest.approx(0.6)


def test_perfectly_calibrated_is_zero():
    probs = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(probs, np.array([0, 1])) == 0.0


def test_bad_bins():
    with pytest.raises(ValueError, match="num_bins=0"):
        reliability_bins(np.array([[1.0]]), np.array([0]), num_bins=0)
