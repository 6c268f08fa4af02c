"""Evaluates a training run: linear classifier, kNN, corruption robustness, calibration.

  python eval.py --model_dir=runs/supcon            # report in runs/supcon/eval/
  python eval.py --compare runs/supcon runs/ce --output_dir=runs/report

Flags: flags.md (defined in supcon/flags.py; the fields of supcon.evaluation.EvalConfig). The
steps: supcon.evaluation.runner (`evaluate_run(config)` runs them all in one call). A bad flag or
input is answered with one line before any work (flags while they parse, the run directory and
the report folder before TensorFlow loads: supcon.evaluation.inputs); a report of other settings
already in the output folder is kept unless --overwrite. --verbosity=0 shows tracebacks and
TensorFlow's own start-up lines.
"""

from absl import flags

from supcon import console
from supcon import flags as supcon_flags

console.quiet_by_default()  # Before TensorFlow is imported (main imports it).
supcon_flags.define_eval_flags()
FLAGS = flags.FLAGS
PROGRAM = "eval.py"


def main(argv):
    from supcon.evaluation import inputs  # noqa: PLC0415  (TensorFlow-free checks)

    extra = argv[1:]
    if FLAGS.compare:
        # `--compare A B C`: absl gives A to the flag and leaves B, C as arguments.
        _compare(inputs, list(FLAGS.compare) + extra)
        return
    if extra:
        raise inputs.EvalInputError(f"Unexpected arguments: {' '.join(extra)}; expected flags only "
                                    "(several directories go with --compare).")
    config = supcon_flags.eval_config()
    inputs.check_evaluation(config)  # The run directory and the report folder, before TensorFlow loads.
    console.import_tensorflow(show_native_logs=console.native_logs_requested(supcon_flags.verbosity_given()))
    from supcon.evaluation import runner as steps  # noqa: PLC0415  (TensorFlow: after the checks)

    run = steps.load_run(config)  # run_config.json, model.keras, the settings of a classifier to train.
    data = steps.load_data(run)  # The test split (and the training split for kNN / a classifier).
    classifier = steps.get_classifier(run, data)  # classifier.keras, the CE head, or stage 2 trained here.
    test_set = steps.embed_test_set(run, data)  # Embeddings of the (first N) test images.
    clean = steps.clean_metrics(classifier, test_set)  # Top-1, top-5, ECE, reliability.
    knn = steps.knn_metrics(run, data, test_set)  # Weighted kNN among the training embeddings.
    corruptions = steps.corruption_sweep(run, data, classifier, clean["top1"])  # Accuracy, ECE, mCE.
    report = steps.write_report(run, classifier, clean, knn, corruptions)  # JSON, Markdown, plots.
    _print_summary(run, report)


def _print_summary(run, report):
    clean, limit = report["clean"], run.config.max_test_examples
    if limit and clean["num_examples"] < limit:
        print(f"Note: --max_test_examples={limit} exceeds the test split of {report['dataset']!r}; "
              f"evaluated all {clean['num_examples']} test examples.")
    print(f"top-1 {100 * clean['top1']:.2f}%  top-5 {100 * clean['top5']:.2f}%  ECE {100 * clean['ece']:.2f}%")
    if report["knn"]:
        print(f"kNN (k={report['knn']['k']}) {100 * report['knn']['accuracy']:.2f}%")
    summary = (report.get("corruptions") or {}).get("summary")
    if summary and summary["mce"] is not None:
        normalization = "AlexNet-normalized" if summary["normalization"] == "alexnet" else "unnormalized"
        print(f"mCE {100 * summary['mce']:.2f}%  relative mCE {100 * summary['relative_mce']:.2f}% "
              f"({normalization})")
    replaced = " (replaced the earlier report)" if run.replaces else ""
    files = report["files"]
    print(f"Report: {files['markdown']}{replaced}")
    print(f"  every number: {files['json']}")
    for path in files["plots"]:
        print(f"  plot: {path}")
    if files.get("classifier"):
        print(f"  classifier trained here: {files['classifier']}")


# The flags of one evaluation, which --compare (comparing reports already written) does not take.
_EVALUATION_FLAGS = (
    "dataset", "corruptions", "severities", "corruption_source", "seed", "batch_size", "max_test_examples",
    "knn_k", "knn_temperature", "retrain_classifier", "classifier_optimizer", "classifier_learning_rate",
    "classifier_epochs", "classifier_batch_size", "classifier_augmentation", "data_dir", "progress")


def _compare(inputs, run_dirs):
    """`--compare`: reads the reports and writes the side-by-side one (no TensorFlow needed)."""
    ignored = [f"--{name}" for name in _EVALUATION_FLAGS if FLAGS[name].present]
    if ignored:
        verb = "does" if len(ignored) == 1 else "do"
        raise inputs.EvalInputError(f"{', '.join(ignored)} {verb} not apply to --compare, which compares reports "
                                    "already written; expected only --output_dir and --overwrite with it.")
    from supcon.evaluation import report  # noqa: PLC0415  (matplotlib, no TensorFlow)

    result = report.compare_runs(run_dirs, FLAGS.output_dir, overwrite=FLAGS.overwrite)
    print(result["markdown"])
    print(f"Wrote {len(result['files'])} files:")
    for path in result["files"]:
        print(f"  {path}")


def run_main():
    """Console-script entry point (`supcon-eval`)."""
    supcon_flags.run_program(PROGRAM, main)


if __name__ == "__main__":
    run_main()
