"""Evaluates a training run: linear classifier, kNN, corruption robustness, calibration.

  python eval.py --model_dir=runs/supcon            # report in runs/supcon/eval/
  python eval.py --compare runs/supcon runs/ce --output_dir=runs/report

Flags: flags.md (defined in supcon/flags.py). The work: supcon.evaluation.evaluate_run. A bad
flag or input is answered with one line before any work (flags while they parse, the run
directory and the report folder before TensorFlow loads: supcon.evaluation.inputs); a report of
other settings already in the output folder is kept unless --overwrite. --verbosity=0 shows
tracebacks and TensorFlow's own start-up lines.
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
    arguments = {name: FLAGS[name].value for name in _EVALUATION_FLAGS}
    arguments["severities"] = [int(s) for s in FLAGS.severities]
    # The run directory and the report folder, before TensorFlow loads (and again in evaluate_run).
    plan = inputs.check_evaluation(FLAGS.model_dir, overwrite=FLAGS.overwrite, **arguments)

    console.import_tensorflow(show_native_logs=console.native_logs_requested(supcon_flags.verbosity_given()))
    from supcon import evaluation  # noqa: PLC0415  (TensorFlow: after the checks)

    report = evaluation.evaluate_run(FLAGS.model_dir, data_dir=FLAGS.data_dir, progress=FLAGS.progress,
                                     overwrite=FLAGS.overwrite, **arguments)
    clean = report["clean"]
    if FLAGS.max_test_examples and clean["num_examples"] < FLAGS.max_test_examples:
        print(f"Note: --max_test_examples={FLAGS.max_test_examples} exceeds the test split of {report['dataset']!r}; "
              f"evaluated all {clean['num_examples']} test examples.")
    print(f"top-1 {100 * clean['top1']:.2f}%  top-5 {100 * clean['top5']:.2f}%  ECE {100 * clean['ece']:.2f}%")
    if report["knn"]:
        print(f"kNN (k={report['knn']['k']}) {100 * report['knn']['accuracy']:.2f}%")
    summary = (report.get("corruptions") or {}).get("summary")
    if summary and summary["mce"] is not None:
        normalization = "AlexNet-normalized" if summary["normalization"] == "alexnet" else "unnormalized"
        print(f"mCE {100 * summary['mce']:.2f}%  relative mCE {100 * summary['relative_mce']:.2f}% "
              f"({normalization})")
    replaced = " (replaced the earlier report)" if plan["replaces"] else ""
    print(f"Report: {report['files']['markdown']}{replaced}")


# The flags passed to `evaluate_run` as they are (besides model_dir, data_dir, progress, overwrite).
_EVALUATION_FLAGS = (
    "dataset", "output_dir", "corruptions", "severities", "corruption_source", "seed", "batch_size",
    "max_test_examples", "knn_k", "knn_temperature", "retrain_classifier", "classifier_optimizer",
    "classifier_learning_rate", "classifier_epochs", "classifier_batch_size", "classifier_augmentation")


def _compare(inputs, run_dirs):
    """`--compare`: reads the reports and writes the side-by-side one (no TensorFlow needed)."""
    ignored = [f"--{name}" for name in _EVALUATION_FLAGS + ("data_dir", "progress") if FLAGS[name].present
               and name != "output_dir"]
    if ignored:
        verb = "does" if len(ignored) == 1 else "do"
        raise inputs.EvalInputError(f"{', '.join(ignored)} {verb} not apply to --compare, which compares reports "
                                    "already written; expected only --output_dir and --overwrite with it.")
    from supcon.evaluation import report  # noqa: PLC0415  (matplotlib, no TensorFlow)

    result = report.compare_runs(run_dirs, FLAGS.output_dir, overwrite=FLAGS.overwrite)
    print(result["markdown"])
    print(f"Wrote {', '.join(result['files'])}")


def run_main():
    """Console-script entry point (`supcon-eval`)."""
    supcon_flags.run_program(PROGRAM, main)


if __name__ == "__main__":
    run_main()
