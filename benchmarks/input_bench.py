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

  * 224-px training input from JPEG files (`--jpeg`, default on): 256 generated JPEGs of
    500x375 in an image folder, every policy, 2 views, batch 32, JPEG decoding included
    (each image decoded once for its views, inside the union of their crop windows);
    images/s for the whole machine and per core;
    with `--augment_on=device` the host's part (decode, crop, resize) and, separately, the
    device stage on a batch (here on the CPU); and, when torch and torchvision are
    installed, the PyTorch port's TwoCropTransform (RandomResizedCrop(224, scale=(0.2, 1)),
    RandomHorizontalFlip, ColorJitter(0.4, 0.4, 0.4, 0.1) p 0.8, RandomGrayscale p 0.2,
    ToTensor, Normalize) on the same files, DataLoader with one worker per core, batch 32.
    Goal: SimAugment >= 2x torchvision's images/s.

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
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

if sys.argv[1:2] != ["--torchvision_rate"]:  # The torchvision process never loads TensorFlow.
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


JPEG_SIZE = (500, 375)
JPEG_COUNT = 256
JPEG_BATCH = 32


def _jpeg_folder(root, count=JPEG_COUNT, size=JPEG_SIZE):
    """`count` smooth random JPEGs of `size` (width, height) in two class folders of `root`."""
    from PIL import Image  # pylint: disable=import-outside-toplevel

    rng = np.random.default_rng(0)
    for i in range(count):
        folder = os.path.join(root, f"class{i % 2}")
        os.makedirs(folder, exist_ok=True)
        small = rng.integers(0, 256, (size[1] // 16, size[0] // 16, 3), dtype=np.uint8)
        Image.fromarray(small).resize(size, Image.BILINEAR).save(
            os.path.join(folder, f"{i}.jpg"), quality=90)
    return root


def _torchvision_rate(root, seconds):
    """Images/s (2 views) of the PyTorch port's TwoCropTransform pipeline, or None without torch.

    Runs in a fresh process: DataLoader workers forked from a process running TensorFlow crash.
    """
    import subprocess  # pylint: disable=import-outside-toplevel
    import sys  # pylint: disable=import-outside-toplevel

    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--torchvision_rate", root,
                          str(seconds)], capture_output=True, text=True, check=False)
    last = (out.stdout.strip().splitlines() or ["None"])[-1]
    return None if last == "None" else float(last)


def _torchvision_rate_here(root, seconds):
    """`_torchvision_rate` in this process (which has not imported TensorFlow)."""
    try:
        import torch  # pylint: disable=import-outside-toplevel
        from torchvision import datasets, transforms  # pylint: disable=import-outside-toplevel
    except ImportError:
        return None
    view = transforms.Compose([
        transforms.RandomResizedCrop(224, scale=(0.2, 1.0)),
        transforms.RandomHorizontalFlip(),
        transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        transforms.RandomGrayscale(p=0.2),
        transforms.ToTensor(),
        transforms.Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
    ])
    dataset = datasets.ImageFolder(root, transform=lambda image: [view(image), view(image)])
    loader = torch.utils.data.DataLoader(dataset, batch_size=JPEG_BATCH, shuffle=True,
                                         num_workers=os.cpu_count(), drop_last=True,
                                         persistent_workers=True)

    def batches():
        while True:
            yield from loader

    return _rate(batches(), JPEG_BATCH, seconds)


