"""The multi-view training step shared by `SupConModel` and `CrossEntropyModel`.

Both models take a batch of views `[B, V, H, W, C]` (or a tuple of V batches
`[B, H, W, C]`, or a plain batch `[B, H, W, C]` meaning V=1), fold the views into the
batch for a single encoder pass, and return a dict of outputs. They share one
`train_step`/`test_step` here so the two trainers cannot drift apart; each model only
says how its outputs turn into a loss (`compute_loss`) and which extra metrics it keeps.
"""

import keras
import tensorflow as tf
from keras import ops

from supcon.losses import _checks


def fold_views(inputs):
    """Folds views into the batch axis.

    Args:
        inputs: float `[B, V, H, W, C]`, a tuple/list of V tensors `[B, H, W, C]`, or
            `[B, H, W, C]`.

    Returns:
        `(images, num_views)`: images `[B * V, H, W, C]` ordered sample-major (all views
        of sample 0 first), and `num_views` (python int), or None when `inputs` was a
        plain `[B, H, W, C]` batch (which is then returned unchanged).
    """
    if isinstance(inputs, dict):
        raise TypeError(
            "Inputs must be images [B, H, W, C], views [B, V, H, W, C] or a tuple of V image "
            f"batches, not a dict. Received: inputs with keys={sorted(inputs)}"
        )
    if isinstance(inputs, (tuple, list)):
        if not inputs:
            raise ValueError("A tuple of views must hold at least one batch. Received: inputs=()")
        views = [ops.convert_to_tensor(v) for v in inputs]
        if any(len(v.shape) != 4 for v in views):
            raise ValueError(
                "Each view in a tuple of views must be [B, H, W, C]. "
                f"Received: shapes={[tuple(v.shape) for v in views]}"
            )
        return _merge_leading(ops.stack(views, axis=1)), len(views)
    inputs = ops.convert_to_tensor(inputs)
    rank = len(inputs.shape)
    if rank == 4:
        return inputs, None
    if rank == 5:
        if inputs.shape[1] is None:
            raise ValueError(f"The number of views (axis 1) must be static. Received: shape={tuple(inputs.shape)}")
        return _merge_leading(inputs), int(inputs.shape[1])
    raise ValueError(
        "Inputs must be images [B, H, W, C] or views [B, V, H, W, C]. "
        f"Received: inputs with rank {rank} and shape={tuple(inputs.shape)}"
    )


def check_images(images, encoder):
    """Raises unless folded images `[N, H, W, C]` match the encoder's input `(H, W, C)` (where known)."""
    expected = tuple(encoder.input_shape[1:])
    received = tuple(images.shape[1:])
    if len(expected) == len(received) and all(
        e is None or r is None or e == r for e, r in zip(expected, received)
    ):
        return
    size = ", ".join("any" if d is None else str(d) for d in expected)
    raise ValueError(
        f"Images must be [B, {size}] (or views [B, V, {size}]) for this encoder "
        f"(input_shape={encoder.input_shape}). Received: inputs with image shape {received}"
    )


def check_labels(y):
    """Raises for labels no step can read unambiguously: non-numeric, or integer rank >= 2.

    Integer `[B, C]` could be one-hot rows or several ids per sample; reading them
    as distributions (or their argmax) would silently guess.
    """
    y = ops.convert_to_tensor(y)
    dtype = tf.as_dtype(y.dtype)
    if not (dtype.is_integer or dtype.is_floating or dtype == tf.bool):
        raise ValueError(
            "Labels must be int class ids [B] or float label distributions [B, C] / [B, V, C]. "
            f"Received: y.dtype={dtype.name}"
        )
    rank = len(y.shape)
    if not dtype.is_floating and rank >= 2 and not (rank == 2 and y.shape[-1] == 1):
        raise ValueError(
            "Integer labels must be class ids [B] (or [B, 1]); pass one-hot labels or label "
            f"distributions [B, C] / [B, V, C] as floats. Received: y.dtype={dtype.name}, y.shape={tuple(y.shape)}"
        )


