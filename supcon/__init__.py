"""supcon: Supervised Contrastive Learning (Khosla et al., arXiv 2004.11362) in TF2/Keras 3.

Subpackages (imported on first use, so `import supcon` stays cheap):
  * `supcon.losses`: SupCon / SimCLR (NT-Xent) / GenSCL losses, cross-replica aware.
  * `supcon.models`: ResNet encoders, projection and classifier heads, Keras models.
  * `supcon.data`: data sources, the paper's augmentation policies, multi-view pipelines.
  * `supcon.training`: optimizers (LARS), schedules, strategies, the training run.
  * `supcon.evaluation`: linear evaluation, corruption robustness (mCE), calibration (ECE).

Example:

>>> import supcon
>>> supcon.losses.PAPER_TEMPERATURE
0.1
"""

import importlib

__version__ = "0.1.0"

_SUBPACKAGES = ("losses", "models", "data", "training", "evaluation")


def __getattr__(name):
    # PEP 562: `supcon.models` works after a plain `import supcon`.
    if name in _SUBPACKAGES:
        return importlib.import_module(f"supcon.{name}")
    raise AttributeError(f"module 'supcon' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_SUBPACKAGES])
