"""Contrastive losses: SupCon (Khosla et al. 2020), SimCLR's NT-Xent, GenSCL (Kim et al. 2022).

Pure functions return per-sample losses; the Keras wrappers reduce them and
serialize. All of them gather negatives across replicas under tf.distribute.
"""

from supcon.losses.genscl import GenSCLLoss
from supcon.losses.genscl import genscl_loss
from supcon.losses.options import PAPER_TEMPERATURE
from supcon.losses.options import SIMCLR_TEMPERATURE
from supcon.losses.options import ContrastOptions
from supcon.losses.supcon import SimCLRLoss
from supcon.losses.supcon import SupConLoss
from supcon.losses.supcon import SupConLossLayer
from supcon.losses.supcon import supcon_loss

__all__ = [
    "ContrastOptions",
    "GenSCLLoss",
    "PAPER_TEMPERATURE",
    "SIMCLR_TEMPERATURE",
    "SimCLRLoss",
    "SupConLoss",
    "SupConLossLayer",
    "genscl_loss",
    "supcon_loss",
]
