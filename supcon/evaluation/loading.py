"""The first two steps of an evaluation: the run (its settings and model), then its data.

`load_run` checks every input (`supcon.evaluation.inputs.check_evaluation`, TensorFlow-free), loads
`model.keras` and resolves the settings of a classifier eval.py would train; `load_data` loads the
test split (and the training split when the kNN or a classifier needs it). Both fail with one
`EvalInputError` line before any work.
"""

import dataclasses
import os

import keras

from supcon import data as data_lib
from supcon.evaluation import corrupted_data, inputs
from supcon.evaluation.config import CLASSIFIER_SETTINGS, EvalConfig
from supcon.evaluation.inputs import EvalInputError
from supcon.training.linear_stage import LinearStageSettings


@dataclasses.dataclass
class EvalRun:
    """A training run to evaluate, checked and loaded.

    Attributes:
        config: the `EvalConfig`.
        model_dir: str, the run directory.
        run_config: dict, its `run_config.json`.
        dataset: str, the data set evaluated on (the run's unless `config.dataset`).
        data_dir: str or None (the run's unless `config.data_dir`).
        output_dir: str, the report folder.
        corruptions: list of str, the corruptions swept (maybe empty).
        severities: list of int.
        settings: dict, the evaluation's settings, recorded in the report.
        replaces: bool, whether `output_dir` holds an earlier report that this one replaces.
        num_classes, image_size: ints, the run's.
        model: the pre-trained model (`model.keras`; its `encoder`, and for a cross-entropy run
            its `classifier_head`).
        classifier_settings: `supcon.training.linear_stage.LinearStageSettings` of the classifier
            trained here, or None when the run's classifier (or cross-entropy head) is used.
    """

    config: EvalConfig
    model_dir: str
    run_config: dict
    dataset: str
    data_dir: str | None
    output_dir: str
    corruptions: list
    severities: list
    settings: dict
    replaces: bool
    num_classes: int
    image_size: int
    model: keras.Model
    classifier_settings: LinearStageSettings | None


@dataclasses.dataclass
class EvalData:
    """The splits an evaluation reads.

    Attributes:
        test_source: `supcon.data.Source`, the test split.
        test_data: `tf.data.Dataset`, its eval pipeline (fixed order, `config.batch_size`).
        train_source: `supcon.data.Source`, the training split (kNN neighbours, a classifier
            trained here), or None when neither is needed.
        train_data: `tf.data.Dataset`, the training split's eval pipeline (the kNN neighbours),
            or None without kNN.
    """

    test_source: object
    test_data: object
    train_source: object = None
    train_data: object = None


def load_run(config):
    """Checks the inputs, loads `model.keras` and resolves the classifier's settings.

    Args:
        config: `EvalConfig`.

    Returns:
        `EvalRun`.
    """
    # Imported for their side effect: registering the supcon Keras classes that `load_model`
    # must find (the models, and the losses named in their configs).
    import supcon.losses  # noqa: F401, PLC0415
    import supcon.models  # noqa: F401, PLC0415

    plan = inputs.check_evaluation(config)
    model_dir, run_config = os.fspath(config.model_dir), plan["config"]
    model = load_keras_model(os.path.join(model_dir, inputs.MODEL_FILE), model_dir, "encoder")
    return EvalRun(
        config=config,
        model_dir=model_dir,
        run_config=run_config,
        dataset=plan["dataset"],
        data_dir=config.data_dir if config.data_dir is not None else run_config.get("data_dir"),
        output_dir=plan["output_dir"],
        corruptions=plan["corruptions"],
        severities=plan["severities"],
        settings=plan["settings"],
        replaces=plan["replaces"],
        num_classes=int(run_config["num_classes"]),
        image_size=int(run_config["image_size"]),
        model=model,
        classifier_settings=classifier_settings(config, run_config, model_dir) if plan["trains_classifier"] else None,
    )


def classifier_settings(config, run_config, model_dir):
    """The stage-2 settings of a classifier trained by eval.py: the run's, with the flags given.

    A run trained with `linear_epochs=0` (no stage 2) has no epochs to copy: 0 would leave the
    classifier untrained, so it gets `TrainConfig`'s default `linear_epochs` unless
    `--classifier_epochs` is given.

    Args:
        config: `EvalConfig` (`classifier_*`: None is the run's setting).
        run_config: dict, the run's `run_config.json` (`linear_*` keys; missing ones in an older
            run take `TrainConfig`'s defaults).
        model_dir: str, for the error message.

    Returns:
        `LinearStageSettings`.
    """
    overrides = config.classifier_overrides()
    if "epochs" not in overrides and run_config.get("linear_epochs") == 0:
        overrides["epochs"] = LinearStageSettings.epochs
    try:
        return LinearStageSettings.from_config(run_config, **overrides)
    except (TypeError, ValueError) as error:
        flags = [f"--classifier_{name}" for name in CLASSIFIER_SETTINGS if name in config.classifier_overrides()]
        given = f" with {', '.join(flags)}" if flags else ""
        raise EvalInputError(f"The classifier's settings for model_dir {model_dir!r} ({inputs.RUN_CONFIG}'s "
                             f"linear_* settings{given}) are not valid: {error}") from None


def load_data(run):
    """The test split (and the training split if needed); refuses a data set of another class count.

    With `--corruption_source=tfds` it also checks, before any work, that the prepared corrupted
    sets are there.

    Args:
        run: `EvalRun`.

    Returns:
        `EvalData`.
    """
    config = run.config
    test_source = data_lib.load(run.dataset, "test", data_dir=run.data_dir, seed=config.seed)
    if int(test_source.info.num_classes) != run.num_classes:
        raise EvalInputError(
            f"model_dir {run.model_dir!r} was trained for {run.num_classes} classes but data set {run.dataset!r} "
            f"has {int(test_source.info.num_classes)}; expected a data set with {run.num_classes} classes."
        )
    if run.corruptions and config.corruption_source == "tfds":
        corrupted_data.check_prepared(run.dataset, run.corruptions, run.severities, run.data_dir)
    test_data = data_lib.pipeline(test_source, "test", batch_size=config.batch_size, training=False,
                                  image_size=run.image_size, seed=config.seed)
    data = EvalData(test_source=test_source, test_data=test_data)
    if config.knn_k or run.classifier_settings is not None:
        data.train_source = data_lib.load(run.dataset, "train", data_dir=run.data_dir, seed=config.seed)
    if config.knn_k:
        data.train_data = data_lib.pipeline(data.train_source, "train", batch_size=config.batch_size,
                                            training=False, image_size=run.image_size, seed=config.seed)
    return data


def load_keras_model(path, model_dir, attribute):
    """`keras.saving.load_model(path)`; a damaged file or another kind of model is one line.

    Args:
        path: str, a `.keras` file of the run.
        model_dir: str, the run directory (for the message).
        attribute: str, an attribute the model must have (`encoder`, `classifier_head`).

    Returns:
        The model (not compiled).
    """
    name = os.path.basename(path)
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as error:  # noqa: BLE001 - Keras raises many kinds for a damaged archive.
        first = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
        raise EvalInputError(f"{name} in model_dir {model_dir!r} is damaged or not a supcon model: could not load "
                             f"it ({type(error).__name__}: {first}).") from error
    if not hasattr(model, attribute):
        raise EvalInputError(f"{name} in model_dir {model_dir!r} is a {type(model).__name__}; expected a supcon "
                             f"model with {'an' if attribute[0] in 'aeiou' else 'a'} `{attribute}` "
                             "(the file of another run or program?).")
    return model
