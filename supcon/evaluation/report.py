"""The evaluation report: `report.json` (every number), `report.md` (tables) and
PNG plots, for one run (`write_report`) or side by side for several (`compare_runs`).

Plots are drawn on `matplotlib.figure.Figure` objects, which render headless (Agg) without
pyplot: importing this module never changes the process's matplotlib backend (a notebook keeps
showing its own figures inline after an evaluation).
"""

import json
import os
import shutil
import tempfile

import numpy as np
from matplotlib.figure import Figure

from supcon.evaluation import corruption_params as cp
from supcon.evaluation import inputs
from supcon.evaluation.inputs import (  # noqa: F401  (the folder layout, named in one place)
    COMPARISON_JSON, COMPARISON_MD, ERRORS_PNG, RELIABILITY_PNG, REPORT_JSON, REPORT_MD, SEVERITY_PNG, SUMMARY_PNG)


def _fmt(value, percent=True):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    return f"{100.0 * value:.2f}" if percent else f"{value:.4f}"


def _int_keys(mapping):
    """JSON turns int keys into strings; turn severity keys back into ints."""
    return {int(k): v for k, v in mapping.items()}


def _corruption_block(report):
    block = report.get("corruptions") or {}
    accuracy = {name: _int_keys(per) for name, per in (block.get("accuracy") or {}).items()}
    summary = block.get("summary") or {}
    per_severity = _int_keys(summary.get("accuracy_per_severity") or {})
    ece_per_severity = _int_keys(block.get("ece_per_severity") or {})
    return block, accuracy, summary, per_severity, ece_per_severity


def render_markdown(report):
    """Renders one run's report as Markdown tables.

    Args:
      report: the dict `supcon.evaluation.evaluate_run` returns (or its JSON form).

    Returns:
      str.
    """
    clean = report["clean"]
    lines = [
        f"# Evaluation of `{report.get('model_dir', '?')}`",
        "",
        f"Method: **{report.get('method', '?')}**, data set: **{report.get('dataset', '?')}** "
        f"({report.get('num_classes', '?')} classes, {report.get('image_size', '?')} px), "
        f"evaluation seed {report.get('seed', '?')}.",
        "",
        f"Classifier: {report.get('classifier', {}).get('source', '?')}. "
        "All numbers are from the final classifier epoch on the test split (no model selection on test).",
        "",
        "## Clean test set",
        "",
        "| metric | value |",
        "|---|---|",
        f"| top-1 accuracy (%) | {_fmt(clean.get('top1'))} |",
        f"| top-5 accuracy (%) | {_fmt(clean.get('top5'))} |",
        f"| ECE, 15 bins (%) | {_fmt(clean.get('ece'))} |",
        f"| examples | {clean.get('num_examples', '-')} |",
    ]
    knn = report.get("knn")
    if knn:
        lines.append(f"| kNN top-1 (%), k={knn['k']}, tau={knn['temperature']} | {_fmt(knn['accuracy'])} |")
    block, accuracy, summary, per_severity, ece_per_severity = _corruption_block(report)
    if accuracy:
        normalized = summary.get("normalization") == "alexnet"
        lines += [
            "",
            "## Corruptions",
            "",
            f"Source: {block.get('source')}; parameters: {block.get('preset')} preset; seed {block.get('seed')}.",
            (
                "CE and mCE are normalized by AlexNet's ImageNet-C errors (Hendrycks & Dietterich 2019)."
                if normalized
                else "CE and mCE are **unnormalized** (no AlexNet baseline exists for this data set): "
                "CE = mean error over severities, relative CE = that minus the clean error."
            ),
            "",
            "| | clean | " + " | ".join(f"severity {s}" for s in sorted(per_severity)) + " |",
            "|---|---|" + "---|" * len(per_severity),
            f"| accuracy (%) | {_fmt(clean.get('top1'))} | "
            + " | ".join(_fmt(per_severity[s]) for s in sorted(per_severity))
            + " |",
            f"| ECE (%) | {_fmt(clean.get('ece'))} | "
            + " | ".join(_fmt(ece_per_severity.get(s)) for s in sorted(per_severity))
            + " |",
            "",
            f"mCE: **{_fmt(summary.get('mce'))}%**, relative mCE: **{_fmt(summary.get('relative_mce'))}%**"
            + ("" if summary.get("mce_complete") else " (over the benchmark corruptions evaluated, not all 15)")
            + f"; mean accuracy over all corruptions and severities: {_fmt(summary.get('mean_corruption_accuracy'))}%.",
            "",
            "Error (%) per corruption and severity:",
            "",
            "| corruption | " + " | ".join(str(s) for s in sorted(per_severity)) + " | CE | relative CE | note |",
            "|---|" + "---|" * (len(per_severity) + 3),
        ]
        approximate = block.get("approximate") or {}
        for name in [n for n in cp.ALL_CORRUPTIONS if n in accuracy]:
            errors = summary["errors"][name]
            errors = _int_keys(errors)
            note = "extra (not in mCE)" if name in cp.EXTRA_CORRUPTIONS else ""
            if name in approximate:
                note = (note + "; " if note else "") + "approximate: " + approximate[name]
            lines.append(
                f"| {name} | "
                + " | ".join(_fmt(errors.get(s)) for s in sorted(per_severity))
                + f" | {_fmt(summary['ce'].get(name))} | {_fmt(summary['relative_ce'].get(name))} | {note} |"
            )
    lines.append("")
    return "\n".join(lines)


