"""Stage 2 of SupCon: a linear classifier trained on the frozen encoder.

Khosla et al. 2020 (arXiv 2004.11362) §3/§4: "we freeze the learned
representation and then train a linear classifier on top of it using a
cross-entropy loss". Paper defaults: RMSProp for ImageNet-size data, SGD with
momentum for small images (CIFAR); learning rate scaled linearly with the batch
size (lr * batch / 256) and decayed with a cosine schedule. Accuracy is read
after the last epoch; no epoch is picked on the test set.
"""

from supcon.choices import CLASSIFIER_OPTIMIZERS as OPTIMIZERS  # noqa: E402
LARGE_IMAGE_SIZE = 128  # Image side from which "auto" picks RMSProp (ImageNet-size data).
SGD_MOMENTUM = 0.9
DEFAULT_SGD_LEARNING_RATE = 0.5  # Per 256 examples; supcon.training's linear stage uses the same.
DEFAULT_RMSPROP_LEARNING_RATE = 1e-3  # Per 256 examples.
DEFAULT_EPOCHS = 10
DEFAULT_BATCH_SIZE = 128


def resolve_optimizer(name, image_size):
    """Returns "sgd" or "rmsprop"; "auto" picks RMSProp for images of side >= 128 px.

    Example:
      >>> resolve_optimizer("auto", 224), resolve_optimizer("auto", 32)
      ('rmsprop', 'sgd')
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"`optimizer` must be one of {OPTIMIZERS}. Received: optimizer={name!r}")
    if name == "auto":
        return "rmsprop" if int(image_size) >= LARGE_IMAGE_SIZE else "sgd"
    return name


def train_linear_classifier(encoder, train_data, *, num_classes, steps_per_epoch, optimizer="sgd",
                            learning_rate=None, epochs=DEFAULT_EPOCHS, batch_size=DEFAULT_BATCH_SIZE,
                            verbose=0):
    """Trains `supcon.models.LinearClassifier(encoder, num_classes)` and returns it.

    Args:
      encoder: `keras.Model`, images -> embeddings (frozen by the classifier).
      train_data: `tf.data.Dataset` of `(images [B, H, W, 3] float32 0-255, labels [B])`.
      num_classes: int.
      steps_per_epoch: int >= 1, batches per epoch (for the cosine schedule).
      optimizer: `"sgd"` (momentum 0.9) or `"rmsprop"`.
      learning_rate: float per 256 examples, or None for the optimizer's default.
      epochs: int >= 0.
      batch_size: int, the batch size of `train_data` (scales the learning rate).
      verbose: Keras verbosity.

    Returns:
      `(classifier, history dict)`.
    """
    from supcon.training.linear_stage import compile_linear_classifier  # noqa: PLC0415

    if optimizer not in ("sgd", "rmsprop"):
        raise ValueError(f"`optimizer` must be 'sgd' or 'rmsprop'. Received: optimizer={optimizer!r}")
    if learning_rate is None:
        learning_rate = DEFAULT_SGD_LEARNING_RATE if optimizer == "sgd" else DEFAULT_RMSPROP_LEARNING_RATE
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"`epochs` must be a non-negative int. Received: epochs={epochs!r}")
    classifier = compile_linear_classifier(
        encoder, num_classes, optimizer=optimizer, learning_rate=float(learning_rate),
        batch_size=batch_size, decay_steps=epochs * steps_per_epoch,
        momentum=SGD_MOMENTUM if optimizer == "sgd" else 0.0,
    )
    history = {}
    if epochs:
        # shuffle=False: `train_data` is a tf.data pipeline that shuffles itself.
        history = classifier.fit(train_data, epochs=epochs, steps_per_epoch=steps_per_epoch, shuffle=False,
                                 verbose=verbose).history
    return classifier, {k: [float(v) for v in vals] for k, vals in history.items()}
