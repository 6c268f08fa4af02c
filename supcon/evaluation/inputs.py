"""What an evaluation reads and where it writes, checked before any work.

TensorFlow-free (os, json, zipfile): `eval.py` runs these checks right after its flags parse,
before TensorFlow loads, and `evaluate_run` / `compare_runs` run them again for library callers.
Every error is one `EvalInputError` line naming what was expected and what was received.

The report folder (`MODEL_DIR/eval` by default) is never replaced silently: a report written with
other settings (another corruption list, severities, data set, seed, ...) or by an older eval.py
is refused unless `overwrite=True` (`--overwrite`); a re-run with the same settings replaces its
own report (a re-evaluation, e.g. after more training), as `train.py` resumes a run of the same
settings.
"""

import json
import os
import zipfile

from supcon import choices
from supcon.evaluation import corruption_params as cp
from supcon.evaluation.config import CLASSIFIER_SETTINGS, EvalConfig

# The run directory train.py writes.
RUN_CONFIG = "run_config.json"
MODEL_FILE = "model.keras"
CLASSIFIER_FILE = "classifier.keras"
DEFAULT_OUTPUT_SUBDIR = "eval"

# The report folder eval.py writes (a classifier it trained is kept beside the report).
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
RELIABILITY_PNG = "reliability_diagram.png"
SEVERITY_PNG = "accuracy_vs_severity.png"
ERRORS_PNG = "corruption_errors.png"
REPORT_FILES = (REPORT_JSON, REPORT_MD, RELIABILITY_PNG, SEVERITY_PNG, ERRORS_PNG, CLASSIFIER_FILE)
COMPARISON_JSON = "comparison.json"
COMPARISON_MD = "comparison.md"
SUMMARY_PNG = "summary.png"
COMPARISON_FILES = (COMPARISON_JSON, COMPARISON_MD, SUMMARY_PNG, RELIABILITY_PNG, SEVERITY_PNG, ERRORS_PNG)

# Settings that make two reports the same evaluation (batch size and progress bars do not).
SETTINGS = ("model_dir", "dataset", "corruptions", "severities", "corruption_source", "seed",
            "max_test_examples", "knn_k", "knn_temperature", "classifier")


class EvalInputError(ValueError):
    """A bad input to the evaluation (missing run, mismatched data set, unknown name); one-line message."""


# --- Arguments ----------------------------------------------------------------------------------


def _check_int(name, value, minimum, *, optional=False):
    if optional and value is None:
        return None
    is_int = not isinstance(value, bool) and (isinstance(value, int) or _is_numpy_int(value))
    if not is_int or value < minimum:
        expected = f"an int >= {minimum}" + (" or None" if optional else "")
        raise EvalInputError(f"`{name}` must be {expected}. Received: {name}={value!r}")
    return int(value)


def _is_numpy_int(value):
    return type(value).__module__ == "numpy" and hasattr(value, "dtype") and value.dtype.kind in "iu"


def _check_positive_float(name, value, *, optional=False):
    if optional and value is None:
        return None
    is_number = not isinstance(value, bool) and isinstance(value, (int, float))
    if not is_number or not 0 < value < float("inf"):
        expected = "a positive finite number" + (" or None" if optional else "")
        raise EvalInputError(f"`{name}` must be {expected}. Received: {name}={value!r}")
    return float(value)


def _check_choice(name, value, allowed):
    if value not in allowed:
        raise EvalInputError(f"`{name}` must be one of {', '.join(allowed)}. Received: {name}={value!r}")
    return value


