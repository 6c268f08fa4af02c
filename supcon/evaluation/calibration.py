"""Expected calibration error and reliability-diagram bins.

Guo et al., "On Calibration of Modern Neural Networks", ICML 2017 (arXiv
1706.04599), Eq. 3: with M equal-width confidence bins B_m (confidence = the
largest softmax probability), ECE = sum_m |B_m| / n * |acc(B_m) - conf(B_m)|.
Bin m holds confidences in ((m - 1) / M, m / M]; a confidence of exactly 0 goes
to the first bin.
"""

import numpy as np

DEFAULT_NUM_BINS = 15  # Guo et al. 2017 §5 use M = 15.


def reliability_bins(probabilities, labels, num_bins=DEFAULT_NUM_BINS):
    """Per-bin counts, accuracies and mean confidences of a classifier's top-1 predictions.

    Args:
      probabilities: float `[N, C]`, rows sum to 1.
      labels: int `[N]` class ids.
      num_bins: int >= 1, default 15.

    Returns:
      dict of lists of length `num_bins`: `lower`, `upper` (bin edges), `count`,
      `accuracy`, `confidence` (the last two 0.0 for empty bins).

    Example:
      >>> bins = reliability_bins(np.array([[0.9, 0.1]]), np.array([0]), num_bins=2)
      >>> bins["count"]
      [0, 1]
    """
    if isinstance(num_bins, bool) or not isinstance(num_bins, (int, np.integer)) or num_bins < 1:
        raise ValueError(f"`num_bins` must be a positive int. Received: num_bins={num_bins!r}")
    probabilities = np.asarray(probabilities, np.float64)
    labels = np.asarray(labels).reshape(-1)
    if probabilities.ndim != 2 or probabilities.shape[0] != labels.shape[0]:
        raise ValueError(
            "`probabilities` must be [N, C] with one row per label. "
            f"Received: probabilities.shape={probabilities.shape}, labels.shape={labels.shape}"
        )
    confidence = probabilities.max(axis=-1)
    correct = (probabilities.argmax(axis=-1) == labels).astype(np.float64)
    index = np.clip(np.ceil(confidence * num_bins).astype(int) - 1, 0, num_bins - 1)
    count = np.bincount(index, minlength=num_bins)
    acc_sum = np.bincount(index, weights=correct, minlength=num_bins)
    conf_sum = np.bincount(index, weights=confidence, minlength=num_bins)
    safe = np.maximum(count, 1)
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    return {
        "lower": edges[:-1].tolist(),
        "upper": edges[1:].tolist(),
        "count": count.astype(int).tolist(),
        "accuracy": np.where(count > 0, acc_sum / safe, 0.0).tolist(),
        "confidence": np.where(count > 0, conf_sum / safe, 0.0).tolist(),
    }


def expected_calibration_error(probabilities, labels, num_bins=DEFAULT_NUM_BINS):
    """Expected calibration error with equal-width bins (Guo et al. 2017, Eq. 3).

    Args:
      probabilities: float `[N, C]`, rows sum to 1.
      labels: int `[N]` class ids.
      num_bins: int >= 1, default 15.

    Returns:
      float in [0, 1].

    Example (one right answer at confidence 0.8, one wrong at 0.6: (|1 - 0.8| + |0 - 0.6|) / 2):
      >>> ece = expected_calibration_error(np.array([[0.8, 0.2], [0.6, 0.4]]), np.array([0, 1]), num_bins=10)
      >>> round(ece, 6)
      0.4
    """
    bins = reliability_bins(probabilities, labels, num_bins)
    count = np.asarray(bins["count"], np.float64)
    if count.sum() == 0:
        return float("nan")
    gaps = np.abs(np.asarray(bins["accuracy"]) - np.asarray(bins["confidence"]))
    return float(np.sum(count / count.sum() * gaps))
