"""Forward+backward time and peak memory of the SupCon loss: dense vs blocked vs the matmul bound.

For each global batch size B (2 views, 128 dims, N = 2B rows) it measures, each
configuration in a fresh subprocess so peak memory is its own:

  * `matmul`: the three [N, D] x [D, N]-sized products the loss cannot avoid
    (logits forward; the two gradient products backward), timed in the same
    benchmark run as `dense` (its own subprocess, like every configuration); this
    is the bound the dense path is compared with.
  * `dense`: `supcon_loss(..., block_size=None)`, value and gradient.
  * `blocked`: `supcon_loss(..., block_size=--block_size)`, value and gradient.

Peak memory is the process's peak RSS above its baseline after warm-up set-up
on CPU (`resource.getrusage`), or TensorFlow's peak GPU allocation on a GPU.

Targets (checked here, never in timed tests): dense at 1024x2 within 1.5x of
the matmul bound; blocked at 8192x2 with at most 1/4 of the dense peak memory
and at most 1.5x its time.

Each configuration runs twice: as a plain `tf.function` graph ("graph", what a Keras
step runs on a CPU, where Keras' `jit_compile="auto"` is off) and compiled with XLA
("xla", Keras' default for a single-GPU model; off under tf.distribute). The targets are checked for each mode.

Usage:
  python benchmarks/loss_bench.py [--batches 256,1024,4096,8192] [--block_size 1024]
      [--modes graph,xla] [--output benchmarks/results/loss_bench.json]
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


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _measure(kind, batch, block_size, jit, repeats):
    """Runs one configuration in this process; returns a dict of figures."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    import supcon.losses as losses

    gpu = bool(tf.config.list_physical_devices("GPU"))
    rng = np.random.default_rng(0)
    features = rng.normal(size=(batch, VIEWS, DIM)).astype(np.float32)
    features /= np.linalg.norm(features, axis=-1, keepdims=True)
    labels = rng.integers(0, 1000, size=batch).astype(np.int32)
    features, labels = tf.constant(features), tf.constant(labels)
    rows = batch * VIEWS

    if kind == "matmul":
        anchors = tf.reshape(features, [rows, DIM])

        @tf.function(jit_compile=jit)
        def step(x, _):
            logits = tf.matmul(x, x, transpose_b=True)
            # Backward of logits = A C^T: dA = G C, dC = G^T A (G has the logits' shape).
            grad_a = tf.matmul(logits, x)
            grad_c = tf.matmul(logits, x, transpose_a=True)
            return tf.reduce_sum(grad_a) + tf.reduce_sum(grad_c)

        args = (anchors, labels)
    else:
        size = None if kind == "dense" else block_size

        @tf.function(jit_compile=jit)
        def step(x, y):
            with tf.GradientTape() as tape:
                tape.watch(x)
                value = tf.reduce_mean(losses.supcon_loss(x, y, block_size=size))
            return value + tf.reduce_sum(tape.gradient(value, x))

        args = (features, labels)

    if gpu:
        tf.config.experimental.reset_memory_stats("GPU:0")
    baseline = _peak_rss_mb()
    step(*args).numpy()  # trace + warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step(*args).numpy()
        times.append(time.perf_counter() - start)
    if gpu:
        peak = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    else:
        peak = _peak_rss_mb() - baseline
    return {
        "kind": kind,
        "batch": batch,
        "rows": rows,
        "block_size": block_size if kind == "blocked" else None,
        "seconds": float(np.median(times)),
        "peak_mb": float(peak),
        "device": "GPU" if gpu else "CPU",
        "jit": jit,
    }


