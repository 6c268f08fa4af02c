"""Learning-rate schedules: linear warmup, then cosine / exponential / piecewise / constant.

The SupCon paper (Khosla et al. 2020, arXiv 2004.11362, Appendix B) uses a linear warmup followed by
cosine decay (SGDR without restarts, Loshchilov & Hutter 2017, arXiv 1608.03983, Eq. 5 with one
cycle); the SimCLR code it builds on warms up linearly from 0 over `warmup_epochs`, then decays over
the remaining steps. The learning rate is given per 256 images and scaled linearly with the batch
size (Goyal et al. 2017, arXiv 1706.02677): `lr = base_lr * batch_size / 256`.
"""

import keras
from keras import ops

from supcon.choices import SCHEDULES  # noqa: E402
# Learning rates are quoted per this many images (Khosla et al. §4; Goyal et al. 2017).
REFERENCE_BATCH_SIZE = 256


@keras.saving.register_keras_serializable(package="supcon")
class ConstantSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A constant learning rate, as a schedule so it composes with `LinearWarmup`.

    Args:
        learning_rate: float.

    Example:

    >>> float(ConstantSchedule(0.5)(10))
    0.5
    """

    def __init__(self, learning_rate):
        self.learning_rate = learning_rate

    def __call__(self, step):
        return ops.cast(self.learning_rate, "float32") + 0.0 * ops.cast(step, "float32")

    def get_config(self):
        return {"learning_rate": self.learning_rate}


@keras.saving.register_keras_serializable(package="supcon")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from `start` to `after(0)` over `warmup_steps`, then `after(step - warmup_steps)`.

    lr(t) = start + (after(0) − start) · t / T_w for t < T_w, else after(t − T_w). `start=0` is
    SimCLR's and the official TF SupCon code's warmup; the SupCon PyTorch code starts from an
    absolute 0.01 (`warmup_from` in HobbitLong/SupContrast `main_supcon.py`).

    Args:
        after: `LearningRateSchedule` (or its serialized dict) used once warmup ends; its step
            count starts at 0 when warmup ends.
        warmup_steps: int ≥ 0. Defaults to 0.
        start: float ≥ 0, the rate at step 0. Defaults to 0.

    Example:

    >>> s = LinearWarmup(ConstantSchedule(1.0), warmup_steps=4)
    >>> [round(float(s(t)), 2) for t in (0, 2, 4, 9)]
    [0.0, 0.5, 1.0, 1.0]
    """

    def __init__(self, after, warmup_steps=0, start=0.0):
        if isinstance(after, dict):
            after = keras.optimizers.schedules.deserialize(after)
        if not isinstance(after, keras.optimizers.schedules.LearningRateSchedule):
            raise TypeError(
                "`after` must be a keras.optimizers.schedules.LearningRateSchedule. "
                f"Received: after={after!r}"
            )
        if warmup_steps < 0:
            raise ValueError(f"`warmup_steps` must be >= 0. Received: warmup_steps={warmup_steps}")
        if not start >= 0:  # also rejects NaN
            raise ValueError(f"`start` must be >= 0. Received: start={start}")
        self.after = after
        self.warmup_steps = int(warmup_steps)
        self.start = float(start)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        decayed = ops.cast(self.after(ops.maximum(step - self.warmup_steps, 0.0)), "float32")
        if self.warmup_steps == 0:
            return decayed
        peak = ops.cast(self.after(0), "float32")
        warm = self.start + (peak - self.start) * step / float(self.warmup_steps)
        return ops.where(step < self.warmup_steps, warm, decayed)

    def get_config(self):
        return {
            "after": keras.optimizers.schedules.serialize(self.after),
            "warmup_steps": self.warmup_steps,
            "start": self.start,
        }


def scaled_learning_rate(learning_rate, batch_size):
    """The paper's linear scaling rule: `learning_rate * batch_size / 256`.

    Args:
        learning_rate: float, per 256 images.
        batch_size: int, global batch size.

    Returns:
        float.
    """
    return learning_rate * batch_size / REFERENCE_BATCH_SIZE


