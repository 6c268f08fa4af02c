"""Train SupCon / SimCLR / GenSCL / cross-entropy, linear-evaluate, export. See flags.md.

    python train.py                       # the main job: SupCon on the embedded digits data
    python train.py --flagfile=configs/supcon_cifar10.flags --model_dir=runs/cifar10

Everything is written under --model_dir; the same command resumes a killed run.
"""

import os
import sys

# TensorFlow's C++ start-up chatter hides the run's own output; TF_CPP_MIN_LOG_LEVEL=0 shows it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from supcon import flags as supcon_flags  # noqa: E402
from supcon.training import NonFiniteLossError, RunDirectoryConflict, StrategyError  # noqa: E402
from supcon.training import run as steps  # noqa: E402

supcon_flags.define_train_flags()


def main(argv):
    # TensorFlow logs SavedModel/checkpoint details at INFO through absl; show them only when
    # asked for with --verbosity.
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    config = supcon_flags.train_config()  # Parsed and validated before any work.

    run = steps.start(config)  # Strategy, seeds, determinism, precision.
    data = steps.build_data(run)  # Splits and the seeded, infinite training stream.
    steps.claim_run_directory(run, data)  # Refuse a different run; resume the same one.
    model = steps.build_training_model(run, data)  # Encoder + head, loss, optimizer.
    steps.pretrain(run, data, model)  # fit from the last checkpoint; saves model.keras.
    classifier = steps.train_linear_classifier(run, data, model)  # Frozen encoder.
    results = steps.evaluate(run, data, model, classifier)  # Test accuracy.
    steps.export(run, data, model, classifier, results)  # SavedModel, .keras, results.json.
    print(f"Run directory: {config.model_dir} (test accuracy {results['test_accuracy']:.4f})")


def _main_with_clear_errors(argv):
    try:
        main(argv)
    except (RunDirectoryConflict, StrategyError, NonFiniteLossError) as error:
        sys.exit(f"train.py: {type(error).__name__}: {error}")  # What to do, without a traceback.


def run_main():
    """Console-script entry point (`supcon-train`)."""
    app.run(_main_with_clear_errors)


if __name__ == "__main__":
    run_main()
