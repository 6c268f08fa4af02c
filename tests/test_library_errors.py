"""Every input a user can get wrong fails before any work, with one clear message.

One table, `CASES`: `(id, call, error type, regex)`. `call(env)` makes the bad call;
`env` builds the shared tiny models, the exported SavedModel and the image folders
once per module, lazily (so running one case builds only what it needs). Each regex
checks the message names the argument, what was expected and what was received.

Eager calls raise `ValueError`/`TypeError` (`FileNotFoundError`/`NotADirectoryError`
for folder paths) at the public entry. Inside a `tf.function`
a check that needs the values (whole-number labels, non-negative distributions, a
batch size that is unknown while tracing) is a `tf.debugging` assertion: an
`InvalidArgumentError` with the same wording. (XLA ignores assertions: under
`jit_compile=True` only the static checks remain.) The served SavedModel can only
answer with `InvalidArgumentError`.
"""

import os
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from supcon import data
from supcon import losses
from supcon import models
from tests.data._helpers import write_image
from tests.models.conftest import make_tiny_encoder

SIZE = 16  # The tiny encoder's input size.
CLASSES = 3
InvalidArgument = tf.errors.InvalidArgumentError


def _unit(shape, seed=0):
    x = np.random.default_rng(seed).normal(size=shape)
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


Z = _unit((4, 2, 8))  # [batch, views, dim] L2-normalized features.
IDS = np.array([0, 1, 2, 0], np.int32)
ONE_HOT = np.eye(CLASSES, dtype=np.float32)[IDS]
VIEWS = np.random.default_rng(0).uniform(0, 255, (4, 2, SIZE, SIZE, 3)).astype(np.float32)


def _traced(fn, *specs):
    """`fn` as a `tf.function` whose inputs have the given (partly unknown) shapes."""
    return tf.function(fn, input_signature=[tf.TensorSpec(shape, dtype) for shape, dtype in specs])


def _the_one_warning(fn):
    """Runs `fn`; raises the single warning it emitted (AssertionError if not exactly one)."""

    def call(env):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fn(env)
        caught = [w for w in caught if issubclass(w.category, UserWarning)]
        assert len(caught) == 1, [str(w.message) for w in caught]
        raise caught[0].message

    return call


class _Env:
    """Tiny models, one exported SavedModel and image folders, built on first use."""

    def __init__(self, tmp_path_factory):
        self._factory = tmp_path_factory
        self._cache = {}

    def _once(self, key, build):
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def supcon_model(self, loss="supcon", num_classes=CLASSES):
        def build():
            keras.utils.set_random_seed(0)
            model = models.SupConModel(make_tiny_encoder(), models.ProjectionHead(dims=(8,)), num_classes=num_classes)
            model.compile(optimizer="sgd", loss={"supcon": losses.SupConLoss(), "genscl": losses.GenSCLLoss()}[loss])
            return model

        return self._once(f"supcon_model_{loss}_{num_classes}", build)

    def ce_model(self):
        def build():
            model = models.CrossEntropyModel(make_tiny_encoder(), CLASSES)
            model.compile(optimizer="sgd")
            return model

        return self._once("ce_model", build)

    def tmp_dir(self):
        return self._factory.mktemp("export")

    def linear_classifier(self):
        return self._once("linear", lambda: models.LinearClassifier(make_tiny_encoder(), CLASSES))

    def signature(self, name):
        def build():
            model = models.SupConModel(make_tiny_encoder(), models.ProjectionHead(dims=(8,)), num_classes=CLASSES)
            path = self._factory.mktemp("saved_model")
            models.export_saved_model(model, path)
            return tf.saved_model.load(str(path))  # In-process, as a client would.

        return self._once("saved_model", build).signatures[name]

    def folder(self, layout):
        """The path of an image-folder layout (all layouts are written on first use)."""

        def build():
            root = self._factory.mktemp("folders")

            def images(directory, count, broken=0):
                os.makedirs(directory, exist_ok=True)
                for i in range(count):
                    write_image(str(directory / f"{i}.png"), (40 * i, 100, 200), size=(8, 8))
                for i in range(broken):
                    (directory / f"broken{i}.jpg").write_bytes(b"not a jpeg")

            (root / "a_file.png").write_bytes(b"x")
            os.makedirs(root / "empty")
            for name in ("a", "b"):
                os.makedirs(root / "no_images" / name)
                (root / "no_images" / name / "notes.txt").write_text("not an image")
            images(root / "one_class" / "cat", 3)
            images(root / "stray_folder" / "cat", 3)
            images(root / "stray_folder" / "dog", 3)
            os.makedirs(root / "stray_folder" / ".ipynb_checkpoints")
            images(root / "unreadable" / "cat", 0, broken=3)
            images(root / "unreadable" / "dog", 0, broken=3)
            images(root / "some_unreadable" / "cat", 6, broken=1)
            images(root / "some_unreadable" / "dog", 6, broken=1)
            images(root / "splits_differ" / "train" / "cat", 2)
            images(root / "splits_differ" / "train" / "dog", 2)
            images(root / "splits_differ" / "test" / "cat", 1)
            images(root / "splits_differ" / "test" / "bird", 1)
            images(root / "train_only" / "train" / "cat", 2)
            images(root / "train_only" / "train" / "dog", 2)
            images(root / "too_few" / "cat", 2)
            images(root / "too_few" / "dog", 2)
            return root

        return str(self._once("folders", build) / layout)


