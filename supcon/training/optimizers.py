"""Optimizer factory: lars, sgd, nesterov, rmsprop, adam, adamw, lamb, all sparing BN and biases.

Weight decay never touches batch-norm parameters or biases (`lars.DEFAULT_EXCLUSIONS`), for every
optimizer. How the decay enters depends on the optimizer family:

* **Coupled (L2, added to the gradient)** for `lars`, `sgd`, `nesterov`, `rmsprop`, `adam`: the
  gradient becomes `g + λ·w` before momentum / moment estimates. This is what the paper's reference
  code does (PyTorch `SGD(momentum=0.9, weight_decay=1e-4)` on CIFAR; SimCLR's LARS on ImageNet),
  so the published weight decays (1e-4, 1e-6) mean the same thing here. Keras's built-in
  `weight_decay` is *decoupled* (`w ← w − lr·λ·w`), which under momentum 0.9 is ~10× weaker for
  the same λ, so we do not use it for these.
* **Decoupled** for `adamw` and `lamb`, whose definitions (Loshchilov & Hutter 2019,
  arXiv 1711.05101; You et al. 2020, arXiv 1904.00962) decouple it: Keras's `weight_decay`, with
  the exclusions passed to `exclude_from_weight_decay` and kept in `get_config`.

`sgd` and `nesterov` are `LARS(layer_adaptation=False)`: SGD with momentum and coupled decay.
"""

import keras

from supcon.training.lars import DEFAULT_EXCLUSIONS, LARS, is_excluded

from supcon.choices import OPTIMIZERS  # noqa: E402


class _CoupledDecayMixin:
    """Adds `λ·w` to the gradient of non-excluded variables, and excludes them from decoupled decay.

    Args (on top of the Keras optimizer's own):
        coupled_weight_decay: float λ ≥ 0 added to the gradient as `λ·w`. Defaults to 0.
        weight_decay_exclusions: regular expressions searched in variable names; matching
            variables get neither coupled nor decoupled (`weight_decay`) decay.
    """

    def __init__(self, *args, coupled_weight_decay=0.0, weight_decay_exclusions=DEFAULT_EXCLUSIONS,
                 **kwargs):
        super().__init__(*args, **kwargs)
        if coupled_weight_decay < 0:
            raise ValueError(
                "`coupled_weight_decay` must be >= 0. "
                f"Received: coupled_weight_decay={coupled_weight_decay}"
            )
        self.coupled_weight_decay = coupled_weight_decay
        self.weight_decay_exclusions = tuple(weight_decay_exclusions or ())
        if self.weight_decay_exclusions:
            self.exclude_from_weight_decay(var_names=list(self.weight_decay_exclusions))

    def update_step(self, gradient, variable, learning_rate):
        if self.coupled_weight_decay and not is_excluded(variable, self.weight_decay_exclusions):
            gradient = keras.ops.cast(gradient, variable.dtype) + keras.ops.cast(
                self.coupled_weight_decay, variable.dtype
            ) * variable
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "coupled_weight_decay": self.coupled_weight_decay,
                "weight_decay_exclusions": list(self.weight_decay_exclusions),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="supcon")
class RMSprop(_CoupledDecayMixin, keras.optimizers.RMSprop):
    """`keras.optimizers.RMSprop` with coupled weight decay that spares BN and biases."""


@keras.saving.register_keras_serializable(package="supcon")
class Adam(_CoupledDecayMixin, keras.optimizers.Adam):
    """`keras.optimizers.Adam` with coupled (L2) weight decay that spares BN and biases."""


@keras.saving.register_keras_serializable(package="supcon")
class AdamW(_CoupledDecayMixin, keras.optimizers.AdamW):
    """`keras.optimizers.AdamW` (decoupled decay) whose BN/bias exclusions survive `get_config`."""


@keras.saving.register_keras_serializable(package="supcon")
class Lamb(_CoupledDecayMixin, keras.optimizers.Lamb):
    """`keras.optimizers.Lamb` (decoupled decay) whose BN/bias exclusions survive `get_config`."""


def build_optimizer(
    name,
    learning_rate,
    *,
    weight_decay=0.0,
    momentum=0.9,
    lars_eta=0.001,
    exclusions=DEFAULT_EXCLUSIONS,
    rmsprop_epsilon=1e-7,
):
    """Builds the optimizer `name`.

    Args:
        name: one of `OPTIMIZERS`.
        learning_rate: float or `LearningRateSchedule` (already batch-scaled; see
            `supcon.training.schedules.build_schedule`).
        weight_decay: float λ ≥ 0; coupled or decoupled per the module docstring. Defaults to 0.
        momentum: float, for lars/sgd/nesterov/rmsprop (ignored by adam/adamw/lamb).
            Defaults to 0.9.
        lars_eta: float, LARS trust coefficient η. Defaults to 0.001.
        exclusions: regular expressions on variable names spared from decay (and from the LARS
            trust ratio). Defaults to batch-norm parameters and biases.
        rmsprop_epsilon: float > 0, rmsprop's ε, added inside the square root
            (`lr * g / sqrt(v + ε)`, as TF1's `tf.train.RMSPropOptimizer`). Defaults to 1e-7,
            Keras's.

    Returns:
        A `keras.optimizers.Optimizer`.

    Example:

    >>> build_optimizer("sgd", 0.1, weight_decay=1e-4).name
    'sgd'
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"`name` must be one of {OPTIMIZERS}. Received: name={name!r}")
    if weight_decay < 0:
        raise ValueError(f"`weight_decay` must be >= 0. Received: weight_decay={weight_decay}")
    exclusions = tuple(exclusions)
    if name in ("lars", "sgd", "nesterov"):
        return LARS(
            learning_rate=learning_rate,
            momentum=momentum,
            weight_decay_rate=weight_decay,
            eta=lars_eta,
            nesterov=name == "nesterov",
            layer_adaptation=name == "lars",
            exclude_from_weight_decay=exclusions,
            name=name,
        )
    common = dict(learning_rate=learning_rate, weight_decay_exclusions=exclusions, name=name)
    if name == "rmsprop":
        return RMSprop(momentum=momentum, epsilon=rmsprop_epsilon, coupled_weight_decay=weight_decay,
                       **common)
    if name == "adam":
        return Adam(coupled_weight_decay=weight_decay, **common)
    if name == "adamw":
        return AdamW(weight_decay=weight_decay, **common)
    return Lamb(weight_decay=weight_decay or None, **common)
