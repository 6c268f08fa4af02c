"""Any `keras.applications` architecture as a supcon encoder (`--encoder=keras:NAME`).

`keras_application(name, input_shape)` returns a `keras.Model` with supcon's encoder contract:
float32 images `[N, H, W, 3]` with pixels in [0, 255] -> pooled features `[N, F]`. Inside: the
architecture's own `preprocess_input` (each family expects its own input range: caffe-style mean
subtraction for ResNet50, [-1, 1] for MobileNetV2, raw pixels for EfficientNet and ConvNeXt, which
normalize inside), then the architecture with `include_top=False, pooling="avg", weights=None`:
random initialization, nothing downloaded. Heads, losses, stage 2 and export are unchanged.

Keras 3 core provides the architectures; this module only adapts their input range and output so
that they stand where `supcon.models.resnet` stands.
"""

import sys

import keras

KERAS_PREFIX = "keras:"
# Trained, saved, reloaded and exported by the tests (tests/models/test_keras_encoders.py).
TESTED = ("EfficientNetB0",)
# Built and run forward by the tests (training each in the suite costs ~40-70 s of its budget).
BUILT_IN_TESTS = ("MobileNetV2", "ResNet50V2", "ConvNeXtTiny", "DenseNet121")


def application_names():
    """The architecture names `keras.applications` offers (e.g. "EfficientNetB0").

    Returns:
        sorted list of str.
    """
    return sorted(name for name in dir(keras.applications) if name[:1].isupper()
                  and callable(getattr(keras.applications, name)))


def keras_application(name, input_shape):
    """`keras.applications.NAME` as an encoder: pixels in [0, 255] -> pooled features.

    Args:
        name: str, a `keras.applications` architecture (`application_names()`), with or without
            the `keras:` prefix.
        input_shape: `(H, W, 3)` of the training images.

    Returns:
        A `keras.Model` named `NAME_encoder`, `[N, H, W, 3]` float32 -> `[N, F]`.

    Raises:
        ValueError: an unknown name (the message lists the known ones), or an input shape the
            architecture does not accept.

    Example:
        >>> encoder = keras_application("MobileNetV2", (32, 32, 3))
        >>> encoder.output_shape
        (None, 1280)
    """
    name = name[len(KERAS_PREFIX):] if name.startswith(KERAS_PREFIX) else name
    known = application_names()
    if name not in known:
        raise ValueError(f"`encoder` must be 'resnet' or 'keras:NAME' with NAME one of "
                         f"{', '.join(known)}. Received: encoder='keras:{name}'")
    constructor = getattr(keras.applications, name)
    preprocess = sys.modules[constructor.__module__].preprocess_input
    try:
        base = constructor(include_top=False, weights=None, pooling="avg",
                           input_shape=tuple(input_shape))
    except ValueError as error:
        reason = str(error).split(" Received:")[0].rstrip(" ;.")  # Keras's own "Received:" is ours below.
        raise ValueError(f"keras.applications.{name} does not accept images of shape {tuple(input_shape)}: "
                         f"{reason}; expected larger images (train.py: --image_size, e.g. 32 for the 16x16 "
                         f"digits). Received: input_shape={tuple(input_shape)}") from None
    images = keras.Input(tuple(input_shape), name="images")
    features = base(preprocess(images))
    return keras.Model(images, features, name=f"{name}_encoder")
