"""Evaluates a training run: linear classifier, kNN, corruption robustness, calibration.

  python eval.py --model_dir=runs/supcon            # report in runs/supcon/eval/
  python eval.py --compare runs/supcon runs/ce --output_dir=runs/report

Flags: flags.md (defined in supcon/flags.py). The work: supcon.evaluation.evaluate_run. A bad
flag or input is answered with one line before any work; --verbosity=0 shows tracebacks and
TensorFlow's own start-up lines.
"""

from absl import app, flags, logging

from supcon import console
from supcon import flags as supcon_flags

console.quiet_by_default()  # Before TensorFlow is imported (main imports it).
supcon_flags.define_eval_flags()
FLAGS = flags.FLAGS
PROGRAM = "eval.py"


def main(argv):
    console.import_tensorflow(show_native_logs=console.native_logs_requested(_verbose()))
    from supcon import evaluation  # noqa: PLC0415  (TensorFlow: after the flag checks)

    extra = argv[1:]
    if FLAGS.compare:
        # `--compare A B C`: absl gives A to the flag and leaves B, C as arguments.
        run_dirs = list(FLAGS.compare) + extra
        if not FLAGS.output_dir:
            raise evaluation.EvalInputError("--compare needs --output_dir for the side-by-side report.")
        result = evaluation.compare_runs(run_dirs, FLAGS.output_dir)
        print(result["markdown"])
        print(f"Wrote {', '.join(result['files'])}")
        return
    if extra:
        raise evaluation.EvalInputError(f"Unexpected arguments: {' '.join(extra)}")
    if not FLAGS.model_dir:
        raise evaluation.EvalInputError("Pass --model_dir=RUN_DIR (or --compare DIR_A DIR_B ...).")
    report = evaluation.evaluate_run(
        FLAGS.model_dir,
        data_dir=FLAGS.data_dir,
        dataset=FLAGS.dataset,
        output_dir=FLAGS.output_dir,
        corruptions=FLAGS.corruptions,
        severities=[_severity(s) for s in FLAGS.severities],
        corruption_source=FLAGS.corruption_source,
        seed=FLAGS.seed,
        batch_size=FLAGS.batch_size,
        max_test_examples=FLAGS.max_test_examples,
        knn_k=FLAGS.knn_k,
        knn_temperature=FLAGS.knn_temperature,
        retrain_classifier=FLAGS.retrain_classifier,
        classifier_optimizer=FLAGS.classifier_optimizer,
        classifier_learning_rate=FLAGS.classifier_learning_rate,
        classifier_epochs=FLAGS.classifier_epochs,
        classifier_batch_size=FLAGS.classifier_batch_size,
        classifier_augmentation=FLAGS.classifier_augmentation,
        progress=FLAGS.progress,
    )
    clean = report["clean"]
    print(f"top-1 {100 * clean['top1']:.2f}%  top-5 {100 * clean['top5']:.2f}%  ECE {100 * clean['ece']:.2f}%")
    if report["knn"]:
        print(f"kNN (k={report['knn']['k']}) {100 * report['knn']['accuracy']:.2f}%")
    summary = (report.get("corruptions") or {}).get("summary")
    if summary and summary["mce"] is not None:
        normalization = "AlexNet-normalized" if summary["normalization"] == "alexnet" else "unnormalized"
        print(f"mCE {100 * summary['mce']:.2f}%  relative mCE {100 * summary['relative_mce']:.2f}% "
              f"({normalization})")
    print(f"Report: {report['files']['markdown']}")


def _severity(text):
    from supcon import evaluation

    try:
        return int(text)
    except ValueError:
        raise evaluation.EvalInputError(f"Unknown severity {text!r}; severities are integers 1..5.") from None


def _verbose():
    return FLAGS["verbosity"].present


def _main_with_clear_errors(argv):
    # TensorFlow logs SavedModel details at INFO through absl; shown only with --verbosity.
    if not _verbose():
        logging.set_verbosity(logging.WARNING)
    console.run_reporting_errors(PROGRAM, lambda: main(argv), show_tracebacks=_verbose())


def run_main():
    """Console-script entry point (`supcon-eval`)."""
    app.run(_main_with_clear_errors, flags_parser=supcon_flags.one_line_parser(PROGRAM))


if __name__ == "__main__":
    run_main()
