"""Evaluates a training run: linear classifier, kNN, corruption robustness, calibration.

  python eval.py --model_dir=runs/supcon            # report in runs/supcon/eval/
  python eval.py --compare runs/supcon runs/ce --output_dir=runs/report

Flags: flags.md (defined in supcon/flags.py). The work: supcon.evaluation.evaluate_run.
"""

import os
import sys

# TensorFlow's C++ start-up chatter hides the run's own output; TF_CPP_MIN_LOG_LEVEL=0 shows it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from supcon import flags as supcon_flags  # noqa: E402

supcon_flags.define_eval_flags()
FLAGS = flags.FLAGS


def main(argv):
    # TensorFlow logs SavedModel/checkpoint details at INFO through absl; show them only when
    # asked for with --verbosity.
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    from supcon import evaluation

    extra = argv[1:]
    try:
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
    except (evaluation.EvalInputError, FileNotFoundError) as error:
        sys.exit(f"eval.py: {error}")
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


def run_main():
    """Console-script entry point (`supcon-eval`)."""
    app.run(main)


if __name__ == "__main__":
    run_main()
