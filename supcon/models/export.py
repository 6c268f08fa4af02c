"""Export a trained model as a self-contained TensorFlow SavedModel for serving.

The SavedModel holds only TensorFlow graphs and variables: it loads with
`tf.saved_model.load`, TF Serving or `saved_model_cli` in a process that never
imports `supcon` (or Keras).
"""

import keras
import tensorflow as tf

from supcon.models.heads import ClassifierHead

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"

SERVING_DEFAULT = "serving_default"
SERVING_BYTES = "serving_bytes"


def _image_size(encoder, image_size):
    static = tuple(encoder.input_shape[1:3])
    if image_size is not None:
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s <= 0 for s in size):
            raise ValueError(f"`image_size` must be a positive int or (height, width). Received: image_size={image_size!r}")
        if None not in static and static != size:
            raise ValueError(
                f"`image_size` must match the encoder's input size {static}. Received: image_size={image_size!r}"
            )
        return size
    if None in static:
        raise ValueError(
            "The encoder accepts any image size, so the export needs one: pass `image_size` "
            f"(the training resolution). Received: image_size=None, encoder.input_shape={encoder.input_shape}"
        )
    return static


def _classifier_layer(model, classifier):
    if classifier is None:
        return getattr(model, "classifier_head", None)
    if hasattr(classifier, "classifier_head") and isinstance(classifier.classifier_head, ClassifierHead):
        return classifier.classifier_head  # A LinearClassifier (or a model with a classifier).
    if isinstance(classifier, keras.layers.Layer):
        return classifier
    raise TypeError(
        "`classifier` must be a LinearClassifier, a model with a `classifier_head`, or a Keras "
        f"layer mapping embeddings to logits. Received: classifier={classifier!r}"
    )


