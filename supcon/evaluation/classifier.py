"""The classifier an evaluation scores: the run's, the cross-entropy model's own, or one trained here.

A SupCon / SimCLR / GenSCL run is scored with its `classifier.keras` (stage 2 of train.py). When it
has none (a run trained with `--linear_epochs=0`) or `--retrain_classifier` is given, eval.py trains
one with the one stage-2 implementation, `supcon.training.linear_stage.train_linear_classifier`,
and the run's `linear_*` settings (`EvalRun.classifier_settings`); it is saved beside the report.
A cross-entropy run is scored with its own classifier head.
"""

import dataclasses
import os

from supcon.evaluation import inputs
from supcon.evaluation.inputs import EvalInputError
from supcon.evaluation.loading import load_keras_model
from supcon.training import linear_stage


@dataclasses.dataclass
class EvalClassifier:
    """The classifier of an evaluation.

    Attributes:
        head: the classifier head, embeddings `[N, F]` -> logits `[N, num_classes]`.
        info: dict, how it was obtained (the report's `classifier` block).
        trained: the `LinearClassifier` trained here (saved beside the report), or None.
    """

    head: object
    info: dict
    trained: object = None


def get_classifier(run, data):
    """The run's classifier, the cross-entropy model's head, or a linear classifier trained here.

    Args:
        run: `supcon.evaluation.loading.EvalRun`.
        data: `supcon.evaluation.loading.EvalData` (its `train_source` when training one).

    Returns:
        `EvalClassifier`.
    """
    model, model_dir = run.model, run.model_dir
    if inputs.is_cross_entropy_run(run.run_config) or hasattr(model, "label_smoothing"):
        if not hasattr(model, "classifier_head"):
            raise EvalInputError(f"model.keras in model_dir {model_dir!r} has no classifier head, but its "
                                 "run_config.json says method='ce'; expected the cross-entropy model.")
        classifier = EvalClassifier(model.classifier_head, {"source": "the cross-entropy model's own classifier"})
    elif run.classifier_settings is None:
        saved = os.path.join(model_dir, inputs.CLASSIFIER_FILE)
        loaded = load_keras_model(saved, model_dir, "classifier_head")
        _check_embedding_size(loaded, model, model_dir)
        classifier = EvalClassifier(loaded.classifier_head, {"source": f"loaded {saved}"})
    else:
        classifier = _train(run, data)
    if int(classifier.head.num_classes) != run.num_classes:
        raise EvalInputError(f"The classifier of {model_dir!r} has {int(classifier.head.num_classes)} outputs but the "
                             f"run has {run.num_classes} classes.")
    return classifier


def _check_embedding_size(classifier, model, model_dir):
    got, expected = int(classifier.encoder.output_shape[-1]), int(model.encoder.output_shape[-1])
    if got != expected:
        raise EvalInputError(
            f"classifier.keras in model_dir {model_dir!r} takes {got}-d embeddings but model.keras's encoder gives "
            f"{expected}-d ones: is it from another run? Pass --retrain_classifier to train one for this run.")


def _train(run, data):
    """Stage 2 on the frozen encoder, with the run's settings and eval.py's seed."""
    settings = run.classifier_settings
    trained, history = linear_stage.train_linear_classifier(
        run.model.encoder, data.train_source, settings, num_classes=run.num_classes,
        image_size=run.image_size, seed=run.config.seed)
    info = {
        "source": "linear classifier trained by eval.py on the frozen encoder",
        **settings.to_json(),
        "seed": int(run.config.seed),
        "final_epoch": {name: values[-1] for name, values in history.items() if values},
    }
    return EvalClassifier(trained.classifier_head, info, trained)
