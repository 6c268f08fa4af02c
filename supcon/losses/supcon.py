"""The supervised contrastive loss (SupCon) and its self-supervised case (SimCLR).

Implements Khosla et al., "Supervised Contrastive Learning", arXiv 2004.11362:

    L_out = sum_i  -1/|P(i)|  sum_{p in P(i)}  log( exp(z_i.z_p / tau) / sum_{a in A(i)} exp(z_i.z_a / tau) )   (Eq. 2)
    L_in  = sum_i  -log( 1/|P(i)|  sum_{p in P(i)}  exp(z_i.z_p / tau) / sum_{a in A(i)} exp(z_i.z_a / tau) )  (Eq. 3)

where `i` runs over every view of every sample (the "multiviewed batch"),
`A(i)` over every other view in the batch and `P(i)` over the other views that
share `i`'s label. Without labels, `P(i)` is the other views of `i`'s own
sample: the NT-Xent loss of SimCLR (Chen et al., arXiv 2002.05709, Eq. 1).

Extra contrast keys (a labelled memory queue of a momentum encoder's keys,
as in MoCo, He et al., arXiv 1911.05722) join the contrast set but are never
anchors: with keys `Q`, for each anchor `i` of the batch

    A(i) = (batch views other than i)  U  (valid keys in Q)
    P(i) = {p in A(i) : label(p) = label(i)}

in Eq. 2 / Eq. 3 above; without labels (SimCLR) every key is a negative.

Under `tf.distribute` with several replicas every anchor contrasts against the
whole global batch (features and labels are gathered, gradients flow back to
the replica that produced them), as the paper's TPU training does.
"""

import collections
import copy

import keras
import tensorflow as tf

from supcon.losses import _checks
from supcon.losses import _engine
from supcon.losses import options as options_lib
from supcon.losses.options import PAPER_TEMPERATURE  # noqa: F401  (re-exported)
from supcon.losses.options import SIMCLR_TEMPERATURE
from supcon.losses.options import ContrastOptions


def _class_ids(name, labels, rows="batch", valid=None):
    """Class ids `[rows]` int32 from ids `[rows]`/`[rows, 1]` or one-hot `[rows, classes]`.

    `name` and `rows` word the errors; `valid` (bool `[rows]`) exempts absent
    key slots, which may hold anything, from the value checks.
    """
    labels = _checks.to_tensor(
        name, labels, f"int class ids [{rows}] or float one-hot labels [{rows}, classes]"
    )
    rank = labels.shape.rank
    if rank not in (1, 2):
        raise ValueError(
            f"`{name}` must be class ids [{rows}] or one-hot [{rows}, classes] "
            "(use `genscl_loss` for soft label distributions). "
            f"Received: {name}.shape={labels.shape}"
        )
    dtype = labels.dtype
    if not (dtype.is_integer or dtype.is_floating or dtype == tf.bool):
        raise ValueError(
            f"`{name}` must be int class ids [{rows}] or float one-hot labels "
            f"[{rows}, classes]. Received: {name}.dtype={dtype.name}"
        )
    if rank == 2 and labels.shape[-1] == 1:
        labels, rank = tf.squeeze(labels, -1), 1

    def exempt_absent(ok):
        return ok if valid is None else tf.logical_or(ok, tf.logical_not(valid))

    checks = []
    if rank == 2:
        if not dtype.is_floating:
            # Integer [rows, classes] is ambiguous (one-hot? several ids per
            # sample?); taking its argmax would silently guess.
            raise ValueError(
                f"Integer `{name}` must be class ids [{rows}] (or [{rows}, 1]); pass one-hot "
                f"labels [{rows}, classes] as floats (soft label distributions go to "
                f"`genscl_loss`). Received: {name}.dtype={dtype.name}, {name}.shape={labels.shape}"
            )
        # A soft distribution would silently become its argmax.
        one_hot = tf.logical_and(
            tf.reduce_all(tf.logical_or(tf.equal(labels, 0), tf.equal(labels, 1)), axis=-1),
            tf.equal(tf.reduce_sum(labels, axis=-1), 1),
        )
        checks = _checks.check_values(
            name,
            exempt_absent(one_hot),
            f"be one-hot rows (a single 1, zeros elsewhere) when given as [{rows}, classes]; "
            "use `genscl_loss` for soft label distributions",
            labels,
        )
        labels = tf.argmax(labels, axis=-1, output_type=tf.int32)
    elif dtype.is_floating:
        # Keras losses hand class ids over as floats; a fraction would be truncated.
        checks = _checks.check_values(
            name, exempt_absent(tf.equal(labels, tf.round(labels))), "be whole-number class ids", labels
        )
    return _checks.with_checks(tf.cast(labels, tf.int32), checks)


