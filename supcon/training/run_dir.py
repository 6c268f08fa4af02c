"""The run directory (`--model_dir`): its resolved config, its lock, atomic JSON writes, --overwrite.

Layout: `run_config.json`, `model.keras`, `classifier.keras`, `results.json`, `checkpoints/`,
`summaries/`, `saved_model/`, `eval/`. While a training process owns the directory it holds a lock
on the folder (`RunLock`).

A directory is claimed by the settings in its `run_config.json`: the same settings resume the run,
a larger `epochs` extends it (training goes on from its last checkpoint), anything else is refused
unless `--overwrite` (which deletes that run's files, and only them). TensorFlow-free, so
`train.py` checks the directory before TensorFlow starts.
"""

import errno
import fcntl
import json
import os
import shutil
import tempfile

RUN_CONFIG = "run_config.json"
RESULTS = "results.json"
# Everything a training run writes; `--overwrite` removes exactly these (never other files).
RUN_ARTIFACTS = (
    RUN_CONFIG,
    RESULTS,
    "model.keras",
    "classifier.keras",
    "checkpoints",
    "summaries",
    "saved_model",
    "eval",
)
# Settings that may change between a run and its resumption without changing its result's meaning:
# where things live and how the work is spread out, not what is computed.
# `jit_compile` changes how the training step is compiled, not what it computes, except where
# the step draws random numbers: with `augment_on="device"` the augmentation's stateless ops run
# inside the compiled step, and under XLA they use XLA's generator (other numbers for the same
# seeds), so a resumed run would not augment as the uninterrupted one did. It is ignored only
# when both runs augment on the host (`_ignored`). (`strategy` and `--jit_compile=auto` on
# other hardware can change those draws too: the device stage draws per replica, and auto
# resolves per device. A run moved to other hardware resumes, with other augmentations.)
RESUME_IGNORED = frozenset(
    {"overwrite", "model_dir", "data_dir", "strategy", "tpu", "checkpoint_steps", "verbose",
     "jit_compile"}
)


# Settings an extension may change: a larger `epochs`, and the warmup derived from it.
EXTENSIBLE = frozenset({"epochs", "warmup_epochs"})
# Stage 2 runs again at the end of every (resumed) run, so its settings (`linear_*`) may change
# any time.
STAGE_2_PREFIX = "linear_"


class RunDirectoryError(RuntimeError):
    """`model_dir` cannot hold this run: not a directory, not writable, or in use."""


class RunDirectoryConflict(RunDirectoryError):
    """`model_dir` holds a run made with different settings (or a damaged `run_config.json`)."""


def check_writable(model_dir):
    """Refuses a `model_dir` that is a file or cannot be written, creating nothing.

    Args:
        model_dir: str.

    Raises:
        RunDirectoryError: with what was expected and what was found.
    """
    path = os.path.abspath(model_dir)
    if os.path.exists(path) and not os.path.isdir(path):
        raise RunDirectoryError(f"--model_dir must be a directory, but {model_dir!r} is a file. "
                                f"Received: model_dir={model_dir!r}")
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise RunDirectoryError(f"--model_dir cannot be created: {existing!r} is a file. "
                                f"Received: model_dir={model_dir!r}")
    try:  # A real write: permission bits do not stop root, read-only file systems do.
        os.rmdir(tempfile.mkdtemp(prefix=".supcon-write-check-", dir=existing))
    except OSError as error:
        raise RunDirectoryError(f"--model_dir is not writable: nothing can be created in "
                                f"{existing!r} ({error.strerror}). "
                                f"Received: model_dir={model_dir!r}") from None


