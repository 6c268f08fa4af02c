"""Checkpoints that survive a crash: atomic saves, resume from the newest readable one, NaN guard.

A run is resumable from any global step because its whole state is (model variables, optimizer
variables including `iterations`) and the data stream is a deterministic function of the seed and
the step (see `supcon.training.run`): on resume the stream skips the steps already taken.

Atomicity comes from `tf.train.CheckpointManager`: the variables are written to new files
(`ckpt-STEP.index`, `ckpt-STEP.data-*`) first, and only then is the small `checkpoint` state file,
which names the newest checkpoint, replaced by an atomic rename. A kill during a save therefore
leaves the state file naming the previous, complete checkpoint. A newest checkpoint that was damaged
afterwards (truncated copy, bad disk) fails to restore; we warn and use the one before it.
"""

import logging
import math
import os
import shutil

import keras
import tensorflow as tf

logger = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or Inf; the run stops before saving the bad weights."""


class RunInterrupted(KeyboardInterrupt):
    """The run was interrupted (Ctrl-C); its last step is checkpointed and the same command resumes."""


class RunCheckpointer:
    """Saves and restores a model and its optimizer with a `tf.train.CheckpointManager`.

    Args:
        directory: str, the checkpoint directory (`MODEL_DIR/checkpoints`).
        model: a built `keras.Model`.
        optimizer: its built optimizer (`model.optimizer`).
        max_to_keep: int, how many checkpoints to keep (≥ 2 so a damaged newest one has a
            fallback). Defaults to 3.
        chief: bool, whether this process owns `directory`. Other workers of a multi-worker
            run must still take part in saving (variables may need a collective read), so they
            save into a private temporary directory that is deleted right after. Defaults to True.
        worker_id: int, this worker's index, naming that temporary directory. Defaults to 0.

    Example:

    >>> import tempfile
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> model.optimizer.build(model.trainable_variables)
    >>> ckpt = RunCheckpointer(tempfile.mkdtemp(), model, model.optimizer)
    >>> ckpt.restore_latest() is None
    True
    """

    def __init__(self, directory, model, optimizer, *, max_to_keep=3, chief=True, worker_id=0):
        if max_to_keep < 1:
            raise ValueError(f"`max_to_keep` must be >= 1. Received: max_to_keep={max_to_keep}")
        self.directory = directory
        self.chief = chief
        self._write_dir = directory if chief else os.path.join(directory, f".worker{worker_id}_tmp")
        self.optimizer = optimizer
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self._write_dir, max_to_keep=max_to_keep
        )
        # Non-chief workers read the chief's checkpoints (shared filesystem) when resuming.
        self._read_manager = (
            self.manager
            if chief
            else tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep=max_to_keep)
        )

    @property
    def step(self):
        """The optimizer's iteration count (global step)."""
        return int(self.optimizer.iterations.numpy())

    def save(self):
        """Writes a checkpoint named by the current global step.

        Returns:
            The checkpoint path (None on non-chief workers, whose copy is deleted).
        """
        path = self.manager.save(checkpoint_number=self.step)
        if not self.chief:
            shutil.rmtree(self._write_dir, ignore_errors=True)
            return None
        return path

    def save_if_new(self):
        """Saves the current step unless the newest checkpoint already holds it.

        Returns:
            The checkpoint path, or None when nothing was written.
        """
        latest = self.manager.latest_checkpoint
        if self.step == 0 or (latest and latest.endswith(f"-{self.step}")):
            return None
        return self.save()

    def restore_latest(self):
        """Restores the newest readable checkpoint, newest first, warning about unreadable ones.

        Returns:
            The global step restored, or None when there is no checkpoint (fresh run).
        """
        candidates = list(reversed(self._read_manager.checkpoints))
        for index, path in enumerate(candidates):
            try:
                self.checkpoint.restore(path).assert_existing_objects_matched()
            except Exception as error:  # noqa: BLE001  A damaged file fails in many ways
                # (DataLossError, IndexError "Read less bytes than requested", ValueError, ...).
                fallback = candidates[index + 1] if index + 1 < len(candidates) else None
                logger.warning(
                    "Checkpoint %s cannot be read (%s: %s); %s.",
                    path,
                    type(error).__name__,
                    str(error).splitlines()[0] if str(error) else "",
                    f"falling back to {fallback}" if fallback else "no older checkpoint left",
                )
                continue
            logger.info("Resumed from %s (step %d).", path, self.step)
            return self.step
        if candidates:
            raise RuntimeError(
                f"No checkpoint in {self.directory} can be read ({len(candidates)} tried). "
                "Start again with --overwrite to discard them."
            )
        return None


class CheckpointCallback(keras.callbacks.Callback):
    """Saves every `every_steps` optimizer steps and at each epoch end, only while the loss is finite.

    Args:
        checkpointer: a `RunCheckpointer`.
        every_steps: int > 0.
    """

    def __init__(self, checkpointer, every_steps):
        super().__init__()
        if every_steps < 1:
            raise ValueError(f"`every_steps` must be >= 1. Received: every_steps={every_steps}")
        self.checkpointer = checkpointer
        self.every_steps = every_steps
        self._last_saved = checkpointer.step

    def _maybe_save(self, logs, force=False):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            return  # The NaN guard raises; never overwrite a good checkpoint with bad weights.
        step = self.checkpointer.step
        if step > self._last_saved and (force or step - self._last_saved >= self.every_steps):
            self.checkpointer.save()
            self._last_saved = step

    def on_train_batch_end(self, batch, logs=None):
        self._maybe_save(logs)

    def on_epoch_end(self, epoch, logs=None):
        self._maybe_save(logs, force=True)


class NonFiniteLossGuard(keras.callbacks.Callback):
    """Stops training with `NonFiniteLossError` as soon as the loss is NaN or Inf.

    Args:
        optimizer: the model's optimizer (its `iterations` name the step).
        hint: str appended to the message: what to try (learning rate, temperature, ...).
        checkpoint_dir: str or None, named in the message as where the last good weights are.
    """

    def __init__(self, optimizer, hint="", checkpoint_dir=None):
        super().__init__()
        self.optimizer = optimizer
        self.hint = hint
        self.checkpoint_dir = checkpoint_dir

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        step = int(self.optimizer.iterations.numpy())
        where = (
            f" The last good checkpoint is kept in {self.checkpoint_dir}."
            if self.checkpoint_dir
            else ""
        )
        raise NonFiniteLossError(
            f"The training loss became {float(loss)} at step {step} (epoch batch {batch}).{where}"
            f" {self.hint}".rstrip()
        )