def _labels_to_ids(labels, features):
    """Class ids `[batch]` int32 from ids `[batch]`/`[batch, 1]` or one-hot `[batch, classes]`."""
    return _checks.check_same_batch("labels", _class_ids("labels", labels), features)


def _contrast_keys(features, labels, mask, contrast_features, contrast_labels, contrast_valid):
    """Checked `(keys float32 [K, dim], key_ids int32 [K] or None, valid bool [K])`, or None without keys."""
    _checks.check_contrast_arguments(contrast_features, contrast_valid, contrast_labels=contrast_labels)
    if contrast_features is None:
        return None
    if mask is not None:
        raise ValueError(
            "Extra contrast keys need `labels` (or neither, for SimCLR): an explicit `mask` "
            "says nothing about the keys. "
            f"Received: mask.shape={tf.convert_to_tensor(mask).shape}, contrast_features given"
        )
    keys = _checks.contrast_features_to_float32(contrast_features, features)
    valid = _checks.contrast_valid_to_bool(contrast_valid, keys)
    if labels is None:
        if contrast_labels is not None:
            raise ValueError(
                "`contrast_labels` need `labels`: without labels (SimCLR) the keys are "
                "negatives of every anchor. "
                f"Received: labels=None, contrast_labels.shape={tf.convert_to_tensor(contrast_labels).shape}"
            )
        return keys, None, valid
    if contrast_labels is None:
        raise ValueError(
            "`contrast_labels` (class ids [keys]) are required when `labels` and "
            "`contrast_features` are given: a key's label decides whether it is a positive. "
            f"Received: contrast_labels=None, contrast_features.shape={keys.shape}"
        )
    contrast_labels = _checks.check_same_keys(
        "contrast_labels",
        _checks.to_tensor("contrast_labels", contrast_labels, "int class ids [keys]"),
        keys,
    )
    return keys, _class_ids("contrast_labels", contrast_labels, rows="keys", valid=valid), valid


def _check_mask(mask, features):
    mask = _checks.to_tensor("mask", mask, "a [batch, batch] float or bool positive mask")
    if mask.shape.rank != 2:
        raise ValueError(
            "`mask` must be a [batch, batch] positive mask (mask[i, j] = 1 when "
            "sample j is a positive of sample i; under tf.distribute "
            "[local_batch, global_batch]). "
            f"Received: mask.shape={mask.shape}"
        )
    if not (mask.dtype.is_integer or mask.dtype.is_floating or mask.dtype == tf.bool):
        raise ValueError(
            f"`mask` must be a float or bool positive mask. Received: mask.dtype={mask.dtype.name}"
        )
    mask = tf.cast(_checks.check_same_batch("mask", mask, features), tf.float32)
    if _engine.num_replicas() == 1:
        # One column per sample: more would be ignored, fewer index past the mask.
        mask = _checks.check_same_batch("mask", mask, features, axis=1)
    checks = _checks.check_values(
        "mask", tf.logical_and(mask >= 0, tf.math.is_finite(mask)), "be non-negative (a 0/1 positive mask)", mask
    )
    return _checks.with_checks(mask, checks)


def supcon_per_sample(
    features,
    labels=None,
    *,
    options=None,
    mask=None,
    contrast_features=None,
    contrast_labels=None,
    contrast_valid=None,
    **settings,
):
    """`supcon_loss` plus a bool `[batch]` saying which samples had a positive."""
    options = options_lib.resolve(options, settings, "supcon_loss")
    features = _checks.check_cap_fits_views(options.positives_cap, _checks.features_to_float32(features))
    if labels is not None and mask is not None:
        raise ValueError(
            "Pass either `labels` or `mask`, not both. "
            f"Received: labels.shape={tf.convert_to_tensor(labels).shape}, "
            f"mask.shape={tf.convert_to_tensor(mask).shape}"
        )

    contrast = _contrast_keys(features, labels, mask, contrast_features, contrast_labels, contrast_valid)
    keys = key_valid = key_ids = None
    if contrast is not None:
        keys, key_ids, key_valid = contrast

    if mask is None:
        ids = None if labels is None else _labels_to_ids(labels, features)
        return _engine.contrastive_per_sample(
            features, options, labels=ids, keys=keys, key_valid=key_valid, key_labels=key_ids
        )

    mask = _check_mask(mask, features)

    def pair_weights(pairs):
        rows = tf.gather(mask, pairs.anchor_local)
        return tf.gather(rows, pairs.contrast_samples, axis=1)

    return _engine.contrastive_per_sample(features, options, pair_weights_fn=pair_weights)


