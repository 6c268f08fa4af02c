"""The run directory (`--model_dir`): its resolved config, atomic JSON writes, and --overwrite.

Layout (see CONTRACTS.md): `run_config.json`, `model.keras`, `classifier.keras`, `results.json`,
`checkpoints/`, `summaries/`, `saved_model/`, `eval/`.
"""

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
RESUME_IGNORED = frozenset(
    {"overwrite", "model_dir", "data_dir", "strategy", "tpu", "checkpoint_steps", "verbose"}
)


class RunDirectoryConflict(RuntimeError):
    """`model_dir` holds a run made with different settings."""


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


def prepare(model_dir, run_config, *, overwrite=False):
    """Claims `model_dir` for a run with `run_config`, refusing one holding a different run.

    Same settings (ignoring `RESUME_IGNORED`): the run resumes from its checkpoints.
    Different settings: `RunDirectoryConflict`, unless `overwrite`, which deletes the old run's
    artifacts (`RUN_ARTIFACTS` only) first.

    Args:
        model_dir: str.
        run_config: dict of JSON values, the resolved settings.
        overwrite: bool. Defaults to False.

    Returns:
        bool, whether an earlier run with the same settings was found (a resumption).
    """
    path = os.path.join(model_dir, RUN_CONFIG)
    resuming = False
    if os.path.exists(path):
        previous = read_json(path)
        differences = sorted(
            key
            for key in set(previous) | set(run_config)
            if key not in RESUME_IGNORED and previous.get(key) != run_config.get(key)
        )
        if overwrite:
            clear(model_dir)
        elif differences:
            shown = ", ".join(
                f"{k}: {previous.get(k)!r} -> {run_config.get(k)!r}" for k in differences[:8]
            )
            raise RunDirectoryConflict(
                f"{model_dir} holds a run with different settings ({shown}). Use another "
                "--model_dir, or pass --overwrite to delete that run. "
                f"Received: model_dir={model_dir!r}"
            )
        else:
            resuming = True
    elif overwrite:
        clear(model_dir)
    write_json_atomic(path, run_config)
    return resuming


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
