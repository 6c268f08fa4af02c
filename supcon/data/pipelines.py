"""Multi-view training pipelines and single-view eval pipelines (`tf.data`).

Training element: `(views, labels)`, views float32 `[B, V, H, W, 3]` (0..255), labels
int32 `[B]`, or float32 label distributions `[B, V, C]` when MixUp/CutMix is on.
Eval element: `(images, labels)`, images float32 `[B, H, W, 3]`, labels int32 `[B]`.

Order of the training pipeline: source -> cache (decoded, small sets) -> shuffle
(seeded) -> enumerate -> parallel map making V views (stateless seeds from
`(seed, element index, view)`) -> batch with `drop_remainder` -> [MixUp/CutMix per view]
-> prefetch. A source that is not cached and has its encoded images (`Source.encoded`:
image folders, TFDS) is read encoded, and the map decodes each image once for its V views,
a JPEG inside the union of their crop windows only (`supcon.data.decode`). With
`augment_on="device"` (`simaugment`, `crop_flip`) the views are the crops, and the
flip/colour/grayscale/blur stage runs batched in the training step instead
(`supcon.data.batch_augment`). Options: deterministic order, and `AutoShardPolicy.DATA` so
`tf.distribute` shards by element (works for any source and for multi-worker).

The training stream (`repeat=True`) is a pure function of `(seed, batch index)`: pass `p`
over the data is shuffled with its own seed, derived from `(seed, p)`, and never reshuffled,
so every iterator made over the stream (Keras makes and drops one at the start of each `fit`)
yields the same batches, and `start_batch=s` yields exactly the batches from `s` on of the
stream that starts at 0. That is what makes a killed run resume to the same model
(`supcon.training.resume`). Skipping is cheap: whole passes are never read, and inside the
first pass only the elements before `s` are, un-augmented.

A single pass (`repeat=False`, for `model.fit(..., epochs=N)` without `steps_per_epoch`) is
reshuffled on every iteration instead, so that each epoch sees another order.
"""

import tensorflow as tf

from supcon.data import _seeds
from supcon.choices import AUGMENT_ON
from supcon.data import augment as _augment
from supcon.data import batch_augment as _batch_augment
from supcon.data import mixing as _mixing
from supcon.data import sources as _sources

CACHE_LIMIT_BYTES = 1 << 30  # Cache decoded images of data sets up to 1 GiB.
MAX_SHUFFLE_BUFFER = 10_000
DEFAULT_LARGE_IMAGE_SIZE = 224  # When the source's images vary in size.
_PASS_SEED_TAG = -2  # Folded into the root seed for the shuffle seeds of the passes (MixUp: -1).
_PASS_GRAPH_SEED = 0x5C0  # Graph-level seed of the pass shuffles (any fixed nonzero int).