def supcon_loss(
    features,
    labels=None,
    *,
    options=None,
    mask=None,
    contrast_features=None,
    contrast_labels=None,
    contrast_valid=None,
    **settings,
):
    """Supervised contrastive loss per sample (Khosla et al. 2020, Eq. 2 / Eq. 3).

    Args:
      features: float `[batch, views, dim]` projections, **already
        L2-normalized** (this function does not normalize). Ranks above 3 are
        flattened after the view axis; any number of views >= 1. float16 and
        bfloat16 are accepted; the loss is computed in float32.
      labels: int class ids `[batch]` (or `[batch, 1]`; whole-number floats
        too, as Keras passes them) or float one-hot `[batch, classes]`. None
        gives the self-supervised SimCLR / NT-Xent loss: the positives are the
        other views of the same sample.
      options: None (the defaults) or a `ContrastOptions`: temperature,
        base_temperature, contrast_mode, summation ("outside" = L_out, Eq. 2,
        or "inside" = L_in, Eq. 3), denominator, positives_cap and block_size
        (see `ContrastOptions` for each).
      **settings: the same settings as keywords (`temperature=0.2`, ...);
        they override the matching fields of `options`.
      mask: float/bool `[batch, batch]` explicit positive mask
        (`mask[i, j] = 1` if sample j is a positive of sample i; the diagonal
        decides whether other views of the same sample are positives). Under
        a multi-replica strategy it is `[local_batch, global_batch]`. Exclusive
        with `labels`.
      contrast_features: None or float `[keys, dim]` extra contrast keys,
        **already L2-normalized** (e.g. a momentum encoder's memory queue).
        They join every anchor's contrast set (`A(i)`, and `P(i)` when they
        share its label) but are never anchors. Not gathered under
        tf.distribute: every replica is expected to hold the same keys.
        Gradients flow into them unless the caller stops them (MoCo does).
      contrast_labels: int class ids `[keys]` (or one-hot `[keys, classes]`,
        as `labels`); required with `labels` and `contrast_features`, refused
        without `labels` (SimCLR: every key is a negative).
      contrast_valid: None (all keys) or bool `[keys]`: false marks an empty
        slot (a queue not yet filled), left out of numerator and denominator
        exactly as if absent; its features and label may hold anything.

    Returns:
      float32 `[batch]`: each sample's loss averaged over its anchor views. A
      sample whose anchors have no positive among the batch views or the
      valid keys (possible with one view) gets 0.

    Under a `tf.distribute` strategy with several replicas, call it in the
    replica context with the local batch: anchors contrast against the global
    batch and the result covers the local samples.

    Example:

    >>> import numpy as np
    >>> z = tf.math.l2_normalize(tf.random.stateless_normal([4, 2, 8], seed=[1, 2]), -1)
    >>> supcon_loss(z, labels=[0, 0, 1, 1]).shape
    TensorShape([4])
    >>> options = ContrastOptions(temperature=0.2, summation="inside")
    >>> bool(tf.reduce_all(supcon_loss(z, [0, 0, 1, 1], options=options)
    ...                    == supcon_loss(z, [0, 0, 1, 1], temperature=0.2, summation="inside")))
    True
    >>> queue = tf.math.l2_normalize(tf.random.stateless_normal([6, 8], seed=[3, 4]), -1)
    >>> supcon_loss(z, labels=[0, 0, 1, 1], contrast_features=queue,
    ...             contrast_labels=[0, 1, 2, 0, 0, 0],
    ...             contrast_valid=[True, True, True, True, False, False]).shape
    TensorShape([4])
    """
    per_sample, _ = supcon_per_sample(
        features,
        labels,
        options=options,
        mask=mask,
        contrast_features=contrast_features,
        contrast_labels=contrast_labels,
        contrast_valid=contrast_valid,
        **settings,
    )
    return per_sample


