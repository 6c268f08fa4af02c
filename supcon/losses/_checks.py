"""Input validation shared by the contrastive losses (public entry points only)."""

import numpy as np
import tensorflow as tf


def to_tensor(name, value, expected):
    """`tf.convert_to_tensor(value)`, or a TypeError naming `name` when it is not array-like."""
    if tf.is_tensor(value):
        return value
    try:
        return tf.convert_to_tensor(value)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"`{name}` must be {expected}. Received: {name}={_short_repr(value)}"
        ) from error


def _short_repr(value, limit=120):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _summary(tensor):
    """A one-line, shortened rendering of an eager tensor's values."""
    text = np.array2string(np.asarray(tensor), threshold=24, edgeitems=3)
    return " ".join(text.split())


def check_values(name, valid, expected, received):
    """A data-dependent check: ValueError when eager, an assertion op in a graph.

    Eagerly the values are at hand, so a bad call raises a ValueError right
    away. Inside a `tf.function` the check is a `tf.debugging.Assert` (an
    InvalidArgumentError when it runs) that the caller must put in front of
    the work with `with_checks`. (XLA ignores assertions: under
    `jit_compile=True` only the static checks remain.)

    Args:
      name: the argument's name.
      valid: bool tensor, true where the values are fine.
      expected: completes "`name` must ...".
      received: the tensor whose values the message shows.

    Returns:
      A list of assertion ops (empty when eager).
    """
    valid = tf.reduce_all(valid)
    message = f"`{name}` must {expected}. Received: {name}="
    if tf.executing_eagerly():
        if not bool(valid):
            raise ValueError(message + _summary(received))
        return []
    return [tf.debugging.Assert(valid, [message, received], summarize=24)]


def with_checks(tensor, checks):
    """`tensor`, computed only after the assertion ops `checks` have passed."""
    if not checks:
        return tensor
    with tf.control_dependencies(checks):
        return tf.identity(tensor)


def features_to_float32(features):
    """Checks `features` is a float `[batch, views, ...]` tensor; returns float32 `[batch, views, dim]`."""
    features = to_tensor(
        "features", features, "a float tensor [batch, views, dim] of L2-normalized embeddings"
    )
    if not features.dtype.is_floating:
        raise ValueError(
            "`features` must be a floating-point tensor of L2-normalized embeddings. "
            f"Received: features.dtype={features.dtype.name}"
        )
    rank = features.shape.rank
    if rank is None or rank < 3:
        raise ValueError(
            "`features` must have shape [batch, views, dim] (rank >= 3; add a views "
            "axis with `features[:, None]` for a single view). "
            f"Received: features.shape={features.shape}"
        )
    static_shape = features.shape
    features = tf.cast(features, tf.float32)
    if rank > 3:
        static = features.shape
        flat_dim = None
        if all(d is not None for d in static[2:]):
            flat_dim = 1
            for d in static[2:]:
                flat_dim *= d
        shape = tf.shape(features)
        features = tf.reshape(features, [shape[0], shape[1], -1])
        features.set_shape([static[0], static[1], flat_dim])
    # No view (V = 0) makes every loss NaN and an empty embedding (dim 0) makes
    # every logit 0: both silently wrong, so they are refused.
    views, dim = features.shape[1], features.shape[2]
    if views == 0 or dim == 0:
        raise ValueError(
            "`features` must have at least one view and a non-empty embedding "
            f"([batch, views >= 1, dim >= 1]). Received: features.shape={static_shape}"
        )
    if views is None or dim is None:
        sizes = tf.shape(features)[1:3]
        features = with_checks(
            features,
            [
                tf.debugging.Assert(
                    tf.reduce_all(sizes > 0),
                    [
                        "`features` must have at least one view and a non-empty embedding "
                        "([batch, views >= 1, dim >= 1]). Received: views, dim =",
                        sizes,
                    ],
                )
            ],
        )
    return features


def check_cap_fits_views(positives_cap, features):
    """`features`, checked that `positives_cap` is None or a multiple of its views.

    The cap keeps whole samples (`positives_cap // views` of them, every view
    of each), so the official code (google-research supcon/losses.py,
    `_validate_contrastive_loss_inputs`) refuses other values; so do we.
    """
    if positives_cap is None:
        return features
    views = features.shape[1]
    message = (
        "`positives_cap` must be a multiple of the number of views (it keeps "
        "positives_cap // views other samples, every view of each). "
        f"Received: positives_cap={positives_cap}, "
    )
    if views is not None:
        if positives_cap % views:
            raise ValueError(message + f"views={views}")
        return features
    views = tf.shape(features)[1]
    return with_checks(
        features, [tf.debugging.Assert(tf.equal(positives_cap % views, 0), [message + "views=", views])]
    )


