"""supcon.evaluation: linear evaluation, kNN, corruption robustness (mCE) and calibration (ECE).

* `corrupt(images, name, severity, seed=...)`: the 19 ImageNet-C / CIFAR-10-C corruptions
  (Hendrycks & Dietterich 2019), parameter tables in `corruption_params`.
* `corruption_summary`: errors, CE, mCE, relative mCE (AlexNet-normalized for ImageNet-C).
* `expected_calibration_error`, `reliability_bins`: Guo et al. 2017, 15 equal-width bins.
* `knn_accuracy`: weighted cosine kNN of Wu et al. 2018.
* `train_linear_classifier`: stage 2 on a frozen encoder (`supcon.training.linear_stage`, the one
  implementation, shared with train.py).
* `EvalConfig`, `evaluate_run(config)`: everything eval.py does, step by step in
  `supcon.evaluation.runner`; `compare_runs(dirs, out)`: side by side.
"""


from supcon import _lazy

_EXPORTS = {
    "expected_calibration_error": "supcon.evaluation.calibration",
    "reliability_bins": "supcon.evaluation.calibration",
    "ALEXNET_CLEAN_ERROR": "supcon.evaluation.corruption_params",
    "ALEXNET_ERRORS": "supcon.evaluation.corruption_params",
    "ALL_CORRUPTIONS": "supcon.evaluation.corruption_params",
    "BENCHMARK_CORRUPTIONS": "supcon.evaluation.corruption_params",
    "EXTRA_CORRUPTIONS": "supcon.evaluation.corruption_params",
    "corrupt": "supcon.evaluation.corruptions",
    "knn_accuracy": "supcon.evaluation.knn",
    "knn_predict": "supcon.evaluation.knn",
    "train_linear_classifier": "supcon.training.linear_stage",
    "corruption_summary": "supcon.evaluation.metrics",
    "top_k_accuracy": "supcon.evaluation.metrics",
    "compare_runs": "supcon.evaluation.report",
    "write_report": "supcon.evaluation.report",
    "EvalConfig": "supcon.evaluation.config",
    "EvalInputError": "supcon.evaluation.inputs",
    "evaluate_run": "supcon.evaluation.runner",
}
__getattr__, __dir__ = _lazy.exports(__name__, _EXPORTS)


__all__ = [
    "ALEXNET_CLEAN_ERROR",
    "ALEXNET_ERRORS",
    "ALL_CORRUPTIONS",
    "BENCHMARK_CORRUPTIONS",
    "EXTRA_CORRUPTIONS",
    "EvalConfig",
    "EvalInputError",
    "compare_runs",
    "corrupt",
    "corruption_summary",
    "evaluate_run",
    "expected_calibration_error",
    "knn_accuracy",
    "knn_predict",
    "reliability_bins",
    "top_k_accuracy",
    "train_linear_classifier",
    "write_report",
]