def _jpeg_rates(root, seconds):
    """{name: images/s} of supcon's 224-px pipelines on the JPEG folder (and torchvision's)."""
    source = data.load(f"folder:{root}", "train")
    rates = {}
    for policy in POLICIES:
        dataset = data.pipeline(source, views=VIEWS, augmentation=policy, batch_size=JPEG_BATCH,
                                training=True, image_size=224, repeat=True)
        rates[policy] = _rate(dataset, JPEG_BATCH, seconds)
        print(f"  {policy:>20s} 224px JPEG: {rates[policy]:9.1f} images/s", flush=True)
    for policy in ("simaugment", "crop_flip"):
        dataset = data.pipeline(source, views=VIEWS, augmentation=policy, batch_size=JPEG_BATCH,
                                training=True, image_size=224, repeat=True, augment_on="device")
        name = f"{policy} (augment_on=device: host part)"
        rates[name] = _rate(dataset, JPEG_BATCH, seconds)
        print(f"  {name:>20s}: {rates[name]:9.1f} images/s", flush=True)
        stage = data.DeviceAugmentation(policy, 224, seed=0)
        crops = tf.random.uniform([JPEG_BATCH, VIEWS, 224, 224, 3], 0, 255)
        step = tf.function(lambda views, s=stage: s(views, step=0, replica=0))
        name = f"{policy} (augment_on=device: device stage on this CPU)"
        rates[name] = _rate((step(crops).numpy() for _ in iter(int, 1)), JPEG_BATCH, seconds)
        print(f"  {name:>20s}: {rates[name]:9.1f} images/s", flush=True)
    torch_rate = _torchvision_rate(root, seconds)
    if torch_rate is None:
        print("  torchvision: skipped (torch/torchvision not installed)")
    else:
        rates["torchvision"] = torch_rate
        print(f"  {'torchvision':>20s} 224px JPEG: {torch_rate:9.1f} images/s", flush=True)
    return rates


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch_size", type=int, default=128, help="32x32 batch size")
    parser.add_argument("--batch_size_224", type=int, default=16, help="224x224 batch size")
    parser.add_argument("--seconds", type=float, default=4.0, help="timing per pipeline")
    parser.add_argument("--train_steps", type=int, default=5)
    parser.add_argument("--jpeg", action=argparse.BooleanOptionalAction, default=True,
                        help="the 224-px JPEG folder comparison (and torchvision's)")
    parser.add_argument("--only_jpeg", action="store_true", help="skip the in-memory part")
    parser.add_argument("--output", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "results", "input_bench.json"))
    args = parser.parse_args()

    if args.jpeg:
        import tempfile  # pylint: disable=import-outside-toplevel

        with tempfile.TemporaryDirectory() as root:
            jpeg = _jpeg_rates(_jpeg_folder(root), args.seconds)
        cores = os.cpu_count()
        print(f"\n224-px JPEG input, {VIEWS} views, batch {JPEG_BATCH}, {cores} cores "
              "(images/s, per core):")
        for name, rate in jpeg.items():
            print(f"  {name:>55s}: {rate:8.1f}  {rate / cores:8.1f}")
        if "torchvision" in jpeg:
            ratio = jpeg["simaugment"] / jpeg["torchvision"]
            print(f"SimAugment / torchvision: {ratio:.2f}x (goal >= 2x: "
                  f"{'met' if ratio >= 2 else 'NOT met'})")
        if args.only_jpeg:
            _write(args.output, {"jpeg_224_images_per_s": jpeg, "views": VIEWS, "batch_size_jpeg": JPEG_BATCH,
                                 "cpu_count": cores, "machine": platform.platform(), "tensorflow": tf.__version__})
            return
    else:
        jpeg = {}
    digits = data.load("digits", "train")
    large = _large_source()
    results = {"policies": {}, "views": VIEWS, "batch_size_32": args.batch_size,
               "batch_size_224": args.batch_size_224,
               "cpu_count": os.cpu_count(), "load_average_1min_start": os.getloadavg()[0],
               "machine": platform.platform(), "tensorflow": tf.__version__,
               "jpeg_224_images_per_s": jpeg}
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
    _write(args.output, results)


def _write(path, results):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as file:
        json.dump(results, file, indent=2)
    print(f"Wrote {path}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--torchvision_rate"]:
        print(_torchvision_rate_here(sys.argv[2], float(sys.argv[3])))
    else:
        main()
