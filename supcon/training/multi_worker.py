"""Keras 3 `fit`/`evaluate` under `MultiWorkerMirroredStrategy`: the workaround, in one place.

Keras 3.15's TensorFlow trainer has two bugs with this strategy (keras-team/keras#20585,
tensorflow/tensorflow#72388); `keras_multi_worker_calls` works around both for the block it
guards and leaves every other strategy untouched. Delete this module when Keras fixes them.
"""

import contextlib

import tensorflow as tf


@contextlib.contextmanager
def keras_multi_worker_calls(models, strategy, *, local=False):
    """Lets Keras 3 `fit`/`evaluate` run under `MultiWorkerMirroredStrategy`.

    The two bugs:
      1. Before each `fit` Keras "symbolically builds" the model by reducing the first
         distributed batch with `strategy.reduce(..., axis=None)`, which fails on a
         `(views, labels)` structure ("Attempt to convert a value (PerReplica...)"). That only
         happens when the model remembers the strategy it was created under: with the reference
         cleared, Keras takes the strategy from the enclosing `strategy.scope()` (our models are
         built explicitly beforehand, so the build is not needed).
      2. It reduces each step's logs with `strategy.reduce("MEAN", v, axis=0)`, which fails on
         scalars. The step's logs are reshaped to `[1]` here, so that reduction becomes the
         mean over all replicas of all workers: the metrics are aggregated correctly.
    With `local=True` the block runs outside the strategy (evaluating the whole test set on
    every worker).

    Args:
        models: the `keras.Model`s whose `fit`/`evaluate` run in the block.
        strategy: the run's strategy.
        local: bool, run the calls without distribution. Defaults to False.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        yield
        return
    # Private Keras attribute and an instance-level `train_step`, on purpose: see the docstring.
    saved = [m._distribute_strategy for m in models]  # noqa: SLF001
    for model in models:
        model._distribute_strategy = None  # noqa: SLF001
        model.train_step = _rank1_logs(model.train_step)
    try:
        with contextlib.nullcontext() if local else strategy.scope():
            yield
    finally:
        for model, value in zip(models, saved):
            model._distribute_strategy = value  # noqa: SLF001
            del model.train_step


def _rank1_logs(train_step):
    def step(data):
        return {name: tf.reshape(value, [1]) for name, value in train_step(data).items()}

    return step
