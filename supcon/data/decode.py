"""Image decoding for the pipelines: a whole image, or only the crop windows of a JPEG.

A training view of a large image is a random crop of it, so the pipeline decodes JPEG files
inside the crop windows only (`tf.io.decode_and_crop_jpeg`, as the official SimCLR/SupCon TF
code does for its one view): the windows of an image's views are drawn from the shape in the
JPEG header, then only the rows and columns of their union are decoded, once. Other formats
(PNG, BMP, GIF) are decoded whole and then cropped. Both give the pixels of decoding whole
and cropping (tests/data/test_decode.py).
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


def decode_windows(encoded, windows):
    """Decodes crop windows of an encoded image, a JPEG only inside the windows' union.

    The windows of a JPEG are drawn from the shape in its header; the smallest rectangle
    holding them all is decoded once (`tf.io.decode_and_crop_jpeg`) and each window is a
    slice of it. So V views of one image cost one decode of at most the whole image: each
    view decoding its own window measured ~1.4x a whole decode for two views of a
    500x375 JPEG (libjpeg entropy-decodes every row above a window's bottom edge).

    Args:
        encoded: scalar `tf.string`, the file's bytes.
        windows: function `image shape int32 [3] -> [(begin, size), ...]`, the `tf.slice`
            arguments `[y, x, 0]` and `[height, width, -1]` of each window (e.g. from
            `tf.image.stateless_sample_distorted_bounding_box`).

    Returns:
        list of uint8 `[height, width, 3]`, one per window: `tf.slice(decode(encoded),
        begin, size)` (for a JPEG with subsampled chroma, up to the union's edge
        columns; see tests/data/test_decode.py).
    """

    def jpeg():
        boxes = windows(tf.io.extract_jpeg_shape(encoded, output_type=tf.int32))
        top_left = tf.reduce_min(tf.stack([begin[:2] for begin, _ in boxes]), axis=0)
        bottom_right = tf.reduce_max(tf.stack([begin[:2] + size[:2] for begin, size in boxes]),
                                     axis=0)
        union = tf.io.decode_and_crop_jpeg(
            encoded, tf.concat([top_left, bottom_right - top_left], axis=0), channels=3)
        offset = tf.concat([top_left, [0]], axis=0)
        return [tf.slice(union, begin - offset, size) for begin, size in boxes]

    def other():
        image = decode(encoded)
        return [tf.slice(image, begin, size) for begin, size in windows(tf.shape(image))]

    crops = tf.cond(tf.io.is_jpeg(encoded), jpeg, other)
    return [tf.ensure_shape(crop, [None, None, 3]) for crop in crops]
