"""TensorBoard scalars for each epoch, written with core TF ops (no `tensorboard` package needed).

`keras.callbacks.TensorBoard` calls `tf.summary.scalar`, which lives in the `tensorboard` package,
not a dependency of this project. `tf.summary.write` with the scalar plugin's metadata writes the
same event records, which TensorBoard shows as scalars.
"""

import keras
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
)


def write_scalars(writer, scalars, step):
    """Writes `{tag: float}` at `step`.

    Args:
        writer: a `tf.summary` file writer.
        scalars: dict of tag -> number.
        step: int.
    """
    with writer.as_default():
        for tag, value in scalars.items():
            tf.summary.write(tag, tf.constant(float(value), tf.float32), step=step,
                             metadata=_SCALAR_METADATA)
    writer.flush()


class EpochSummaries(keras.callbacks.Callback):
    """Writes every epoch's logs (loss, accuracy, positive/negative similarity, ...) and the
    learning rate under `log_dir`, as `epoch_<name>` at step = epoch number (1-based).

    Args:
        log_dir: str.
    """

    def __init__(self, log_dir):
        super().__init__()
        self.log_dir = log_dir
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        scalars = {f"epoch_{name}": value for name, value in (logs or {}).items()}
        optimizer = self.model.optimizer
        learning_rate = optimizer.learning_rate  # The schedule's value at the current step.
        scalars["epoch_learning_rate"] = float(keras.ops.convert_to_numpy(learning_rate))
        write_scalars(self._writer, scalars, step=epoch + 1)
