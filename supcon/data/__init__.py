"""supcon.data: data sources, the paper's augmentation policies, multi-view pipelines.

* `load(name, split)`: `digits` (offline default), any TFDS image classification set,
  or `folder:PATH`; returns a `Source` (unbatched uint8 images and int32 labels).
* `pipeline(source, split, *, views, augmentation, batch_size, training, ...)`: the
  `tf.data` pipeline `SupConModel.fit` and train.py consume.
* `get_augmentation(name, image_size)`: one policy as a function `(image, seed) -> view`
  (`simaugment`, `autoaugment`, `randaugment`, `stacked_randaugment`, `crop_flip`,
  `none`);
  `eval_preprocess`; `auto_augment`, `rand_augment`; `mix_views` (MixUp/CutMix per view).
* `DeviceAugmentation`: the flip/colour/grayscale/blur stage inside the training step
  (`--augment_on=device`).
"""

from supcon.data.augment import AUGMENTATIONS
from supcon.data.augment import eval_preprocess
from supcon.data.augment import get_augmentation
from supcon.data.augment import random_resized_crop
from supcon.data.autoaugment import IMAGENET_POLICY
from supcon.data.autoaugment import auto_augment
from supcon.data.autoaugment import rand_augment
from supcon.data.batch_augment import DeviceAugmentation
from supcon.data.mixing import mix_views
from supcon.data.pipelines import pipeline
from supcon.data.sources import DatasetInfo
from supcon.data.sources import Source
from supcon.data.sources import load

__all__ = [
    "AUGMENTATIONS",
    "DatasetInfo",
    "DeviceAugmentation",
    "IMAGENET_POLICY",
    "Source",
    "auto_augment",
    "eval_preprocess",
    "get_augmentation",
    "load",
    "mix_views",
    "pipeline",
    "rand_augment",
    "random_resized_crop",
]
