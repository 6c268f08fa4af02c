"""Mixed precision: the global Keras dtype policy for a run.

Layers compute in float16/bfloat16 with float32 variables. The loss stays float32: `supcon.losses`
casts features to float32 before the similarity softmax (log-sum-exp over thousands of negatives
overflows float16). Under `mixed_float16`, `Model.compile` wraps the optimizer in
`keras.optimizers.LossScaleOptimizer` (dynamic loss scaling) because `auto_scale_loss=True` by
default; bfloat16 has float32's exponent range and needs no scaling.
"""

import keras

from supcon.choices import PRECISIONS  # noqa: E402


def set_precision(precision="float32"):
    """Sets the global Keras dtype policy.

    Call before building models: layers read the policy when they are created.

    Args:
        precision: one of `PRECISIONS`. Defaults to "float32".

    Returns:
        The `keras.DTypePolicy` now in effect.

    Example:

    >>> set_precision("float32").name
    'float32'
    """
    if precision not in PRECISIONS:
        raise ValueError(
            f"`precision` must be one of {PRECISIONS}. Received: precision={precision!r}"
        )
    keras.mixed_precision.set_global_policy(precision)
    return keras.mixed_precision.global_policy()
