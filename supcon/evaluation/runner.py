"""`evaluate_run`: everything eval.py does to one training run, with explicit arguments.

Story: read the run directory -> load the test (and train) split -> load the
model -> get a classifier (the run's, a retrained linear one, or the
cross-entropy model's own head) -> clean top-1/top-5 and calibration -> kNN on
the embeddings -> corruption sweep -> report files.
"""

import json
import os

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from supcon.evaluation import calibration, corrupted_data, inputs, knn, linear_eval, metrics, report
from supcon.evaluation import corruption_params as cp
from supcon.evaluation.corruptions import corrupt
from supcon.evaluation.inputs import EvalInputError  # noqa: F401  (public as supcon.evaluation.EvalInputError)


def _batches(dataset, limit):
    """Yields numpy `(images, labels)` batches, at most `limit` examples in all (None: all)."""
    seen = 0
    for images, labels in dataset:
        images, labels = images.numpy(), labels.numpy()
        if limit is not None:
            images, labels = images[: limit - seen], labels[: limit - seen]
        if len(labels) == 0:
            return
        seen += len(labels)
        yield images, labels
        if limit is not None and seen >= limit:
            return


def _embed(encoder, dataset, limit):
    feats, labels = [], []
    embed = tf.function(lambda x: encoder(x, training=False))
    for images, y in _batches(dataset, limit):
        feats.append(embed(tf.constant(images, tf.float32)).numpy())
        labels.append(y)
    if not feats:
        return np.zeros((0, encoder.output_shape[-1]), np.float32), np.zeros((0,), np.int32)
    return np.concatenate(feats), np.concatenate(labels)


def _softmax(logits):
    """Softmax in float64 (max-subtracted so large logits cannot overflow)."""
    logits = np.asarray(logits, np.float64)
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    return probabilities