def mean_over_valid_scale(valid):
    """Factor turning a Keras `sum_over_batch_size` mean into a mean over valid samples.

    Keras divides the summed per-sample losses by the local batch size and,
    under tf.distribute, by the number of replicas. Multiplying the per-sample
    losses by `local_batch * replicas / global_valid_count` makes the final
    value the sum over valid samples divided by their global count (0 when no
    sample has a positive).

    Args:
      valid: bool `[local_batch]`.

    Returns:
      float32 scalar (not differentiated).
    """
    replicas = _engine.num_replicas()
    valid_count = tf.reduce_sum(tf.cast(valid, tf.float32))
    if replicas > 1:
        valid_count = tf.distribute.get_replica_context().all_reduce(
            tf.distribute.ReduceOp.SUM, valid_count
        )
    local_batch = tf.cast(tf.shape(valid)[0], tf.float32)
    return tf.stop_gradient(local_batch * replicas / tf.maximum(valid_count, 1.0))


# Extra contrast keys handed to a Keras wrapper by `with_contrast`.
Contrast = collections.namedtuple("Contrast", ["features", "labels", "valid"])


class _ContrastiveLoss(keras.losses.Loss):
    """Base of the Keras wrappers: mean over samples that have a positive."""

    # Set only on the shallow copy that `with_contrast` calls.
    _contrast = None

    def with_contrast(self, y_true, y_pred, contrast_features, contrast_labels, contrast_valid=None):
        """`self(y_true, y_pred)` with extra contrast keys (a memory queue) joined.

        Same reduction and value as calling the loss, but every anchor also
        contrasts against the valid keys (see `supcon_loss`'s
        `contrast_features`); keys are never anchors.

        Args:
          y_true, y_pred: as for calling the loss.
          contrast_features: float `[keys, dim]` L2-normalized keys.
          contrast_labels: the keys' targets in the form `y_true` takes for
            one row: class ids `[keys]` (`SupConLoss`; ignored by
            `SimCLRLoss`, may be None), label distributions `[keys, classes]`
            (`GenSCLLoss`; a dict `{"labels": ..., "teacher": ...}` when
            `y_true` is one).
          contrast_valid: None or bool `[keys]`, false for empty slots.

        Returns:
          What `self(y_true, y_pred)` returns.

        Example:

        >>> z = tf.math.l2_normalize(tf.random.stateless_normal([4, 2, 8], seed=[1, 2]), -1)
        >>> queue = tf.math.l2_normalize(tf.random.stateless_normal([6, 8], seed=[3, 4]), -1)
        >>> float(SupConLoss().with_contrast([0, 0, 1, 1], z, queue, [0, 1, 2, 0, 1, 1])) > 0
        True
        """
        # The keys ride on a shallow copy, not on `self`: MirroredStrategy
        # runs the replicas' steps in parallel threads on one loss object.
        bound = copy.copy(self)
        bound._contrast = Contrast(contrast_features, contrast_labels, contrast_valid)
        return bound(y_true, y_pred)

    def _set_options(self, options):
        self.options = options
        # The settings also read as attributes (`loss.temperature`), as before the options object.
        for name in ContrastOptions.field_names():
            setattr(self, name, getattr(options, name))

    def get_config(self):
        # The settings are stored flat (the constructor's keywords), so configs
        # saved before `ContrastOptions` existed load unchanged.
        config = super().get_config()
        config.update({name: getattr(self.options, name) for name in self._option_names})
        return config

    _option_names = ContrastOptions.field_names()

    def _per_sample_and_valid(self, y_true, y_pred, contrast):
        raise NotImplementedError

    def _reduced_per_sample(self, y_true, y_pred, contrast):
        per_sample, valid = self._per_sample_and_valid(y_true, y_pred, contrast)
        if self.reduction in ("sum_over_batch_size", "mean"):
            per_sample = per_sample * mean_over_valid_scale(valid)
        return per_sample

    def call(self, y_true, y_pred):
        return self._reduced_per_sample(y_true, y_pred, self._contrast)


