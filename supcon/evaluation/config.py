"""`EvalConfig`: every setting of one evaluation (`eval.py --model_dir=...`), with its defaults.

The field names are the `eval.py` flag names; `supcon/flags.py` takes its defaults from here, so
each default is written once (as `TrainConfig` does for `train.py`). TensorFlow-free: eval.py builds
it, and `supcon.evaluation.inputs` checks it, before TensorFlow loads. The checks live there
(`check_evaluation`): a config is plain values, and a bad one is refused before any work.

The classifier settings (`classifier_*`) default to None, "the run's": a classifier trained here
uses the run's stage-2 settings (`linear_*` in its `run_config.json`, see
`supcon.training.linear_stage.LinearStageSettings`), each replaced by the flag when given.
"""

import dataclasses

from supcon import choices
from supcon.evaluation import corruption_params as cp


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Settings of one evaluation (see `flags.md` for each field's meaning).

    Example:
        >>> config = EvalConfig(model_dir="runs/digits_supcon", corruptions=("fog",), severities=(1, 5))
        >>> config.knn_k, config.classifier_optimizer
        (200, None)
    """

    # The run and the report.
    model_dir: str | None = None
    output_dir: str | None = None  # None: MODEL_DIR/eval.
    overwrite: bool = False
    data_dir: str | None = None  # None: the run's.
    dataset: str | None = None  # None: the run's.
    seed: int = 0
    batch_size: int = 128
    max_test_examples: int | None = None
    # Corruption benchmark and calibration.
    corruptions: tuple = tuple(cp.ALL_CORRUPTIONS)
    severities: tuple = tuple(cp.SEVERITIES)
    corruption_source: str = "auto"
    progress: bool = True
    # kNN on the embeddings (Wu et al. 2018).
    knn_k: int = choices.KNN_DEFAULT_K
    knn_temperature: float = choices.KNN_DEFAULT_TEMPERATURE
    # Classifier stage: None is the run's `linear_*` setting.
    retrain_classifier: bool = False
    classifier_optimizer: str | None = None
    classifier_learning_rate: float | None = None
    classifier_epochs: int | None = None
    classifier_batch_size: int | None = None
    classifier_augmentation: str | None = None

    def classifier_overrides(self):
        """The `classifier_*` settings given (not None), as `LinearStageSettings` field names.

        Example:
            >>> EvalConfig(classifier_epochs=3).classifier_overrides()
            {'epochs': 3}
        """
        given = {name: getattr(self, f"classifier_{name}") for name in CLASSIFIER_SETTINGS}
        return {name: value for name, value in given.items() if value is not None}


# The stage-2 settings that eval.py's `--classifier_<name>` flags replace.
CLASSIFIER_SETTINGS = ("optimizer", "learning_rate", "epochs", "batch_size", "augmentation")
