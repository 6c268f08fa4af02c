"""Forward+backward time and peak memory of the contrastive losses: dense vs blocked vs the matmul bound.

For each global batch size B (2 views, 128 dims, N = 2B rows) it measures, each
configuration in a fresh subprocess so peak memory is its own:

  * `matmul`: the three [N, D] x [D, N]-sized products of the textbook
    gradient (logits forward; `G C` and the transposed `G^T A` backward): the
    bound. (The loss can go below it: with symmetric logits its third product
    needs no transposed operand, and a queue's unused key gradient is pruned.)
  * `dense`: `supcon_loss(..., block_size=None)`, value and gradient.
  * `blocked`: `supcon_loss(..., block_size=--block_size)`, value and gradient.

in three modes: "eager" (an eager `tf.GradientTape`, as a notebook or a custom
eager loop runs it), "graph" (a plain `tf.function`: what Keras runs on a CPU and
under tf.distribute, where `jit_compile` is off) and "xla"
(`tf.function(jit_compile=True)`: Keras' default for a single-GPU model).

With `--options`, it also times the dense path of every loss option at one batch
size (default 1024x2) against the same mode's bound: SupCon, SimCLR, GenSCL,
L_in, the "one_positive" and "only_negatives" denominators, a positives cap,
`contrast_mode="one"` (against its own bound: B anchors, logits B x N) and a
4096-key memory queue (against its own bound, whose logits are N x (N + 4096)).

Peak memory is TensorFlow's allocator peak during one step after warm-up
(`tf.config.experimental.get_memory_info` on "GPU:0" when there is a GPU, else on
"CPU:0": tensors only, not the process), reset before the step. The process's
peak RSS above its baseline is reported too on CPU (it includes tracing and
allocator caching).

Targets (issue 12; checked here, never in timed tests):
  * dense at 1024x2 within 1.3x of the matmul bound as a plain `tf.function`
    ("graph") and 1.2x under XLA (eager is reported, no target);
  * blocked at 8192x2 with at most 1/8 of the dense peak memory in all three
    modes, at most 1.3x the dense time.

Times and ratios come from one process per batch size and mode (per option with
`--options`) that runs the configurations round-robin, two warm-up steps each, then
`--repeats` rounds: the median (`--statistic min`: the fastest) of each. Ratios
taken that way share the machine's state; each configuration also runs alone in
its own process for its peak memory (its time alone is kept in the JSON as
"alone"). On a shared machine every figure is noisy, the ratios less.

Usage:
  python benchmarks/loss_bench.py [--batches 256,1024,4096,8192] [--block_size 256]
      [--modes eager,graph,xla] [--repeats 9] [--statistic median|min]
      [--options] [--options_batch 1024] [--output benchmarks/results/loss_bench.json]
  python benchmarks/loss_bench.py --batches 1024 --options       # every option, 1024x2
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

DIM = 128
VIEWS = 2
MODES = ("eager", "graph", "xla")
QUEUE_KEYS = 4096
# Name -> how the loss is called: SupCon's keywords, or "genscl"/"simclr"/"queue".
LOSS_OPTIONS = {
    "supcon": {},
    "simclr": {"labels": None},
    "genscl": {"genscl": True},
    "inside": {"summation": "inside"},
    "one_positive": {"denominator": "one_positive"},
    "only_negatives": {"denominator": "only_negatives"},
    "positives_cap": {"positives_cap": 8},
    "contrast_one": {"contrast_mode": "one"},
    "queue": {"queue": True},
}
TARGETS = (
    # (name, kind, batch, field, mode -> limit or None)
    ("dense 1024x2 time / matmul bound", "dense", 1024, "ratio_to_matmul", {"graph": 1.3, "xla": 1.2}),
    ("blocked 8192x2 peak memory / dense", "blocked", 8192, "memory_ratio_to_dense",
     {"eager": 0.125, "graph": 0.125, "xla": 0.125}),
    ("blocked 8192x2 time / dense", "blocked", 8192, "time_ratio_to_dense", {"eager": 1.3, "graph": 1.3, "xla": 1.3}),
)


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _loss_fn(losses, option, block_size, rng, batch):
    """`(fn(features) -> value, extra note)` for one loss option."""
    import numpy as np
    import tensorflow as tf

    settings = dict(LOSS_OPTIONS[option])
    labels = tf.constant(rng.integers(0, 100, size=batch).astype(np.int32))
    if settings.pop("genscl", False):
        distributions = tf.constant(rng.dirichlet(np.ones(10), size=batch).astype(np.float32))
        return lambda x: losses.genscl_loss(x, distributions, block_size=block_size)
    if settings.pop("queue", False):
        keys = rng.normal(size=(QUEUE_KEYS, DIM)).astype(np.float32)
        keys = tf.constant(keys / np.linalg.norm(keys, axis=-1, keepdims=True))
        key_labels = tf.constant(rng.integers(0, 100, size=QUEUE_KEYS).astype(np.int32))
        key_valid = tf.range(QUEUE_KEYS) < QUEUE_KEYS * 3 // 4
        return lambda x: losses.supcon_loss(
            x, labels, block_size=block_size, contrast_features=keys, contrast_labels=key_labels,
            contrast_valid=key_valid,
        )
    if "labels" in settings:
        labels = settings.pop("labels")
    return lambda x: losses.supcon_loss(x, labels, block_size=block_size, **settings)


def _build_step(kind, batch, block_size, mode, option):
    """`(step, argument)`: one forward+backward of a configuration, as its mode runs it."""
    import numpy as np
    import tensorflow as tf

    import supcon.losses as losses

    rng = np.random.default_rng(0)
    features = rng.normal(size=(batch, VIEWS, DIM)).astype(np.float32)
    features /= np.linalg.norm(features, axis=-1, keepdims=True)
    features = tf.constant(features)
    rows = batch * VIEWS

    if kind == "matmul":
        anchors = tf.reshape(features, [rows, DIM])
        # The queue's logits are [N, N + keys]: its bound has as many columns. With
        # contrast_mode="one" only view 0 anchors: [B, N].
        keys = tf.zeros([QUEUE_KEYS if option == "queue" else 0, DIM])
        anchor_rows = batch if option == "contrast_one" else rows

        def step(x):
            contrasts = tf.concat([x, keys], axis=0)
            a = x[:anchor_rows]
            logits = tf.matmul(a, contrasts, transpose_b=True)
            # Backward of logits = A C^T: dA = G C, dC = G^T A (G has the logits' shape).
            grad_a = tf.matmul(logits, contrasts)
            grad_c = tf.matmul(logits, a, transpose_a=True)
            return tf.reduce_sum(grad_a) + tf.reduce_sum(grad_c)

        argument = anchors
    else:
        loss = _loss_fn(losses, option, None if kind == "dense" else block_size, rng, batch)

        def step(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                value = tf.reduce_mean(loss(x))
            return value + tf.reduce_sum(tape.gradient(value, x))

        argument = features

    if mode != "eager":
        step = tf.function(step, jit_compile=mode == "xla")
    return step, argument


def _measure(kind, batch, block_size, mode, repeats, option):
    """Runs one configuration in this process; returns a dict of figures (its peak memory is its own)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    gpu = bool(tf.config.list_physical_devices("GPU"))
    device = "GPU:0" if gpu else "CPU:0"
    baseline = _peak_rss_mb()
    step, argument = _build_step(kind, batch, block_size, mode, option)
    step(argument).numpy()  # trace + warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step(argument).numpy()
        times.append(time.perf_counter() - start)
    tf.config.experimental.reset_memory_stats(device)
    step(argument).numpy()
    peak = tf.config.experimental.get_memory_info(device)["peak"] / 2**20
    return {
        "kind": kind,
        "option": option,
        "batch": batch,
        "rows": batch * VIEWS,
        "block_size": block_size if kind == "blocked" else None,
        "mode": mode,
        "seconds": float(np.median(times)),
        "min_seconds": float(np.min(times)),
        "peak_mb": float(peak),
        "peak_rss_mb": None if gpu else float(_peak_rss_mb() - baseline),
        "device": "GPU" if gpu else "CPU",
    }


