"""Train SupCon / SimCLR / GenSCL / cross-entropy, linear-evaluate, export. See flags.md.

    python train.py                       # the main job: SupCon on the embedded digits data
    python train.py --flagfile=configs/supcon_cifar10.flags --model_dir=runs/cifar10
    python train.py --flagfile=configs/supcon_cifar10.flags --print_config   # what a recipe sets

Everything is written under --model_dir; the same command resumes a killed or interrupted run,
and a larger --epochs extends a finished one. A bad flag or input is answered with one line
before any work; --verbosity=0 shows tracebacks and TensorFlow's own start-up lines.
"""

import json
import sys

from absl import flags

from supcon import console
from supcon import flags as supcon_flags
from supcon.training import run_dir

console.quiet_by_default()  # Before TensorFlow is imported (main imports it).
supcon_flags.define_train_flags()
FLAGS = flags.FLAGS
PROGRAM = "train.py"


def main(argv):
    if len(argv) > 1:
        raise ValueError(f"train.py takes flags only. Received: {' '.join(argv[1:])}")
    config = supcon_flags.train_config()  # Parsed and validated before any work.
    if FLAGS.print_config:
        print(json.dumps(config.to_json(), indent=2, sort_keys=True))
        return
    run_dir.check_writable(config.model_dir)
    if config.dataset == "digits" and config.data_dir:
        print(f"{PROGRAM}: warning: --data_dir={config.data_dir} is not used: digits is "
              "embedded in the package.", file=sys.stderr)
    console.import_tensorflow(show_native_logs=console.native_logs_requested(supcon_flags.verbosity_given()))
    from supcon.training import run as steps  # noqa: PLC0415  (TensorFlow: after the checks)

    run = steps.start(config)  # Strategy, seeds, determinism, precision.
    data = steps.build_data(run)  # Splits and the seeded, infinite training stream.
    model = steps.build_training_model(run, data)  # Encoder + head, loss, optimizer.
    steps.claim_run_directory(run, data)  # Lock it; refuse a different run; resume the same.
    steps.pretrain(run, data, model)  # fit from the last checkpoint; saves model.keras.
    classifier = steps.train_linear_classifier(run, data, model)  # Frozen encoder.
    results = steps.evaluate(run, data, model, classifier)  # Test accuracy.
    steps.export(run, data, model, classifier, results)  # SavedModel, .keras, results.json.
    accuracy = results["test_accuracy"]
    print(f"Run directory: {config.model_dir}"
          + (f" (test accuracy {accuracy:.4f})" if accuracy is not None else ""))


def run_main():
    """Console-script entry point (`supcon-train`)."""
    supcon_flags.run_program(PROGRAM, main)


if __name__ == "__main__":
    run_main()