def _merge_leading(x):
    shape = ops.shape(x)
    return ops.reshape(x, (-1,) + tuple(shape[2:]))


def unfold(x, num_views):
    """Inverse of `fold_views` for per-image outputs: `[B * V, ...]` -> `[B, V, ...]`."""
    if num_views is None:
        return x
    return ops.reshape(x, (-1, num_views) + tuple(x.shape[1:]))


def flatten_views(x, num_dims):
    """`[B, V, ...]` or `[B, ...]` model outputs -> `[B * V, ...]` (`num_dims`: trailing dims)."""
    if len(x.shape) == num_dims + 2:
        return _merge_leading(x)
    return x


def check_batch(name, value, x):
    """Raises (or, with unknown sizes, returns an assertion) unless `value` has one row per sample of `x`."""
    images = ops.convert_to_tensor(tf.nest.flatten(x)[0])
    value = ops.convert_to_tensor(value)
    if value.shape.rank == 0:  # (`not TensorShape([])` is False: a known rank of 0 is truthy.)
        raise ValueError(f"`{name}` must have one row per sample of the inputs. Received: {name}.shape=()")
    expected, received = images.shape[0], value.shape[0]
    if expected is not None and received is not None:
        if expected != received:
            raise ValueError(
                f"`{name}` must have one row per sample of the inputs (batch {expected}). "
                f"Received: {name}.shape={tuple(value.shape)}"
            )
        return []
    return [
        tf.debugging.assert_equal(
            tf.shape(value)[0], tf.shape(images)[0], message=f"`{name}` must have one row per sample of the inputs"
        )
    ]


def _is_class_ids(y):
    return len(y.shape) == 1 or (len(y.shape) == 2 and y.shape[-1] == 1)


# Rows of label distributions may be off 1 by float rounding (MixUp, a teacher's softmax).
_DISTRIBUTION_SUM_TOLERANCE = 1e-3


def check_targets(y, num_classes):
    """Checks labels for a classifier of `num_classes` classes.

    Raises for what the shapes and dtypes show; returns the value checks (class ids
    whole numbers in `[0, num_classes)`, distributions non-negative rows summing to 1)
    as assertion ops to run before the work (`supcon.losses._checks.check_values`:
    a ValueError right away when eager).
    """
    check_labels(y)
    y = ops.convert_to_tensor(y)
    if _is_class_ids(y):
        # An out-of-range id would one-hot to a zero row (no loss, no gradient) and a
        # fractional one be truncated: both silently wrong.
        ids = ops.reshape(y, (-1,))
        whole = ops.equal(ids, ops.round(ids)) if tf.as_dtype(ids.dtype).is_floating else True
        valid = ops.logical_and(ops.logical_and(ops.greater_equal(ids, 0), ops.less(ids, num_classes)), whole)
        return _checks.check_values(
            "y", valid, f"hold whole-number class ids in [0, {num_classes}) (num_classes={num_classes})", ids
        )
    if y.shape[-1] is not None and y.shape[-1] != num_classes:
        raise ValueError(
            f"Label distributions [B, C] / [B, V, C] must have C = num_classes = {num_classes}. "
            f"Received: y.shape={tuple(y.shape)}"
        )
    # The cross-entropy of a target that is not a distribution is silently off scale.
    y = ops.cast(y, "float32")
    valid = ops.logical_and(
        ops.all(ops.logical_and(ops.greater_equal(y, 0.0), ops.isfinite(y)), axis=-1),
        ops.less_equal(ops.abs(ops.sum(y, axis=-1) - 1.0), _DISTRIBUTION_SUM_TOLERANCE),
    )
    return _checks.check_values("y", valid, "hold label distributions: non-negative rows summing to 1", y)