def build_schedule(
    learning_rate,
    *,
    batch_size,
    steps_per_epoch,
    epochs,
    warmup_epochs=0.0,
    schedule="cosine",
    decay_rate=0.1,
    epochs_per_decay=30.0,
    boundaries=(),
    warmup_start=0.0,
    min_fraction=0.0,
):
    """Builds `LinearWarmup(decay)` for the run, with steps counted in optimizer iterations.

    Args:
        learning_rate: float > 0, per 256 images; the peak is `learning_rate * batch_size / 256`.
        batch_size: int, global batch size.
        steps_per_epoch: int > 0.
        epochs: float > 0, total training epochs (warmup included).
        warmup_epochs: float in [0, epochs). Defaults to 0.
        schedule: one of `SCHEDULES`. Defaults to "cosine" (to 0 at the last step).
        decay_rate: float, multiplicative factor for "exponential" (every `epochs_per_decay`,
            staircase) and "piecewise" (at each boundary). Defaults to 0.1.
        epochs_per_decay: float > 0, for "exponential". Defaults to 30.
        boundaries: increasing epochs (after warmup) at which "piecewise" multiplies the rate by
            `decay_rate`. Defaults to ().
        warmup_start: float ≥ 0, the actual (not per-256) rate at the first warmup step.
            Defaults to 0.
        min_fraction: float in [0, 1], "cosine" ends at `peak * min_fraction` (HobbitLong's
            SupCon code: 0.001). Defaults to 0.

    Returns:
        A `LinearWarmup` schedule.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"`schedule` must be one of {SCHEDULES}. Received: schedule={schedule!r}")
    if not learning_rate > 0:  # also rejects NaN
        raise ValueError(f"`learning_rate` must be > 0. Received: learning_rate={learning_rate}")
    if steps_per_epoch <= 0:
        raise ValueError(
            f"`steps_per_epoch` must be > 0. Received: steps_per_epoch={steps_per_epoch}"
        )
    if not 0 <= warmup_epochs < epochs:
        raise ValueError(
            "`warmup_epochs` must be in [0, epochs). "
            f"Received: warmup_epochs={warmup_epochs} (epochs={epochs})"
        )
    peak = scaled_learning_rate(learning_rate, batch_size)
    warmup_steps = int(round(warmup_epochs * steps_per_epoch))
    total_steps = int(round(epochs * steps_per_epoch))
    decay_steps = max(total_steps - warmup_steps, 1)
    if schedule == "cosine":
        if not 0 <= min_fraction <= 1:
            raise ValueError(f"`min_fraction` must be in [0, 1]. Received: min_fraction={min_fraction}")
        after = keras.optimizers.schedules.CosineDecay(peak, decay_steps=decay_steps,
                                                       alpha=float(min_fraction))
    elif schedule == "exponential":
        if epochs_per_decay <= 0:
            raise ValueError(
                f"`epochs_per_decay` must be > 0. Received: epochs_per_decay={epochs_per_decay}"
            )
        after = keras.optimizers.schedules.ExponentialDecay(
            peak,
            decay_steps=max(int(round(epochs_per_decay * steps_per_epoch)), 1),
            decay_rate=decay_rate,
            staircase=True,
        )
    elif schedule == "piecewise":
        boundaries = [float(b) for b in boundaries]
        if not boundaries or any(b <= warmup_epochs for b in boundaries) or boundaries != sorted(
            set(boundaries)
        ):
            raise ValueError(
                "`boundaries` must be strictly increasing epochs after the warmup "
                f"(> {warmup_epochs}). Received: boundaries={boundaries}"
            )
        # Keras' PiecewiseConstantDecay keeps a value up to and including its boundary step; the
        # decay at epoch b starts at the first step of epoch b + 1 (0-based step b * steps), as
        # HobbitLong's main_linear.py (`epoch > 60`, 1-based epochs) does: hence the - 1.
        step_boundaries = [int(round(b * steps_per_epoch)) - warmup_steps - 1 for b in boundaries]
        values = [peak * decay_rate**i for i in range(len(step_boundaries) + 1)]
        after = keras.optimizers.schedules.PiecewiseConstantDecay(step_boundaries, values)
    else:
        after = ConstantSchedule(peak)
    return LinearWarmup(after, warmup_steps=warmup_steps, start=warmup_start)
