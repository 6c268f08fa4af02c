"""Label-free k-nearest-neighbour evaluation of an embedding.

Wu et al., "Unsupervised Feature Learning via Non-Parametric Instance
Discrimination", CVPR 2018 (arXiv 1805.01978) §3.4: the k training embeddings
with the highest cosine similarity s_i to a test embedding vote for their class
with weight exp(s_i / tau); the class with the largest total wins. The encoder
never sees labels here: it measures how well classes cluster in the embedding.
"""

import numpy as np
import tensorflow as tf

from supcon.choices import KNN_DEFAULT_K as DEFAULT_K  # noqa: E402  Wu et al. 2018 §4.1.
from supcon.choices import KNN_DEFAULT_TEMPERATURE as DEFAULT_TEMPERATURE  # noqa: E402


def knn_predict(train_features, train_labels, test_features, *, num_classes, k=DEFAULT_K,
                temperature=DEFAULT_TEMPERATURE, batch_size=1024):
    """Weighted cosine kNN class scores.

    Args:
      train_features: float `[N, F]` embeddings of the labelled (training) set.
      train_labels: int `[N]` class ids.
      test_features: float `[M, F]` embeddings to classify.
      num_classes: int, number of classes C.
      k: int >= 1, neighbours per query (clipped to N). Default 200.
      temperature: float > 0, tau of the vote weights exp(s / tau). Default 0.07.
      batch_size: int, queries per similarity block.

    Returns:
      float32 `[M, C]` vote totals (argmax is the prediction).

    Example:
      >>> train = np.array([[1.0, 0.0], [0.0, 1.0]]); labels = np.array([0, 1])
      >>> knn_predict(train, labels, np.array([[0.9, 0.1]]), num_classes=2, k=1).argmax(-1)
      array([0])
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"`k` must be a positive int. Received: k={k!r}")
    if not temperature > 0:
        raise ValueError(f"`temperature` must be > 0. Received: temperature={temperature!r}")
    train = tf.math.l2_normalize(tf.convert_to_tensor(train_features, tf.float32), axis=-1)
    test = tf.math.l2_normalize(tf.convert_to_tensor(test_features, tf.float32), axis=-1)
    labels = tf.convert_to_tensor(np.asarray(train_labels).reshape(-1), tf.int32)
    k = min(int(k), int(train.shape[0]))
    scores = []
    for start in range(0, int(test.shape[0]), batch_size):
        similarity = tf.matmul(test[start : start + batch_size], train, transpose_b=True)
        top_sim, top_idx = tf.math.top_k(similarity, k=k)
        weights = tf.exp(top_sim / temperature)
        votes = tf.one_hot(tf.gather(labels, top_idx), num_classes) * weights[..., None]
        scores.append(tf.reduce_sum(votes, axis=1))
    if not scores:
        return np.zeros((0, num_classes), np.float32)
    return tf.concat(scores, axis=0).numpy()


def knn_accuracy(train_features, train_labels, test_features, test_labels, *, num_classes, k=DEFAULT_K,
                 temperature=DEFAULT_TEMPERATURE):
    """Top-1 accuracy of the weighted cosine kNN classifier (Wu et al. 2018 §3.4).

    Args:
      train_features, train_labels, test_features: as in `knn_predict`.
      test_labels: int `[M]`.
      num_classes, k, temperature: as in `knn_predict`.

    Returns:
      float in [0, 1].

    Example:
      >>> train = np.array([[1.0, 0.0], [0.0, 1.0]]); labels = np.array([0, 1])
      >>> knn_accuracy(train, labels, train, labels, num_classes=2, k=1)
      1.0
    """
    scores = knn_predict(train_features, train_labels, test_features, num_classes=num_classes, k=k,
                         temperature=temperature)
    return float(np.mean(scores.argmax(-1) == np.asarray(test_labels).reshape(-1)))
