"""TensorBoard summaries written with core TF ops (no `tensorboard` package needed): each epoch's
scalars, a grid of augmented training views, and the test embeddings for the Projector.

`keras.callbacks.TensorBoard` calls `tf.summary.scalar`, which lives in the `tensorboard` package,
not a dependency of this project. `tf.summary.write` with the scalar plugin's metadata writes the
same event records, which TensorBoard shows as scalars.
"""

import os

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


_IMAGE_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="images")
)
PROJECTOR_DIR = "projector"


def write_view_grid(writer, views, step=0, tag="augmented_views"):
    """Writes one image: a grid with a row per image and a column per augmented view.

    So that a user sees what the augmentation policy does to their images (TensorBoard's Images
    tab). Written in the image plugin's format (`[width, height, PNG]` strings).

    Args:
        writer: a `tf.summary` file writer.
        views: float `[N, V, H, W, 3]` in [0, 255] (a training batch, or its first rows).
        step: int. Defaults to 0.
        tag: str. Defaults to "augmented_views".
    """
    views = tf.convert_to_tensor(views, tf.float32)
    rows, columns, height, width = (int(d) for d in views.shape[:4])
    grid = tf.reshape(tf.transpose(views, [0, 2, 1, 3, 4]), [rows * height, columns * width, 3])
    png = tf.io.encode_png(tf.cast(tf.clip_by_value(tf.round(grid), 0, 255), tf.uint8))
    record = tf.stack([tf.as_string(columns * width), tf.as_string(rows * height), png])
    with writer.as_default():
        tf.summary.write(tag, record, step=step, metadata=_IMAGE_METADATA)
    writer.flush()


def write_embedding_projector(log_dir, embeddings, labels, class_names=()):
    """Writes test embeddings for TensorBoard's Projector tab (PCA / t-SNE / UMAP by class).

    Plain files, no `tensorboard` package needed: `log_dir/projector/embeddings.tsv` (one vector
    per line), `metadata.tsv` (a header, then the label of each), and `projector_config.pbtxt`,
    which points TensorBoard (`--logdir=MODEL_DIR/summaries/projector`) at them.

    Args:
        log_dir: str, the run's summaries folder.
        embeddings: float `[N, F]`.
        labels: int `[N]`.
        class_names: optional names, indexed by label.

    Returns:
        str, the projector folder.
    """
    folder = os.path.join(log_dir, PROJECTOR_DIR)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "embeddings.tsv"), "w", encoding="utf-8") as f:
        for vector in embeddings:
            f.write("\t".join(f"{float(v):.6g}" for v in vector) + "\n")
    with open(os.path.join(folder, "metadata.tsv"), "w", encoding="utf-8") as f:
        f.write("label\tclass\n")
        for label in labels:
            name = class_names[int(label)] if int(label) < len(class_names) else str(int(label))
            f.write(f"{int(label)}\t{name}\n")
    with open(os.path.join(folder, "projector_config.pbtxt"), "w", encoding="utf-8") as f:
        f.write('embeddings {\n  tensor_name: "test_embeddings"\n'
                '  tensor_path: "embeddings.tsv"\n  metadata_path: "metadata.tsv"\n}\n')
    return folder
