"""supcon.evaluation: linear evaluation, kNN, corruption robustness (mCE) and calibration (ECE).

* `corrupt(images, name, severity, seed=...)`: the 19 ImageNet-C / CIFAR-10-C corruptions
  (Hendrycks & Dietterich 2019), parameter tables in `corruption_params`.
* `corruption_summary`: errors, CE, mCE, relative mCE (AlexNet-normalized for ImageNet-C).
* `expected_calibration_error`, `reliability_bins`: Guo et al. 2017, 15 equal-width bins.
* `knn_accuracy`: weighted cosine kNN of Wu et al. 2018.
* `train_linear_classifier`: stage 2 on a frozen encoder.
* `evaluate_run(model_dir, ...)`: everything eval.py does; `compare_runs(dirs, out)`: side by side.
"""

from supcon.evaluation.calibration import expected_calibration_error
from supcon.evaluation.calibration import reliability_bins
from supcon.evaluation.corruption_params import ALEXNET_CLEAN_ERROR
from supcon.evaluation.corruption_params import ALEXNET_ERRORS
from supcon.evaluation.corruption_params import ALL_CORRUPTIONS
from supcon.evaluation.corruption_params import BENCHMARK_CORRUPTIONS
from supcon.evaluation.corruption_params import EXTRA_CORRUPTIONS
from supcon.evaluation.corruptions import corrupt
from supcon.evaluation.knn import knn_accuracy
from supcon.evaluation.knn import knn_predict
from supcon.evaluation.linear_eval import train_linear_classifier
from supcon.evaluation.metrics import corruption_summary
from supcon.evaluation.metrics import top_k_accuracy
from supcon.evaluation.report import compare_runs
from supcon.evaluation.report import write_report
from supcon.evaluation.runner import EvalInputError
from supcon.evaluation.runner import evaluate_run

__all__ = [
    "ALEXNET_CLEAN_ERROR",
    "ALEXNET_ERRORS",
    "ALL_CORRUPTIONS",
    "BENCHMARK_CORRUPTIONS",
    "EXTRA_CORRUPTIONS",
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