@keras.saving.register_keras_serializable(package="supcon")
class SupConLoss(_ContrastiveLoss):
    """Keras form of `supcon_loss`: `y_true` = labels, `y_pred` = features.

    `y_pred` is `[batch, views, dim]` L2-normalized projections; `y_true` is
    class ids `[batch]` or float one-hot labels `[batch, classes]`. With the default reduction the
    value is the mean over samples that have at least one positive (0, with
    zero gradients, if none has); with `reduction=None` it returns
    `supcon_loss`'s per-sample values. Under tf.distribute, negatives are
    gathered from every replica. `with_contrast(y_true, y_pred,
    contrast_features, contrast_labels, contrast_valid=None)` gives the same
    value with extra contrast keys (a memory queue) joined.

    Args: `options` (a `ContrastOptions`) and/or its fields as keywords, as
    `supcon_loss` takes them (`mask` and the `contrast_*` keys are not
    settings: `with_contrast` takes the keys), plus `name`, `reduction`,
    `dtype`. The settings read back as `loss.options` and as attributes
    (`loss.temperature`, ...).

    Example:

    >>> loss = SupConLoss(temperature=0.1)
    >>> loss.options == SupConLoss(ContrastOptions(temperature=0.1)).options
    True
    >>> z = tf.math.l2_normalize(tf.random.stateless_normal([4, 2, 8], seed=[1, 2]), -1)
    >>> float(loss([0, 0, 1, 1], z)) > 0
    True
    """

    def __init__(
        self,
        options=None,
        *,
        name="supcon_loss",
        reduction="sum_over_batch_size",
        dtype=None,
        **settings,
    ):
        options = options_lib.resolve(options, settings, type(self).__name__, self._default_options())
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._set_options(options)

    @classmethod
    def _default_options(cls):
        return ContrastOptions()

    def _labels(self, y_true):
        return y_true

    def _per_sample_and_valid(self, y_true, y_pred, contrast):
        keys = {}
        if contrast is not None:
            keys = dict(
                contrast_features=contrast.features,
                contrast_labels=self._labels(contrast.labels),
                contrast_valid=contrast.valid,
            )
        return supcon_per_sample(y_pred, self._labels(y_true), options=self.options, **keys)


@keras.saving.register_keras_serializable(package="supcon")
class SimCLRLoss(SupConLoss):
    """NT-Xent (SimCLR, Chen et al. 2020): `SupConLoss` that ignores `y_true`.

    The positives of an anchor are the other views of its own sample. Default
    temperature 0.5, the SimCLR baseline's in Khosla et al. (§4).
    """

    def __init__(self, options=None, *, name="simclr_loss", **kwargs):
        super().__init__(options, name=name, **kwargs)

    @classmethod
    def _default_options(cls):
        return ContrastOptions(temperature=SIMCLR_TEMPERATURE)

    def __call__(self, y_true, y_pred, sample_weight=None):
        if y_true is None:  # Keras converts y_true to a tensor; labels are unused.
            y_true = tf.zeros(tf.shape(y_pred)[:1])
        return super().__call__(y_true, y_pred, sample_weight=sample_weight)

    def _labels(self, y_true):
        del y_true  # Neither the batch's labels nor the keys' are used.
        return None


@keras.saving.register_keras_serializable(package="supcon")
class SupConLossLayer(keras.layers.Layer):
    """Adds the SupCon loss of `[features, labels]` with `add_loss`; returns the features.

    Lets a functional model carry its own loss, so it compiles with no `loss=`:

        features = SupConLossLayer(temperature=0.1)([projections, labels])

    The added value is `SupConLoss`'s: the mean over samples with a positive,
    already divided by the number of replicas under tf.distribute (Keras adds
    `add_loss` terms to the total as they are, so this keeps the summed
    gradients equal to the global-batch gradient). `labels` are class ids or
    one-hot labels; for SimCLR compile with `SimCLRLoss` instead.

    Args: as `SupConLoss` (`options` and/or its fields as keywords), plus
    the `keras.layers.Layer` arguments.
    """

    def __init__(self, options=None, **kwargs):
        settings = {name: kwargs.pop(name) for name in ContrastOptions.field_names() if name in kwargs}
        super().__init__(**kwargs)
        self.loss = SupConLoss(options, **settings)
        self.options = self.loss.options

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError(
                "`SupConLossLayer` must be called on a pair [features, labels]. "
                f"Received: inputs of type {type(inputs).__name__}"
            )
        features, labels = inputs
        self.add_loss(self.loss(labels, features))
        return features

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        loss_config = self.options.get_config()
        config.update(loss_config)
        return config