def check_same_batch(name, tensor, features, axis=0):
    """Raises if `tensor`'s dimension `axis` differs from the features' batch."""
    what = "row" if axis == 0 else "column"
    expected, received = features.shape[0], tensor.shape[axis]
    if expected is not None and received is not None:
        if expected != received:
            raise ValueError(
                f"`{name}` must have one {what} per sample of `features` "
                f"(batch {expected}). Received: {name}.shape={tensor.shape}, "
                f"features.shape={features.shape}"
            )
        return tensor
    with tf.control_dependencies(
        [
            tf.debugging.assert_equal(
                tf.shape(tensor)[axis],
                tf.shape(features)[0],
                message=f"`{name}` must have one {what} per sample of `features`",
            )
        ]
    ):
        return tf.identity(tensor)


def contrast_features_to_float32(contrast_features, features):
    """Checks the extra contrast keys are float `[keys, dim]` with the features' dim; returns float32."""
    keys = to_tensor(
        "contrast_features", contrast_features, "a float tensor [keys, dim] of L2-normalized keys"
    )
    if not keys.dtype.is_floating:
        raise ValueError(
            "`contrast_features` must be a floating-point tensor [keys, dim] of L2-normalized keys. "
            f"Received: contrast_features.dtype={keys.dtype.name}"
        )
    if keys.shape.rank != 2:
        raise ValueError(
            "`contrast_features` must have shape [keys, dim] (one row per key, no views axis). "
            f"Received: contrast_features.shape={keys.shape}"
        )
    keys = tf.cast(keys, tf.float32)
    expected, received = features.shape[2], keys.shape[1]
    message = (
        "`contrast_features` must have the embedding size of `features` ([keys, dim] with "
        "dim = the flattened size after the views axis of `features`). Received: "
    )
    if expected is not None and received is not None:
        if expected != received:
            raise ValueError(message + f"contrast_features.shape={keys.shape}, features dim={expected}")
        return keys
    return with_checks(
        keys,
        [
            tf.debugging.Assert(
                tf.equal(tf.shape(keys)[1], tf.shape(features)[2]),
                [message + "contrast_features dim, features dim =", tf.shape(keys)[1], tf.shape(features)[2]],
            )
        ],
    )


def check_same_keys(name, tensor, keys):
    """Raises if `tensor` does not have one row per key of `contrast_features`."""
    expected, received = keys.shape[0], tensor.shape[0]
    message = f"`{name}` must have one row per key of `contrast_features`"
    if expected is not None and received is not None:
        if expected != received:
            raise ValueError(
                f"{message} ({expected} keys). Received: {name}.shape={tensor.shape}, "
                f"contrast_features.shape={keys.shape}"
            )
        return tensor
    with tf.control_dependencies(
        [tf.debugging.assert_equal(tf.shape(tensor)[0], tf.shape(keys)[0], message=message)]
    ):
        return tf.identity(tensor)


def contrast_valid_to_bool(contrast_valid, keys):
    """The bool `[keys]` mask of filled key slots (all true when None)."""
    if contrast_valid is None:
        return tf.ones(tf.shape(keys)[:1], tf.bool)
    valid = to_tensor("contrast_valid", contrast_valid, "a bool tensor [keys]")
    if valid.dtype != tf.bool or valid.shape.rank != 1:
        raise ValueError(
            "`contrast_valid` must be a bool tensor [keys] (true for filled key slots). "
            f"Received: contrast_valid.dtype={valid.dtype.name}, contrast_valid.shape={valid.shape}"
        )
    return check_same_keys("contrast_valid", valid, keys)


def check_contrast_arguments(contrast_features, contrast_valid, **contrast_targets):
    """Refuses key labels or a valid mask without `contrast_features`."""
    if contrast_features is not None:
        return
    given = {"contrast_valid": contrast_valid, **contrast_targets}
    for name, value in given.items():
        if value is not None:
            raise ValueError(
                f"`{name}` describes extra contrast keys and needs `contrast_features` "
                f"(float [keys, dim]). Received: contrast_features=None, {name} of type "
                f"{type(value).__name__}"
            )
