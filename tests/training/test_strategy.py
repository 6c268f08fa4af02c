"""Strategy factory: names, the TPU fail-fast path, TF_CONFIG checks."""

import time

import pytest
import tensorflow as tf

from supcon.training import strategy as strategy_lib


def test_auto_and_one_device_on_cpu():
    assert strategy_lib.build_strategy("auto").num_replicas_in_sync == 1
    assert strategy_lib.build_strategy("one_device").num_replicas_in_sync == 1
    assert strategy_lib.is_chief(strategy_lib.build_strategy("one_device"))


def test_mirrored_over_logical_cpus():
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(cpus) < 2:
        pytest.skip("needs the 2 logical CPUs from conftest")
    assert strategy_lib.build_strategy("mirrored", devices=cpus[:2]).num_replicas_in_sync == 2


@pytest.mark.parametrize("tpu", ["", "grpc://127.0.0.1:1", "local", "my-tpu"])
def test_tpu_unreachable_fails_fast(tpu, monkeypatch):
    monkeypatch.delenv("TPU_NAME", raising=False)
    start = time.monotonic()
    with pytest.raises(strategy_lib.StrategyError, match="No TPU is reachable.*Received: tpu="):
        strategy_lib.build_strategy("tpu", tpu=tpu)
    assert time.monotonic() - start < 2 * strategy_lib.TPU_CONNECT_TIMEOUT_S + 1


def test_bad_tf_config(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {}}')
    with pytest.raises(strategy_lib.StrategyError, match="Received: TF_CONFIG="):
        strategy_lib.build_strategy("multi_worker")


def test_bad_name():
    with pytest.raises(ValueError, match="Received: name='gpu'"):
        strategy_lib.build_strategy("gpu")
