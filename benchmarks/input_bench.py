"""Input pipeline throughput per augmentation policy vs. the ResNet-18 training step.

Measures, on whatever machine runs it (the issue's target: its CPU cores):

  * For every policy (`simaugment`, `autoaugment`, `randaugment`,
    `stacked_randaugment`, `none`) at 32x32 and 224x224: images/s delivered by
    `supcon.data.pipeline(..., views=2, training=True)`; every image yields 2 views.
    32x32 reads the digits training set (cached, decoded); 224x224 reads an in-memory
    set of random 256x320 uint8 images (random resized crops from larger images, as
    for ImageNet; JPEG decoding is not included).
  * The training step's consumption rate: images/s of one SGD step of a ResNet-18
    with the CIFAR stem (`supcon.models.resnet(18, stem="cifar")`) plus a 128-D
    projection and the SupCon loss on `[B, 2, 32, 32, 3]` batches.
  * The ratio pipeline / training step at 32x32. Target: >= 5 for every policy.

Each rate is measured alone (pipeline alone, then training step alone), after a
warm-up (tracing) that is not timed. On a machine shared with other jobs, the
numbers move with the load; the JSON records the 1-minute load average.

Usage:
  python benchmarks/input_bench.py [--batch_size 128] [--batch_size_224 16]
      [--seconds 4] [--train_steps 5] [--output benchmarks/results/input_bench.json]
"""

import argparse
import json
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from supcon import data  # noqa: E402

POLICIES = ("simaugment", "autoaugment", "randaugment", "stacked_randaugment", "none")
VIEWS = 2
TARGET_RATIO = 5.0


def _rate(dataset, batch_size, seconds, warmup_batches=3, min_batches=5):
    """Images/s of an (infinite) dataset of `batch_size` batches, timed for ~`seconds`."""
    iterator = iter(dataset)
    for _ in range(warmup_batches):
        next(iterator)
    count, start = 0, time.perf_counter()
    while True:
        next(iterator)
        count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and count >= min_batches:
            return count * batch_size / elapsed


def _large_source(num_images=256, height=256, width=320):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (num_images, height, width, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, num_images).astype(np.int32)
    info = data.DatasetInfo(name="random_256x320", num_classes=10,
                            image_shape=(height, width, 3),
                            split_sizes={"train": num_images})
    return data.Source(dataset=tf.data.Dataset.from_tensor_slices((images, labels)),
                       num_examples=num_images, info=info, split="train")


def _train_rate(batch_size, steps):
    """Images/s consumed by a ResNet-18 (CIFAR stem) SupCon SGD step on 2 x 32x32 views."""
    import keras  # pylint: disable=import-outside-toplevel

    from supcon import losses  # pylint: disable=import-outside-toplevel
    from supcon import models  # pylint: disable=import-outside-toplevel

    encoder = models.resnet(18, stem="cifar", input_shape=(32, 32, 3))
    head = models.ProjectionHead(dims=(512, 128))
    optimizer = keras.optimizers.SGD(learning_rate=0.05, momentum=0.9)
    rng = np.random.default_rng(0)
    views = tf.constant(rng.integers(0, 256, (batch_size, VIEWS, 32, 32, 3)).astype(np.float32))
    labels = tf.constant(rng.integers(0, 10, batch_size).astype(np.int32))
    head(encoder(tf.zeros([1, 32, 32, 3])))
    variables = encoder.trainable_variables + head.trainable_variables

    @tf.function
    def step(views, labels):
        with tf.GradientTape() as tape:
            flat = tf.reshape(views, [-1, 32, 32, 3])
            features = head(encoder(flat, training=True), training=True)
            features = tf.reshape(features, [batch_size, VIEWS, -1])
            loss = tf.reduce_mean(losses.supcon_loss(features, labels))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    for _ in range(2):
        step(views, labels).numpy()
    start = time.perf_counter()
    for _ in range(steps):
        step(views, labels).numpy()
    return steps * batch_size / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch_size", type=int, default=128, help="32x32 batch size")
    parser.add_argument("--batch_size_224", type=int, default=16, help="224x224 batch size")
    parser.add_argument("--seconds", type=float, default=4.0, help="timing per pipeline")
    parser.add_argument("--train_steps", type=int, default=5)
    parser.add_argument("--output", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "results", "input_bench.json"))
    args = parser.parse_args()

    digits = data.load("digits", "train")
    large = _large_source()
    results = {"policies": {}, "views": VIEWS, "batch_size_32": args.batch_size,
               "batch_size_224": args.batch_size_224,
               "cpu_count": os.cpu_count(), "load_average_1min_start": os.getloadavg()[0],
               "machine": platform.platform(), "tensorflow": tf.__version__}
    for policy in POLICIES:
        results["policies"][policy] = {}
        for size, source, batch in ((32, digits, args.batch_size),
                                    (224, large, args.batch_size_224)):
            dataset = data.pipeline(source, views=VIEWS, augmentation=policy, batch_size=batch,
                                    training=True, image_size=size, repeat=True)
            rate = _rate(dataset, batch, args.seconds)
            results["policies"][policy][str(size)] = rate
            print(f"  {policy:>20s} {size:>4d}px: {rate:9.1f} images/s", flush=True)

    train = _train_rate(args.batch_size, args.train_steps)
    results["train_step_images_per_s_32"] = train
    results["load_average_1min_end"] = os.getloadavg()[0]
    print()
    print(f"ResNet-18 (CIFAR stem) SupCon SGD step, batch {args.batch_size} x {VIEWS} views "
          f"at 32x32: {train:.1f} images/s")
    print()
    header = f"{'policy':>20s} | {'32px img/s':>10s} | {'224px img/s':>11s} | {'32px / train':>12s}"
    print(header)
    print("-" * len(header))
    ok = True
    for policy, rates in results["policies"].items():
        ratio = rates["32"] / train
        rates["ratio_to_train_32"] = ratio
        ok &= ratio >= TARGET_RATIO
        print(f"{policy:>20s} | {rates['32']:10.1f} | {rates['224']:11.1f} | {ratio:11.1f}x")
    results["target_ratio"] = TARGET_RATIO
    results["target_met"] = bool(ok)
    print(f"\nTarget (every policy >= {TARGET_RATIO:.0f}x at 32px): {'met' if ok else 'NOT met'}; "
          f"load average {results['load_average_1min_start']:.1f} -> "
          f"{results['load_average_1min_end']:.1f} on {os.cpu_count()} CPUs")
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as file:
        json.dump(results, file, indent=2)
    print(f"Wrote {args.output}")


if __name__ == "__main__":
    main()
