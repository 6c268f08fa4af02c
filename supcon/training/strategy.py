"""Distribution strategies: auto, one_device, mirrored, multi_worker, tpu.

The global batch is split across replicas by `tf.distribute` (Keras `fit` distributes the dataset
with the strategy); `supcon.losses` gathers the other replicas' features so every anchor still sees
the whole global batch as negatives (Khosla et al. 2020, arXiv 2004.11362, §3.2: larger batches
give more negatives).
"""

import json
import os
import socket
import urllib.parse

import tensorflow as tf

from supcon.choices import STRATEGIES  # noqa: E402
# Seconds to wait for a TPU worker / the GCE metadata server before giving up.
TPU_CONNECT_TIMEOUT_S = 5.0
_GCE_METADATA = ("metadata.google.internal", 80)


class StrategyError(RuntimeError):
    """The requested strategy cannot run here (no TPU, bad TF_CONFIG, ...)."""


def build_strategy(name="auto", *, tpu=None, devices=None):
    """Builds a `tf.distribute.Strategy`.

    Args:
        name: one of `STRATEGIES`. "auto": mirrored over all visible GPUs if there are several,
            one device (the GPU, else the CPU) otherwise. Defaults to "auto".
        tpu: str, TPU address (`grpc://host:port`), name, or "local" (TPU VM); "tpu" only.
        devices: list of device names for "mirrored" (default: all GPUs, else the CPU) or the
            device for "one_device". Defaults to None.

    Returns:
        A `tf.distribute.Strategy`.

    Raises:
        StrategyError: "tpu" with no TPU reachable (fails within `TPU_CONNECT_TIMEOUT_S`),
            "multi_worker" with a malformed `TF_CONFIG`.

    Example:

    >>> build_strategy("one_device").num_replicas_in_sync
    1
    """
    if name not in STRATEGIES:
        raise ValueError(f"`name` must be one of {STRATEGIES}. Received: name={name!r}")
    if name == "multi_worker":
        # Must come before anything else touches the TF runtime (collectives are configured at
        # start-up), so no device listing here.
        _check_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        return _tpu_strategy(tpu)
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if name == "auto":
        if len(gpus) > 1:
            return tf.distribute.MirroredStrategy(gpus)
        return tf.distribute.OneDeviceStrategy(gpus[0] if gpus else "/cpu:0")
    if name == "one_device":
        device = devices[0] if devices else (gpus[0] if gpus else "/cpu:0")
        return tf.distribute.OneDeviceStrategy(device)
    return tf.distribute.MirroredStrategy(devices or gpus or ["/cpu:0"])


def _check_tf_config():
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        # One worker is a valid (if pointless) cluster; TF runs it as a single local worker.
        return
    try:
        config = json.loads(raw)
        config["cluster"]["worker"]
        config["task"]["type"], config["task"]["index"]
    except (ValueError, KeyError, TypeError) as error:
        raise StrategyError(
            "--strategy=multi_worker needs TF_CONFIG like "
            '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}. '
            f"Received: TF_CONFIG={raw!r} ({error})"
        ) from error


def _reachable(host, port, timeout=TPU_CONNECT_TIMEOUT_S):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _tpu_strategy(tpu):
    """TPUStrategy, after checking (with a timeout) that a TPU can be reached at all.

    The cluster resolver would otherwise wait on the GCE metadata server or a dead gRPC address.
    """
    tpu = tpu or os.environ.get("TPU_NAME") or ""
    hint = (
        "No TPU is reachable. Pass --tpu=grpc://HOST:8470 (TPU node), --tpu=NAME (on GCE), or "
        "--tpu=local (on a TPU VM), or use --strategy=auto. "
    )
    if tpu == "local":
        if not any(os.path.exists(p) for p in ("/dev/accel0", "/dev/vfio/0", "/dev/vfio")):
            raise StrategyError(hint + "Received: tpu='local' but no TPU device in /dev.")
    elif tpu.startswith("grpc://"):
        parsed = urllib.parse.urlparse(tpu)
        if not (parsed.hostname and parsed.port and _reachable(parsed.hostname, parsed.port)):
            raise StrategyError(
                hint + f"Received: tpu={tpu!r} (no answer within {TPU_CONNECT_TIMEOUT_S}s)."
            )
    elif not tpu or not _reachable(*_GCE_METADATA):
        # Resolving a TPU by name (or the default TPU) needs the GCE metadata server.
        raise StrategyError(hint + f"Received: tpu={tpu!r} (not on GCE, no TPU_NAME).")
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        raise StrategyError(hint + f"Received: tpu={tpu!r} ({error})") from error
    return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy):
    """Whether this process writes the run directory (always, except non-chief workers).

    Args:
        strategy: a `tf.distribute.Strategy`.

    Returns:
        bool.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type is None or task_type == "chief" or (task_type == "worker" and task_id == 0
                                                         and "chief" not in
                                                         resolver.cluster_spec().as_dict())


def task_id(strategy):
    """This worker's index (0 outside multi-worker training).

    Args:
        strategy: a `tf.distribute.Strategy`.

    Returns:
        int.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return 0
    return int(resolver.task_id or 0)
