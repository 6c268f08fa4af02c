"""Input validation shared by the contrastive losses (public entry points only)."""

import numbers

import tensorflow as tf

from supcon.losses import _engine


def check_choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(
            f"`{name}` must be one of {', '.join(repr(a) for a in allowed)}. "
            f"Received: {name}={value!r}"
        )


def check_positive_number(name, value, allow_none=False):
    if value is None and allow_none:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not value > 0
    ):
        expected = "a positive number" + (" or None" if allow_none else "")
        raise ValueError(f"`{name}` must be {expected}. Received: {name}={value!r}")


def check_optional_int(name, value, minimum):
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(
            f"`{name}` must be None or an integer >= {minimum}. "
            f"Received: {name}={value!r}"
        )


def check_options(
    *,
    temperature,
    base_temperature,
    contrast_mode,
    block_size,
    summation="outside",
    denominator="all",
    positives_cap=None,
):
    """Validates the scalar options of every loss of the family."""
    check_positive_number("temperature", temperature)
    check_positive_number("base_temperature", base_temperature, allow_none=True)
    check_choice("contrast_mode", contrast_mode, _engine.CONTRAST_MODES)
    check_choice("summation", summation, _engine.SUMMATIONS)
    check_choice("denominator", denominator, _engine.DENOMINATORS)
    check_optional_int("positives_cap", positives_cap, 0)
    check_optional_int("block_size", block_size, 1)


def features_to_float32(features):
    """Checks `features` is a float `[batch, views, ...]` tensor; returns float32 `[batch, views, dim]`."""
    if isinstance(features, (list, tuple)):
        features = tf.convert_to_tensor(features)
    elif not tf.is_tensor(features):
        features = tf.convert_to_tensor(features)
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
    return features


def check_same_batch(name, tensor, features):
    """Raises if `tensor`'s leading dimension differs from the features' batch."""
    expected, received = features.shape[0], tensor.shape[0]
    if expected is not None and received is not None:
        if expected != received:
            raise ValueError(
                f"`{name}` must have one row per sample of `features` "
                f"(batch {expected}). Received: {name}.shape={tensor.shape}, "
                f"features.shape={features.shape}"
            )
        return tensor
    with tf.control_dependencies(
        [
            tf.debugging.assert_equal(
                tf.shape(tensor)[0],
                tf.shape(features)[0],
                message=f"`{name}` must have one row per sample of `features`",
            )
        ]
    ):
        return tf.identity(tensor)
