"""Where corrupted test images come from: prepared TFDS sets, or generated.

TFDS ships CIFAR-10-C as `cifar10_corrupted/{corruption}_{severity}` (split
"test") and ImageNet-C as `imagenet2012_corrupted/{corruption}_{severity}`
(split "validation"). They are used when already prepared in the data
directory (nothing downloads here); otherwise the images are generated from
the clean test split with `supcon.evaluation.corrupt`.
"""

from supcon.evaluation import corruption_params as cp
from supcon.evaluation.inputs import EvalInputError

# Clean data set name -> (TFDS corrupted builder, split, our name -> TFDS config name).
TFDS_CORRUPTED = {
    "cifar10": ("cifar10_corrupted", "test", {"glass_blur": "frosted_glass_blur", "elastic_transform": "elastic"}),
    "imagenet2012": ("imagenet2012_corrupted", "validation", {}),
}


def tfds_corrupted_name(dataset, corruption, severity):
    """TFDS name of one prepared corrupted set, e.g. `cifar10_corrupted/elastic_3`, or None.

    Example:
      >>> tfds_corrupted_name("cifar10", "glass_blur", 2)
      ('cifar10_corrupted/frosted_glass_blur_2', 'test')
    """
    cp.check_corruption_name(corruption)
    base = str(dataset).split("/")[0].split(":")[0]
    if base not in TFDS_CORRUPTED:
        return None
    builder, split, renames = TFDS_CORRUPTED[base]
    return f"{builder}/{renames.get(corruption, corruption)}_{int(severity)}", split


def prepared_in(dataset, corruptions, severities, data_dir):
    """True when every requested corrupted set is prepared in `data_dir` (TFDS layout)."""
    if data_dir is None:
        return False
    try:
        import tensorflow_datasets as tfds

        for name in corruptions:
            for severity in severities:
                found = tfds_corrupted_name(dataset, name, severity)
                if found is None or not tfds.builder(found[0], data_dir=data_dir).is_prepared():
                    return False
        return True
    except Exception:  # noqa: BLE001 - any TFDS failure means "not usable", and we generate instead.
        return False


def check_prepared(dataset, corruptions, severities, data_dir):
    """Raises `EvalInputError` unless every requested set is prepared (`--corruption_source=tfds`).

    Args:
        dataset: str, the clean data set (`cifar10`, `imagenet2012`, ...).
        corruptions: list of corruption names.
        severities: list of ints in 1..5.
        data_dir: str or None, the TFDS data directory.
    """
    base = str(dataset).split("/")[0]
    if base not in TFDS_CORRUPTED:
        raise EvalInputError(
            f"--corruption_source=tfds: data set {dataset!r} has no prepared corrupted sets in TFDS (only "
            f"{', '.join(TFDS_CORRUPTED)} have); use --corruption_source=generate (or auto).")
    if not prepared_in(dataset, corruptions, severities, data_dir):
        builder = TFDS_CORRUPTED[base][0]
        where = f"data_dir {data_dir!r}" if data_dir else "a data directory (none given: pass --data_dir=DIR)"
        raise EvalInputError(
            f"--corruption_source=tfds: the {builder} sets of the requested corruptions and severities are not all "
            f"prepared in {where}; prepare them there, or use --corruption_source=generate (or auto).")
