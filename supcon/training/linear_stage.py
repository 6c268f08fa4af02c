"""Stage 2 of SupCon: the compiled linear classifier on a frozen encoder.

Khosla et al. 2020 (arXiv 2004.11362) §3 and §4: "we freeze the learned representation and then train
a linear classifier on top of it using a cross-entropy loss". The learning rate is given per 256
examples and scaled linearly with the batch size (as for pre-training), then decayed to 0 with a
cosine schedule; no weight decay. `train.py` (`supcon.training.run`) and `eval.py`
(`supcon.evaluation.linear_eval`) both build their classifier here and run `fit` themselves (the
training run wraps it for multi-worker strategies).
"""

import keras

from supcon.training.optimizers import build_optimizer
from supcon.training.schedules import scaled_learning_rate


def compile_linear_classifier(encoder, num_classes, *, optimizer, learning_rate, batch_size,
                              decay_steps, momentum=0.9):
    """A `supcon.models.LinearClassifier` compiled with cross-entropy, ready for `fit`.

    Call it inside `strategy.scope()` to train under a `tf.distribute` strategy.

    Args:
        encoder: the pre-trained `keras.Model` (images -> embeddings); frozen by the classifier.
        num_classes: int.
        optimizer: str, one of `supcon.training.OPTIMIZERS`.
        learning_rate: float, per 256 examples.
        batch_size: int, the global batch size of the data it will be fit on.
        decay_steps: int, steps of the cosine decay (epochs x steps per epoch); at least 1 is used.
        momentum: float, momentum of lars/sgd/nesterov/rmsprop. Defaults to 0.9.

    Returns:
        The compiled `LinearClassifier` (logits; metric `accuracy`).

    Example:

    >>> from supcon import models
    >>> encoder = models.resnet(18, stem="cifar", width_multiplier=0.125, input_shape=(8, 8, 3))
    >>> classifier = compile_linear_classifier(encoder, 10, optimizer="sgd", learning_rate=0.1,
    ...                                        batch_size=32, decay_steps=100)
    >>> classifier.encoder.trainable, round(float(classifier.optimizer.learning_rate), 5)
    (False, 0.0125)
    """
    from supcon import models  # noqa: PLC0415  (supcon.training does not need the models package)

    schedule = keras.optimizers.schedules.CosineDecay(
        scaled_learning_rate(learning_rate, batch_size), decay_steps=max(int(decay_steps), 1)
    )
    classifier = models.LinearClassifier(encoder, num_classes)
    classifier.compile(
        optimizer=build_optimizer(optimizer, schedule, momentum=momentum),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return classifier
