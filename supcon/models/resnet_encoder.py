"""ResNet encoders (He et al. 2016, arXiv 1512.03385 and 1603.05027) for SupCon.

SupCon (Khosla et al. 2020, arXiv 2004.11362, §3.2 "Encoder Network") uses a ResNet
whose final pooling layer gives the representation `r = Enc(x)`; this module builds
that encoder.

Why a hand-written builder and not `keras.applications` / keras-cv / keras-hub:
  * `keras.applications.ResNet50` puts a *bias* on every convolution (its trainable
    count without the top is 23,534,592, not torchvision's 23,508,032), strides the
    first 1x1 convolution of a bottleneck instead of the 3x3 one, has no 18/34/200
    variants and no CIFAR stem; `ResNet50V2` only exists at 50/101/152.
  * keras-cv 0.9 / keras-hub backbones need their own package at run time, have no
    depth 200 and no CIFAR stem, and do not zero-initialize the last batch-norm gamma.
So one small builder covers every (depth, version, stem) the paper and its baselines
use. It follows keras-hub's `ResNetBackbone`: one function driven by per-stage lists
(`_STAGE_FILTERS`, `_STAGE_STRIDES`, `_PRESETS[depth]`), blocks are plain functions
that give their layers stable names (`stage2_block0_conv1`, ...).

Architecture details, all as in torchvision's `resnet*` ("ResNet v1.5"):
  * convolutions have no bias (a batch norm always follows or precedes them);
  * the stride of a bottleneck sits on its 3x3 convolution;
  * a shortcut is the identity unless the shape changes, in which case it is a 1x1
    strided convolution (+ batch norm in v1);
  * batch norm momentum 0.9 and epsilon 1e-5 (PyTorch's 0.1 / 1e-5, the paper's TF code);
  * v1 zero-initializes the gamma of the last batch norm of every residual block
    (Goyal et al. 2017, arXiv 1706.02677 §5.1), so every block starts as the identity;
  * v2 is the full pre-activation ResNet (He et al. 2016, arXiv 1603.05027 Fig. 4e):
    BN-ReLU before every convolution, the strided-conv shortcut taken from the
    pre-activation, no batch norm after the stem, and one BN-ReLU after the last stage.

Input normalization: images arrive float32 in [0, 255], channels-last, 3 channels (the
project convention). The first layer (`rescale`, a `keras.layers.Normalization`)
standardizes them per channel with the ImageNet mean (123.675, 116.28, 103.53) and
standard deviation (58.395, 57.12, 57.375) in 0-255 units, i.e. torchvision's
`Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])` after `ToTensor()`.
These are fixed constants, not trainable weights, and are the same for every dataset.
"""

import math

import keras

# Stage layout of the paper's ResNets (He et al. 2016, Table 1); 200 from arXiv 1603.05027.
_PRESETS = {
    18: {"block": "basic", "blocks": (2, 2, 2, 2)},
    34: {"block": "basic", "blocks": (3, 4, 6, 3)},
    50: {"block": "bottleneck", "blocks": (3, 4, 6, 3)},
    101: {"block": "bottleneck", "blocks": (3, 4, 23, 3)},
    152: {"block": "bottleneck", "blocks": (3, 8, 36, 3)},
    200: {"block": "bottleneck", "blocks": (3, 24, 36, 3)},
}
_STAGE_FILTERS = (64, 128, 256, 512)
_STAGE_STRIDES = (1, 2, 2, 2)
_STEM_FILTERS = 64
_BOTTLENECK_EXPANSION = 4

# PyTorch / the paper's TF code; Keras' defaults (0.99, 1e-3) are tuned for other models.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5

# torchvision's ImageNet statistics, scaled to the 0-255 input range.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)

_VERSIONS = ("v1", "v2")
_STEMS = ("imagenet", "cifar")


def _kernel_initializer():
    # He init with fan_out, as torchvision's `kaiming_normal_(mode="fan_out")`.
    return keras.initializers.VarianceScaling(scale=2.0, mode="fan_out", distribution="untruncated_normal")


def _conv(x, filters, kernel_size, strides, name):
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer=_kernel_initializer(),
        name=name,
    )(x)