# ---------------------------------------------------------------------------------------
# The table: (id, call(env), expected exception type, regex the message must match).
# ---------------------------------------------------------------------------------------

_RECEIVED_SHAPE = r"Received: images\.shape=\] \[{}\]"

CASES = [
    # --- Loss options: construction or call, before any work. ---
    ("loss/temperature_zero", lambda env: losses.supcon_loss(Z, IDS, temperature=0),
     ValueError, r"`temperature` must be a positive finite number\. Received: temperature=0$"),
    ("loss/temperature_inf", lambda env: losses.supcon_loss(Z, IDS, temperature=float("inf")),
     ValueError, r"`temperature` must be a positive finite number\. Received: temperature=inf"),
    ("loss/temperature_string", lambda env: losses.SupConLoss(temperature="0.1"),
     ValueError, r"`temperature` must be a positive finite number\. Received: temperature='0\.1'"),
    ("loss/temperature_nan_simclr", lambda env: losses.SimCLRLoss(temperature=float("nan")),
     ValueError, r"`temperature` must be a positive finite number\. Received: temperature=nan"),
    ("loss/base_temperature_negative", lambda env: losses.supcon_loss(Z, IDS, base_temperature=-1.0),
     ValueError, r"`base_temperature` must be a positive finite number or None\. Received: base_temperature=-1\.0"),
    ("loss/block_size_zero", lambda env: losses.GenSCLLoss(block_size=0),
     ValueError, r"`block_size` must be None or an integer >= 1\. Received: block_size=0"),
    ("loss/block_size_float", lambda env: losses.supcon_loss(Z, IDS, block_size=2.5),
     ValueError, r"`block_size` must be None or an integer >= 1\. Received: block_size=2\.5"),
    ("loss/positives_cap_negative", lambda env: losses.supcon_loss(Z, IDS, positives_cap=-1),
     ValueError, r"`positives_cap` must be None or an integer >= 0\. Received: positives_cap=-1"),
    ("loss/positives_cap_bool", lambda env: losses.SupConLossLayer(positives_cap=True),
     ValueError, r"`positives_cap` must be None or an integer >= 0\. Received: positives_cap=True"),
    ("loss/contrast_mode_unknown", lambda env: losses.genscl_loss(Z, ONE_HOT, contrast_mode="both"),
     ValueError, r"`contrast_mode` must be one of 'all', 'one'\. Received: contrast_mode='both'"),
    ("loss/summation_unknown", lambda env: losses.SupConLoss(summation="middle"),
     ValueError, r"`summation` must be one of 'outside', 'inside'\. Received: summation='middle'"),
    ("loss/denominator_unknown", lambda env: losses.supcon_loss(Z, IDS, denominator="negatives"),
     ValueError, r"`denominator` must be one of 'all', 'one_positive', 'only_negatives'\. "
                 r"Received: denominator='negatives'"),
    # --- Features. ---
    ("features/rank_2", lambda env: losses.supcon_loss(Z[:, 0], IDS),
     ValueError, r"`features` must have shape \[batch, views, dim\].*Received: features\.shape=\(4, 8\)"),
    ("features/int_dtype", lambda env: losses.genscl_loss(Z.astype(np.int32), ONE_HOT),
     ValueError, r"`features` must be a floating-point tensor.*Received: features\.dtype=int32"),
    ("features/none", lambda env: losses.supcon_loss(None, IDS),
     TypeError, r"`features` must be a float tensor \[batch, views, dim\].*Received: features=None"),
    ("features/no_views", lambda env: losses.supcon_loss(np.zeros((4, 0, 8), np.float32), IDS),
     ValueError, r"`features` must have at least one view.*Received: features\.shape=\(4, 0, 8\)"),
    ("features/empty_embedding", lambda env: losses.genscl_loss(np.zeros((4, 2, 0), np.float32), ONE_HOT),
     ValueError, r"non-empty embedding.*Received: features\.shape=\(4, 2, 0\)"),
    ("features/no_views_traced", lambda env: _traced(
        lambda z: losses.supcon_loss(z), ([None, None, None], tf.float32))(np.zeros((4, 0, 8), np.float32)),
     InvalidArgument, r"`features` must have at least one view.*Received: views, dim =\] \[0 8\]"),
    # --- SupCon labels and masks. ---
    ("labels/wrong_length", lambda env: losses.supcon_loss(Z, [0, 1, 2]),
     ValueError, r"`labels` must have one row per sample of `features` \(batch 4\)\. "
                 r"Received: labels\.shape=\(3,\)"),
    ("labels/wrong_length_traced", lambda env: _traced(
        losses.supcon_loss, ([None, 2, 8], tf.float32), ([None], tf.int32))(Z, [0, 1, 2]),
     InvalidArgument, r"`labels` must have one row per sample of `features`.*\[3\].*\[4\]"),
    ("labels/int_rank_2", lambda env: losses.supcon_loss(Z, ONE_HOT.astype(np.int32)),
     ValueError, r"Integer `labels` must be class ids \[batch\].*as floats.*"
                 r"Received: labels\.dtype=int32, labels\.shape=\(4, 3\)"),
    ("labels/fractional", lambda env: losses.supcon_loss(Z, [0.0, 0.5, 1.0, 1.0]),
     ValueError, r"`labels` must be whole-number class ids\. Received: labels=\[0\. +0\.5 1\. +1\. *\]"),
    ("labels/fractional_keras_loss", lambda env: losses.SupConLoss()(np.array([0.0, 1.5, 1.0, 1.0]), Z),
     ValueError, r"`labels` must be whole-number class ids\. Received: labels=\[0\. +1\.5"),
    ("labels/fractional_traced", lambda env: _traced(
        losses.supcon_loss, ([4, 2, 8], tf.float32), ([4], tf.float32))(Z, [0.0, 0.5, 1.0, 1.0]),
     InvalidArgument, r"`labels` must be whole-number class ids\. Received: labels=\] \[0 0\.5 1 1\]"),
    ("labels/soft_distribution", lambda env: losses.supcon_loss(Z, np.full((4, 3), 1 / 3, np.float32)),
     ValueError, r"`labels` must be one-hot rows.*use `genscl_loss` for soft label distributions\. "
                 r"Received: labels="),
    ("labels/rank_3", lambda env: losses.supcon_loss(Z, np.zeros((4, 2, 3), np.float32)),
     ValueError, r"`labels` must be class ids \[batch\] or one-hot \[batch, classes\].*"
                 r"Received: labels\.shape=\(4, 2, 3\)"),
    ("labels/strings", lambda env: losses.supcon_loss(Z, ["cat", "dog", "cat", "dog"]),
     ValueError, r"`labels` must be int class ids.*Received: labels\.dtype=string"),
    ("labels/and_mask", lambda env: losses.supcon_loss(Z, IDS, mask=np.eye(4)),
     ValueError, r"Pass either `labels` or `mask`, not both\. Received: labels\.shape=\(4,\), mask\.shape=\(4, 4\)"),
    ("mask/wrong_columns", lambda env: losses.supcon_loss(Z, mask=np.ones((4, 3), np.float32)),
     ValueError, r"`mask` must have one column per sample of `features` \(batch 4\)\. "
                 r"Received: mask\.shape=\(4, 3\)"),
    ("mask/negative", lambda env: losses.supcon_loss(Z, mask=-np.eye(4, dtype=np.float32)),
     ValueError, r"`mask` must be non-negative.*Received: mask=\[\[-1\."),
    ("loss_layer/not_a_pair", lambda env: losses.SupConLossLayer()(Z),
     ValueError, r"must be called on a pair \[features, labels\]\. Received: inputs of type"),
    # --- GenSCL label distributions. ---
    ("distributions/int_one_hot", lambda env: losses.genscl_loss(Z, ONE_HOT.astype(np.int32)),
     ValueError, r"`label_distributions` must be float label distributions.*for int class ids.*"
                 r"Received: label_distributions\.dtype=int32, label_distributions\.shape=\(4, 3\)"),
    ("distributions/int_class_ids", lambda env: losses.genscl_loss(Z, IDS),
     ValueError, r"`label_distributions` must be float.*Received: label_distributions\.dtype=int32"),
    ("distributions/negative", lambda env: losses.genscl_loss(Z, [[1.5, -0.5], [1, 0], [0, 1], [0, 1]]),
     ValueError, r"`label_distributions` must hold finite, non-negative rows with a positive sum\. "
                 r"Received: label_distributions=\[\[ *1\.5 +-0\.5\]"),
    ("distributions/all_zero_row", lambda env: losses.GenSCLLoss()(np.array([[0.0, 0], [1, 0], [0, 1], [0, 1]]), Z),
     ValueError, r"`label_distributions` must hold .*positive sum\. Received: label_distributions=\[\[0\. 0\.\]"),
    ("distributions/nan", lambda env: losses.genscl_loss(Z, [[np.nan, 0], [1, 0], [0, 1], [0, 1]]),
     ValueError, r"`label_distributions` must hold finite.*Received: label_distributions=\[\[nan"),
    ("distributions/views_mismatch", lambda env: losses.genscl_loss(Z, np.full((4, 3, 2), 0.5, np.float32)),
     ValueError, r"one distribution per view \(\[batch, 2, classes\]\)\. "
                 r"Received: label_distributions\.shape=\(4, 3, 2\)"),
    ("distributions/wrong_batch", lambda env: losses.genscl_loss(Z, np.full((3, 2), 0.5, np.float32)),
     ValueError, r"`label_distributions` must have one row per sample.*Received: label_distributions\.shape=\(3, 2\)"),
    ("distributions/rank_1", lambda env: losses.GenSCLLoss()(np.array([0.0, 1, 2, 0]), Z),
     ValueError, r"must be \[batch, classes\] or \[batch, views, classes\]\. "
                 r"Received: label_distributions\.shape=\(4,\)"),
    ("distributions/negative_traced", lambda env: _traced(
        losses.genscl_loss, ([None, None, None], tf.float32), ([None, None], tf.float32))(
        Z, [[1.5, -0.5], [1, 0], [0, 1], [0, 1]]),
     InvalidArgument, r"`label_distributions` must hold finite, non-negative rows.*Received: label_distributions=\]"),
    # --- Model constructors. ---
    ("resnet/depth", lambda env: models.resnet(19),
     ValueError, r"`depth` must be one of \[18, 34, 50, 101, 152, 200\]\. Received: depth=19"),
    ("resnet/depth_string", lambda env: models.resnet("18"),
     ValueError, r"`depth` must be one of .*Received: depth='18'"),
    ("resnet/width_zero", lambda env: models.resnet(18, width_multiplier=0),
     ValueError, r"`width_multiplier` must be a positive finite number\. Received: width_multiplier=0"),
    ("resnet/width_nan", lambda env: models.resnet(18, width_multiplier=float("nan")),
     ValueError, r"`width_multiplier` must be a positive finite number\. Received: width_multiplier=nan"),
    ("resnet/version", lambda env: models.resnet(18, version="v3"),
     ValueError, r"`version` must be one of \('v1', 'v2'\)\. Received: version='v3'"),
    ("resnet/stem", lambda env: models.resnet(18, stem="tiny"),
     ValueError, r"`stem` must be one of \('imagenet', 'cifar'\)\. Received: stem='tiny'"),
    ("resnet/input_grayscale", lambda env: models.resnet(18, input_shape=(32, 32, 1)),
     ValueError, r"`input_shape` must be \(height, width, 3\).*Received: input_shape=\(32, 32, 1\)"),
    ("resnet/input_zero_height", lambda env: models.resnet(18, input_shape=(0, 32, 3)),
     ValueError, r"`input_shape` must be .*positive ints or None\. Received: input_shape=\(0, 32, 3\)"),
    ("resnet/input_int", lambda env: models.resnet(18, input_shape=32),
     ValueError, r"`input_shape` must be \(height, width, 3\).*Received: input_shape=32"),
    ("resnet/synchronized_bn", lambda env: models.resnet(18, synchronized_bn="yes"),
     TypeError, r"`synchronized_bn` must be a bool\. Received: synchronized_bn='yes'"),
    ("head/dims_empty", lambda env: models.ProjectionHead(dims=()),
     ValueError, r"`dims` must be a positive int or a non-empty sequence of positive ints\. Received: dims=\(\)"),
    ("head/dims_zero", lambda env: models.ProjectionHead(dims=(64, 0)),
     ValueError, r"`dims` must be .*Received: dims=\(64, 0\)"),
    ("head/dims_none", lambda env: models.ProjectionHead(dims=None),
     ValueError, r"`dims` must be .*Received: dims=None"),
    ("head/one_class", lambda env: models.ClassifierHead(1),
     ValueError, r"`num_classes` must be an int >= 2.*Received: num_classes=1"),
    ("supcon_model/encoder", lambda env: models.SupConModel("resnet18"),
     TypeError, r"`encoder` must be a keras\.Model\. Received: encoder='resnet18'"),
    ("supcon_model/projection_head", lambda env: models.SupConModel(make_tiny_encoder(), projection_head=128),
     TypeError, r"`projection_head` must be a Keras layer.*Received: projection_head=128"),
    ("supcon_model/one_class", lambda env: models.SupConModel(make_tiny_encoder(), num_classes=1),
     ValueError, r"`num_classes` must be an int >= 2.*Received: num_classes=1"),
    ("supcon_model/ce_weight_negative",
     lambda env: models.SupConModel(make_tiny_encoder(), num_classes=3, ce_weight=-1.0),
     ValueError, r"`ce_weight` must be a finite number >= 0\. Received: ce_weight=-1\.0"),
    ("supcon_model/ce_weight_without_classifier", lambda env: models.SupConModel(make_tiny_encoder(), ce_weight=0.5),
     ValueError, r"`ce_weight` > 0 needs a classifier: pass `num_classes`\. Received: ce_weight=0\.5"),
    ("ce_model/zero_classes", lambda env: models.CrossEntropyModel(make_tiny_encoder(), 0),
     ValueError, r"`num_classes` must be an int >= 2.*Received: num_classes=0"),
    ("ce_model/label_smoothing", lambda env: models.CrossEntropyModel(make_tiny_encoder(), 3, label_smoothing=1.0),
     ValueError, r"`label_smoothing` must be in \[0, 1\)\. Received: label_smoothing=1\.0"),
    ("linear/encoder", lambda env: models.LinearClassifier(None, 3),
     TypeError, r"`encoder` must be a keras\.Model\. Received: encoder=None"),
    ("linear/one_class", lambda env: models.LinearClassifier(make_tiny_encoder(), 1),
     ValueError, r"`num_classes` must be an int >= 2.*Received: num_classes=1"),
    # --- Wrong data to the models' steps (eager, traced and through fit). ---
    ("fit/views_rank_3", lambda env: env.supcon_model().train_step((VIEWS[:, 0, :, :, 0], IDS)),
     ValueError, r"Inputs must be images \[B, H, W, C\] or views \[B, V, H, W, C\]\. "
                 r"Received: inputs with rank 3 and shape=\(4, 16, 16\)"),
    ("fit/views_dict", lambda env: env.supcon_model().train_step(({"views": VIEWS}, IDS)),
     TypeError, r"Inputs must be .*not a dict\. Received: inputs with keys=\['views'\]"),
    ("fit/image_size", lambda env: env.supcon_model().train_step((np.zeros((4, 2, 32, 32, 3), np.float32), IDS)),
     ValueError, r"Images must be \[B, 16, 16, 3\] \(or views \[B, V, 16, 16, 3\]\) for this encoder.*"
                 r"Received: inputs with image shape \(32, 32, 3\)"),
    ("fit/grayscale", lambda env: env.ce_model().train_step((np.zeros((4, SIZE, SIZE, 1), np.float32), IDS)),
     ValueError, r"Images must be \[B, 16, 16, 3\].*Received: inputs with image shape \(16, 16, 1\)"),
    ("fit/int_one_hot_labels", lambda env: env.supcon_model().train_step((VIEWS, ONE_HOT.astype(np.int32))),
     ValueError, r"Integer labels must be class ids \[B\].*as floats\. Received: y\.dtype=int32, y\.shape=\(4, 3\)"),
    ("fit/int_one_hot_labels_keras_fit",
     lambda env: env.supcon_model("genscl").fit(VIEWS, ONE_HOT.astype(np.int64), epochs=1, verbose=0),
     ValueError, r"Integer labels must be class ids \[B\].*Received: y\.dtype=int64, y\.shape=\(None, 3\)"),
    ("fit/labels_wrong_length", lambda env: env.ce_model().train_step((VIEWS, [0, 1, 2, 0, 1])),
     ValueError, r"`y` must have one row per sample of the inputs \(batch 4\)\. Received: y\.shape=\(5,\)"),
    ("fit/labels_wrong_length_dataset", lambda env: env.ce_model().fit(
        tf.data.Dataset.from_tensor_slices((VIEWS, IDS)).batch(4).map(lambda x, y: (x, y[:3])), verbose=0, shuffle=False),
     InvalidArgument, r"`y` must have one row per sample of the inputs.*\[3\].*\[4\]"),
    ("fit/sample_weight_wrong_length", lambda env: env.supcon_model().train_step((VIEWS, IDS, np.ones(3))),
     ValueError, r"`sample_weight` must have one row per sample of the inputs \(batch 4\)\. "
                 r"Received: sample_weight\.shape=\(3,\)"),
    ("fit/fractional_labels", lambda env: env.supcon_model().train_step((VIEWS, IDS + 0.5)),
     ValueError, r"`y` must hold whole-number class ids in \[0, 3\).*Received: y=\[0\.5 1\.5 2\.5 0\.5\]"),
    ("fit/fractional_labels_no_classifier", lambda env: env.supcon_model(num_classes=None).train_step((VIEWS, IDS + 0.5)),
     ValueError, r"`labels` must be whole-number class ids\. Received: labels=\[0\.5 1\.5 2\.5 0\.5\]"),
    ("fit/fractional_labels_traced", lambda env: tf.function(env.ce_model().train_step)(
        (VIEWS, (IDS + 0.5).astype(np.float32))),
     InvalidArgument, r"`y` must hold whole-number class ids in \[0, 3\).*Received: y=\] \[0\.5 1\.5 2\.5 0\.5\]"),
    ("fit/class_id_out_of_range", lambda env: env.ce_model().train_step((VIEWS, IDS + 1)),
     ValueError, r"`y` must hold whole-number class ids in \[0, 3\) \(num_classes=3\)\. Received: y=\[1 2 3 1\]"),
    ("fit/negative_class_id", lambda env: env.supcon_model().train_step((VIEWS, IDS - 1)),
     ValueError, r"`y` must hold whole-number class ids in \[0, 3\).*Received: y=\[-1 0 1 -1\]"),
    ("fit/distributions_wrong_classes", lambda env: env.ce_model().train_step((VIEWS, np.full((4, 4), 0.25, np.float32))),
     ValueError, r"Label distributions \[B, C\] / \[B, V, C\] must have C = num_classes = 3\. Received: y\.shape=\(4, 4\)"),
    ("fit/distributions_not_summing_to_1", lambda env: env.ce_model().train_step((VIEWS, ONE_HOT * 2)),
     ValueError, r"`y` must hold label distributions: non-negative rows summing to 1\. Received: y=\[\[2\. 0\. 0\.\]"),
    ("fit/distributions_not_summing_to_1_traced", lambda env: tf.function(env.ce_model().train_step)((VIEWS, ONE_HOT * 2)),
     InvalidArgument, r"`y` must hold label distributions: non-negative rows summing to 1\. Received: y=\] \[\[2 0 0\]"),
    ("fit/distributions_wrong_views", lambda env: env.supcon_model("genscl").train_step(
        (VIEWS, np.full((4, 3, 3), 1 / 3, np.float32))),
     ValueError, r"one distribution per view \(\[batch, 2, classes\]\)\. Received: label_distributions\.shape=\(4, 3, 3\)"),
    ("fit/negative_distributions", lambda env: env.supcon_model("genscl").train_step((VIEWS, ONE_HOT * 2 - 0.5)),
     ValueError, r"`y` must hold label distributions: non-negative rows summing to 1\. Received: y=\[\[ *1\.5 -0\.5"),
    ("fit/negative_distributions_no_classifier", lambda env: env.supcon_model("genscl", None).train_step(
        (VIEWS, ONE_HOT * 2 - 0.5)),
     ValueError, r"`label_distributions` must hold finite, non-negative rows.*Received: label_distributions=\[\[ *1\.5"),
    ("fit/no_labels_ce", lambda env: env.ce_model().train_step((VIEWS,)),
     ValueError, r"CrossEntropyModel needs labels: the data must be \(images, labels\)\. Received: y=None"),
    ("fit/no_labels_genscl", lambda env: env.supcon_model("genscl").train_step((VIEWS,)),
     ValueError, r"GenSCLLoss needs label distributions.*Received: y=None"),
    ("fit/no_labels_classifier", lambda env: env.supcon_model().train_step((VIEWS,)),
     ValueError, r"A SupConModel with `num_classes` needs labels to train its classifier\. Received: y=None"),
    ("linear/image_size", lambda env: env.linear_classifier()(np.zeros((2, 8, 8, 3), np.float32)),
     ValueError, r"Images must be \[B, 16, 16, 3\].*Received: inputs with image shape \(8, 8, 3\)"),
    ("linear/views", lambda env: env.linear_classifier()(VIEWS),
     ValueError, r"LinearClassifier takes images \[B, H, W, 3\]\. Received: inputs with shape=\(4, 2, 16, 16, 3\)"),
    # --- export_saved_model arguments. ---
    ("export/image_size_mismatch", lambda env: models.export_saved_model(
        env.ce_model(), env.tmp_dir(), image_size=32),
     ValueError, r"`image_size` must match the encoder's input size \(16, 16\)\. Received: image_size=32"),
    ("export/no_encoder", lambda env: models.export_saved_model(make_tiny_encoder(), env.tmp_dir()),
     TypeError, r"`model` must have an `encoder` keras\.Model.*Received: model="),
    ("export/classifier", lambda env: models.export_saved_model(env.ce_model(), env.tmp_dir(), classifier="linear"),
     TypeError, r"`classifier` must be a LinearClassifier.*Received: classifier='linear'"),
    ("export/classifier_of_another_encoder", lambda env: models.export_saved_model(
        env.ce_model(), env.tmp_dir(), classifier=models.LinearClassifier(make_tiny_encoder(embedding_dim=32), CLASSES)),
     ValueError, r"`classifier` must map the model's embeddings \[N, 16\] to logits\. Received: classifier=.*"
                 r"expected axis -1 of input shape to have value 32"),
    # --- The served SavedModel: serving_default(images). ---
    ("serving/float64", lambda env: env.signature("serving_default")(images=tf.zeros([1, SIZE, SIZE, 3], tf.float64)),
     InvalidArgument, r"expected to be a float tensor but is a double tensor"),
    ("serving/uint8", lambda env: env.signature("serving_default")(images=tf.zeros([1, SIZE, SIZE, 3], tf.uint8)),
     InvalidArgument, r"expected to be a float tensor but is a uint8 tensor"),
    ("serving/size", lambda env: env.signature("serving_default")(images=tf.zeros([2, 32, 32, 3])),
     InvalidArgument, r"`images` must be a float32 batch \[N, 16, 16, 3\] with N >= 1.*" + _RECEIVED_SHAPE.format("2 32 32 3")),
    ("serving/grayscale", lambda env: env.signature("serving_default")(images=tf.zeros([1, SIZE, SIZE, 1])),
     InvalidArgument, r"`images` must be a float32 batch \[N, 16, 16, 3\].*" + _RECEIVED_SHAPE.format("1 16 16 1")),
    ("serving/rgba", lambda env: env.signature("serving_default")(images=tf.zeros([1, SIZE, SIZE, 4])),
     InvalidArgument, r"`images` must be a float32 batch.*" + _RECEIVED_SHAPE.format("1 16 16 4")),
    ("serving/rank_3", lambda env: env.signature("serving_default")(images=tf.zeros([SIZE, SIZE, 3])),
     InvalidArgument, r"`images` must be a float32 batch.*" + _RECEIVED_SHAPE.format("16 16 3")),
    ("serving/rank_5", lambda env: env.signature("serving_default")(images=tf.zeros([1, 2, SIZE, SIZE, 3])),
     InvalidArgument, r"`images` must be a float32 batch.*" + _RECEIVED_SHAPE.format("1 2 16 16 3")),
    ("serving/rank_5_trailing_empty", lambda env: env.signature("serving_default")(images=tf.zeros([1, SIZE, SIZE, 3, 0])),
     InvalidArgument, r"`images` must be a float32 batch.*" + _RECEIVED_SHAPE.format("1 16 16 3 0")),
    ("serving/scalar", lambda env: env.signature("serving_default")(images=tf.constant(1.0)),
     InvalidArgument, r"`images` must be a float32 batch.*" + _RECEIVED_SHAPE.format("")),
    ("serving/empty_batch", lambda env: env.signature("serving_default")(images=tf.zeros([0, SIZE, SIZE, 3])),
     InvalidArgument, r"with N >= 1.*" + _RECEIVED_SHAPE.format("0 16 16 3")),
    ("serving/above_255", lambda env: env.signature("serving_default")(images=tf.fill([1, SIZE, SIZE, 3], 300.0)),
     InvalidArgument, r"`images` must hold float32 pixel values in \[0, 255\].*Received: min, max of images =\] \[300\] \[300\]"),
    ("serving/negative", lambda env: env.signature("serving_default")(images=tf.fill([1, SIZE, SIZE, 3], -1.0)),
     InvalidArgument, r"pixel values in \[0, 255\].*Received: min, max of images =\] \[-1\]"),
    ("serving/nan", lambda env: env.signature("serving_default")(images=tf.fill([1, SIZE, SIZE, 3], np.nan)),
     InvalidArgument, r"pixel values in \[0, 255\] \(not \[0, 1\], not NaN\).*Received: min, max of images =\] \[nan\]"),
    # --- The served SavedModel: serving_bytes(image_bytes). ---
    ("serving_bytes/not_an_image", lambda env: env.signature("serving_bytes")(image_bytes=tf.constant([b"hello world"])),
     InvalidArgument, r"`image_bytes` must hold JPEG or PNG encoded images\. Received: elements that are neither.*"
                      r"at indices\] \[0\] \[with byte lengths\] \[11\]"),
    ("serving_bytes/empty_string", lambda env: env.signature("serving_bytes")(
        image_bytes=tf.stack([tf.io.encode_png(tf.zeros([4, 4, 3], tf.uint8)), tf.constant(b"")])),
     InvalidArgument, r"`image_bytes` must hold JPEG or PNG.*at indices\] \[1\] \[with byte lengths\] \[0\]"),
    ("serving_bytes/gif", lambda env: env.signature("serving_bytes")(image_bytes=tf.constant([b"GIF89a" + bytes(20)])),
     InvalidArgument, r"`image_bytes` must hold JPEG or PNG encoded images.*\[with byte lengths\] \[26\]"),
    ("serving_bytes/empty_batch", lambda env: env.signature("serving_bytes")(image_bytes=tf.constant([], tf.string)),
     InvalidArgument, r"`image_bytes` must be a 1-D batch \[N\] \(N >= 1\).*Received: image_bytes\.shape=\] \[0\]"),
    ("serving_bytes/scalar", lambda env: env.signature("serving_bytes")(
        image_bytes=tf.io.encode_png(tf.zeros([4, 4, 3], tf.uint8))),
     InvalidArgument, r"`image_bytes` must be a 1-D batch \[N\].*Received: image_bytes\.shape=\] \[\]"),
    ("serving_bytes/rank_2", lambda env: env.signature("serving_bytes")(
        image_bytes=tf.fill([1, 2], tf.io.encode_png(tf.zeros([4, 4, 3], tf.uint8)))),
     InvalidArgument, r"`image_bytes` must be a 1-D batch \[N\].*Received: image_bytes\.shape=\] \[1 2\]"),
    ("serving_bytes/float", lambda env: env.signature("serving_bytes")(image_bytes=tf.zeros([1])),
     InvalidArgument, r"expected to be a string tensor but is a float tensor"),
    ("serving_bytes/truncated_png", lambda env: env.signature("serving_bytes")(
        image_bytes=tf.constant([tf.io.encode_png(tf.zeros([4, 4, 3], tf.uint8)).numpy()[:30]])),
     InvalidArgument, r"Invalid PNG"),
    ("serving_bytes/truncated_jpeg", lambda env: env.signature("serving_bytes")(
        image_bytes=tf.constant([tf.io.encode_jpeg(tf.zeros([8, 8, 3], tf.uint8)).numpy()[:20]])),
     InvalidArgument, r"Invalid JPEG data"),
    # --- supcon.data.load("folder:PATH"). ---
    ("folder/missing", lambda env: data.load(f"folder:{env.folder('missing')}"),
     FileNotFoundError, r"Image folder '.*missing' does not exist\. Received: name='folder:.*missing'"),
    ("folder/is_a_file", lambda env: data.load(f"folder:{env.folder('a_file.png')}"),
     NotADirectoryError, r"is a file, not a folder of class subfolders\. Received: name='folder:.*a_file\.png'"),
    ("folder/empty", lambda env: data.load(f"folder:{env.folder('empty')}"),
     ValueError, r"holds no class subfolder with \.jpg/\.jpeg/\.png/\.bmp/\.gif files\. Received: name='folder:"),
    ("folder/no_images", lambda env: data.load(f"folder:{env.folder('no_images')}"),
     ValueError, r"holds no class subfolder with .*files\. Received: name='folder:.*no_images'"),
    ("folder/one_class", lambda env: data.load(f"folder:{env.folder('one_class')}"),
     ValueError, r"has one class \('cat'\); classification needs at least two\. Received: name="),
    ("folder/stray_empty_class", lambda env: data.load(f"folder:{env.folder('stray_folder')}"),
     ValueError, r"Class folder\(s\) \['\.ipynb_checkpoints'\] of image folder .* hold no .*files.*Received: name="),
    ("folder/all_unreadable", lambda env: data.load(f"folder:{env.folder('unreadable')}"),
     ValueError, r"Split 'train' of image folder .* has no readable images: all 4 image files failed to open.*"
                 r"Received: name="),
    ("folder/some_unreadable_warn_once", _the_one_warning(lambda env: data.load(f"folder:{env.folder('some_unreadable')}")),
     UserWarning, r"Skipped 2 unreadable image file\(s\) of split 'train' under .*: cat/broken0\.jpg, dog/broken0\.jpg$"),
    ("folder/train_test_classes_differ", lambda env: data.load(f"folder:{env.folder('splits_differ')}", "test"),
     ValueError, r"The class folders of .*/train and .*/test must be the same\. Only in train: \['dog'\]; "
                 r"only in test: \['bird'\]\. Received: name="),
    ("folder/train_without_test", lambda env: data.load(f"folder:{env.folder('train_only')}"),
     ValueError, r"has a 'train' folder of classes but no 'test' folder.*Received: name="),
    ("folder/too_few_for_test_split", lambda env: data.load(f"folder:{env.folder('too_few')}", "test"),
     ValueError, r"Split 'test' of image folder .* has no images: a class needs at least 3 images.*Received: name="),
    ("folder/split", lambda env: data.load(f"folder:{env.folder('too_few')}", "validation"),
     ValueError, r"`split` must be 'train' or 'test' for folders\. Received: split='validation'"),
    ("data/name", lambda env: data.load(3),
     ValueError, r"`name` must be a non-empty string\. Received: name=3"),
]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return _Env(tmp_path_factory)


def test_case_ids_are_unique():
    ids = [case[0] for case in CASES]
    assert len(ids) == len(set(ids)) and len(CASES) >= 100


@pytest.mark.parametrize("call, error, pattern", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_fails_clearly(call, error, pattern, env):
    with pytest.raises(error, match=pattern):
        call(env)
