"""Projection and classifier heads (Khosla et al. 2020, arXiv 2004.11362, §3.2)."""

import collections.abc

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="supcon")
class ProjectionHead(keras.layers.Layer):
    """Projection network `z = Proj(r)`, L2-normalized onto the unit hypersphere.

    Khosla et al. 2020 (arXiv 2004.11362) §3.2 "Projection Network": "a multi-layer
    perceptron with a single hidden layer of size 2048 and output vector of size
    D_P = 128 ... We again normalize the output of this network to lie on the unit
    hypersphere". Hidden layers are Dense(+BN)+ReLU; the last layer is a plain Dense
    with bias (no batch norm, no activation).

    The output is always float32: under a mixed-precision policy the matmuls run in
    the compute dtype, but the L2 normalization and everything the loss sees are
    float32 (dot products of unit vectors divided by a temperature of 0.1 lose too
    much precision in float16).

    Args:
        dims: int or sequence of ints, the output sizes of the layers. One dim gives
            a linear projection; more give an MLP with ReLU between layers.
            Default `(2048, 128)` (the paper's).
        batch_norm: bool, batch norm after each hidden Dense (whose bias is then
            dropped), as SimCLR v2. Default False.
        normalize: bool, L2-normalize the output. Default True.
        normalize_input: bool, L2-normalize the input embeddings first (the official TF code's
            `normalize_embedding`, its ImageNet SupCon runs). Default False.
        last_bias: bool, a bias in the last Dense (the official TF code has none; the PyTorch
            port has one). Default True.
        **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call args:
        inputs: float `[N, F]` embeddings.
        training: bool, batch-norm mode.

    Returns:
        float32 `[N, dims[-1]]` projections, unit L2 norm when `normalize=True`.

    Example:
        >>> head = ProjectionHead(dims=(64, 16))
        >>> z = head(keras.ops.ones((2, 32)))
        >>> tuple(z.shape)
        (2, 16)
    """

    def __init__(self, dims=(2048, 128), batch_norm=False, normalize=True, normalize_input=False,
                 last_bias=True, **kwargs):
        super().__init__(**kwargs)
        received = dims
        if isinstance(dims, int):
            dims = (dims,)
        if (
            not isinstance(dims, collections.abc.Sequence)
            or isinstance(dims, str)
            or not dims
            or any(isinstance(d, bool) or not isinstance(d, int) or d <= 0 for d in dims)
        ):
            raise ValueError(
                f"`dims` must be a positive int or a non-empty sequence of positive ints. Received: dims={received!r}"
            )
        dims = tuple(dims)
        self.dims = dims
        self.batch_norm = bool(batch_norm)
        self.normalize = bool(normalize)
        self.normalize_input = bool(normalize_input)
        self.last_bias = bool(last_bias)
        self._dense = []
        self._norms = []
        for i, units in enumerate(dims):
            hidden = i < len(dims) - 1
            self._dense.append(
                keras.layers.Dense(units, use_bias=self.last_bias if not hidden else not self.batch_norm,
                                   dtype=self.dtype_policy, name=f"dense{i}")
            )
            if hidden and self.batch_norm:
                self._norms.append(
                    keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, dtype=self.dtype_policy, name=f"bn{i}")
                )
        # `tf.train.Checkpoint` does not follow Keras' tracked lists: without these attributes
        # the head's variables (batch-norm moving statistics included) were missing from the
        # training checkpoints. Keras' own saving still finds the layers under `_dense`/`_norms`
        # first, so `.keras` files keep their layout.
        for i, layer in enumerate(self._dense):
            setattr(self, f"dense_layer_{i}", layer)
        for i, layer in enumerate(self._norms):
            setattr(self, f"norm_layer_{i}", layer)

    def build(self, input_shape):
        shape = tuple(input_shape)
        for i, dense in enumerate(self._dense):
            if not dense.built:
                dense.build(shape)
            shape = shape[:-1] + (dense.units,)
            if i < len(self._norms) and not self._norms[i].built:
                self._norms[i].build(shape)

    def call(self, inputs, training=None):
        x = _l2_normalize(ops.cast(inputs, "float32")) if self.normalize_input else inputs
        for i, dense in enumerate(self._dense):
            x = dense(x)
            if i < len(self._dense) - 1:
                if self.batch_norm:
                    x = self._norms[i](x, training=training)
                x = ops.relu(x)
        x = ops.cast(x, "float32")
        if self.normalize:
            x = _l2_normalize(x)
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1] + (self.dims[-1],)

    def compute_output_spec(self, inputs, training=None):
        return keras.KerasTensor(self.compute_output_shape(inputs.shape), dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update({"dims": list(self.dims), "batch_norm": self.batch_norm, "normalize": self.normalize,
                       "normalize_input": self.normalize_input, "last_bias": self.last_bias})
        return config


@keras.saving.register_keras_serializable(package="supcon")
class ClassifierHead(keras.layers.Layer):
    """One linear layer giving class logits from the (optionally normalized) embedding.

    Khosla et al. 2020 (arXiv 2004.11362) §3.2/§4: the classifier trained alongside the
    contrastive loss sees `stop_gradient(r)`, so it measures the representation
    without changing it (the paper's one-stage reference setup; Appendix "Training
    Details"). Logits are float32 whatever the dtype policy.

    Args:
        num_classes: int >= 2, number of classes.
        normalize: bool, L2-normalize the embedding before the linear layer. Default False.
        stop_gradient: bool, feed `stop_gradient(embedding)` so no gradient reaches the
            encoder. Default True (the contrastive setting); False for a cross-entropy
            model or the `ce_weight` option of `SupConModel`.
        **kwargs: `keras.layers.Layer` arguments.

    Call args:
        inputs: float `[N, F]` embeddings.

    Returns:
        float32 logits `[N, num_classes]`.

    Example:
        >>> head = ClassifierHead(10)
        >>> tuple(head(keras.ops.ones((2, 32))).shape)
        (2, 10)
    """

    def __init__(self, num_classes, normalize=False, stop_gradient=True, **kwargs):
        super().__init__(**kwargs)
        check_num_classes(num_classes)
        self.num_classes = num_classes
        self.normalize = bool(normalize)
        self.stop_gradient = bool(stop_gradient)
        self._dense = keras.layers.Dense(num_classes, dtype=self.dtype_policy, name="dense")

    def build(self, input_shape):
        if not self._dense.built:
            self._dense.build(tuple(input_shape))

    def call(self, inputs):
        x = inputs
        if self.stop_gradient:
            x = ops.stop_gradient(x)
        if self.normalize:
            x = ops.cast(_l2_normalize(ops.cast(x, "float32")), self.compute_dtype)
        return ops.cast(self._dense(x), "float32")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1] + (self.num_classes,)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(self.compute_output_shape(inputs.shape), dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            {"num_classes": self.num_classes, "normalize": self.normalize, "stop_gradient": self.stop_gradient}
        )
        return config


def check_num_classes(num_classes):
    """Raises unless `num_classes` is an int >= 2 (one class makes the softmax constant)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(
            "`num_classes` must be an int >= 2 (with one class the softmax is always 1 and "
            f"nothing is learned). Received: num_classes={num_classes!r}"
        )


def _l2_normalize(x):
    # Explicit epsilon inside the sqrt: a zero vector maps to zero instead of NaN.
    return x * ops.rsqrt(ops.maximum(ops.sum(ops.square(x), axis=-1, keepdims=True), 1e-12))
