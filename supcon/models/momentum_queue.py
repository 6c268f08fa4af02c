"""A momentum key encoder and a labelled FIFO queue of its keys (MoCo, He et al. 2020).

He et al., "Momentum Contrast for Unsupervised Visual Representation Learning",
arXiv 1911.05722: the contrast set is enlarged beyond the batch by a queue of
keys from earlier batches (§3.2 "Dictionary as a queue"), computed by a key
encoder that is not trained by gradients but follows the query encoder,

    theta_k <- m * theta_k + (1 - m) * theta_q          (Eq. 2, m = 0.999)

`SupConModel(queue_size=K)` uses this to train SupCon / SimCLR / GenSCL at small
batch sizes: each step contrasts the batch with the K keys of earlier steps, which
carry their labels so that same-class keys are positives.

Design choices, and why:
  * Every key *weight* follows Eq. 2, the batch-norm moving statistics included
    (MoCo's PyTorch code moves only the parameters and lets the key encoder keep
    its own running statistics).
  * Keys are computed in inference mode (moving statistics). A frozen layer runs
    batch norm in inference mode in Keras, and a training-mode pass would
    overwrite the key's moving statistics with its own batch statistics, so they
    would no longer be the average of Eq. 2. It also makes a key independent of
    the other samples of its batch (MoCo's "shuffling BN" exists to stop that
    leak in training mode) and of how the batch is split over replicas.
  * Keys are projection-head outputs in float32 (the head's own L2 normalization;
    float32 whatever the dtype policy).
"""

import numbers

import keras
import tensorflow as tf
from keras import ops

# He et al. 2020 §3.2: "a relatively large momentum (e.g., m = 0.999, our default)" (Eq. 2).
MOCO_MOMENTUM = 0.999
# Label of a key whose sample had none (SimCLR, or SupCon without labels): no
# anchor has a negative class id, so such a key is a negative of every anchor.
NO_LABEL = -1


def check_queue_arguments(queue_size, key_encoder_momentum, queue_label_dim):
    """Raises `ValueError` naming the argument unless the queue settings are usable."""
    if isinstance(queue_size, bool) or not isinstance(queue_size, numbers.Integral) or queue_size < 0:
        raise ValueError(
            f"`queue_size` must be an int >= 0 (0: no queue). Received: queue_size={queue_size!r}"
        )
    if (
        isinstance(key_encoder_momentum, bool)
        or not isinstance(key_encoder_momentum, numbers.Real)
        or not 0.0 <= key_encoder_momentum < 1.0
    ):
        raise ValueError(
            "`key_encoder_momentum` must be a number in [0, 1) (MoCo's m; 0 copies the query "
            f"encoder every step). Received: key_encoder_momentum={key_encoder_momentum!r}"
        )
    if queue_label_dim is not None:
        integer = isinstance(queue_label_dim, numbers.Integral) and not isinstance(queue_label_dim, bool)
        if not integer or queue_label_dim < 1:
            raise ValueError(
                "`queue_label_dim` must be None (the queue keeps class ids) or an int >= 1 (it keeps "
                f"label distributions over that many classes). Received: queue_label_dim={queue_label_dim!r}"
            )
        if queue_size == 0:
            raise ValueError(
                "`queue_label_dim` sets what the queue stores and needs `queue_size` > 0. "
                f"Received: queue_label_dim={queue_label_dim!r}, queue_size=0"
            )


def _clone(layer, input_shape):
    """A copy of `layer` (same class, config and weights), built for `input_shape`."""
    if isinstance(layer, keras.Model):
        clone = keras.models.clone_model(layer)
    else:
        clone = layer.__class__.from_config(layer.get_config())
    if not clone.built:
        clone.build(input_shape)
    source, target = layer.weights, clone.weights
    if len(source) != len(target) or any(s.shape != t.shape for s, t in zip(source, target)):
        raise ValueError(
            f"Could not copy `{layer.name}` for the key encoder: its copy from `get_config` has other "
            f"weights ({len(target)} vs {len(source)}). Received: {layer.name}={layer!r}"
        )
    for s, t in zip(source, target):
        t.assign(s)
    return clone


def _run_in_sync(fn, *args):
    """Runs `fn(strategy, *args)` once in cross-replica context, from replica or cross-replica context.

    Variables of a `tf.distribute` strategy are updated from there with
    `strategy.extended.update`, as Keras' optimizers do; outside a strategy this is
    a plain call.
    """
    context = tf.distribute.get_replica_context()
    if context is None:
        return fn(tf.distribute.get_strategy(), *args)
    return context.merge_call(fn, args=args)


