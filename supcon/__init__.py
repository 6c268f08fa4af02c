"""supcon: Supervised Contrastive Learning (Khosla et al., arXiv 2004.11362) in TF2/Keras 3.

Subpackages:
  * `supcon.losses`: SupCon / SimCLR (NT-Xent) / GenSCL losses, cross-replica aware.
  * `supcon.models`: ResNet encoders, projection and classifier heads, Keras models.
  * `supcon.data`: data sources, the paper's augmentation policies, multi-view pipelines.
  * `supcon.training`: optimizers (LARS), schedules, strategies, the training run.
  * `supcon.evaluation`: linear evaluation, corruption robustness (mCE), calibration (ECE).
"""

__version__ = "0.1.0"