def check_corruptions(corruptions):
    """The corruption names as a list; raises for an unknown or repeated name.

    Args:
        corruptions: iterable of names from `ALL_CORRUPTIONS` (empty: no sweep).

    Returns:
        list of str.

    Example:
        >>> check_corruptions(("fog", "snow"))
        ['fog', 'snow']
    """
    if isinstance(corruptions, str):
        raise EvalInputError(f"`corruptions` must be a list of names, not one string. "
                             f"Received: corruptions={corruptions!r}")
    names = list(corruptions)
    for name in names:
        if name not in cp.ALL_CORRUPTIONS:
            raise EvalInputError(f"Unknown corruption {name!r}; expected some of: {', '.join(cp.ALL_CORRUPTIONS)}. "
                                 f"Received: corruptions={names}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise EvalInputError(f"`corruptions` names {', '.join(repeated)} more than once. Received: corruptions={names}")
    return names


def check_severities(severities):
    """The severities as a list of ints; raises for one outside 1..5, a non-integer or a repeat.

    Args:
        severities: iterable of ints in 1..5 (strings of digits are accepted, as flags give them).

    Returns:
        list of int.

    Example:
        >>> check_severities(["1", 3])
        [1, 3]
        >>> check_severities([7])
        Traceback (most recent call last):
        ...
        supcon.evaluation.inputs.EvalInputError: `severities` must be integers in 1..5. Received: severities=[7]
    """
    values = []
    for s in severities:
        value = s
        if isinstance(s, str) and s.strip().isdigit():
            value = int(s)
        if isinstance(value, bool) or not (isinstance(value, int) or _is_numpy_int(value)) or not 1 <= value <= 5:
            raise EvalInputError(f"`severities` must be integers in 1..5. Received: severities={list(severities)!r}")
        values.append(int(value))
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise EvalInputError(f"`severities` names {', '.join(map(str, repeated))} more than once. "
                             f"Received: severities={values}")
    return values


# --- The run directory ------------------------------------------------------------------------


def _check_keras_archive(path, model_dir):
    """A `.keras` file is a zip archive; a truncated or overwritten one is not."""
    if os.path.getsize(path) == 0 or not zipfile.is_zipfile(path):
        raise EvalInputError(
            f"{os.path.basename(path)} in model_dir {model_dir!r} is damaged: expected a .keras zip archive, "
            f"received a {os.path.getsize(path)}-byte file that is not one (copy it again or retrain the run).")


def read_run_config(model_dir):
    """Checks a run directory written by train.py and returns its `run_config.json`.

    Args:
        model_dir: str, the run directory (`run_config.json` and `model.keras`, optionally
            `classifier.keras`).

    Returns:
        dict, the run's configuration (`dataset`, `num_classes`, `image_size`, ...).
    """
    if not isinstance(model_dir, (str, os.PathLike)) or not str(model_dir):
        raise EvalInputError(f"`model_dir` must be a run directory written by train.py. Received: model_dir={model_dir!r}")
    model_dir = os.fspath(model_dir)
    if not os.path.exists(model_dir):
        raise EvalInputError(f"model_dir {model_dir!r} does not exist (train a run there with train.py first).")
    if not os.path.isdir(model_dir):
        raise EvalInputError(f"model_dir {model_dir!r} is a file; expected a run directory written by train.py.")
    config_path, model_path = os.path.join(model_dir, RUN_CONFIG), os.path.join(model_dir, MODEL_FILE)
    missing = [os.path.basename(p) for p in (config_path, model_path) if not os.path.isfile(p)]
    if len(missing) == 2 and not os.listdir(model_dir):
        raise EvalInputError(f"model_dir {model_dir!r} is empty; expected a run directory written by train.py "
                             f"({RUN_CONFIG}, {MODEL_FILE}).")
    if missing:
        raise EvalInputError(f"model_dir {model_dir!r} is incomplete: missing {', '.join(missing)} "
                             "(is it a run directory, and did its training run finish?).")
    try:
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
    except (ValueError, UnicodeDecodeError) as error:
        raise EvalInputError(f"{RUN_CONFIG} in model_dir {model_dir!r} is damaged: expected JSON written by "
                             f"train.py, received a file that does not parse ({error}).") from None
    if not isinstance(config, dict):
        raise EvalInputError(f"{RUN_CONFIG} in model_dir {model_dir!r} is damaged: expected a JSON object, "
                             f"received a {type(config).__name__}.")
    expected = {"dataset": (str, "a data set name"), "num_classes": (int, "an int >= 2"),
                "image_size": (int, "an int >= 1")}
    for key, (kind, meaning) in expected.items():
        value = config.get(key)
        bad = (key not in config or isinstance(value, bool) or not isinstance(value, kind) or
               (key == "num_classes" and value < 2) or (key == "image_size" and value < 1) or value == "")
        if bad:
            received = "no such key" if key not in config else f"{key}={value!r}"
            raise EvalInputError(f"{RUN_CONFIG} in model_dir {model_dir!r} is damaged or incomplete: expected "
                                 f"{key!r} to be {meaning}, received {received}.")
    for key, minimum in (("linear_epochs", 0), ("linear_batch_size", 1)):
        value = config.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
            raise EvalInputError(f"{RUN_CONFIG} in model_dir {model_dir!r} is damaged: expected {key!r} to be an "
                                 f"int >= {minimum}, received {key}={value!r}.")
    _check_keras_archive(model_path, model_dir)
    classifier_path = os.path.join(model_dir, CLASSIFIER_FILE)
    if os.path.exists(classifier_path):
        _check_keras_archive(classifier_path, model_dir)
    return config


def is_cross_entropy_run(config):
    """Whether the run is the cross-entropy baseline (its model has its own classifier head)."""
    return config.get("method") == "ce"


# --- The report folder -------------------------------------------------------------------------


def _describe(value):
    if value is None:
        return "unset"
    if isinstance(value, list) and len(value) > 4:
        return f"{len(value)} names"
    if isinstance(value, list) and not value:
        return "none"
    return json.dumps(value, sort_keys=True)


def _differences(old, new):
    keys = [k for k in SETTINGS if old.get(k) != new.get(k)]
    return "; ".join(f"{k}: {_describe(old.get(k))} -> {_describe(new.get(k))}" for k in keys)


def _check_writable_folder(output_dir, name, contents):
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise EvalInputError(f"{name} {output_dir!r} is a file; expected a folder (existing or new) for the {contents}.")
    existing = os.path.abspath(output_dir)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        raise EvalInputError(f"{name} {output_dir!r} cannot be written: {existing!r} is not a writable folder.")


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def check_output_dir(output_dir, model_dir, settings, overwrite=False):
    """Checks where a run's report goes; refuses to replace a report of another evaluation.

    Args:
        output_dir: str, the report folder.
        model_dir: str, the run directory being evaluated.
        settings: dict, `evaluation_settings(...)` of the new evaluation.
        overwrite: bool, replace a report of other settings (or an unreadable one).

    Returns:
        bool, whether `output_dir` already holds a report that the new one replaces.
    """
    _check_writable_folder(output_dir, "output_dir", "report")
    if os.path.realpath(output_dir) == os.path.realpath(model_dir):
        raise EvalInputError(f"output_dir {output_dir!r} is the run directory itself; the report would mix with "
                             f"(and could replace) its {CLASSIFIER_FILE}. Use a folder of its own, e.g. "
                             f"{os.path.join(model_dir, DEFAULT_OUTPUT_SUBDIR)!r} (the default).")
    if any(os.path.exists(os.path.join(output_dir, name)) for name in (RUN_CONFIG, MODEL_FILE)):
        raise EvalInputError(f"output_dir {output_dir!r} is a training run directory (it holds {RUN_CONFIG} or "
                             f"{MODEL_FILE}); expected a folder for the report.")
    if os.path.exists(os.path.join(output_dir, COMPARISON_JSON)):
        raise EvalInputError(f"output_dir {output_dir!r} holds a side-by-side comparison (--compare) whose plots "
                             "have the report's file names; expected a folder of its own for the report.")
    path = os.path.join(output_dir, REPORT_JSON)
    if not os.path.exists(path):
        return False
    earlier = _read_json(path)
    if overwrite:
        return True
    advice = "pass --overwrite to replace it, or another --output_dir to keep both"
    if not isinstance(earlier, dict):
        raise EvalInputError(f"output_dir {output_dir!r} holds a {REPORT_JSON} that does not parse; {advice}.")
    if not isinstance(earlier.get("settings"), dict):
        raise EvalInputError(f"output_dir {output_dir!r} holds a report that does not record its settings "
                             f"(an older eval.py); {advice}.")
    differences = _differences(earlier["settings"], settings)
    if differences:
        raise EvalInputError(f"output_dir {output_dir!r} already holds the report of another evaluation "
                             f"({differences}); {advice}.")
    return True


def evaluation_settings(model_dir, *, dataset, corruptions, severities, corruption_source, seed, max_test_examples,
                        knn_k, knn_temperature, classifier):
    """The settings that make two reports the same evaluation (recorded in `report.json`)."""
    return {
        "model_dir": os.path.abspath(model_dir),
        "dataset": dataset,
        "corruptions": list(corruptions),
        "severities": list(severities),
        "corruption_source": corruption_source,
        "seed": seed,
        "max_test_examples": max_test_examples,
        "knn_k": knn_k,
        "knn_temperature": knn_temperature,
        "classifier": classifier,
    }


def check_evaluation(config):
    """Checks every input of `evaluate_run` that can be checked without TensorFlow.

    Args:
        config: `supcon.evaluation.EvalConfig`.

    Returns:
        dict: `config` (the run's `run_config.json`), `dataset`, `output_dir`, `corruptions`,
        `severities`, `settings` (recorded in the report), `replaces` (an earlier report of the same
        settings, or any with `overwrite`), `trains_classifier`.
    """
    if not isinstance(config, EvalConfig):
        raise TypeError(f"`config` must be a supcon.evaluation.EvalConfig. Received: config={config!r}")
    model_dir, dataset, overwrite = config.model_dir, config.dataset, config.overwrite
    corruptions, severities = check_corruptions(config.corruptions), check_severities(config.severities)
    if corruptions and not severities:
        raise EvalInputError(f"`severities` (--severities) is empty but {len(corruptions)} corruptions are "
                             "requested; expected some of 1..5, or no corruptions (--corruptions=) to skip the "
                             "sweep. Received: severities=[]")
    corruption_source = _check_choice("corruption_source", config.corruption_source, choices.CORRUPTION_SOURCES)
    seed = _check_int("seed", config.seed, 0)
    _check_int("batch_size", config.batch_size, 1)
    max_test_examples = _check_int("max_test_examples", config.max_test_examples, 1, optional=True)
    knn_k = _check_int("knn_k", config.knn_k, 0)
    knn_temperature = _check_positive_float("knn_temperature", config.knn_temperature)
    if config.classifier_optimizer is not None:
        _check_choice("classifier_optimizer", config.classifier_optimizer, choices.OPTIMIZERS)
    _check_positive_float("classifier_learning_rate", config.classifier_learning_rate, optional=True)
    _check_int("classifier_epochs", config.classifier_epochs, 1, optional=True)
    _check_int("classifier_batch_size", config.classifier_batch_size, 1, optional=True)
    if config.classifier_augmentation is not None:
        _check_choice("classifier_augmentation", config.classifier_augmentation, choices.AUGMENTATIONS)
    if dataset is not None and (not isinstance(dataset, str) or not dataset.strip()):
        raise EvalInputError(f"`dataset` must be a data set name or None (the run's). Received: dataset={dataset!r}")
    if not isinstance(overwrite, bool):
        raise EvalInputError(f"`overwrite` must be a bool. Received: overwrite={overwrite!r}")

    run_config = read_run_config(model_dir)
    model_dir = os.fspath(model_dir)
    has_classifier = os.path.isfile(os.path.join(model_dir, CLASSIFIER_FILE))
    cross_entropy = is_cross_entropy_run(run_config)
    trains_classifier = not cross_entropy and (config.retrain_classifier or not has_classifier)
    overrides = config.classifier_overrides()
    given = [f"--classifier_{name}" for name in CLASSIFIER_SETTINGS if name in overrides]
    if cross_entropy and (config.retrain_classifier or given):
        given = ["--retrain_classifier"] * bool(config.retrain_classifier) + given
        raise EvalInputError(f"{', '.join(given)}: model_dir {model_dir!r} is a cross-entropy run, evaluated with its "
                             "own classifier head; expected no classifier settings for it.")
    if not trains_classifier and given:
        verb = "applies" if len(given) == 1 else "apply"
        raise EvalInputError(f"{', '.join(given)} only {verb} when eval.py trains a classifier, but model_dir "
                             f"{model_dir!r} has its {CLASSIFIER_FILE}; add --retrain_classifier to train a new one.")

    dataset = dataset or run_config["dataset"]
    # The classifier flags as given (None: the run's linear_* setting); the report's `classifier`
    # block records the settings the classifier was trained with.
    classifier = ({"source": "cross-entropy head"} if cross_entropy else
                  {"source": "trained by eval.py",
                   **{name: getattr(config, f"classifier_{name}") for name in CLASSIFIER_SETTINGS}}
                  if trains_classifier else {"source": f"the run's {CLASSIFIER_FILE}"})
    settings = evaluation_settings(
        model_dir, dataset=dataset, corruptions=corruptions, severities=severities if corruptions else [],
        corruption_source=corruption_source, seed=seed, max_test_examples=max_test_examples, knn_k=knn_k,
        knn_temperature=knn_temperature, classifier=classifier)
    output_dir = os.fspath(config.output_dir) if config.output_dir else os.path.join(model_dir, DEFAULT_OUTPUT_SUBDIR)
    replaces = check_output_dir(output_dir, model_dir, settings, overwrite)
    return {"config": run_config, "dataset": dataset, "output_dir": output_dir, "corruptions": corruptions,
            "severities": severities, "settings": settings, "replaces": replaces,
            "trains_classifier": trains_classifier}


# --- Comparisons -------------------------------------------------------------------------------


def read_report(run_dir):
    """Reads the evaluation report of a run (`RUN_DIR/eval/report.json`, or `RUN_DIR/report.json`).

    Args:
        run_dir: str, a run directory evaluated by eval.py (or a report folder).

    Returns:
        dict, the report.
    """
    if not os.path.isdir(run_dir):
        what = "is a file" if os.path.exists(run_dir) else "does not exist"
        raise EvalInputError(f"--compare: {run_dir!r} {what}; expected a run directory evaluated by eval.py.")
    for path in (os.path.join(run_dir, DEFAULT_OUTPUT_SUBDIR, REPORT_JSON), os.path.join(run_dir, REPORT_JSON)):
        if os.path.isfile(path):
            report = _read_json(path)
            clean = report.get("clean") if isinstance(report, dict) else None
            if not isinstance(clean, dict) or "top1" not in clean or "reliability" not in clean:
                raise EvalInputError(f"--compare: the report {path!r} is damaged (expected report.json written by "
                                     f"eval.py); evaluate the run again with `eval.py --model_dir={run_dir} "
                                     "--overwrite`.")
            return report
    raise EvalInputError(
        f"No evaluation report in {run_dir!r}: run `eval.py --model_dir={run_dir}` first "
        f"(expected {os.path.join(run_dir, DEFAULT_OUTPUT_SUBDIR, REPORT_JSON)}).")


def check_comparison(run_dirs, output_dir, overwrite=False):
    """Checks the inputs of `compare_runs` and reads the reports.

    Args:
        run_dirs: list of at least 2 distinct run directories, each evaluated by eval.py.
        output_dir: str, folder for the comparison (not a report folder: the plots share names).
        overwrite: bool, replace a comparison of other runs found in `output_dir`.

    Returns:
        list of the report dicts, in the order of `run_dirs`.
    """
    if isinstance(run_dirs, (str, os.PathLike)):
        raise EvalInputError(f"--compare needs a list of run directories, not one string. Received: {run_dirs!r}")
    run_dirs = [os.fspath(d) for d in run_dirs]
    if len(run_dirs) < 2:
        raise EvalInputError(f"--compare needs at least 2 run directories (--compare DIR_A DIR_B ...). "
                             f"Received: {run_dirs}")
    seen = {}
    for d in run_dirs:
        key = os.path.realpath(d)
        if key in seen:
            raise EvalInputError(f"--compare names the same run twice: {seen[key]!r} and {d!r}; expected distinct "
                                 f"run directories. Received: {run_dirs}")
        seen[key] = d
    if not output_dir:
        raise EvalInputError("--compare needs --output_dir for the side-by-side report. Received: output_dir=None")
    output_dir = os.fspath(output_dir)
    reports = [read_report(d) for d in run_dirs]
    _check_writable_folder(output_dir, "--output_dir", "comparison")
    if os.path.exists(os.path.join(output_dir, REPORT_JSON)):
        raise EvalInputError(f"--output_dir {output_dir!r} holds an evaluation report whose plots the comparison "
                             "would replace; expected a folder of its own for the comparison.")
    earlier = os.path.join(output_dir, COMPARISON_JSON)
    if os.path.exists(earlier) and not overwrite:
        comparison = _read_json(earlier)
        runs = comparison.get("runs") if isinstance(comparison, dict) else None
        if [os.path.abspath(d) for d in runs or []] != [os.path.abspath(d) for d in run_dirs]:
            raise EvalInputError(f"--output_dir {output_dir!r} already holds a comparison of other runs "
                                 f"({runs}); pass --overwrite to replace it, or another --output_dir to keep both.")
    return reports


def differing_settings(reports):
    """Names of the settings in which the reports' evaluations differ (compare with care)."""
    settings = [r.get("settings") for r in reports]
    if not all(isinstance(s, dict) for s in settings):
        return ["settings (a report does not record them)"]
    return [k for k in SETTINGS if k not in ("model_dir", "classifier") and len({json.dumps(s.get(k), sort_keys=True)
                                                                                  for s in settings}) > 1]