def _measure_interleaved(configs, repeats):
    """Times several configurations in one process, round-robin: their ratios share the machine's state.

    Each configuration runs two warm-up steps, then one step per round for
    `repeats` rounds (a step of each configuration per round), so a slow
    spell of a shared machine slows them all alike.

    Returns:
      `{name: {"seconds": median, "min_seconds": min}}` for `configs` given as
      `[name, kind, batch, block_size, mode, option]` lists.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    steps = {}
    for name, kind, batch, block_size, mode, option in configs:
        step, argument = _build_step(kind, batch, block_size, mode, option)
        for _ in range(2):
            step(argument).numpy()
        steps[name] = (step, argument)
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, (step, argument) in steps.items():
            start = time.perf_counter()
            step(argument).numpy()
            times[name].append(time.perf_counter() - start)
    return {name: {"seconds": float(np.median(t)), "min_seconds": float(np.min(t))} for name, t in times.items()}


def _run_subprocess(kind, batch, block_size, mode, repeats, option="supcon"):
    command = [sys.executable, __file__, "--_one", f"{kind},{batch},{block_size},{mode},{repeats},{option}"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr or "").strip().splitlines()[-3:]
        return {"kind": kind, "batch": batch, "mode": mode, "option": option,
                "error": " | ".join(tail) or f"exit {result.returncode}"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def _run_interleaved(configs, repeats):
    """`_measure_interleaved` in a fresh process; `{}` (and a printed reason) if it fails."""
    command = [sys.executable, __file__, "--_interleaved", json.dumps({"configs": configs, "repeats": repeats})]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        print("  interleaved timing failed: " + " | ".join((result.stderr or "").strip().splitlines()[-3:]))
        return {}
    return json.loads(result.stdout.strip().splitlines()[-1])


def _fmt(value, spec):
    return format(value, spec) if value is not None else "-"


def _table(mode, args):
    """Measures every batch size in one mode; prints and returns its rows."""
    rows = []
    print(f"{'batch':>6} {'path':>8} {'seconds':>9} {'peak MB':>9} {'x matmul':>9} {'x dense t':>9} {'x dense mem':>11}")
    for batch in [int(b) for b in args.batches.split(",")]:
        results = {
            kind: _run_subprocess(kind, batch, args.block_size, mode, args.repeats)
            for kind in ("matmul", "dense", "blocked")
        }
        # Ratios from one process timing the three round-robin (the per-process times above
        # come from different moments of a shared machine); each keeps its own peak memory.
        shared = _run_interleaved(
            [[kind, kind, batch, args.block_size, mode, "supcon"] for kind in results], args.repeats
        )
        for kind, result in results.items():
            result["alone"] = {field: result.get(field) for field in ("seconds", "min_seconds")}
            result.update(shared.get(kind, {}))
        for kind, result in results.items():
            rows.append(result)
            if "error" in result:
                print(f"{batch:>6} {kind:>8}  failed: {result['error']}")
                continue
            _ratios(result, results["matmul"], results["dense"], args.statistic)
            print(
                f"{batch:>6} {kind:>8} {result[args.statistic]:>9.4f} {result['peak_mb']:>9.1f} "
                f"{_fmt(result.get('ratio_to_matmul'), '>9.2f')} {_fmt(result.get('time_ratio_to_dense'), '>9.2f')} "
                f"{_fmt(result.get('memory_ratio_to_dense'), '>11.3f')}",
                flush=True,
            )
    return rows


def _ratios(result, bound, dense, statistic):
    if statistic in bound:
        result["ratio_to_matmul"] = result[statistic] / bound[statistic]
    if statistic in dense:
        result["time_ratio_to_dense"] = result[statistic] / dense[statistic]
        result["memory_ratio_to_dense"] = result["peak_mb"] / max(dense["peak_mb"], 1e-9)


def _options_table(mode, args):
    """The dense path of every loss option at `--options_batch` against the bound."""
    batch = args.options_batch
    bound = _run_subprocess("matmul", batch, args.block_size, mode, args.repeats)
    rows = [bound]
    print(f"{'option':>15} {'seconds':>9} {'peak MB':>9} {'x matmul':>9}   (batch {batch}x{VIEWS})")
    # The queue and contrast_mode="one" have logits of other shapes: bounds of their own.
    own_bounds = {option: _run_subprocess("matmul", batch, args.block_size, mode, args.repeats, option)
                  for option in ("queue", "contrast_one")}
    rows += list(own_bounds.values())
    for option in LOSS_OPTIONS:
        result = _run_subprocess("dense", batch, args.block_size, mode, args.repeats, option)
        rows.append(result)
        if "error" in result:
            print(f"{option:>15}  failed: {result['error']}")
            continue
        # The ratio from one process timing the option and its bound round-robin.
        bound_option = option if option in own_bounds else "supcon"
        shared = _run_interleaved([["bound", "matmul", batch, args.block_size, mode, bound_option],
                                   ["loss", "dense", batch, args.block_size, mode, option]], args.repeats)
        result["alone"] = {field: result.get(field) for field in ("seconds", "min_seconds")}
        result.update(shared.get("loss", {}))
        _ratios(result, shared.get("bound", own_bounds.get(option, bound)), {}, args.statistic)
        print(f"{option:>15} {result[args.statistic]:>9.4f} {result['peak_mb']:>9.1f} "
              f"{_fmt(result.get('ratio_to_matmul'), '>9.2f')}", flush=True)
    return rows


def _targets(rows):
    """The issue's targets per mode, from the supcon rows."""
    checks, lines = [], []
    found = {(r["kind"], r["batch"], r.get("mode")): r for r in rows if r.get("option") == "supcon"}
    for name, kind, batch, field, limits in TARGETS:
        for mode, limit in limits.items():
            value = found.get((kind, batch, mode), {}).get(field)
            if value is None:
                continue
            met = value <= limit
            checks.append({"mode": mode, "target": name, "value": value, "limit": limit, "met": met})
            lines.append(f"[{mode}] {name}: {value:.3f} (target <= {limit:g}) {'met' if met else 'NOT MET'}")
    return {"checks": checks, "lines": lines}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", default="256,1024,4096,8192")
    # 256: at 8192x2 the dense path keeps one [N, N] buffer (~1,080 MB); the blocked path's
    # working set is a few [block, N] buffers plus ~100 MB of [N, D] tensors. With blocks of 512 it
    # measured 0.155 of the dense peak as a graph (target 1/8), with 256 0.096 (XLA 0.118).
    parser.add_argument("--block_size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--statistic", choices=("median", "min"), default="median")
    parser.add_argument("--modes", default=",".join(MODES),
                        help="eager (GradientTape), graph (tf.function) and/or xla (tf.function(jit_compile=True))")
    parser.add_argument("--options", action="store_true",
                        help=f"also time the dense path of every loss option: {', '.join(LOSS_OPTIONS)}")
    parser.add_argument("--options_batch", type=int, default=1024)
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results", "loss_bench.json"))
    parser.add_argument("--_one", help=argparse.SUPPRESS)
    parser.add_argument("--_interleaved", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.statistic = {"median": "seconds", "min": "min_seconds"}[args.statistic]

    if args._interleaved:
        request = json.loads(args._interleaved)
        print(json.dumps(_measure_interleaved(request["configs"], request["repeats"])))
        return
    if args._one:
        kind, batch, block_size, mode, repeats, option = args._one.split(",")
        print(json.dumps(_measure(kind, int(batch), int(block_size), mode, int(repeats), option)))
        return

    modes = args.modes.split(",")
    if not set(modes) <= set(MODES):
        parser.error(f"--modes must be among {', '.join(MODES)}. Received: --modes={args.modes}")
    rows, option_rows = [], []
    for mode in modes:
        print(f"\n[{mode}]")
        rows += _table(mode, args) if args.batches else []
        if args.options:
            option_rows += _options_table(mode, args)
    targets = _targets(rows)
    print()
    for line in targets["lines"]:
        print(line)

    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"dim": DIM, "views": VIEWS, "block_size": args.block_size, "statistic": args.statistic,
                   "results": rows, "options": option_rows, "targets": targets["checks"]}, f, indent=2)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
