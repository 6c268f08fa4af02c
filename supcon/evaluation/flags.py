"""Command-line flags of eval.py (the only evaluation module that defines absl flags).

`python -m supcon.evaluation.flags --markdown` prints them as a Markdown table.
"""

import sys

from absl import flags

from supcon.evaluation import corruption_params as cp
from supcon.evaluation import knn, linear_eval
from supcon.evaluation.runner import CORRUPTION_SOURCES

flags.DEFINE_string("model_dir", None, "Run directory written by train.py to evaluate.")
flags.DEFINE_list(
    "compare", None,
    "Compare already-evaluated runs: `--compare DIR_A DIR_B ...` (or DIR_A,DIR_B) writes a side-by-side "
    "table and overlaid plots to --output_dir.")
flags.DEFINE_string("output_dir", None, "Report folder (default MODEL_DIR/eval; for --compare, required).")
flags.DEFINE_string("data_dir", None, "Data directory (default: the run's). Prepared TFDS cifar10_corrupted / "
                    "imagenet2012_corrupted sets here are used instead of generated corruptions.")
flags.DEFINE_string("dataset", None, "Evaluate on this data set instead of the run's (same class count).")
flags.DEFINE_list("corruptions", list(cp.ALL_CORRUPTIONS), "Corruptions to sweep (empty: none).")
flags.DEFINE_list("severities", ["1", "2", "3", "4", "5"], "Severities to sweep (1..5).")
flags.DEFINE_enum("corruption_source", "auto", list(CORRUPTION_SOURCES),
                  "auto: prepared TFDS sets when all present, else generated; tfds: require them; generate.")
flags.DEFINE_integer("seed", 0, "Seed of the generated corruptions and of the classifier's data order.")
flags.DEFINE_integer("batch_size", 128, "Evaluation batch size.")
flags.DEFINE_integer("max_test_examples", None, "Only the first N test examples (quick looks).")
flags.DEFINE_integer("knn_k", knn.DEFAULT_K, "kNN neighbours (Wu et al. 2018); 0 skips kNN.")
flags.DEFINE_float("knn_temperature", knn.DEFAULT_TEMPERATURE, "kNN vote temperature tau.")
flags.DEFINE_boolean("retrain_classifier", False, "Train a new linear classifier even if the run has one.")
flags.DEFINE_enum("classifier_optimizer", "auto", list(linear_eval.OPTIMIZERS),
                  "auto: RMSProp for images >= 128 px (ImageNet-size), else SGD with momentum 0.9.")
flags.DEFINE_float("classifier_learning_rate", None, "Learning rate per 256 examples (default: optimizer's).")
flags.DEFINE_integer("classifier_epochs", None, "Classifier epochs (default: the run's linear_epochs, else 10).")
flags.DEFINE_integer("classifier_batch_size", None, "Classifier batch size (default: the run's, else 128).")
flags.DEFINE_string("classifier_augmentation", "none",
                    "Augmentation of the classifier's training images: none, or a supcon.data policy name.")
flags.DEFINE_boolean("progress", True, "Progress bar over the corruption sweep.")

FLAGS = flags.FLAGS


def markdown():
    """Returns this module's flags as a Markdown table."""
    rows = ["| flag | default | help |", "|---|---|---|"]
    for flag in FLAGS.get_flags_for_module(sys.modules[__name__]):
        rows.append(f"| `--{flag.name}` | `{flag.default}` | {flag.help} |")
    return "\n".join(rows)


if __name__ == "__main__" and "--markdown" in sys.argv:
    print(markdown())
