"""Corruption-benchmark metrics: error tables, (relative) mean Corruption Error.

Hendrycks & Dietterich 2019 (arXiv 1903.12261) §4:
  CE_c = sum_s E_{s,c} / sum_s E^AlexNet_{s,c},   mCE = mean_c CE_c over the 15
  benchmark corruptions;
  relative CE_c = sum_s (E_{s,c} - E_clean) / sum_s (E^AlexNet_{s,c} - E^AlexNet_clean).
For ImageNet-C the normalizer is AlexNet's published errors
(`corruption_params.ALEXNET_ERRORS`); for any other data set no such baseline
exists and the metrics are reported unnormalized (CE_c = mean_s E_{s,c},
relative CE_c = mean_s E_{s,c} - E_clean), which the report states.
"""

import numpy as np

from supcon.evaluation import corruption_params as cp

NORMALIZATIONS = ("alexnet", "none")


def corruption_summary(accuracies, clean_accuracy, *, normalization="none"):
    """Summarizes accuracies under corruption: errors, CE, mCE, relative CE/mCE.

    Args:
      accuracies: dict `{corruption name: {severity (int): top-1 accuracy in [0, 1]}}`.
      clean_accuracy: float, top-1 accuracy on the clean test set.
      normalization: `"alexnet"` (ImageNet-C: divide by AlexNet's errors) or
        `"none"` (default: unnormalized, for every other data set).

    Returns:
      dict with
        `errors`: `{name: {severity: error}}`,
        `accuracy_per_severity`: `{severity: mean accuracy over the given corruptions}`,
        `ce`, `relative_ce`: `{name: value}` for the benchmark corruptions given,
        `mce`, `relative_mce`: means over those (None if none given),
        `mce_complete`: whether all 15 benchmark corruptions were evaluated,
        `normalization`: the normalization used,
        `mean_corruption_accuracy`: mean accuracy over every corruption and severity.

    Example:
      >>> out = corruption_summary({"fog": {1: 0.9, 2: 0.8}}, 0.95)
      >>> round(out["mce"], 6), round(out["relative_mce"], 6)
      (0.15, 0.1)
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"`normalization` must be one of {NORMALIZATIONS}. Received: normalization={normalization!r}")
    for name in accuracies:
        cp.check_corruption_name(name)
    clean_error = 1.0 - float(clean_accuracy)
    errors = {
        name: {int(s): 1.0 - float(a) for s, a in sorted(per_severity.items())}
        for name, per_severity in accuracies.items()
    }
    ce, relative_ce = {}, {}
    for name in cp.BENCHMARK_CORRUPTIONS:
        if name not in errors or not errors[name]:
            continue
        mean_error = float(np.mean(list(errors[name].values())))
        if normalization == "alexnet":
            ce[name] = mean_error / cp.ALEXNET_ERRORS[name]
            relative_ce[name] = (mean_error - clean_error) / (cp.ALEXNET_ERRORS[name] - cp.ALEXNET_CLEAN_ERROR)
        else:
            ce[name] = mean_error
            relative_ce[name] = mean_error - clean_error
    severities = sorted({s for per in errors.values() for s in per})
    per_severity = {
        s: float(np.mean([1.0 - per[s] for per in errors.values() if s in per])) for s in severities
    }
    all_acc = [1.0 - e for per in errors.values() for e in per.values()]
    return {
        "errors": errors,
        "accuracy_per_severity": per_severity,
        "ce": ce,
        "relative_ce": relative_ce,
        "mce": float(np.mean(list(ce.values()))) if ce else None,
        "relative_mce": float(np.mean(list(relative_ce.values()))) if relative_ce else None,
        "mce_complete": set(ce) == set(cp.BENCHMARK_CORRUPTIONS),
        "normalization": normalization,
        "mean_corruption_accuracy": float(np.mean(all_acc)) if all_acc else None,
    }


def top_k_accuracy(logits, labels, k):
    """Fraction of rows whose label is among the `k` largest logits.

    Args:
      logits: float `[N, C]`.
      labels: int `[N]`.
      k: int >= 1 (clipped to C).

    Returns:
      float in [0, 1].

    Example:
      >>> top_k_accuracy(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1]), 1)
      0.5
    """
    logits = np.asarray(logits)
    labels = np.asarray(labels).reshape(-1)
    k = min(int(k), logits.shape[-1])
    top = np.argsort(-logits, axis=-1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=-1))) if len(labels) else float("nan")
