"""LARS: layer-wise adaptive rate scaling (You et al. 2017, arXiv 1708.03888), as a Keras 3 optimizer.

The SupCon paper trains its ImageNet models with LARS (Khosla et al. 2020, arXiv 2004.11362, §4 and
Appendix: "LARS optimizer ... learning rate 0.4 per 256 images"), following SimCLR's implementation
(`simclr/tf2/lars_optimizer.py`). This module has the same shape as `keras/src/optimizers/lamb.py`.
"""

import re

import keras
from keras import ops

# Batch-norm parameters and biases get neither weight decay nor layer adaptation (SimCLR's
# `exclude_from_weight_decay=["batch_normalization", "bias"]`, written for Keras 3 variable names:
# batch norm's `gamma`/`beta`/`moving_*` and every layer's `bias`). Each entry is a regular
# expression searched in the variable's `name`.
DEFAULT_EXCLUSIONS = ("gamma", "beta", "bias", "moving_mean", "moving_variance")
# SimCLR's trust coefficient η (simclr/tf2/lars_optimizer.py, EETA_DEFAULT).
DEFAULT_ETA = 0.001


def is_excluded(variable, patterns):
    """Whether `variable` matches one of the regular expressions `patterns`.

    Args:
        variable: a Keras (or tf) variable.
        patterns: iterable of regular expressions, searched in the variable's short `name`
            (`kernel`, `gamma`, `bias`, ...).

    Returns:
        bool.
    """
    name = variable.name.split("/")[-1].split(":")[0]
    return any(re.search(pattern, name) for pattern in patterns)


@keras.saving.register_keras_serializable(package="supcon")
class LARS(keras.optimizers.Optimizer):
    """LARS: SGD with momentum whose per-layer step is scaled by a trust ratio.

    For each variable `w` with gradient `g` (You et al. 2017, arXiv 1708.03888, Algorithm 1):

        g ← g + λ·w                          (weight decay added to the gradient)
        r ← η·‖w‖ / ‖g‖   (1 if ‖w‖ = 0 or ‖g‖ = 0)   (trust ratio)
        v ← m·v + lr·r·g
        w ← w − v          (Nesterov: w ← w − (m·v + lr·r·g))

    Variables whose name matches `exclude_from_weight_decay` skip the `λ·w` term and those matching
    `exclude_from_layer_adaptation` use r = 1. Both default to batch-norm parameters and biases.
    With `layer_adaptation=False` this is exactly SGD with momentum and coupled (L2) weight decay
    as in PyTorch's `torch.optim.SGD`, the optimizer of the paper's CIFAR runs.

    Args:
        learning_rate: float or `keras.optimizers.schedules.LearningRateSchedule`. Defaults to 0.1.
        momentum: float in [0, 1). Defaults to 0.9.
        weight_decay_rate: float λ ≥ 0, added to the gradient as `λ·w`. Defaults to 0.0.
            (Named so because the Keras base argument `weight_decay` means *decoupled* decay.)
        eta: float trust coefficient η > 0. Defaults to 0.001 (SimCLR).
        nesterov: bool, Nesterov momentum. Defaults to False.
        layer_adaptation: bool, apply the trust ratio at all. Defaults to True.
        exclude_from_weight_decay: tuple of regular expressions on variable names.
            Defaults to `DEFAULT_EXCLUSIONS`.
        exclude_from_layer_adaptation: tuple of regular expressions, or None to use
            `exclude_from_weight_decay`. Defaults to None.
        name: optimizer name. Defaults to "lars".
        **kwargs: base optimizer arguments (`clipnorm`, `use_ema`, `loss_scale_factor`, ...).

    Example:

    >>> opt = LARS(learning_rate=0.1, weight_decay_rate=1e-6)
    >>> w = keras.Variable([[3.0, 4.0]], name="kernel")
    >>> opt.apply([keras.ops.ones((1, 2))], [w])
    >>> tuple(w.shape)
    (1, 2)
    """

    def __init__(
        self,
        learning_rate=0.1,
        momentum=0.9,
        weight_decay_rate=0.0,
        eta=DEFAULT_ETA,
        nesterov=False,
        layer_adaptation=True,
        exclude_from_weight_decay=DEFAULT_EXCLUSIONS,
        exclude_from_layer_adaptation=None,
        name="lars",
        **kwargs,
    ):
        if kwargs.get("weight_decay") is not None:
            raise ValueError(
                "LARS adds weight decay to the gradient; pass `weight_decay_rate`, not the "
                f"decoupled `weight_decay`. Received: weight_decay={kwargs['weight_decay']}"
            )
        kwargs.pop("weight_decay", None)
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"`momentum` must be in [0, 1). Received: momentum={momentum}")
        if weight_decay_rate < 0:
            raise ValueError(
                f"`weight_decay_rate` must be >= 0. Received: weight_decay_rate={weight_decay_rate}"
            )
        if eta <= 0:
            raise ValueError(f"`eta` must be > 0. Received: eta={eta}")
        self.momentum = momentum
        self.weight_decay_rate = weight_decay_rate
        self.eta = eta
        self.nesterov = nesterov
        self.layer_adaptation = layer_adaptation
        self.exclude_from_weight_decay_patterns = tuple(exclude_from_weight_decay or ())
        self.exclude_from_layer_adaptation = (
            None if exclude_from_layer_adaptation is None else tuple(exclude_from_layer_adaptation)
        )

    def build(self, var_list):
        """Creates one momentum slot per variable.

        Args:
            var_list: list of model variables.
        """
        if self.built:
            return
        super().build(var_list)
        self._momentums = self.add_optimizer_variables(var_list, "momentum")

    def _adaptation_patterns(self):
        if self.exclude_from_layer_adaptation is None:
            return self.exclude_from_weight_decay_patterns
        return self.exclude_from_layer_adaptation

    def update_step(self, gradient, variable, learning_rate):
        """Update step given gradient and the associated model variable."""
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        momentum = ops.cast(self.momentum, variable.dtype)
        # Exclusions are decided from the variable's name at trace time: plain Python branches.
        if self.weight_decay_rate and not is_excluded(
            variable, self.exclude_from_weight_decay_patterns
        ):
            gradient = gradient + ops.cast(self.weight_decay_rate, variable.dtype) * variable
        if self.layer_adaptation and not is_excluded(variable, self._adaptation_patterns()):
            w_norm = ops.sqrt(ops.sum(ops.square(variable)))
            g_norm = ops.sqrt(ops.sum(ops.square(gradient)))
            # Trust ratio 1 where either norm is 0: freshly zero-initialized layers still move,
            # and a zero gradient never divides by zero.
            safe_g_norm = ops.where(g_norm > 0, g_norm, ops.ones_like(g_norm))
            ratio = ops.where(
                ops.logical_and(w_norm > 0, g_norm > 0),
                self.eta * w_norm / safe_g_norm,
                ops.ones_like(w_norm),
            )
            lr = lr * ratio
        v = self._momentums[self._get_variable_index(variable)]
        self.assign(v, momentum * v + lr * gradient)
        if self.nesterov:
            self.assign_sub(variable, momentum * v + lr * gradient)
        else:
            self.assign_sub(variable, v)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                "weight_decay_rate": self.weight_decay_rate,
                "eta": self.eta,
                "nesterov": self.nesterov,
                "layer_adaptation": self.layer_adaptation,
                "exclude_from_weight_decay": list(self.exclude_from_weight_decay_patterns),
                "exclude_from_layer_adaptation": (
                    None
                    if self.exclude_from_layer_adaptation is None
                    else list(self.exclude_from_layer_adaptation)
                ),
            }
        )
        return config