def export_saved_model(model, path, *, classifier=None, image_size=None):
    """Writes a SavedModel with two serving signatures and preprocessing inside the graph.

    Signatures (each returns a dict of float32 tensors):
      * `serving_default(images)`: `images` float32 `[None, H, W, 3]`, pixel values in
        [0, 255] (the encoder's own `rescale` layer standardizes them).
      * `serving_bytes(image_bytes)`: `image_bytes` string `[None]` of encoded JPEG or PNG
        images of any size; decoded to RGB (grayscale/alpha converted to 3 channels) and
        resized bilinearly to `H x W`, then as above.

    Outputs:
      * `embedding` `[None, F]`: the encoder's pooled representation, always present.
      * `projection` `[None, D]`: only when `model` has a projection head (`SupConModel`).
      * `logits`, `probabilities` `[None, C]`: only when there is a classifier: the
        `classifier` argument if given (e.g. the stage-2 `LinearClassifier` trained on
        this encoder, whose linear layer is applied to `model`'s embedding), otherwise
        the model's own classifier head (`SupConModel(num_classes=...)`,
        `CrossEntropyModel`, `LinearClassifier`). Without any classifier these two keys
        are absent (never None or zeros). `probabilities = softmax(logits)`.

    Bad requests fail with an `InvalidArgumentError` whose message says what was
    expected and what was received: in-graph `tf.debugging` assertions check the rank,
    size, channels and non-empty batch of `images` and `image_bytes` (loaded signatures
    do not check shapes themselves), that pixel values lie in [0, 255], and that every
    string starts with a JPEG or PNG signature. A wrong dtype is refused by TensorFlow
    itself ("expected to be a float tensor but is a double tensor"); a string with a
    valid signature but a corrupt body fails in the decoder ("Invalid PNG",
    "Invalid JPEG data").

    Args:
        model: a `SupConModel`, `CrossEntropyModel` or `LinearClassifier` (anything with
            an `encoder` keras.Model, optional `projection_head` / `classifier_head`).
        path: str or path-like, output directory.
        classifier: optional `LinearClassifier` (or Keras layer mapping `[N, F]`
            embeddings to logits) providing `logits`/`probabilities`. Default None.
        image_size: int or `(H, W)`; required when the encoder's input size is dynamic,
            otherwise must match it. Default None.

    Returns:
        The sorted list of output names of both signatures, e.g.
        `["embedding", "logits", "probabilities", "projection"]`.

    Example:
        >>> import supcon, tempfile
        >>> encoder = supcon.models.resnet(18, stem="cifar", width_multiplier=0.125, input_shape=(16, 16, 3))
        >>> model = supcon.models.SupConModel(encoder, supcon.models.ProjectionHead(dims=(8,)))
        >>> export_saved_model(model, tempfile.mkdtemp())
        ['embedding', 'projection']
    """
    encoder = getattr(model, "encoder", None)
    if not isinstance(encoder, keras.Model):
        raise TypeError(
            f"`model` must have an `encoder` keras.Model (SupConModel, CrossEntropyModel, LinearClassifier). Received: model={model!r}"
        )
    height, width = _image_size(encoder, image_size)
    projection_head = getattr(model, "projection_head", None)
    classifier_head = _classifier_layer(model, classifier)
    if classifier_head is not None and not classifier_head.built:
        classifier_head.build(tuple(encoder.output_shape))
    if classifier is not None:
        # A classifier trained on another encoder would fail deep inside the export.
        embeddings = tf.zeros((1,) + tuple(encoder.output_shape[1:]))
        try:
            classifier_head(embeddings)
        except (ValueError, TypeError, tf.errors.InvalidArgumentError) as error:
            detail = " ".join(str(error).split())
            raise ValueError(
                f"`classifier` must map the model's embeddings [N, {encoder.output_shape[-1]}] to logits. "
                f"Received: classifier={classifier!r}, which fails on them: {detail[:300]}"
            ) from error

    def forward(images):
        # A loaded signature does not check the request's shape against its TensorSpec,
        # and TF folds `tf.rank` of a statically known rank into a constant, so the check
        # reads the *runtime* shape, zero-padded: a good request [N, H, W, 3] reads
        # [N, H, W, 3, 0, ...]; a wrong rank or size reads otherwise. `tf.size` (not
        # foldable: N is unknown) catches higher ranks with trailing empty dims.
        shape = tf.shape(images)
        padded_shape = tf.concat([shape, tf.zeros([5], tf.int32)], axis=0)
        well_formed = tf.reduce_all(
            [
                padded_shape[0] >= 1,
                tf.reduce_all(tf.equal(padded_shape[1:5], [height, width, 3, 0])),
                # int64: a (fine) batch of over 2**31 values must not overflow the check.
                tf.equal(
                    tf.size(images, out_type=tf.int64), tf.cast(padded_shape[0], tf.int64) * (height * width * 3)
                ),
            ]
        )
        shape_check = tf.debugging.Assert(
            well_formed,
            [
                f"`images` must be a float32 batch [N, {height}, {width}, 3] with N >= 1 "
                "(RGB, values in [0, 255]). Received: images.shape=",
                shape,
            ],
            summarize=8,
        )
        # The range check reduces over the images, so it runs only after the shape check.
        with tf.control_dependencies([shape_check]):
            in_range = tf.reduce_all(tf.logical_and(images >= 0.0, images <= 255.0))  # False on NaN.
            range_check = tf.debugging.Assert(
                in_range,
                [
                    "`images` must hold float32 pixel values in [0, 255] (not [0, 1], not NaN). "
                    "Received: min, max of images =",
                    tf.reduce_min(images),
                    tf.reduce_max(images),
                ],
            )
        # Asserts do not order other ops: without this dependency the convolutions could
        # run on a malformed request (and crash the server) before the assert fires.
        with tf.control_dependencies([shape_check, range_check]):
            images = tf.identity(images)
        embedding = encoder(images, training=False)
        outputs = {"embedding": tf.cast(embedding, tf.float32)}
        if projection_head is not None:
            outputs["projection"] = tf.cast(projection_head(embedding, training=False), tf.float32)
        if classifier_head is not None:
            logits = tf.cast(classifier_head(embedding), tf.float32)
            outputs["logits"] = logits
            outputs["probabilities"] = tf.nn.softmax(logits, axis=-1)
        return outputs

    def decode(image_bytes):
        # As in `forward`: the runtime shape, zero-padded, must read [N >= 1, 0].
        shape = tf.shape(image_bytes)
        padded_shape = tf.concat([shape, tf.zeros([2], tf.int32)], axis=0)
        well_formed = tf.reduce_all(
            [padded_shape[0] >= 1, tf.equal(padded_shape[1], 0), tf.equal(tf.size(image_bytes), padded_shape[0])]
        )
        shape_check = tf.debugging.Assert(
            well_formed,
            ["`image_bytes` must be a 1-D batch [N] (N >= 1) of JPEG or PNG strings. Received: image_bytes.shape=", shape],
            summarize=8,
        )
        with tf.control_dependencies([shape_check]):
            is_png = tf.equal(tf.strings.substr(image_bytes, 0, len(_PNG_MAGIC)), _PNG_MAGIC)
            is_jpeg = tf.equal(tf.strings.substr(image_bytes, 0, len(_JPEG_MAGIC)), _JPEG_MAGIC)
            is_image = is_png | is_jpeg
            # Indices and lengths, not the bytes: raw bytes in the message would not
            # even decode as text on the client.
            bad = tf.where(tf.logical_not(is_image))[:, 0]
            format_check = tf.debugging.Assert(
                tf.reduce_all(is_image),
                [
                    "`image_bytes` must hold JPEG or PNG encoded images. Received: elements "
                    "that are neither (empty, or another format) at indices",
                    bad,
                    "with byte lengths",
                    tf.gather(tf.strings.length(image_bytes), bad),
                ],
                summarize=8,
            )
        with tf.control_dependencies([shape_check, format_check]):
            image_bytes = tf.identity(image_bytes)

        def decode_one(data):
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
            image = tf.image.resize(image, (height, width), method="bilinear")
            return tf.ensure_shape(tf.cast(image, tf.float32), (height, width, 3))

        return tf.map_fn(decode_one, image_bytes, fn_output_signature=tf.TensorSpec((height, width, 3), tf.float32))

    archive = keras.export.ExportArchive()
    archive.track(model)
    if classifier is not None:
        archive.track(classifier_head)
    archive.add_endpoint(
        SERVING_DEFAULT,
        forward,
        input_signature=[tf.TensorSpec((None, height, width, 3), tf.float32, name="images")],
    )
    archive.add_endpoint(
        SERVING_BYTES,
        lambda image_bytes: forward(decode(image_bytes)),
        input_signature=[tf.TensorSpec((None,), tf.string, name="image_bytes")],
    )
    archive.write_out(str(path), verbose=False)
    names = ["embedding"]
    if projection_head is not None:
        names.append("projection")
    if classifier_head is not None:
        names += ["logits", "probabilities"]
    return sorted(names)