def _gather(tensor):
    """Concatenates `tensor` `[n, ...]` over the replicas in replica order (identity on one)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return tensor
    return context.all_gather(tensor, axis=0)


class _CheckpointHandle(tf.Module):
    """Holds variables where `tf.train.Checkpoint` finds them (Keras saving ignores it)."""

    def __init__(self, variables):
        super().__init__(name="key_weights")
        self.key_weights = list(variables)


class MomentumQueue(keras.layers.Layer):
    """Momentum key encoder + head and the FIFO queue of their labelled keys.

    Holds copies of a query encoder and projection head (same architecture and
    initial weights) that gradients never train, and `queue_size` slots of keys:

      * `update_keys(encoder, head)`: after an optimizer step, every floating
        key weight (batch-norm moving statistics included) becomes
        `m * key + (1 - m) * query` (He et al. 2020, arXiv 1911.05722, Eq. 2).
      * `call(images)`: the keys of images `[N, H, W, C]`, float32 `[N, D]`,
        from the key encoder and head in inference mode (see the module doc).
      * `enqueue(keys, labels, teacher=None)`: writes keys with their labels
        over the oldest slots (first in, first out, wrapping around). Under
        `tf.distribute` the keys of every replica are gathered first, so every
        replica writes the same global keys and all hold identical queues.
      * `contents()`: `(features [K, D], labels, valid bool [K])`; slots never
        written are invalid.

    The state is Keras variables of this layer (`features`, `labels`,
    `teacher` with label distributions, `count`, `pointer`, and the key
    encoder's and head's weights), so `model.save`, `tf.train.Checkpoint` and
    `model.get_weights` include it. It is always frozen (`trainable` stays False).

    Args:
        encoder: the query encoder, a `keras.Model` `[N, H, W, C] -> [N, F]`.
        projection_head: the query projection head, `[N, F] -> [N, D]`.
        queue_size: int >= 1, the number of key slots K.
        momentum: float in [0, 1), m of Eq. 2. Default 0.999 (MoCo's).
        label_dim: None (default): labels are int32 class ids `[K]`. An int C:
            labels are float32 distributions `[K, C]` (GenSCL), and a second
            buffer `teacher` `[K, C]` keeps a teacher's distributions
            (knowledge distillation).
        **kwargs: `keras.layers.Layer` arguments (`name`).

    Example:
        >>> encoder = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        >>> head = keras.layers.UnitNormalization()
        >>> queue = MomentumQueue(encoder, head, queue_size=4, momentum=0.9)
        >>> queue.enqueue(queue(keras.ops.ones((3, 4))), keras.ops.array([0, 1, 2], "int32"))
        >>> features, labels, valid = queue.contents()
        >>> labels.numpy().tolist(), valid.numpy().tolist()
        ([0, 1, 2, 0], [True, True, True, False])
    """

    def __init__(self, encoder, projection_head, queue_size, momentum=MOCO_MOMENTUM, label_dim=None, **kwargs):
        # float32: the images reach the key encoder as they reach the query encoder (each
        # layer of the copies casts for its own dtype policy).
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        check_queue_arguments(queue_size, momentum, label_dim)
        if queue_size == 0:
            raise ValueError("`queue_size` must be >= 1 for a MomentumQueue. Received: queue_size=0")
        self.queue_size = int(queue_size)
        self.momentum = float(momentum)
        self.label_dim = None if label_dim is None else int(label_dim)
        embedding_shape = tuple(encoder.output_shape)
        self.key_encoder = _clone(encoder, tuple(encoder.input_shape))
        self.key_head = _clone(projection_head, embedding_shape)
        dim = projection_head.compute_output_shape(embedding_shape)[-1]
        if dim is None:
            raise ValueError(
                "The projection head must give projections [N, D] with a known D for the queue. "
                f"Received: output shape {projection_head.compute_output_shape(embedding_shape)}"
            )
        self.dim = int(dim)

        def state(name, shape, dtype):
            return self.add_weight(
                name=name, shape=shape, initializer="zeros", dtype=dtype, trainable=False, autocast=False
            )

        size = self.queue_size
        self.features = state("queue_features", (size, self.dim), "float32")
        if self.label_dim is None:
            self.labels = state("queue_labels", (size,), "int32")
            self.teacher = None
        else:
            self.labels = state("queue_labels", (size, self.label_dim), "float32")
            self.teacher = state("queue_teacher", (size, self.label_dim), "float32")
        self.count = state("queue_count", (), "int32")  # Slots written so far, at most K.
        self.pointer = state("queue_pointer", (), "int32")  # The oldest slot: the next to write.
        # `tf.train.Checkpoint` follows attributes, but not the Python lists in which some
        # layers keep their sublayers (`ProjectionHead._dense`): the query side's trainable
        # weights reach a checkpoint through the optimizer, the key side's would not at all.
        self._key_weights_for_checkpoints = _CheckpointHandle(self.key_encoder.weights + self.key_head.weights)
        self.built = True
        self._freeze()

    def _freeze(self):
        # The Layer setter, called directly: `self.trainable = False` would be skipped by the
        # tracking `__setattr__`, which ignores assigning a value the attribute already has.
        keras.layers.Layer.trainable.fset(self, False)

    # Frozen for good: Keras sets `trainable` down the layer tree (e.g. a model's
    # `trainable = True`), which would hand the key weights to the optimizer.
    @property
    def trainable(self):
        return False

    @trainable.setter
    def trainable(self, value):
        del value
        self._freeze()

    def call(self, images):
        """Keys float32 `[N, D]` of images `[N, H, W, C]` (inference mode)."""
        embedding = self.key_encoder(images, training=False)
        return ops.cast(self.key_head(embedding, training=False), "float32")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.dim)

    def compute_output_spec(self, images):
        return keras.KerasTensor(self.compute_output_shape(images.shape), dtype="float32")

    def update_keys(self, encoder, projection_head):
        """Moves every key weight towards its query twin: `key <- m * key + (1 - m) * query` (Eq. 2).

        Floating weights only (integer state, if any, is the key's own). Call it
        once per optimizer step, in the replica context of a `tf.distribute`
        strategy (as `train_step` runs) or outside one.

        Args:
            encoder: the query encoder the key encoder was copied from.
            projection_head: the query projection head.
        """
        pairs = list(zip(self.key_encoder.weights, encoder.weights)) + list(
            zip(self.key_head.weights, projection_head.weights)
        )
        pairs = [(key.value, query.value) for key, query in pairs if keras.backend.is_float_dtype(key.dtype)]
        momentum = self.momentum

        def average(key, query):
            # m and (1 - m) rounded to the weight's dtype once, as constants.
            m = tf.constant(momentum, key.dtype)
            one_minus_m = tf.constant(1.0 - momentum, key.dtype)
            return key.assign(m * key + one_minus_m * tf.cast(query, key.dtype))

        def update(strategy):
            for key, query in pairs:
                strategy.extended.update(key, average, args=(query,), group=False)

        _run_in_sync(update)

    def contents(self):
        """The queue as the loss reads it.

        Returns:
            `(features, labels, valid)`: float32 `[K, D]`; int32 `[K]` or float32
            `[K, C]`; bool `[K]`, true for slots written at least once.
        """
        valid = ops.arange(self.queue_size, dtype="int32") < tf.convert_to_tensor(self.count)
        return tf.convert_to_tensor(self.features), tf.convert_to_tensor(self.labels), valid

    def teacher_contents(self):
        """`(teacher float32 [K, C], valid bool [K])`: valid where a slot holds a teacher distribution."""
        if self.teacher is None:
            raise ValueError(
                "Teacher distributions need a queue of label distributions (`queue_label_dim`). "
                f"Received: label_dim={self.label_dim}"
            )
        teacher = tf.convert_to_tensor(self.teacher)
        _, _, valid = self.contents()
        # Slots written without a teacher hold zeros (see `enqueue`).
        return teacher, ops.logical_and(valid, ops.sum(teacher, axis=-1) > 0)

    def enqueue(self, keys, labels, teacher=None):
        """Writes this step's keys and labels over the oldest slots (FIFO, wrapping around).

        Keys of every replica are gathered (replica order) and every replica
        writes all of them. With more keys than slots only the last K stay.

        Args:
            keys: float `[n, D]`, this replica's keys (from `call`).
            labels: int class ids `[n]` (`NO_LABEL` for none), or float
                distributions `[n, C]` with `label_dim`.
            teacher: None, or float distributions `[n, C]` (with `label_dim`). A
                slot written without a teacher gets zeros, which
                `teacher_contents` reports as invalid.
        """
        keys = ops.cast(keys, "float32")
        if self.label_dim is None:
            if teacher is not None:
                raise ValueError(
                    "Teacher distributions need a queue of label distributions (`queue_label_dim`). "
                    "Received: teacher given, label_dim=None"
                )
            labels = ops.cast(labels, "int32")
        else:
            labels = ops.cast(labels, "float32")
            teacher = ops.zeros_like(labels) if teacher is None else ops.cast(teacher, "float32")
        rows = [(self.features, keys), (self.labels, labels)]
        if self.teacher is not None:
            rows.append((self.teacher, teacher))
        rows = [(variable.value, _gather(values)) for variable, values in rows]
        pointer, count, size = self.pointer.value, self.count.value, self.queue_size

        def write(slots, pointer, values):
            n = tf.shape(values)[0]
            kept = tf.minimum(n, size)
            # Key j of n goes to slot (pointer + j) % K; the first n - kept are overwritten by later ones.
            positions = (pointer + (n - kept) + tf.range(kept)) % size
            return slots.scatter_nd_update(positions[:, None], values[n - kept :])

        def advance(pointer, keys):
            return pointer.assign((pointer + tf.shape(keys)[0]) % size)

        def fill(count, keys):
            return count.assign(tf.minimum(count + tf.shape(keys)[0], size))

        def update(strategy, values):
            for (slots, _), slot_values in zip(rows, values):
                strategy.extended.update(slots, write, args=(pointer, slot_values), group=False)
            global_keys = values[0]
            strategy.extended.update(pointer, advance, args=(global_keys,), group=False)
            strategy.extended.update(count, fill, args=(global_keys,), group=False)

        _run_in_sync(update, [values for _, values in rows])
