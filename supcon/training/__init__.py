"""supcon.training: optimizers (LARS), schedules, strategies, precision, fault-tolerant runs.

* `LARS`, `build_optimizer`: optimizers whose weight decay spares batch norm and biases.
* `build_schedule`, `LinearWarmup`, `ConstantSchedule`: warmup + cosine/exponential/piecewise.
* `build_strategy`: auto / one_device / mirrored / multi_worker / tpu.
* `set_precision`: float32 / mixed_float16 / mixed_bfloat16.
* `RunCheckpointer`, `CheckpointCallback`, `NonFiniteLossGuard`: runs that survive a crash.
* `TrainConfig`, `train`: one whole run (pre-train, linear evaluation, export).
"""

from supcon.training.checkpointing import CheckpointCallback
from supcon.training.checkpointing import NonFiniteLossError
from supcon.training.checkpointing import NonFiniteLossGuard
from supcon.training.checkpointing import RunCheckpointer
from supcon.training.config import METHODS
from supcon.training.config import TrainConfig
from supcon.training.lars import LARS
from supcon.training.optimizers import OPTIMIZERS
from supcon.training.optimizers import build_optimizer
from supcon.training.precision import PRECISIONS
from supcon.training.precision import set_precision
from supcon.training.run_dir import RunDirectoryConflict
from supcon.training.schedules import SCHEDULES
from supcon.training.schedules import ConstantSchedule
from supcon.training.schedules import LinearWarmup
from supcon.training.schedules import build_schedule
from supcon.training.strategy import STRATEGIES
from supcon.training.strategy import StrategyError
from supcon.training.strategy import build_strategy


def train(config=TrainConfig(), *, strategy=None):
    """Runs `supcon.training.run.train` (imported lazily: it needs the data and model packages)."""
    from supcon.training import run  # noqa: PLC0415

    return run.train(config, strategy=strategy)


__all__ = [
    "CheckpointCallback",
    "ConstantSchedule",
    "LARS",
    "LinearWarmup",
    "METHODS",
    "NonFiniteLossError",
    "NonFiniteLossGuard",
    "OPTIMIZERS",
    "PRECISIONS",
    "RunCheckpointer",
    "RunDirectoryConflict",
    "SCHEDULES",
    "STRATEGIES",
    "StrategyError",
    "TrainConfig",
    "build_optimizer",
    "build_schedule",
    "build_strategy",
    "set_precision",
    "train",
]