def evaluate_run(
    model_dir,
    *,
    data_dir=None,
    dataset=None,
    output_dir=None,
    corruptions=cp.ALL_CORRUPTIONS,
    severities=cp.SEVERITIES,
    corruption_source="auto",
    seed=0,
    batch_size=128,
    max_test_examples=None,
    knn_k=knn.DEFAULT_K,
    knn_temperature=knn.DEFAULT_TEMPERATURE,
    retrain_classifier=False,
    classifier_optimizer="auto",
    classifier_learning_rate=None,
    classifier_epochs=None,
    classifier_batch_size=None,
    classifier_augmentation="none",
    progress=True,
    verbose=0,
    overwrite=False,
):
    """Evaluates one training run: clean accuracy, kNN, corruption robustness, calibration.

    Corruption metrics follow Hendrycks & Dietterich 2019 (arXiv 1903.12261) §4,
    calibration Guo et al. 2017 (ECE, 15 bins), kNN Wu et al. 2018 (§3.4).

    Args:
      model_dir: str, a run directory written by train.py (`run_config.json`, `model.keras`,
        optionally `classifier.keras`; see CONTRACTS.md).
      data_dir: str or None, data directory (default: the run's); prepared TFDS
        `cifar10_corrupted` / `imagenet2012_corrupted` sets are looked up here.
      dataset: str or None, data set to evaluate on (default: the run's). Its class
        count must equal the run's.
      output_dir: str or None, where the report goes (default `model_dir/eval`).
      corruptions: names from `ALL_CORRUPTIONS` (default all 19; empty: no sweep).
      severities: ints in 1..5 (default all).
      corruption_source: "auto" (prepared TFDS sets if all present, else generate),
        "tfds" (require them) or "generate".
      seed: int, seed of the generated corruptions and the classifier training data order.
      batch_size: int, evaluation batch size.
      max_test_examples: int or None, evaluate on the first N test examples only
        (clean, kNN queries and sweep alike; for quick looks).
      knn_k, knn_temperature: kNN neighbours (200) and vote temperature (0.07); k=0 skips kNN.
      retrain_classifier: bool, train a new linear classifier even if the run has one.
      classifier_optimizer: "auto" (RMSProp for images >= 128 px, else SGD), "sgd", "rmsprop".
      classifier_learning_rate: float per 256 examples, or None (optimizer default).
      classifier_epochs, classifier_batch_size: ints or None (the run's `linear_*` settings,
        else 10 and 128).
      classifier_augmentation: "none" (un-augmented training images, the default) or a
        `supcon.data` augmentation name.
      progress: bool, show a progress bar over the corruption sweep.
      verbose: Keras verbosity while training the classifier.
      overwrite: bool, replace a report of other settings found in `output_dir`. Without it
        such a report is refused (and left untouched) before any work; a report of the same
        settings is replaced in any case (see `supcon.evaluation.inputs`).

    Every input is checked before any work (`supcon.evaluation.inputs.check_evaluation`); the
    report files (and a classifier trained here) replace the earlier ones only once all are
    written. `max_test_examples` larger than the test split evaluates the whole split
    (`report["clean"]["num_examples"]` says how many).

    Returns:
      dict, the report (also written to `output_dir` as report.json, report.md and PNGs).
    """
    # Imported here for their side effect: registering the supcon Keras classes that
    # `load_model` must find (the models, and the losses in their compile configs).
    import supcon.losses  # noqa: F401, PLC0415
    import supcon.models  # noqa: F401, PLC0415
    from supcon import data as data_lib  # noqa: PLC0415

    plan = inputs.check_evaluation(
        model_dir, dataset=dataset, output_dir=output_dir, corruptions=corruptions, severities=severities,
        corruption_source=corruption_source, seed=seed, batch_size=batch_size, max_test_examples=max_test_examples,
        knn_k=knn_k, knn_temperature=knn_temperature, retrain_classifier=retrain_classifier,
        classifier_optimizer=classifier_optimizer, classifier_learning_rate=classifier_learning_rate,
        classifier_epochs=classifier_epochs, classifier_batch_size=classifier_batch_size,
        classifier_augmentation=classifier_augmentation, overwrite=overwrite)
    config, dataset, output_dir = plan["config"], plan["dataset"], plan["output_dir"]
    corruptions, severities = plan["corruptions"], plan["severities"]
    data_dir = data_dir if data_dir is not None else config.get("data_dir")
    num_classes, image_size = int(config["num_classes"]), int(config["image_size"])

    # --- Data (and, before any work, the prepared corrupted sets that --corruption_source=tfds needs).
    test_source = data_lib.load(dataset, "test", data_dir=data_dir, seed=seed)
    if int(test_source.info.num_classes) != num_classes:
        raise EvalInputError(
            f"model_dir {model_dir!r} was trained for {num_classes} classes but data set {dataset!r} "
            f"has {int(test_source.info.num_classes)}; expected a data set with {num_classes} classes."
        )
    if corruptions and corruption_source == "tfds":
        _check_prepared(dataset, corruptions, severities, data_dir)
    test_data = data_lib.pipeline(test_source, "test", batch_size=batch_size, training=False,
                                  image_size=image_size, seed=seed)

    # --- Model and classifier head.
    model = _load(os.path.join(model_dir, inputs.MODEL_FILE), model_dir, "encoder")
    encoder = model.encoder
    classifier_info, trained = {}, None
    if inputs.is_cross_entropy_run(config) or hasattr(model, "label_smoothing"):
        if not hasattr(model, "classifier_head"):
            raise EvalInputError(f"model.keras in model_dir {model_dir!r} has no classifier head, but its "
                                 "run_config.json says method='ce'; expected the cross-entropy model.")
        head, classifier_info = model.classifier_head, {"source": "the cross-entropy model's own classifier"}
    else:
        saved = os.path.join(model_dir, inputs.CLASSIFIER_FILE)
        if not plan["trains_classifier"]:
            classifier = _load(saved, model_dir, "classifier_head")
            classifier_info = {"source": f"loaded {saved}"}
        else:
            classifier, classifier_info = _train_classifier(
                data_lib, encoder, config, dataset=dataset, data_dir=data_dir, num_classes=num_classes,
                image_size=image_size, seed=seed, optimizer=classifier_optimizer,
                learning_rate=classifier_learning_rate, epochs=classifier_epochs,
                batch_size=classifier_batch_size, augmentation=classifier_augmentation, verbose=verbose)
            trained = classifier
        head = classifier.classifier_head
        if int(classifier.encoder.output_shape[-1]) != int(encoder.output_shape[-1]):
            raise EvalInputError(
                f"classifier.keras in model_dir {model_dir!r} takes {int(classifier.encoder.output_shape[-1])}-d "
                f"embeddings but model.keras's encoder gives {int(encoder.output_shape[-1])}-d ones: is it from "
                "another run? Pass --retrain_classifier to train one for this run.")
    if int(head.num_classes) != num_classes:
        raise EvalInputError(
            f"The classifier of {model_dir!r} has {int(head.num_classes)} outputs but the run has {num_classes} classes.")
    predict = tf.function(lambda x: head(encoder(x, training=False)))

    # --- Clean test set.
    test_features, test_labels = _embed(encoder, test_data, max_test_examples)
    clean_probs = _softmax(head(tf.constant(test_features)))
    clean = {
        "top1": metrics.top_k_accuracy(clean_probs, test_labels, 1),
        "top5": metrics.top_k_accuracy(clean_probs, test_labels, 5),
        "ece": calibration.expected_calibration_error(clean_probs, test_labels),
        "reliability": calibration.reliability_bins(clean_probs, test_labels),
        "num_examples": int(len(test_labels)),
    }

    # --- kNN on the embeddings (labels only for the vote, never for the encoder).
    knn_block = None
    if knn_k:
        train_source = data_lib.load(dataset, "train", data_dir=data_dir, seed=seed)
        train_data = data_lib.pipeline(train_source, "train", batch_size=batch_size, training=False,
                                       image_size=image_size, seed=seed)
        train_features, train_labels = _embed(encoder, train_data, None)
        knn_block = {
            "accuracy": knn.knn_accuracy(train_features, train_labels, test_features, test_labels,
                                         num_classes=num_classes, k=knn_k, temperature=knn_temperature),
            "k": int(min(knn_k, len(train_labels))),
            "temperature": float(knn_temperature),
        }

    # --- Corruption sweep.
    corruption_block = None
    if corruptions and severities:
        corruption_block = _sweep(
            data_lib, predict, test_data, dataset=dataset, data_dir=data_dir, corruptions=corruptions,
            severities=severities, source=corruption_source, seed=seed, batch_size=batch_size,
            image_size=image_size, limit=max_test_examples, progress=progress)
        corruption_block["summary"] = metrics.corruption_summary(
            corruption_block["accuracy"], clean["top1"],
            normalization="alexnet" if str(dataset).startswith("imagenet2012") else "none")

    result = {
        "model_dir": os.path.abspath(model_dir),
        "method": config.get("method", "?"),
        "dataset": dataset,
        "num_classes": num_classes,
        "image_size": image_size,
        "seed": int(seed),
        "training_seed": config.get("seed"),
        "settings": plan["settings"],
        "classifier": classifier_info,
        "clean": clean,
        "knn": knn_block,
        "corruptions": corruption_block,
    }
    result = json.loads(json.dumps(result))  # Plain JSON types (and str severity keys) throughout.
    result["files"] = _write(result, trained, output_dir)
    return result