def _bn(x, name, synchronized, zero_gamma=False):
    return keras.layers.BatchNormalization(
        momentum=BN_MOMENTUM,
        epsilon=BN_EPSILON,
        gamma_initializer="zeros" if zero_gamma else "ones",
        synchronized=synchronized,
        name=name,
    )(x)


def _relu(x, name):
    return keras.layers.ReLU(name=name)(x)


def _needs_projection(x, out_filters, stride):
    return stride != 1 or x.shape[-1] != out_filters


def _basic_block_v1(x, filters, stride, name, synchronized):
    shortcut = x
    if _needs_projection(x, filters, stride):
        shortcut = _conv(x, filters, 1, stride, f"{name}_shortcut_conv")
        shortcut = _bn(shortcut, f"{name}_shortcut_bn", synchronized)
    y = _conv(x, filters, 3, stride, f"{name}_conv1")
    y = _relu(_bn(y, f"{name}_bn1", synchronized), f"{name}_relu1")
    y = _conv(y, filters, 3, 1, f"{name}_conv2")
    y = _bn(y, f"{name}_bn2", synchronized, zero_gamma=True)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return _relu(y, f"{name}_out")


def _bottleneck_block_v1(x, filters, stride, name, synchronized):
    out_filters = filters * _BOTTLENECK_EXPANSION
    shortcut = x
    if _needs_projection(x, out_filters, stride):
        shortcut = _conv(x, out_filters, 1, stride, f"{name}_shortcut_conv")
        shortcut = _bn(shortcut, f"{name}_shortcut_bn", synchronized)
    y = _conv(x, filters, 1, 1, f"{name}_conv1")
    y = _relu(_bn(y, f"{name}_bn1", synchronized), f"{name}_relu1")
    y = _conv(y, filters, 3, stride, f"{name}_conv2")
    y = _relu(_bn(y, f"{name}_bn2", synchronized), f"{name}_relu2")
    y = _conv(y, out_filters, 1, 1, f"{name}_conv3")
    y = _bn(y, f"{name}_bn3", synchronized, zero_gamma=True)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return _relu(y, f"{name}_out")


def _basic_block_v2(x, filters, stride, name, synchronized):
    preact = _relu(_bn(x, f"{name}_preact_bn", synchronized), f"{name}_preact_relu")
    shortcut = x
    if _needs_projection(x, filters, stride):
        shortcut = _conv(preact, filters, 1, stride, f"{name}_shortcut_conv")
    y = _conv(preact, filters, 3, stride, f"{name}_conv1")
    y = _relu(_bn(y, f"{name}_bn1", synchronized), f"{name}_relu1")
    y = _conv(y, filters, 3, 1, f"{name}_conv2")
    return keras.layers.Add(name=f"{name}_add")([shortcut, y])


def _bottleneck_block_v2(x, filters, stride, name, synchronized):
    out_filters = filters * _BOTTLENECK_EXPANSION
    preact = _relu(_bn(x, f"{name}_preact_bn", synchronized), f"{name}_preact_relu")
    shortcut = x
    if _needs_projection(x, out_filters, stride):
        shortcut = _conv(preact, out_filters, 1, stride, f"{name}_shortcut_conv")
    y = _conv(preact, filters, 1, 1, f"{name}_conv1")
    y = _relu(_bn(y, f"{name}_bn1", synchronized), f"{name}_relu1")
    y = _conv(y, filters, 3, stride, f"{name}_conv2")
    y = _relu(_bn(y, f"{name}_bn2", synchronized), f"{name}_relu2")
    y = _conv(y, out_filters, 1, 1, f"{name}_conv3")
    return keras.layers.Add(name=f"{name}_add")([shortcut, y])


_BLOCKS = {
    ("v1", "basic"): _basic_block_v1,
    ("v1", "bottleneck"): _bottleneck_block_v1,
    ("v2", "basic"): _basic_block_v2,
    ("v2", "bottleneck"): _bottleneck_block_v2,
}


def _scaled(filters, width_multiplier):
    return max(1, int(round(filters * width_multiplier)))