def per_view_targets(y, num_views, num_classes):
    """Class distributions for every folded image.

    Args:
        y: int class ids `[B]`, or float distributions / one-hot `[B, C]` or `[B, V, C]`.
        num_views: int or None (plain batch, V=1).
        num_classes: int C.

    Returns:
        float32 `[B * V, C]`: one-hot rows for class ids, the distribution of the matching
        view for `[B, V, C]`, the sample's distribution repeated for `[B, C]`.
    """
    checks = check_targets(y, num_classes)
    y = ops.convert_to_tensor(y)
    v = num_views or 1
    if _is_class_ids(y):
        ids = _checks.with_checks(ops.cast(ops.reshape(y, (-1,)), "int32"), checks)
        y = ops.one_hot(ids, num_classes, dtype="float32")
    else:
        y = _checks.with_checks(ops.cast(y, "float32"), checks)
    if len(y.shape) == 3:
        if y.shape[1] is not None and y.shape[1] != v:
            raise ValueError(
                f"Label distributions [B, V, C] must have V={v} views like the inputs. Received: y.shape={tuple(y.shape)}"
            )
        y = _merge_leading(y)
    elif v > 1:
        y = ops.repeat(y, v, axis=0)
    return y


def per_view_class_ids(y, num_views):
    """int32 class ids `[B * V]` for every folded image (argmax of distributions)."""
    y = ops.convert_to_tensor(y)
    v = num_views or 1
    if len(y.shape) == 1 or (len(y.shape) == 2 and y.shape[-1] == 1):
        ids = ops.cast(ops.reshape(y, (-1,)), "int32")
    else:
        ids = ops.cast(ops.argmax(y, axis=-1), "int32")
        if len(ids.shape) == 2:
            return ops.reshape(ids, (-1,))
    return ops.repeat(ids, v, axis=0) if v > 1 else ids


def per_view_distributions(y, num_views):
    """float32 label distributions `[B * V, C]` for every folded image from `[B, C]` or `[B, V, C]`."""
    y = ops.cast(ops.convert_to_tensor(y), "float32")
    if len(y.shape) == 3:
        return _merge_leading(y)
    v = num_views or 1
    return ops.repeat(y, v, axis=0) if v > 1 else y


def repeat_sample_weight(sample_weight, num_views):
    if sample_weight is None or not num_views or num_views == 1:
        return sample_weight
    return ops.repeat(ops.convert_to_tensor(sample_weight), num_views, axis=0)


