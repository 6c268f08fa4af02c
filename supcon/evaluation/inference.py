"""Running a model over an evaluation data set: NumPy batches, embeddings, probabilities.

The evaluation reads every split in its fixed order (`supcon.data.pipeline(..., training=False)`)
and may stop after the first `limit` examples (`--max_test_examples`), the same ones for the clean
test set, the kNN queries and every corrupted copy.
"""

import numpy as np
import tensorflow as tf


def numpy_batches(dataset, limit):
    """Yields NumPy `(images, labels)` batches of `dataset`, at most `limit` examples in all.

    Args:
        dataset: `tf.data.Dataset` of `(images, labels)` batches.
        limit: int or None (all).

    Yields:
        `(images [b, H, W, 3], labels [b])` NumPy arrays; the last batch cut at `limit`.

    Example:
        >>> data = tf.data.Dataset.from_tensor_slices((np.zeros((5, 1)), np.arange(5))).batch(2)
        >>> [labels.tolist() for _, labels in numpy_batches(data, 3)]
        [[0, 1], [2]]
    """
    seen = 0
    for images, labels in dataset:
        images, labels = images.numpy(), labels.numpy()
        if limit is not None:
            images, labels = images[: limit - seen], labels[: limit - seen]
        if len(labels) == 0:
            return
        seen += len(labels)
        yield images, labels
        if limit is not None and seen >= limit:
            return


def embed(encoder, dataset, limit):
    """The encoder's embeddings of the first `limit` examples of `dataset` (None: all).

    Args:
        encoder: `keras.Model`, images -> embeddings `[N, F]` (run in inference mode).
        dataset: `tf.data.Dataset` of `(images, labels)` batches.
        limit: int or None.

    Returns:
        `(features [N, F] float32, labels [N])` NumPy arrays.
    """
    features, labels = [], []
    run = tf.function(lambda x: encoder(x, training=False))
    for images, y in numpy_batches(dataset, limit):
        features.append(run(tf.constant(images, tf.float32)).numpy())
        labels.append(y)
    if not features:
        return np.zeros((0, encoder.output_shape[-1]), np.float32), np.zeros((0,), np.int32)
    return np.concatenate(features), np.concatenate(labels)


def softmax(logits):
    """Softmax over the last axis in float64 (max-subtracted, so large logits cannot overflow).

    Example:
        >>> softmax([[0.0, 0.0], [1000.0, 0.0]]).round(3).tolist()
        [[0.5, 0.5], [1.0, 0.0]]
    """
    logits = np.asarray(logits, np.float64)
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    return probabilities