def _run_subprocess(kind, batch, block_size, jit, repeats):
    command = [
        sys.executable,
        __file__,
        "--_one",
        f"{kind},{batch},{block_size},{int(jit)},{repeats}",
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr or "").strip().splitlines()[-3:]
        return {"kind": kind, "batch": batch, "error": " | ".join(tail) or f"exit {result.returncode}"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", default="256,1024,4096,8192")
    parser.add_argument("--block_size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", default="graph,xla",
                        help="graph (tf.function) and/or xla (tf.function(jit_compile=True))")
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results", "loss_bench.json"))
    parser.add_argument("--_one", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args._one:
        kind, batch, block_size, jit, repeats = args._one.split(",")
        print(json.dumps(_measure(kind, int(batch), int(block_size), bool(int(jit)), int(repeats))))
        return

    rows = []
    modes = args.modes.split(",")
    if not set(modes) <= {"graph", "xla"}:
        parser.error(f"--modes must be graph and/or xla. Received: --modes={args.modes}")
    for mode in modes:
        print(f"\n[{mode}]")
        rows += _table(mode == "xla", args)
    targets = _targets(rows)
    for line in targets["lines"]:
        print(line)

    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"dim": DIM, "views": VIEWS, "block_size": args.block_size, "results": rows,
                   "targets": targets["checks"]}, f, indent=2)
    print(f"wrote {args.output}")


def _table(jit, args):
    """Measures every batch size in one mode; prints and returns its rows."""
    rows = []
    header = f"{'batch':>6} {'path':>8} {'seconds':>9} {'peak MB':>9} {'x matmul':>9} {'x dense t':>9} {'x dense mem':>11}"
    print(header)
    for batch in [int(b) for b in args.batches.split(",")]:
        results = {
            kind: _run_subprocess(kind, batch, args.block_size, jit, args.repeats)
            for kind in ("matmul", "dense", "blocked")
        }
        for kind, result in results.items():
            if "error" in result:
                print(f"{batch:>6} {kind:>8}  failed: {result['error']}")
                rows.append(result)
                continue
            bound, dense = results["matmul"], results["dense"]
            result["ratio_to_matmul"] = (
                result["seconds"] / bound["seconds"] if "seconds" in bound else None
            )
            if "seconds" in dense:
                result["time_ratio_to_dense"] = result["seconds"] / dense["seconds"]
                result["memory_ratio_to_dense"] = result["peak_mb"] / max(dense["peak_mb"], 1e-9)
            rows.append(result)

            def fmt(value, spec):
                return format(value, spec) if value is not None else "-"

            print(
                f"{batch:>6} {kind:>8} {result['seconds']:>9.4f} {result['peak_mb']:>9.1f} "
                f"{fmt(result.get('ratio_to_matmul'), '>9.2f')} {fmt(result.get('time_ratio_to_dense'), '>9.2f')} "
                f"{fmt(result.get('memory_ratio_to_dense'), '>11.3f')}",
                flush=True,
            )
    return rows


def _targets(rows):
    """The issue's targets, per mode: dense 1024x2 <= 1.5x matmul; blocked 8192x2 <= 1/4 memory, <= 1.5x time."""
    checks, lines = [], []
    for jit in sorted({r.get("jit") for r in rows if "jit" in r}):
        mode = "xla" if jit else "graph"
        found = {(r["kind"], r["batch"]): r for r in rows if r.get("jit") == jit}
        dense = found.get(("dense", 1024), {})
        blocked = found.get(("blocked", 8192), {})
        for name, value, limit in (
            ("dense 1024x2 time / matmul bound", dense.get("ratio_to_matmul"), 1.5),
            ("blocked 8192x2 peak memory / dense", blocked.get("memory_ratio_to_dense"), 0.25),
            ("blocked 8192x2 time / dense", blocked.get("time_ratio_to_dense"), 1.5),
        ):
            if value is None:
                continue
            met = value <= limit
            checks.append({"mode": mode, "target": name, "value": value, "limit": limit, "met": met})
            lines.append(f"[{mode}] {name}: {value:.2f} (target <= {limit}) {'met' if met else 'NOT MET'}")
    return {"checks": checks, "lines": lines}


if __name__ == "__main__":
    main()
