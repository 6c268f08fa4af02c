"""Image decoding for the pipelines: a whole image, or only the crop window of a JPEG.

A training view of a large image is a random crop of it, so the pipeline decodes JPEG files
inside the crop window only (`tf.io.decode_and_crop_jpeg`, as the official SimCLR/SupCon TF
code does): the window is drawn from the shape in the JPEG header, then only the image rows
and columns it covers are decoded. Other formats (PNG, BMP, GIF) are decoded whole and then
cropped. Both give the same pixels as decoding whole and cropping (tests/data/test_decode.py).
"""

import tensorflow as tf


def decode(encoded):
    """Decodes an encoded image (JPEG, PNG, BMP, GIF's first frame) to uint8 RGB.

    Args:
        encoded: scalar `tf.string`, the file's bytes.

    Returns:
        uint8 `[H, W, 3]` (grayscale images repeated on 3 channels).
    """
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    return tf.ensure_shape(image, [None, None, 3])


def decode_window(encoded, window):
    """Decodes the crop window of an encoded image, only that window for a JPEG.

    Args:
        encoded: scalar `tf.string`, the file's bytes.
        window: function `image shape int32 [3] -> (begin, size)`, the `tf.slice` arguments
            `[y, x, 0]` and `[height, width, -1]` of the window (e.g. from
            `tf.image.stateless_sample_distorted_bounding_box`).

    Returns:
        uint8 `[height, width, 3]`: `tf.slice(decode(encoded), begin, size)`.
    """

    def jpeg():
        begin, size = window(tf.io.extract_jpeg_shape(encoded, output_type=tf.int32))
        crop_window = tf.stack([begin[0], begin[1], size[0], size[1]])
        return tf.io.decode_and_crop_jpeg(encoded, crop_window, channels=3)

    def other():
        image = decode(encoded)
        begin, size = window(tf.shape(image))
        return tf.slice(image, begin, size)

    return tf.ensure_shape(tf.cond(tf.io.is_jpeg(encoded), jpeg, other), [None, None, 3])