def _plot_reliability(ax, bins, label, bars):
    centers = (np.asarray(bins["lower"]) + np.asarray(bins["upper"])) / 2
    count = np.asarray(bins["count"])
    acc = np.asarray(bins["accuracy"])
    mask = count > 0
    if bars:
        width = np.asarray(bins["upper"]) - np.asarray(bins["lower"])
        ax.bar(centers[mask], acc[mask], width=width[mask], edgecolor="black", alpha=0.6, label=label)
    else:
        ax.plot(centers[mask], acc[mask], marker="o", label=label)


def _finish_reliability(ax, title):
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (max softmax probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(fontsize=7)


def write_plots(report, output_dir):
    """Writes the reliability diagram, accuracy-vs-severity and per-corruption error plots.

    Args:
      report: the report dict.
      output_dir: str, existing folder.

    Returns:
      list of the PNG paths written.
    """
    paths = []
    fig, ax = _figure(figsize=(5, 5))
    _plot_reliability(ax, report["clean"]["reliability"], "clean", bars=True)
    block, accuracy, summary, per_severity, _ = _corruption_block(report)
    for s, bins in sorted(_int_keys(block.get("reliability_per_severity") or {}).items()):
        _plot_reliability(ax, bins, f"severity {s}", bars=False)
    _finish_reliability(ax, f"Reliability, ECE (clean) = {_fmt(report['clean'].get('ece'))}%")
    paths.append(_save(fig, os.path.join(output_dir, RELIABILITY_PNG)))
    if accuracy:
        fig, ax = _figure(figsize=(6, 4))
        severities = sorted(per_severity)
        for name in accuracy:
            ys = [report["clean"]["top1"]] + [accuracy[name].get(s, np.nan) for s in severities]
            ax.plot([0] + severities, ys, color="gray", alpha=0.3, linewidth=1)
        ax.plot([0] + severities, [report["clean"]["top1"]] + [per_severity[s] for s in severities],
                marker="o", linewidth=2.5, label="mean over corruptions")
        ax.set_xticks([0] + severities, ["clean"] + [str(s) for s in severities])
        ax.set_xlabel("severity")
        ax.set_ylabel("top-1 accuracy")
        ax.set_ylim(0, 1)
        ax.set_title("Accuracy vs. severity (gray: each corruption)")
        ax.legend()
        paths.append(_save(fig, os.path.join(output_dir, SEVERITY_PNG)))

        names = [n for n in cp.ALL_CORRUPTIONS if n in accuracy]
        errors = [np.mean(list(_int_keys(summary["errors"][n]).values())) for n in names]
        fig, ax = _figure(figsize=(9, 4))
        colors = ["tab:blue" if n in cp.BENCHMARK_CORRUPTIONS else "tab:orange" for n in names]
        ax.bar(range(len(names)), errors, color=colors)
        ax.axhline(1 - report["clean"]["top1"], color="k", linestyle="--", linewidth=1, label="clean error")
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
        ax.set_ylabel("error, mean over severities")
        ax.set_title("Error per corruption (orange: extra corruptions)")
        ax.legend()
        paths.append(_save(fig, os.path.join(output_dir, ERRORS_PNG)))
    return paths


def _figure(rows=1, cols=1, *, figsize):
    """A new pyplot-free figure and its axes (`Figure.subplots`)."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(rows, cols)


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def write_report(report, output_dir):
    """Writes `report.json`, `report.md` and the plots into `output_dir`.

    Args:
      report: the dict `supcon.evaluation.evaluate_run` returns.
      output_dir: str, created if missing (usually `MODEL_DIR/eval`).

    Returns:
      dict `{"json": path, "markdown": path, "plots": [paths]}`.
    """
    os.makedirs(output_dir, exist_ok=True)
    json_path = os.path.join(output_dir, REPORT_JSON)
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2, sort_keys=True)
        f.write("\n")
    md_path = os.path.join(output_dir, REPORT_MD)
    with open(md_path, "w", encoding="utf-8") as f:
        f.write(render_markdown(report))
    return {"json": json_path, "markdown": md_path, "plots": write_plots(report, output_dir)}


def load_report(run_dir):
    """Reads `RUN_DIR/eval/report.json` (or `RUN_DIR/report.json`), one-line error if absent or damaged."""
    return inputs.read_report(run_dir)


def replace_files(output_dir, write, owned):
    """Writes a set of files into `output_dir` all at once, or not at all.

    `write(folder)` writes the new files into a staging folder inside `output_dir`; only when it
    returns are they moved into place (one `os.replace` each), and the files of `owned` that the
    new set lacks (plots of an earlier, larger report) are removed. A failure or Ctrl-C while
    writing leaves `output_dir` as it was.

    Args:
      output_dir: str, created if missing.
      write: function `folder -> None`.
      owned: names of the files this kind of output consists of.

    Returns:
      list of the paths written, in `output_dir`.
    """
    created = not os.path.isdir(output_dir)
    os.makedirs(output_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".partial-", dir=output_dir)
    try:
        write(staging)
        names = sorted(os.listdir(staging))
        for name in names:
            os.replace(os.path.join(staging, name), os.path.join(output_dir, name))
        for name in owned:
            if name not in names and os.path.isfile(os.path.join(output_dir, name)):
                os.remove(os.path.join(output_dir, name))
        return [os.path.join(output_dir, name) for name in names]
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not os.listdir(output_dir):  # Failed before anything was moved in.
            os.rmdir(output_dir)


def _comparison_rows(reports):
    rows = []

    def row(label, values, percent=True):
        rows.append((label, [_fmt(v, percent) for v in values]))

    row("top-1 accuracy (%)", [r["clean"].get("top1") for r in reports])
    row("top-5 accuracy (%)", [r["clean"].get("top5") for r in reports])
    row("kNN accuracy (%)", [(r.get("knn") or {}).get("accuracy") for r in reports])
    row("ECE clean (%)", [r["clean"].get("ece") for r in reports])
    summaries = [_corruption_block(r) for r in reports]
    if any(acc for _, acc, _, _, _ in summaries):
        norms = {s.get("normalization") for _, _, s, _, _ in summaries if s}
        suffix = " (AlexNet-normalized)" if norms == {"alexnet"} else " (unnormalized)"
        row("mCE (%)" + suffix, [s.get("mce") for _, _, s, _, _ in summaries])
        row("relative mCE (%)" + suffix, [s.get("relative_mce") for _, _, s, _, _ in summaries])
        row("mean corrupted accuracy (%)", [s.get("mean_corruption_accuracy") for _, _, s, _, _ in summaries])
        severities = sorted({k for _, _, _, per, _ in summaries for k in per})
        for s in severities:
            row(f"accuracy severity {s} (%)", [per.get(s) for _, _, _, per, _ in summaries])
        for s in severities:
            row(f"ECE severity {s} (%)", [ece.get(s) for _, _, _, _, ece in summaries])
        names = [n for n in cp.ALL_CORRUPTIONS if any(n in acc for _, acc, _, _, _ in summaries)]
        for n in names:
            row(f"error {n} (%)", [
                np.mean(list(_int_keys(s["errors"][n]).values())) if s and n in s.get("errors", {}) else None
                for _, _, s, _, _ in summaries
            ])
    return rows


def compare_runs(run_dirs, output_dir, *, overwrite=False):
    """Side-by-side table, overlaid plots and one summary figure of several evaluated runs.

    `summary.png` is the figure for a paper: clean error, ECE, mCE and relative mCE as grouped
    bars (lower is better), accuracy against corruption severity, and the reliability diagram.

    Reads each `RUN_DIR/eval/report.json` (written by `eval.py --model_dir=RUN_DIR`). Reports
    evaluated with different settings (data set, corruptions, seed, ...) are compared all the
    same, with a note under the table naming the settings that differ.

    Args:
      run_dirs: list of str, at least two distinct run directories.
      output_dir: str, created if missing; not a report folder (the plots share its names).
      overwrite: bool, replace a comparison of other runs found in `output_dir` (one of the
        same runs is replaced in any case).

    Returns:
      dict `{"markdown": table text, "files": [paths written]}`.
    """
    reports = inputs.check_comparison(run_dirs, output_dir, overwrite)
    run_dirs = [os.fspath(d) for d in run_dirs]
    labels = [f"{r.get('method', '?')} ({os.path.basename(os.path.normpath(d))})" for r, d in zip(reports, run_dirs)]
    rows = _comparison_rows(reports)
    lines = [
        "# Side-by-side evaluation",
        "",
        "| metric | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    lines += [f"| {label} | " + " | ".join(values) + " |" for label, values in rows]
    lines += ["", "Runs: " + ", ".join(f"`{d}`" for d in run_dirs), ""]
    differing = inputs.differing_settings(reports)
    if differing:
        lines += [f"Note: these runs were evaluated with different {', '.join(differing)}; compare with care.", ""]
    markdown = "\n".join(lines)
    files = replace_files(
        output_dir, lambda folder: _write_comparison(folder, markdown, run_dirs, labels, rows, reports),
        inputs.COMPARISON_FILES)
    return {"markdown": markdown, "files": files}


def _write_comparison(output_dir, markdown, run_dirs, labels, rows, reports):
    with open(os.path.join(output_dir, COMPARISON_MD), "w", encoding="utf-8") as f:
        f.write(markdown)
    with open(os.path.join(output_dir, COMPARISON_JSON), "w", encoding="utf-8") as f:
        json.dump({"runs": [os.path.abspath(d) for d in run_dirs], "labels": labels, "rows": rows}, f, indent=2)
        f.write("\n")

    blocks = [_corruption_block(r) for r in reports]
    corrupted = any(acc for _, acc, _, _, _ in blocks)

    fig, ax = _figure(figsize=(5, 5))
    _draw_compared_reliability(ax, labels, reports)
    _save(fig, os.path.join(output_dir, RELIABILITY_PNG))
    if corrupted:
        fig, ax = _figure(figsize=(6, 4))
        _draw_compared_severity(ax, labels, reports, blocks)
        _save(fig, os.path.join(output_dir, SEVERITY_PNG))

        names = [n for n in cp.ALL_CORRUPTIONS if any(n in acc for _, acc, _, _, _ in blocks)]
        fig, ax = _figure(figsize=(10, 4))
        width = 0.8 / len(reports)
        for i, (label, (_, _, s, _, _)) in enumerate(zip(labels, blocks)):
            errors = [np.mean(list(_int_keys(s["errors"][n]).values())) if n in s.get("errors", {}) else np.nan
                      for n in names]
            ax.bar(np.arange(len(names)) + i * width - 0.4 + width / 2, errors, width=width, label=label)
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
        ax.set_ylabel("error, mean over severities")
        ax.legend()
        _save(fig, os.path.join(output_dir, ERRORS_PNG))

    # One figure for a paper: the headline numbers, robustness by severity, and calibration.
    panels = 3 if corrupted else 2
    fig, axes = _figure(1, panels, figsize=(4.6 * panels, 4.2))
    _draw_headline_bars(axes[0], labels, reports, blocks)
    if corrupted:
        _draw_compared_severity(axes[1], labels, reports, blocks)
    _draw_compared_reliability(axes[-1], labels, reports)
    _save(fig, os.path.join(output_dir, SUMMARY_PNG))


def _draw_compared_reliability(ax, labels, reports):
    for label, r in zip(labels, reports):
        _plot_reliability(ax, r["clean"]["reliability"], f"{label}, ECE {_fmt(r['clean'].get('ece'))}%", bars=False)
    _finish_reliability(ax, "Reliability on the clean test set")


def _draw_compared_severity(ax, labels, reports, blocks):
    for label, r, (_, _, _, per, _) in zip(labels, reports, blocks):
        severities = sorted(per)
        ax.plot([0] + severities, [r["clean"]["top1"]] + [per[s] for s in severities], marker="o", label=label)
    ax.set_xticks(range(6), ["clean", "1", "2", "3", "4", "5"])
    ax.set_xlabel("severity")
    ax.set_ylabel("top-1 accuracy, mean over corruptions")
    ax.set_ylim(0, 1)
    ax.set_title("Accuracy under corruption")
    ax.legend(fontsize=7)


def _draw_headline_bars(ax, labels, reports, blocks):
    """Grouped bars, lower is better: clean error, ECE and (with corruptions) mCE and relative mCE."""
    metrics = [("clean error", [1.0 - r["clean"]["top1"] for r in reports]),
               ("ECE", [r["clean"].get("ece") for r in reports])]
    if any(acc for _, acc, _, _, _ in blocks):
        metrics += [("mCE", [s.get("mce") for _, _, s, _, _ in blocks]),
                    ("relative mCE", [s.get("relative_mce") for _, _, s, _, _ in blocks])]
    width = 0.8 / len(reports)
    for i, label in enumerate(labels):
        values = [100.0 * v[i] if v[i] is not None else np.nan for _, v in metrics]
        bars = ax.bar(np.arange(len(metrics)) + i * width - 0.4 + width / 2, values, width=width, label=label)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(range(len(metrics)), [name for name, _ in metrics])
    ax.set_ylabel("% (lower is better)")
    ax.set_title("Error, calibration, robustness")
    ax.legend(fontsize=7)