class RunLock:
    """An exclusive lock on the `model_dir` folder itself, held until `release()` or process end.

    `flock` on the folder: no lock file is written (a refused run leaves the directory exactly
    as it was), and the operating system drops the lock when the process dies (even by
    SIGKILL), so a killed run never leaves its directory locked.

    Args:
        model_dir: str, created if missing.

    Raises:
        RunDirectoryError: another process holds the lock.
    """

    def __init__(self, model_dir):
        os.makedirs(model_dir, exist_ok=True)
        self._fd = os.open(model_dir, os.O_RDONLY)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(self._fd)
            self._fd = None
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise RunDirectoryError(
                f"{model_dir} is in use by another training process; wait for it to finish, or "
                f"use another --model_dir. Received: model_dir={model_dir!r}"
            ) from None

    def release(self):
        """Releases the lock (idempotent)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def write_json_atomic(path, payload):
    """Writes `payload` as JSON to `path` atomically (temporary file in the same folder + rename).

    Args:
        path: str.
        payload: JSON-serializable object.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def read_json(path):
    """Reads a JSON file.

    Args:
        path: str.

    Returns:
        The decoded object.
    """
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def prepare(model_dir, run_config, *, overwrite=False, defaults=None):
    """Claims `model_dir` for a run with `run_config`, refusing one holding a different run.

    Same settings (ignoring `RESUME_IGNORED`, and the `linear_*` stage-2 settings, retrained at the end of
    every run): the run resumes from its checkpoints. The same settings but a larger `epochs`
    (and the warmup derived from it): the run is extended and resumes. Different settings, or a `run_config.json` that cannot be read:
    `RunDirectoryConflict`, unless `overwrite`, which deletes the old run's artifacts
    (`RUN_ARTIFACTS` only) first. A refused directory is left exactly as it was.

    A stored `run_config.json` written before a setting existed lacks its key; the run had
    that setting's default (`defaults`), so a new run with the default is the same run.

    Args:
        model_dir: str.
        run_config: dict of JSON values, the resolved settings.
        overwrite: bool. Defaults to False.
        defaults: dict of JSON values or None (default): each setting's default, taken as the
            stored value of a key the stored `run_config.json` lacks (the caller's
            `TrainConfig().to_json()`; this module stays TensorFlow-free).

    Returns:
        str: "new" (nothing to resume), "resume" (same settings) or "extend" (more epochs).
    """
    path = os.path.join(model_dir, RUN_CONFIG)
    state = "new"
    if os.path.exists(path) and overwrite:
        clear(model_dir)
    elif os.path.exists(path):
        try:
            previous = read_json(path)
            if not isinstance(previous, dict):
                raise ValueError(f"expected a JSON object, found {type(previous).__name__}")
        except ValueError as error:  # json.JSONDecodeError and UnicodeDecodeError included.
            raise RunDirectoryConflict(
                f"{path} is damaged ({error}), so which run {model_dir} holds is unknown. Use "
                "another --model_dir, or pass --overwrite to delete that run. "
                f"Received: model_dir={model_dir!r}"
            ) from None
        # The settings the stored run had: its own, then the defaults of those added since.
        previous = dict(defaults or {}, **previous)
        differences = sorted(
            key
            for key in set(previous) | set(run_config)
            if not _ignored(key, previous, run_config) and previous.get(key) != run_config.get(key)
        )
        if not differences:
            state = "resume"
        elif set(differences) <= EXTENSIBLE and _more_epochs(previous, run_config):
            state = "extend"
        else:
            shown = ", ".join(
                f"{k}: {previous.get(k)!r} -> {run_config.get(k)!r}" for k in differences[:8]
            )
            raise RunDirectoryConflict(
                f"{model_dir} holds a run with different settings ({shown}). Use another "
                "--model_dir, or pass --overwrite to delete that run (only a larger --epochs "
                f"extends it). Received: model_dir={model_dir!r}"
            )
    elif overwrite:
        clear(model_dir)
    write_json_atomic(path, run_config)
    return state