def num_replicas():
    """Replicas in sync of the current `tf.distribute` strategy (1 outside one)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def _input_kind(x):
    """Rank of the model inputs in `x` (arrays or a tf.data.Dataset), ("tuple", V), or None."""
    if isinstance(x, tf.data.Dataset):
        x = x.element_spec
        if isinstance(x, tuple):
            x = x[0]
    if isinstance(x, (tuple, list)):
        return ("tuple", len(x))
    shape = getattr(x, "shape", None)
    if shape is None:
        return None
    try:
        return len(shape)
    except (TypeError, ValueError):
        return None


class MultiViewModel(keras.Model):
    """Base: explicit Keras-3 train/test steps for models whose outputs are dicts.

    Subclasses implement `call(inputs, training)` returning a dict, `compute_loss(x, y,
    y_pred, sample_weight, training)` and `_update_extra_metrics(y, y_pred,
    sample_weight)`, and list their extra metric objects in `_extra_metrics`; state that
    follows the weights (a momentum key encoder) is updated in `_after_optimizer_step`.

    `train_augmentation` (default None) is a function `(views, step, replica) -> views`
    that the training step applies to its inputs before the forward pass
    (`supcon.data.batch_augment.DeviceAugmentation` for `--augment_on=device`). It is a
    setting of the training run: `call`, `evaluate`, `predict` and exports never use it, and
    it is not saved with the model.

    The step mirrors Keras' own TensorFlow `train_step`: the loss from `compute_loss`
    is a per-replica share (Keras mean losses divide by `num_replicas_in_sync`), so it
    is multiplied back only for the `loss` metric; `optimizer.scale_loss` and
    `optimizer.apply` make mixed-float16 loss scaling work unchanged.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._loss_metric = keras.metrics.Mean(name="loss")
        self._traced_input_kinds = {}
        self.train_augmentation = None

    # Keras traces its step functions with `reduce_retracing=True`: after seeing images
    # [B, H, W, C] and then views [B, V, H, W, C] it relaxes the input to an unknown rank,
    # and the views can no longer be folded. So a step function is re-made when the kind
    # of input (rank, or tuple of V views) changes between calls; same-kind calls reuse it.
    def _refresh_step_function(self, attribute, x):
        kind = _input_kind(x)
        if kind is None:
            return
        if self._traced_input_kinds.get(attribute, kind) != kind:
            setattr(self, attribute, None)
        self._traced_input_kinds[attribute] = kind

    def fit(self, x=None, *args, **kwargs):
        self._refresh_step_function("train_function", x)
        return super().fit(x, *args, **kwargs)

    def evaluate(self, x=None, *args, **kwargs):
        self._refresh_step_function("test_function", x)
        return super().evaluate(x, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        self._refresh_step_function("predict_function", x)
        return super().predict(x, *args, **kwargs)

    @property
    def _extra_metrics(self):
        return []

    @property
    def metrics(self):
        return [self._loss_metric] + list(self._extra_metrics)

    def _update_extra_metrics(self, y, y_pred, sample_weight):
        del y, y_pred, sample_weight

    def _after_optimizer_step(self, x, y):
        """Runs in `train_step` right after the optimizer step (state that follows the weights)."""
        del x, y

    def _check_targets(self, y):
        """Checks `y` before the forward pass (which updates batch-norm statistics).

        Raises for bad shapes and dtypes; returns assertion ops for value checks.
        """
        del y
        return []

    def _step(self, data, training):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        checks = []
        for name, value in (("y", y), ("sample_weight", sample_weight)):
            if value is not None:  # Every target of a dict (distillation: labels and teacher);
                # a list is one target (of ids), not a structure to flatten.
                for leaf in (value.values() if isinstance(value, dict) else [value]):
                    checks += check_batch(name, leaf, x)
        checks += self._check_targets(y)
        if checks:  # In a graph: the inputs wait for the label checks.
            x = tf.nest.map_structure(lambda t: _checks.with_checks(ops.convert_to_tensor(t), checks), x)
        if training and self.train_augmentation is not None:
            x = self._augment(x)
        if training:
            with tf.GradientTape() as tape:
                y_pred = self(x, training=True)
                loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
                # Mixed float16: the LossScaleOptimizer multiplies here and unscales in `apply`.
                scaled_loss = self.optimizer.scale_loss(loss)
            weights = self.trainable_weights
            self.optimizer.apply(tape.gradient(scaled_loss, weights), weights)
            self._after_optimizer_step(x, y)
        else:
            y_pred = self(x, training=False)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False)
        batch_size = ops.shape(tf.nest.flatten(x)[0])[0]
        self._loss_metric.update_state(loss * ops.cast(num_replicas(), loss.dtype), sample_weight=batch_size)
        self._update_extra_metrics(y, y_pred, sample_weight)
        return {m.name: m.result() for m in self.metrics}

    def _augment(self, x):
        """`train_augmentation` of the inputs, seeded by the optimizer step and the replica."""
        if isinstance(x, (tuple, list)):  # V batches: one [B, V, ...] tensor, one draw per view.
            x = ops.stack([ops.convert_to_tensor(v) for v in x], axis=1)
        replica = tf.distribute.get_replica_context()
        replica_id = replica.replica_id_in_sync_group if replica is not None else 0
        return self.train_augmentation(x, step=self.optimizer.iterations, replica=replica_id)

    def train_step(self, data):
        return self._step(data, training=True)

    def test_step(self, data):
        return self._step(data, training=False)
