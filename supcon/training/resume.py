"""Training from any global step so that a resumed run ends with an uninterrupted run's weights.

What this owns: the arithmetic of where a run stands (epoch and batch of a global step) and the
`fit` calls that take a model from a restored step to the end of its last epoch.

Why a resumed run is exact: a run's state is the checkpoint (model and optimizer variables; the
optimizer's `iterations` is the global step `s`) plus its place in the training stream. The
stream is a pure function of `(seed, batch index)` (`supcon.data.pipeline(..., repeat=True,
start_batch=s)`: pass `p` is shuffled with a seed of its own and never reshuffled; each view's
augmentation is seeded by its element index), so the stream from batch `s` is exactly what the
uninterrupted run fed from step `s` on, however many iterators Keras made and dropped before. Keras
keeps one iterator across the epochs of a `fit` when `steps_per_epoch` is set, so a `fit` that
starts at an epoch boundary consumes the stream in order. A resume in the middle of an epoch first
finishes that epoch with one short `fit`. With op determinism (`deterministic=True`) the resumed
run's weights equal the uninterrupted run's bit for bit on the same machine.
"""


def position(step, steps_per_epoch):
    """`(epoch, batch)` of global step `step`: the epoch it falls in and its batch in that epoch.

    Args:
        step: int >= 0, optimizer steps taken.
        steps_per_epoch: int >= 1.

    Returns:
        `(epoch, batch)` ints, 0-based.

    Example:
        >>> position(44, 44), position(50, 44)
        ((1, 0), (1, 6))
    """
    return divmod(step, steps_per_epoch)


def fit_from(model, stream_from, *, start_step, steps_per_epoch, epochs, callbacks, verbose):
    """Runs `fit` from global step `start_step` to `epochs * steps_per_epoch`.

    Args:
        model: a compiled `keras.Model` whose optimizer is at `start_step`.
        stream_from: function `batch index -> tf.data.Dataset`, the training stream from that
            batch on.
        start_step: int >= 0, the step restored (0 for a fresh run).
        steps_per_epoch: int >= 1.
        epochs: int, the run's total epochs.
        callbacks: list of Keras callbacks.
        verbose: Keras verbosity.
    """
    epoch, batch = position(start_step, steps_per_epoch)
    common = dict(shuffle=False, callbacks=callbacks, verbose=verbose)  # The stream shuffles.
    if batch and epoch < epochs:  # Finish the interrupted epoch first.
        model.fit(stream_from(start_step), initial_epoch=epoch, epochs=epoch + 1,
                  steps_per_epoch=steps_per_epoch - batch, **common)
        epoch += 1
    if epoch < epochs:
        model.fit(stream_from(epoch * steps_per_epoch), initial_epoch=epoch, epochs=epochs,
                  steps_per_epoch=steps_per_epoch, **common)