def _write(result, trained_classifier, output_dir):
    """Writes the report (and a classifier trained here) in place of the earlier ones, all at once."""

    def write(folder):
        report.write_report(result, folder)
        if trained_classifier is not None:
            trained_classifier.save(os.path.join(folder, inputs.CLASSIFIER_FILE))

    paths = report.replace_files(output_dir, write, inputs.REPORT_FILES)
    return {"json": os.path.join(output_dir, inputs.REPORT_JSON),
            "markdown": os.path.join(output_dir, inputs.REPORT_MD),
            "plots": [p for p in paths if p.endswith(".png")]}


def _load(path, model_dir, attribute):
    """`keras.saving.load_model(path)`; a damaged file or another kind of model is one line."""
    name = os.path.basename(path)
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as error:  # noqa: BLE001 - Keras raises many kinds for a damaged archive.
        first = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
        raise EvalInputError(f"{name} in model_dir {model_dir!r} is damaged or not a supcon model: could not load "
                             f"it ({type(error).__name__}: {first}).") from error
    if not hasattr(model, attribute):
        raise EvalInputError(f"{name} in model_dir {model_dir!r} is a {type(model).__name__}; expected a supcon "
                             f"model with {'an' if attribute[0] in 'aeiou' else 'a'} `{attribute}` "
                             "(the file of another run or program?).")
    return model


def _check_prepared(dataset, corruptions, severities, data_dir):
    base = str(dataset).split("/")[0]
    if base not in corrupted_data.TFDS_CORRUPTED:
        raise EvalInputError(
            f"--corruption_source=tfds: data set {dataset!r} has no prepared corrupted sets in TFDS (only "
            f"{', '.join(corrupted_data.TFDS_CORRUPTED)} have); use --corruption_source=generate (or auto).")
    if not corrupted_data.prepared_in(dataset, corruptions, severities, data_dir):
        builder = corrupted_data.TFDS_CORRUPTED[base][0]
        where = f"data_dir {data_dir!r}" if data_dir else "a data directory (none given: pass --data_dir=DIR)"
        raise EvalInputError(
            f"--corruption_source=tfds: the {builder} sets of the requested corruptions and severities are not all "
            f"prepared in {where}; prepare them there, or use --corruption_source=generate (or auto).")


