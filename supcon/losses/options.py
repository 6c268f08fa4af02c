"""`ContrastOptions`: the settings of every contrastive loss, validated once.

SupCon (Khosla et al., arXiv 2004.11362), SimCLR's NT-Xent and GenSCL (Kim et
al., arXiv 2206.00384) share one engine and one set of scalar settings. They
live here, in a frozen dataclass validated on construction, so the pure loss
functions, the Keras wrappers and the training config take the same object
instead of repeating seven keyword arguments.
"""

import dataclasses
import math
import numbers

# Khosla et al. §4: tau = 0.1 for SupCon; SimCLR's baseline uses tau = 0.5.
PAPER_TEMPERATURE = 0.1
SIMCLR_TEMPERATURE = 0.5

SUMMATIONS = ("outside", "inside")
DENOMINATORS = ("all", "one_positive", "only_negatives")
CONTRAST_MODES = ("all", "one")


def _check_choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(
            f"`{name}` must be one of {', '.join(repr(a) for a in allowed)}. "
            f"Received: {name}={value!r}"
        )


def _check_positive_number(name, value, allow_none=False):
    if value is None and allow_none:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not value > 0
        or not math.isfinite(value)
    ):
        expected = "a positive finite number" + (" or None" if allow_none else "")
        raise ValueError(f"`{name}` must be {expected}. Received: {name}={value!r}")


def _check_optional_int(name, value, minimum):
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(
            f"`{name}` must be None or an integer >= {minimum}. "
            f"Received: {name}={value!r}"
        )


@dataclasses.dataclass(frozen=True)
class ContrastOptions:
    """Settings of a contrastive loss (Khosla et al. 2020, Eq. 2 / Eq. 3), validated on construction.

    Args:
      temperature: tau in Eq. 2, a positive float; default 0.1 (the paper's).
      base_temperature: if set, the loss is multiplied by
        `temperature / base_temperature`. None (default) means no scaling: the
        value is exactly the paper's equation. The PyTorch port scales by
        `tau / 0.07` (pass `base_temperature=0.07`); the official TF
        `contrastive_loss` by `tau` (its `scale_by_temperature=True`; pass
        `base_temperature=1.0`).
      contrast_mode: "all" (every view is an anchor, default) or "one" (only
        view 0 is an anchor; every view is still contrasted).
      summation: "outside" (L_out, Eq. 2, the default and the paper's choice)
        or "inside" (L_in, Eq. 3).
      denominator: "all" (every view of the batch except the anchor itself,
        default), "one_positive" (for each positive p: p plus the negatives)
        or "only_negatives" (the negatives only; anchors without a negative
        count as having no positive).
      positives_cap: None (no cap, default) or a multiple of the number of
        views: keep at most this many positives per anchor besides the
        anchor's own other views (which are always kept). As in the official
        code, whole samples are kept: the first `positives_cap // views`
        other positive samples by index in the (global) batch, each with all
        its views; then, with extra contrast keys, positive keys (one view
        each) in slot order while the count stays within the cap (so at most
        `positives_cap - views * kept_samples` keys). Dropped positives
        appear neither in the numerator nor in the denominator.
      block_size: None (dense, default) or the number of anchor rows
        processed at once; blocks are recomputed in the backward pass so peak
        memory grows with `block_size x views*batch` instead of
        `(views*batch)^2`. Same values and gradients as the dense path.

    GenSCL takes only temperature, base_temperature, contrast_mode and
    block_size (its equation is L_out with the "all" denominator, no cap).

    Raises:
      ValueError: naming the setting, what it must be and what it received.

    Example:

    >>> options = ContrastOptions(temperature=0.2, summation="inside")
    >>> options.replace(block_size=256).block_size
    256
    >>> ContrastOptions.from_config(options.get_config()) == options
    True
    """

    temperature: float = PAPER_TEMPERATURE
    base_temperature: float | None = None
    contrast_mode: str = "all"
    summation: str = "outside"
    denominator: str = "all"
    positives_cap: int | None = None
    block_size: int | None = None

    def __post_init__(self):
        _check_positive_number("temperature", self.temperature)
        _check_positive_number("base_temperature", self.base_temperature, allow_none=True)
        _check_choice("contrast_mode", self.contrast_mode, CONTRAST_MODES)
        _check_choice("summation", self.summation, SUMMATIONS)
        _check_choice("denominator", self.denominator, DENOMINATORS)
        _check_optional_int("positives_cap", self.positives_cap, 0)
        _check_optional_int("block_size", self.block_size, 1)

    @classmethod
    def field_names(cls):
        """The settings' names, in declaration order."""
        return tuple(field.name for field in dataclasses.fields(cls))

    def replace(self, **changes):
        """A copy with `changes` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def get_config(self):
        """The settings as a JSON-compatible dict (the constructor's keyword arguments)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def resolve(options, settings, owner, default=None):
    """The `ContrastOptions` a loss entry point was given, as `options` and/or keywords.

    Keywords override the matching fields of `options`, so both the old
    keyword style (`supcon_loss(z, y, temperature=0.2)`) and the options
    object (`supcon_loss(z, y, options=ContrastOptions(...))`) work.

    Args:
      options: None or a `ContrastOptions`.
      settings: dict of `ContrastOptions` field names to values.
      owner: the entry point's name, for errors.
      default: the `ContrastOptions` used when `options` is None (default:
        `ContrastOptions()`).

    Returns:
      A `ContrastOptions`.
    """
    if options is not None and not isinstance(options, ContrastOptions):
        raise TypeError(
            f"`options` of `{owner}` must be a supcon.losses.ContrastOptions or None. "
            f"Received: options={options!r}"
        )
    unknown = sorted(set(settings) - set(ContrastOptions.field_names()))
    if unknown:
        raise TypeError(
            f"`{owner}` got unexpected keyword arguments {unknown}; the loss settings are "
            f"{', '.join(ContrastOptions.field_names())}. Received: {unknown[0]}={settings[unknown[0]]!r}"
        )
    base = options if options is not None else (default or ContrastOptions())
    return base.replace(**settings) if settings else base
