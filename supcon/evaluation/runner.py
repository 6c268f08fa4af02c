"""`evaluate_run`: everything eval.py does to one training run, step by step (no absl FLAGS here).

The evaluation is a few steps, each one call: `load_run` (check the inputs, load the run's settings
and model) → `load_data` → `get_classifier` (the run's, the cross-entropy head, or stage 2 trained
here) → `embed_test_set` → `clean_metrics` (top-1/top-5, calibration) → `knn_metrics` →
`corruption_sweep` (accuracy and calibration per corruption) → `write_report`. `eval.py` calls them
in that order; `evaluate_run(config)` does the same in one call, for notebooks.
"""

import dataclasses
import json
import os

import tensorflow as tf

from supcon.evaluation import calibration, inference, inputs, knn, metrics, report
# The steps that live in modules of their own, so that `runner.load_run`, ... are all the steps.
from supcon.evaluation.classifier import get_classifier
from supcon.evaluation.config import EvalConfig
from supcon.evaluation.loading import load_data, load_run
from supcon.evaluation.sweep import corruption_sweep


def evaluate_run(config, **settings):
    """Evaluates one training run: clean accuracy, kNN, corruption robustness, calibration.

    Corruption metrics follow Hendrycks & Dietterich 2019 (arXiv 1903.12261) §4,
    calibration Guo et al. 2017 (ECE, 15 bins), kNN Wu et al. 2018 (§3.4).

    Args:
      config: `EvalConfig`, or the run directory (str) for `EvalConfig(model_dir=config, **settings)`.
      **settings: `EvalConfig` fields replacing `config`'s (`corruptions=["fog"]`, `knn_k=0`, ...).

    Every input is checked before any work (`supcon.evaluation.inputs.check_evaluation`); the
    report files (and a classifier trained here) replace the earlier ones only once all are
    written. `max_test_examples` larger than the test split evaluates the whole split
    (`report["clean"]["num_examples"]` says how many).

    Returns:
      dict, the report (also written to `output_dir` as report.json, report.md and PNGs).
    """
    if isinstance(config, EvalConfig):
        config = dataclasses.replace(config, **settings)
    else:
        config = EvalConfig(model_dir=config, **settings)
    run = load_run(config)
    data = load_data(run)
    classifier = get_classifier(run, data)
    test_set = embed_test_set(run, data)
    clean = clean_metrics(classifier, test_set)
    knn_block = knn_metrics(run, data, test_set)
    corruptions = corruption_sweep(run, data, classifier, clean["top1"])
    return write_report(run, classifier, clean, knn_block, corruptions)


def embed_test_set(run, data):
    """The encoder's embeddings of the test images evaluated (the first `max_test_examples`).

    Args:
        run: `EvalRun`.
        data: `EvalData`.

    Returns:
        `(features [N, F] float32, labels [N])` NumPy arrays.
    """
    return inference.embed(run.model.encoder, data.test_data, run.config.max_test_examples)


def clean_metrics(classifier, test_set):
    """Top-1 / top-5 accuracy, ECE (15 bins) and the reliability diagram on the clean test set.

    Args:
        classifier: `EvalClassifier`.
        test_set: `(features, labels)` from `embed_test_set`.

    Returns:
        dict, the report's `clean` block.
    """
    features, labels = test_set
    probabilities = inference.softmax(classifier.head(tf.constant(features)))
    return {
        "top1": metrics.top_k_accuracy(probabilities, labels, 1),
        "top5": metrics.top_k_accuracy(probabilities, labels, 5),
        "ece": calibration.expected_calibration_error(probabilities, labels),
        "reliability": calibration.reliability_bins(probabilities, labels),
        "num_examples": int(len(labels)),
    }


def knn_metrics(run, data, test_set):
    """Weighted kNN accuracy of the test embeddings among the training embeddings (Wu et al. 2018).

    Labels are used only for the vote, never by the encoder.

    Args:
        run: `EvalRun` (`knn_k`, `knn_temperature`; k = 0 skips kNN).
        data: `EvalData` (`train_data`, the training split in its fixed order).
        test_set: `(features, labels)` from `embed_test_set`.

    Returns:
        dict, the report's `knn` block (`accuracy`, the `k` used, `temperature`), or None.
    """
    config = run.config
    if not config.knn_k:
        return None
    train_features, train_labels = inference.embed(run.model.encoder, data.train_data, None)
    test_features, test_labels = test_set
    return {
        "accuracy": knn.knn_accuracy(train_features, train_labels, test_features, test_labels,
                                     num_classes=run.num_classes, k=config.knn_k, temperature=config.knn_temperature),
        "k": int(min(config.knn_k, len(train_labels))),
        "temperature": float(config.knn_temperature),
    }


def write_report(run, classifier, clean, knn_block, corruptions):
    """Writes report.json, report.md, the plots (and a classifier trained here) all at once.

    The new files replace the earlier ones in `run.output_dir` only once all are written.

    Args:
        run: `EvalRun`.
        classifier: `EvalClassifier`.
        clean, knn_block, corruptions: the blocks of `clean_metrics`, `knn_metrics`,
            `corruption_sweep` (the last two maybe None).

    Returns:
        dict, the report, with `files` (paths of `json`, `markdown`, `plots` and `classifier`, the
        classifier trained here or None).
    """
    result = {
        "model_dir": os.path.abspath(run.model_dir),
        "method": run.run_config.get("method", "?"),
        "dataset": run.dataset,
        "num_classes": run.num_classes,
        "image_size": run.image_size,
        "seed": int(run.config.seed),
        "training_seed": run.run_config.get("seed"),
        "settings": run.settings,
        "classifier": classifier.info,
        "clean": clean,
        "knn": knn_block,
        "corruptions": corruptions,
    }
    result = json.loads(json.dumps(result))  # Plain JSON types (and str severity keys) throughout.

    def write(folder):
        report.write_report(result, folder)
        if classifier.trained is not None:
            classifier.trained.save(os.path.join(folder, inputs.CLASSIFIER_FILE))

    paths = report.replace_files(run.output_dir, write, inputs.REPORT_FILES)
    result["files"] = {"json": os.path.join(run.output_dir, inputs.REPORT_JSON),
                       "markdown": os.path.join(run.output_dir, inputs.REPORT_MD),
                       "plots": [p for p in paths if p.endswith(".png")],
                       "classifier": next((p for p in paths if p.endswith(inputs.CLASSIFIER_FILE)), None)}
    return result