def _train_classifier(data_lib, encoder, config, *, dataset, data_dir, num_classes, image_size, seed, optimizer,
                      learning_rate, epochs, batch_size, augmentation, verbose):
    optimizer = linear_eval.resolve_optimizer(optimizer, image_size)
    # A run trained with --linear_epochs=0 (no stage 2) has no epochs to copy: 0 would leave the
    # classifier untrained and every number meaningless.
    epochs = int(epochs if epochs is not None else config.get("linear_epochs") or linear_eval.DEFAULT_EPOCHS)
    batch_size = int(batch_size or config.get("linear_batch_size", linear_eval.DEFAULT_BATCH_SIZE))
    if learning_rate is None and optimizer == "sgd":
        learning_rate = config.get("linear_learning_rate")
    train_source = data_lib.load(dataset, "train", data_dir=data_dir, seed=seed)
    if augmentation == "none":
        train_data = data_lib.pipeline(train_source, "train", batch_size=batch_size, training=False,
                                       image_size=image_size, seed=seed)
    else:
        train_data = data_lib.pipeline(train_source, "train", views=1, augmentation=augmentation,
                                       batch_size=batch_size, training=True, image_size=image_size, seed=seed)
        train_data = train_data.map(lambda views, labels: (views[:, 0], labels))
    steps = max(int(train_source.num_examples) // batch_size, 1)
    classifier, history = linear_eval.train_linear_classifier(
        encoder, train_data.repeat(), num_classes=num_classes, steps_per_epoch=steps, optimizer=optimizer,
        learning_rate=learning_rate, epochs=epochs, batch_size=batch_size, verbose=verbose)
    return classifier, {
        "source": "linear classifier trained by eval.py on the frozen encoder",
        "optimizer": optimizer,
        "learning_rate_per_256": learning_rate,
        "epochs": epochs,
        "batch_size": batch_size,
        "augmentation": augmentation,
        "final_epoch": {k: v[-1] for k, v in history.items() if v},
    }


def _sweep(data_lib, predict, test_data, *, dataset, data_dir, corruptions, severities, source, seed, batch_size,
           image_size, limit, progress):
    use_tfds = source == "tfds" or (
        source == "auto" and corrupted_data.prepared_in(dataset, corruptions, severities, data_dir))
    preset = cp.preset_for_image_size(image_size, image_size)
    accuracy, ece, pooled = {}, {}, {s: ([], []) for s in severities}
    bar = tqdm(total=len(corruptions) * len(severities), desc="corruption sweep", disable=not progress,
               unit="set")
    for name in corruptions:
        accuracy[name], ece[name] = {}, {}
        for severity in severities:
            bar.set_postfix_str(f"{name} {severity}")
            probs, labels = [], []
            if use_tfds:
                tfds_name, split = corrupted_data.tfds_corrupted_name(dataset, name, severity)
                source_c = data_lib.load(tfds_name, split, data_dir=data_dir, seed=seed)
                batches = _batches(data_lib.pipeline(source_c, split, batch_size=batch_size, training=False,
                                                     image_size=image_size, seed=seed), limit)
            else:
                batches = _generated(test_data, name, severity, seed, preset, limit)
            for images, y in batches:
                probs.append(_softmax(predict(tf.constant(images, tf.float32)).numpy()))
                labels.append(y)
            probs, labels = np.concatenate(probs), np.concatenate(labels)
            accuracy[name][severity] = metrics.top_k_accuracy(probs, labels, 1)
            ece[name][severity] = calibration.expected_calibration_error(probs, labels)
            pooled[severity][0].append(probs)
            pooled[severity][1].append(labels)
            bar.update(1)
    bar.close()
    reliability = {s: calibration.reliability_bins(np.concatenate(p), np.concatenate(y)) for s, (p, y) in pooled.items()}
    ece_per_severity = {
        s: calibration.expected_calibration_error(np.concatenate(p), np.concatenate(y)) for s, (p, y) in pooled.items()
    }
    return {
        "source": "tfds (prepared)" if use_tfds else "generated by supcon.evaluation.corrupt",
        "preset": preset if not use_tfds else corrupted_data.TFDS_CORRUPTED[str(dataset).split("/")[0]][0],
        "seed": int(seed),
        "approximate": {} if use_tfds else {n: cp.APPROXIMATE_CORRUPTIONS[n] for n in corruptions
                                            if n in cp.APPROXIMATE_CORRUPTIONS},
        "accuracy": accuracy,
        "ece": ece,
        "ece_per_severity": ece_per_severity,
        "reliability_per_severity": reliability,
    }


def _generated(test_data, name, severity, seed, preset, limit):
    offset = 0
    for images, labels in _batches(test_data, limit):
        yield corrupt(images, name, severity, seed=seed, preset=preset, index_offset=offset), labels
        offset += len(labels)