def _ignored(key, previous, run_config):
    """Whether a change of setting `key` keeps the run (see `RESUME_IGNORED`)."""
    if key == "jit_compile":  # Compiled with XLA, the device augmentation draws other numbers.
        return "device" not in (previous.get("augment_on"), run_config.get("augment_on"))
    return key in RESUME_IGNORED or key.startswith(STAGE_2_PREFIX)


def _more_epochs(previous, run_config):
    try:
        return int(run_config["epochs"]) > int(previous["epochs"])
    except (KeyError, TypeError, ValueError):
        return False


def clear(model_dir):
    """Deletes a run's artifacts (`RUN_ARTIFACTS`) from `model_dir`, leaving other files.

    Args:
        model_dir: str.
    """
    for name in RUN_ARTIFACTS:
        path = os.path.join(model_dir, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)


def save_run(model_dir, model, *, dataset, classifier=None, method=None, overwrite=False, **settings):
    """Saves a model trained in Python (`model.fit` in a notebook) as a run directory eval.py reads.

    Writes `model.keras`, `classifier.keras` (with `classifier`) and a `run_config.json` holding
    what evaluation needs (`dataset`, `num_classes`, `image_size`, `method`) and `settings`, so
    `supcon.evaluation.evaluate_run(model_dir)`, `eval.py --model_dir=...` and `--compare` treat it
    as a run of train.py.

    Args:
        model_dir: str, the folder (created if missing).
        model: a built `SupConModel` (or another model with an `encoder`) or `CrossEntropyModel`.
        dataset: str, the data set the model was trained on (`"digits"`, a TFDS name,
            `"folder:PATH"`): eval.py evaluates on its test split.
        classifier: a trained `LinearClassifier`, or None (a cross-entropy model is its own; for a
            SupCon model without one, eval.py trains stage 2 with `TrainConfig`'s `linear_*`
            defaults or the `linear_*` keys of `settings`).
        method: str, recorded as the run's method; None: `"ce"` for a model with its own classifier
            head and label smoothing (`CrossEntropyModel`), else `"supcon"`.
        overwrite: bool, replace the run already in `model_dir`.
        **settings: JSON values recorded in `run_config.json` (how it was trained, `num_classes` when
            neither model nor classifier has a classifier head).

    Returns:
        str, `model_dir`.
    """
    model_dir = os.fspath(model_dir)
    if not hasattr(model, "encoder"):
        raise TypeError(f"`model` must have an `encoder` (a SupConModel or CrossEntropyModel). Received: {model!r}")
    if method is None:
        method = "ce" if hasattr(model, "label_smoothing") and hasattr(model, "classifier_head") else "supcon"
    head = getattr(classifier if classifier is not None else model, "classifier_head", None)
    num_classes = int(head.num_classes) if head is not None else settings.get("num_classes")
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ValueError("The number of classes is unknown: expected a `classifier` (or a model with a classifier "
                         f"head) or `num_classes=` >= 2. Received: num_classes={num_classes!r}")
    image_size = model.encoder.input_shape[1]
    if not isinstance(image_size, int):
        raise ValueError(f"The encoder's input shape must be fixed, e.g. (32, 32, 3). Received: "
                         f"{model.encoder.input_shape}")
    config_path = os.path.join(model_dir, RUN_CONFIG)
    if os.path.exists(config_path) and not overwrite:
        raise RunDirectoryError(f"model_dir {model_dir!r} already holds a run ({RUN_CONFIG}); expected a new folder, "
                                "or overwrite=True to replace it.")
    check_writable(model_dir)
    if overwrite:
        clear(model_dir)
    os.makedirs(model_dir, exist_ok=True)
    model.save(os.path.join(model_dir, "model.keras"))
    if classifier is not None:
        classifier.save(os.path.join(model_dir, "classifier.keras"))
    run_config = dict(settings, dataset=dataset, num_classes=num_classes, image_size=int(image_size), method=method,
                      saved_by="supcon.training.save_run")
    write_json_atomic(config_path, run_config)
    return model_dir
