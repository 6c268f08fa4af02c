"""supcon.training: optimizers (LARS), schedules, strategies, precision, fault-tolerant runs.

* `LARS`, `build_optimizer`: optimizers whose weight decay spares batch norm and biases.
* `build_schedule`, `LinearWarmup`, `ConstantSchedule`: warmup + cosine/exponential/piecewise.
* `build_strategy`: auto / one_device / mirrored / multi_worker / tpu.
* `set_precision`: float32 / mixed_float16 / mixed_bfloat16.
* `RunCheckpointer`, `CheckpointCallback`, `NonFiniteLossGuard`: runs that survive a crash.
* `TrainConfig`, `train`: one whole run (pre-train, linear evaluation, export).
* `save_run`: a model trained with `model.fit` saved as a run directory eval.py evaluates.
"""


from supcon import _lazy
from supcon.training.config import METHODS, TrainConfig  # TensorFlow-free.

_EXPORTS = {
    "CheckpointCallback": "supcon.training.checkpointing",
    "NonFiniteLossError": "supcon.training.checkpointing",
    "NonFiniteLossGuard": "supcon.training.checkpointing",
    "RunCheckpointer": "supcon.training.checkpointing",
    "RunInterrupted": "supcon.training.checkpointing",
    "LARS": "supcon.training.lars",
    "OPTIMIZERS": "supcon.training.optimizers",
    "build_optimizer": "supcon.training.optimizers",
    "PRECISIONS": "supcon.training.precision",
    "set_precision": "supcon.training.precision",
    "RunDirectoryConflict": "supcon.training.run_dir",
    "RunDirectoryError": "supcon.training.run_dir",
    "save_run": "supcon.training.run_dir",
    "SCHEDULES": "supcon.training.schedules",
    "ConstantSchedule": "supcon.training.schedules",
    "LinearWarmup": "supcon.training.schedules",
    "build_schedule": "supcon.training.schedules",
    "STRATEGIES": "supcon.training.strategy",
    "StrategyError": "supcon.training.strategy",
    "build_strategy": "supcon.training.strategy",
}
__getattr__, __dir__ = _lazy.exports(__name__, _EXPORTS)


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
    "RunDirectoryError",
    "RunInterrupted",
    "SCHEDULES",
    "STRATEGIES",
    "StrategyError",
    "TrainConfig",
    "build_optimizer",
    "build_schedule",
    "build_strategy",
    "save_run",
    "set_precision",
    "train",
]
