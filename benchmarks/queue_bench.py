"""Small-batch SupCon with a labelled memory queue vs. without, on the digits main job.

Each configuration trains the digits main job's model (supcon.training.TrainConfig defaults: SupCon,
quarter-width ResNet-18, two SimAugment views) for the same wall-clock budget of pre-training, then
runs the main job's stage 2 and reports the test accuracy, for several seeds:

  * batch 16 without a queue, batch 16 with a queue of 1024 keys (key encoder momentum 0.99),
  * batch 64 with and without the queue, and batch 256 without one (the large-batch reference).

Reported per configuration: test accuracy (mean, min, max over seeds), pre-training steps done in
the budget, mean step time (the first step, which traces, excluded) and the process's peak resident
memory. Each run is its own process, so peak memory is that run's. The budget is wall-clock time,
so the number of steps (and the accuracy) moves with the machine's speed and load: take figures on
a quiet machine and compare configurations within one run of this script.

Usage:
  python benchmarks/queue_bench.py [--seconds 60] [--seeds 0,1,2]
      [--output benchmarks/results/queue_bench.json] [--plot benchmarks/results/queue_bench.png]
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CONFIGS = (
    ("batch 16", dict(batch_size=16)),
    ("batch 16 + queue 1024", dict(batch_size=16, queue_size=1024, key_encoder_momentum=0.99)),
    ("batch 64", dict(batch_size=64)),
    ("batch 64 + queue 1024", dict(batch_size=64, queue_size=1024, key_encoder_momentum=0.99)),
    ("batch 256", dict(batch_size=256)),
)
EPOCHS_CAP = 1000  # The budget ends training long before this many epochs.


def run_one(settings, seed, seconds):
    """Trains one configuration for `seconds` of pre-training; returns its figures (a dict)."""
    import keras  # noqa: PLC0415

    from supcon.training import TrainConfig  # noqa: PLC0415
    from supcon.training import resume  # noqa: PLC0415
    from supcon.training import run as steps  # noqa: PLC0415

    class Budget(keras.callbacks.Callback):
        """Stops `fit` once `seconds` have passed; records the step times."""

        def __init__(self):
            super().__init__()
            self.start, self.times, self.last = None, [], None

        def on_train_batch_begin(self, batch, logs=None):
            self.last = time.perf_counter()
            self.start = self.start or self.last

        def on_train_batch_end(self, batch, logs=None):
            now = time.perf_counter()
            self.times.append(now - self.last)
            if now - self.start >= seconds:
                self.model.stop_training = True

    config = TrainConfig(model_dir=tempfile.mkdtemp(prefix="queue_bench_"), seed=seed,
                         epochs=EPOCHS_CAP, verbose=0, **settings)
    run = steps.start(config)
    data = steps.build_data(run)
    model = steps.build_training_model(run, data)
    budget = Budget()
    resume.fit_from(model, data.stream_from, start_step=0, steps_per_epoch=data.steps_per_epoch,
                    epochs=config.epochs, callbacks=[budget], verbose=0)
    classifier = steps.train_linear_classifier(run, data, model)
    results = steps.evaluate(run, data, model, classifier)
    step_times = budget.times[1:] or budget.times
    return {
        "test_accuracy": results["test_accuracy"],
        "steps": results["steps"],
        "mean_step_s": sum(step_times) / len(step_times),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _plot(summary, path):
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for queued, label, marker in ((False, "no queue", "o"), (True, "queue 1024", "s")):
        points = sorted((row["batch_size"], row["mean"]) for row in summary
                        if bool(row["queue_size"]) == queued)
        if points:
            ax.plot(*zip(*points), marker=marker, label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel("test accuracy (mean over seeds)")
    ax.set_title("SupCon on digits, same pre-training time")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--output", default="benchmarks/results/queue_bench.json")
    parser.add_argument("--plot", default="benchmarks/results/queue_bench.png")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # Internal: `NAME|SEED` in a subprocess.
    args = parser.parse_args()
    if args.one:
        name, seed = args.one.rsplit("|", 1)
        print(json.dumps(run_one(dict(CONFIGS)[name], int(seed), args.seconds)))
        return
    rows = []
    for name, settings in CONFIGS:
        runs = []
        for seed in (int(s) for s in args.seeds.split(",")):
            out = subprocess.run([sys.executable, __file__, f"--seconds={args.seconds}",
                                  f"--one={name}|{seed}"], capture_output=True, text=True,
                                 check=True).stdout
            runs.append(dict(json.loads(out.strip().splitlines()[-1]), seed=seed))
            print(f"{name:24s} seed {seed}: {runs[-1]}", flush=True)
        accuracies = [r["test_accuracy"] for r in runs]
        rows.append({"config": name, "batch_size": settings["batch_size"],
                     "queue_size": settings.get("queue_size", 0), "runs": runs,
                     "mean": sum(accuracies) / len(accuracies), "min": min(accuracies),
                     "max": max(accuracies),
                     "mean_steps": sum(r["steps"] for r in runs) / len(runs),
                     "mean_step_s": sum(r["mean_step_s"] for r in runs) / len(runs),
                     "peak_rss_mb": max(r["peak_rss_mb"] for r in runs)})
    print("\n| configuration | test accuracy % (mean, min-max) | steps in budget | step ms | peak RSS MB |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['config']} | {100 * row['mean']:.2f} ({100 * row['min']:.2f}-"
              f"{100 * row['max']:.2f}) | {row['mean_steps']:.0f} | {1000 * row['mean_step_s']:.1f} |"
              f" {row['peak_rss_mb']:.0f} |")
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump({"seconds": args.seconds, "machine": platform.platform(),
                   "cpus": os.cpu_count(), "load_average": os.getloadavg(), "rows": rows}, f,
                  indent=2)
    _plot(rows, args.plot)
    print(f"Wrote {args.output} and {args.plot}")


if __name__ == "__main__":
    main()