def pipeline(source="digits", split="train", *, views=2, augmentation="simaugment",
             batch_size, training, seed=0, mixup=0.0, cutmix=0.0, image_size=None,
             data_dir=None, crop_scale=_augment.PAPER_CROP_SCALE, num_ops=2, magnitude=9,
             color_jitter_strength=_augment.DEFAULT_COLOR_JITTER_STRENGTH, blur="auto",
             cache=None, shuffle_buffer=None, repeat=False, start_batch=0, augment_on="host"):
    """Builds the input pipeline for training (V augmented views) or evaluation.

    Args:
        source: a data set name for `supcon.data.load` (default `"digits"`) or a `Source`.
        split: the split to load when `source` is a name (default `"train"`); unused
            when `source` is a `Source`.
        views: V, augmented views per image (training only; default 2 as in the paper).
        augmentation: training policy, one of `supcon.data.AUGMENTATIONS`
            (default `"simaugment"`).
        batch_size: global batch size B; training batches drop the remainder so B
            always divides across replicas when it is a multiple of their number.
        training: `True`: shuffled, augmented, `[B, V, H, W, 3]`; `False`: fixed order,
            eval-preprocessed `[B, H, W, 3]`, last batch kept.
        seed: seed of the shuffle and of every augmentation (default 0). It does not
            change the train/test split of a `folder:` source (call `load(..., seed=)`
            and pass the `Source` for that).
        mixup: MixUp Beta alpha per view (training only; 0 = off).
        cutmix: CutMix Beta alpha in `[0, 1]` per view (training only; 0 = off).
        image_size: output side length; default the source's side when its images are
            square and of one size, else 224.
        data_dir: TFDS data directory (when `source` is a name).
        crop_scale: area range of the random resized crop (default 0.08..1).
        num_ops: RandAugment N (default 2).
        magnitude: RandAugment M, 0..10 (default 9).
        color_jitter_strength: colour strength s of `simaugment` / `stacked_randaugment`:
            brightness, contrast, saturation, hue jitter 0.8 s, 0.8 s, 0.8 s, 0.2 s
            (default 0.5, torchvision `ColorJitter(0.4, 0.4, 0.4, 0.1)`).
        blur: Gaussian blur (p 0.5) in `simaugment` / `stacked_randaugment`: `"auto"`
            (default: images of 128 px or more), `"on"` or `"off"`.
        cache: cache decoded images in memory; default when the split's decoded images
            are known to fit in 1 GiB.
        shuffle_buffer: default: the whole split, up to 10,000 elements.
        repeat: the infinite training stream, a pure function of `(seed, batch index)`
            (default `False`: one epoch per iteration, reshuffled each time, as `Model.fit`
            without `steps_per_epoch` expects).
        start_batch: with `repeat=True`, the stream from this batch index on (a resumed
            run passes its global step). Default 0.
        augment_on: `"host"` (default): finished views; `"device"` (training,
            `simaugment` / `crop_flip` only): the views are the crops, and
            `supcon.data.batch_augment.DeviceAugmentation` does the rest in the training step.

    Returns:
        A `tf.data.Dataset` of the elements described in the module docstring.

    Example:
        >>> ds = pipeline("digits", "train", batch_size=8, training=True)
        >>> views, labels = next(iter(ds))
        >>> views.shape, labels.shape
        (TensorShape([8, 2, 16, 16, 3]), TensorShape([8]))
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int. Received: batch_size={batch_size}")
    if not isinstance(views, int) or views < 1:
        raise ValueError(f"`views` must be a positive int. Received: views={views}")
    if augmentation not in _augment.AUGMENTATIONS:
        raise ValueError(f"`augmentation` must be one of {_augment.AUGMENTATIONS}. "
                         f"Received: augmentation={augmentation!r}")
    if not training and (mixup or cutmix):
        raise ValueError("MixUp/CutMix are training augmentations. Received: training=False "
                         f"with mixup={mixup}, cutmix={cutmix}")
    if isinstance(start_batch, bool) or not isinstance(start_batch, int) or start_batch < 0:
        raise ValueError(f"`start_batch` must be an int >= 0. Received: start_batch={start_batch!r}")
    if start_batch and not (training and repeat):
        raise ValueError("`start_batch` applies to the training stream (training=True, "
                         f"repeat=True). Received: start_batch={start_batch}, training={training}, "
                         f"repeat={repeat}")
    if augment_on not in AUGMENT_ON:
        raise ValueError(f"`augment_on` must be one of {AUGMENT_ON}. Received: augment_on={augment_on!r}")
    if augment_on == "device":
        _batch_augment.check_policy(augmentation)
        if not training or mixup or cutmix:
            raise ValueError("`augment_on='device'` applies to training views without MixUp/CutMix. "
                             f"Received: training={training}, mixup={mixup}, cutmix={cutmix}")
    if mixup < 0:
        raise ValueError(f"`mixup` must be >= 0. Received: mixup={mixup}")
    if not 0 <= cutmix <= 1:
        raise ValueError(f"`cutmix` must be in [0, 1]. Received: cutmix={cutmix}")
    if isinstance(source, str):
        # The split seed stays load()'s default: a training seed must not move test images.
        source = _sources.load(source, split, data_dir=data_dir)
    elif not isinstance(source, _sources.Source):
        raise TypeError(f"`source` must be a data set name or a supcon.data.Source. "
                        f"Received: source={source!r}")
    height, width, _ = source.info.image_shape
    if image_size is None:
        image_size = height if height is not None and height == width else DEFAULT_LARGE_IMAGE_SIZE
    if training:
        _check_replica_divisibility(batch_size)
        policy = _augment.get_augmentation(augmentation, image_size, crop_scale=crop_scale,
                                           num_ops=num_ops, magnitude=magnitude, blur=blur,
                                           color_jitter_strength=color_jitter_strength)

    dataset = source.dataset
    if cache is None:
        cache = height is not None and width is not None and (
            source.num_examples * height * width * 3 <= CACHE_LIMIT_BYTES)
    encoded = training and not cache and source.encoded is not None
    if encoded:
        dataset = source.encoded  # Decoded by each view's crop (a JPEG: its window only).
    if cache:
        dataset = dataset.cache()
    if not training:
        dataset = dataset.map(lambda image, label: (_augment.eval_preprocess(image, image_size),
                                                    label),
                              num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        dataset = dataset.batch(batch_size, drop_remainder=False)
        return dataset.prefetch(tf.data.AUTOTUNE).with_options(_options())

    root = _seeds.root_seed(seed)
    buffer = shuffle_buffer or min(source.num_examples, MAX_SHUFFLE_BUFFER)
    first_element = start_batch * batch_size
    if repeat:
        dataset = _seeded_passes(dataset, buffer, root, source.num_examples, first_element)
    else:
        dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)

    if augmentation != "none":
        # The policy after its crop, for the crops that `crop_views` makes of all the views.
        finish = _augment._after_crop(  # pylint: disable=protected-access
            augmentation, image_size, num_ops=num_ops, magnitude=magnitude, blur=blur,
            color_jitter_strength=color_jitter_strength)

    def make_views(index, example):
        image, label = example
        view_seeds = [_seeds.fold_in(root, index, v) for v in range(views)]
        if augmentation == "none":  # Every view is the eval image: made (and decoded) once.
            return tf.stack([policy(image, view_seeds[0])] * views), label
        # One decode for all the views (a JPEG: the union of their crop windows only).
        crops = _augment.crop_views(image, image_size, view_seeds, crop_scale)
        if augment_on == "device":
            return crops, label
        # The rest of the policy per view, inside this parallel map: the stages a view does
        # not draw are skipped (a batched stage after `batch` measured half as fast).
        return tf.stack([finish(crops[v], seed) for v, seed in enumerate(view_seeds)]), label

    dataset = dataset.enumerate(start=first_element).map(
        make_views, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if encoded:
        # A file that TensorFlow cannot decode (Pillow could) is dropped, as the source does.
        dataset = dataset.ignore_errors(log_warning=True)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    if mixup or cutmix:
        num_classes = source.info.num_classes
        mix_root = _seeds.fold_in(root, -1)

        def mix(index, batch):
            return _mixing.mix_views(batch[0], batch[1], num_classes,
                                     _seeds.fold_in(mix_root, index), mixup=mixup, cutmix=cutmix)

        dataset = dataset.enumerate(start=start_batch).map(
            mix, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(_options())


def _seeded_passes(dataset, buffer, root, num_examples, first_element):
    """Endless passes over `dataset`, pass `p` shuffled with a seed of `(root, p)` alone.

    Starts at element `first_element` of that endless sequence: passes before it are never
    read, and only the first `first_element % num_examples` elements of its pass are skipped.
    """
    if num_examples < 1:
        raise ValueError(f"The training data is empty. Received: num_examples={num_examples}")
    first_pass, offset = divmod(first_element, num_examples)
    pass_root = _seeds.fold_in(root, _PASS_SEED_TAG)

    def one_pass(index):
        # This runs while tf.data traces the function, in its own graph: `set_seed` sets that
        # graph's seed only. `shuffle` pairs it with the tensor seed of the pass, so the order
        # depends on neither TensorFlow's global seed nor on how many iterators came before (and
        # a global seed of 0 cannot meet a tensor op seed in `random_seed.get_seed`'s `== (0, 0)`).
        tf.random.set_seed(_PASS_GRAPH_SEED)
        # One int64 from the pass's stateless seed pair (`fold_in` keeps `index` as the pair's
        # second half, so its first half alone would be the same for every pass).
        pass_seed = tf.random.stateless_uniform(
            [], seed=_seeds.fold_in(pass_root, index), minval=None, maxval=None, dtype=tf.int64)
        return dataset.shuffle(buffer, seed=pass_seed, reshuffle_each_iteration=False)

    passes = tf.data.Dataset.counter(first_pass).flat_map(one_pass)
    return passes.skip(offset) if offset else passes


def _options():
    options = tf.data.Options()
    options.deterministic = True
    # Shard by element: every source supports it (in-memory digits have no files).
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options


def _check_replica_divisibility(batch_size):
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(f"The global `batch_size` must be divisible by the "
                         f"{replicas} replicas of the current strategy. "
                         f"Received: batch_size={batch_size}")