def resnet(depth, *, version="v1", width_multiplier=1.0, stem="imagenet", input_shape=None, synchronized_bn=False):
    """Builds a ResNet encoder mapping images to the pooled representation `r = Enc(x)`.

    Khosla et al. 2020 (arXiv 2004.11362) §3.2: "x -> Enc(.) -> r", the output of the
    final global average pooling layer (2048-D for ResNet-50, 512-D for ResNet-18/34).

    Args:
        depth: int, one of 18, 34 (basic blocks), 50, 101, 152, 200 (bottlenecks).
        version: "v1" (post-activation, the paper's; zero-initialized last BN gamma of
            every block) or "v2" (full pre-activation). Default "v1".
        width_multiplier: finite float > 0, scales the filters of the stem and every stage
            (rounded, at least 1). Default 1.0.
        stem: "imagenet" (7x7 stride-2 conv + 3x3 stride-2 max-pool) or "cifar"
            (3x3 stride-1 conv, no max-pool, for 32x32 images). Default "imagenet".
        input_shape: optional `(H, W, 3)`; H and W may be None. Default `(None, None, 3)`.
        synchronized_bn: bool, use cross-replica batch norm
            (`BatchNormalization(synchronized=True)`, TensorFlow backend), as the paper
            does on TPUs. Default False.

    Returns:
        A functional `keras.Model` named `resnet{depth}_{version}` mapping float32 images
        `[N, H, W, 3]` in [0, 255] to embeddings `[N, F]`, where
        `F = model.output_shape[-1]` = `512 * width_multiplier` (basic blocks) or
        `2048 * width_multiplier` (bottlenecks), up to rounding.

    Example:
        >>> encoder = resnet(18, stem="cifar", width_multiplier=0.25, input_shape=(32, 32, 3))
        >>> encoder.output_shape
        (None, 128)
    """
    if depth not in _PRESETS:
        raise ValueError(f"`depth` must be one of {sorted(_PRESETS)}. Received: depth={depth!r}")
    if version not in _VERSIONS:
        raise ValueError(f"`version` must be one of {_VERSIONS}. Received: version={version!r}")
    if stem not in _STEMS:
        raise ValueError(f"`stem` must be one of {_STEMS}. Received: stem={stem!r}")
    if (
        isinstance(width_multiplier, bool)
        or not isinstance(width_multiplier, (int, float))
        or not 0 < width_multiplier < math.inf  # Also refuses NaN.
    ):
        raise ValueError(
            f"`width_multiplier` must be a positive finite number. Received: width_multiplier={width_multiplier!r}"
        )
    received = input_shape
    if input_shape is None:
        input_shape = (None, None, 3)
    try:
        input_shape = tuple(input_shape)  # Also a TensorShape or a list.
    except TypeError:
        input_shape = ()
    if (
        len(input_shape) != 3
        or input_shape[-1] != 3
        or any(d is not None and (isinstance(d, bool) or not isinstance(d, int) or d <= 0) for d in input_shape[:2])
    ):
        raise ValueError(
            "`input_shape` must be (height, width, 3): channels-last RGB images, height and width "
            f"positive ints or None. Received: input_shape={received!r}"
        )
    if not isinstance(synchronized_bn, bool):
        raise TypeError(f"`synchronized_bn` must be a bool. Received: synchronized_bn={synchronized_bn!r}")

    preset = _PRESETS[depth]
    block_fn = _BLOCKS[(version, preset["block"])]

    images = keras.Input(shape=input_shape, name="images")
    x = keras.layers.Normalization(
        mean=list(IMAGENET_MEAN), variance=[s * s for s in IMAGENET_STD], name="rescale"
    )(images)

    stem_filters = _scaled(_STEM_FILTERS, width_multiplier)
    if stem == "imagenet":
        x = _conv(x, stem_filters, 7, 2, "stem_conv")
    else:
        x = _conv(x, stem_filters, 3, 1, "stem_conv")
    if version == "v1":
        x = _relu(_bn(x, "stem_bn", synchronized_bn), "stem_relu")
    if stem == "imagenet":
        x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)

    for stage, (filters, stride, num_blocks) in enumerate(zip(_STAGE_FILTERS, _STAGE_STRIDES, preset["blocks"])):
        for block in range(num_blocks):
            x = block_fn(
                x,
                _scaled(filters, width_multiplier),
                stride if block == 0 else 1,
                f"stage{stage + 1}_block{block}",
                synchronized_bn,
            )

    if version == "v2":
        x = _relu(_bn(x, "post_bn", synchronized_bn), "post_relu")
    embedding = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(images, embedding, name=f"resnet{depth}_{version}")
