"""Strategy selection, dtype policies, XLA, the optimizer and its schedule, and the device-peak table."""

import keras
import pytest
import tensorflow as tf

from lmzoo.errors import ConfigError, LmzooError
from lmzoo.training import strategy as strategies
from lmzoo.training.schedules import WarmupDecay, build_optimizer, build_schedule

OPTIMIZER = {"name": "adamw", "learning_rate": 1e-3, "weight_decay": 0.1, "beta_1": 0.9, "beta_2": 0.99,
             "epsilon": 1e-8}
SCHEDULE = {"warmup_steps": 10, "decay": "cosine", "final_ratio": 0.1}


def test_default_and_auto_on_a_cpu_machine():
    assert strategies.select_strategy("default").num_replicas_in_sync == 1
    auto = strategies.select_strategy("auto")  # No TPU, no GPU here: the default strategy on the CPU.
    assert strategies.strategy_name(auto) == "default" and strategies.is_chief(auto)


def test_unknown_strategy_is_a_config_error():
    with pytest.raises(ConfigError, match="train.strategy = 'gpu'.*mirrored"):
        strategies.select_strategy("gpu")


def test_multi_worker_without_tf_config_says_what_to_set(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(LmzooError, match="TF_CONFIG"):
        strategies.select_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(LmzooError, match="not valid JSON"):
        strategies.select_strategy("multi_worker")


class _FakeResolver:
    def __init__(self, tpu=None):
        self.tpu = tpu


def test_tpu_branch_connects_initialises_and_builds_tpu_strategy(monkeypatch):
    calls = []
    monkeypatch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver", _FakeResolver)
    monkeypatch.setattr(tf.config, "experimental_connect_to_cluster", lambda r: calls.append(("connect", r.tpu)))
    monkeypatch.setattr(tf.tpu.experimental, "initialize_tpu_system", lambda r: calls.append(("init", r.tpu)))
    monkeypatch.setattr(tf.distribute, "TPUStrategy", lambda r: ("tpu-strategy", r.tpu))
    assert strategies.select_strategy("tpu", tpu="grpc://10.0.0.2:8470") == ("tpu-strategy", "grpc://10.0.0.2:8470")
    assert calls == [("connect", "grpc://10.0.0.2:8470"), ("init", "grpc://10.0.0.2:8470")]


def test_auto_prefers_a_tpu_when_one_is_named(monkeypatch):
    monkeypatch.setenv("TPU_NAME", "my-tpu")
    monkeypatch.setattr(strategies, "tpu_strategy", lambda tpu=None: "tpu-strategy")
    assert strategies.select_strategy("auto") == "tpu-strategy"


def test_dtype_policies_are_passed_not_set_globally():
    before = keras.config.dtype_policy().name
    assert strategies.dtype_policy("mixed_bfloat16").compute_dtype == "bfloat16"
    assert strategies.dtype_policy("mixed_float16").variable_dtype == "float32"
    assert keras.config.dtype_policy().name == before
    with pytest.raises(ConfigError, match="dtype_policy"):
        strategies.dtype_policy("int8")


def test_cpu_peak_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\ncpu MHz\t\t: 3000.000\nflags\t\t: fpu sse avx2 fma avx512f\n")
    peak, how = strategies.cpu_peak_flops(str(cpuinfo))
    cores = len(strategies.os.sched_getaffinity(0))
    assert peak == pytest.approx(cores * 3.0e9 * 64) and "avx512f" in how
    peak, how = strategies.cpu_peak_flops(str(tmp_path / "missing"))  # The documented fallback.
    assert peak == pytest.approx(cores * strategies.CPU_FALLBACK_GHZ * 1e9 * 16)


@pytest.mark.parametrize("flags, dtype, flop, unit", [
    ("avx2 fma avx512f avx512_bf16 amx_tile amx_bf16", "bfloat16", 1024, "amx_bf16"),
    ("avx2 fma avx512f avx512_bf16", "bfloat16", 128, "avx512_bf16"),
    ("avx2 fma", "bfloat16", 32, "avx2"),  # no native bf16 (an AVX2 EPYC): the float32 units' peak
    ("avx2 fma avx512f avx512_fp16", "float16", 128, "avx512_fp16"),
    ("avx2 fma avx512f amx_bf16", "float32", 64, "avx512f"),  # AMX does not raise the float32 peak
])
def test_mfu_uses_the_peak_of_the_compute_dtype(tmp_path, flags, dtype, flop, unit):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"model name\t: Test CPU\ncpu MHz\t\t: 2000.000\nflags\t\t: fpu {flags}\n")
    peak, how = strategies.cpu_peak_flops(str(cpuinfo), compute_dtype=dtype)
    cores = len(strategies.os.sched_getaffinity(0))
    assert peak == pytest.approx(cores * 2.0e9 * flop) and unit in how and f"{dtype} peak" in how
    assert ("no native" in how) == (unit == "avx2")
    features = strategies.cpu_features(str(cpuinfo))
    assert features["model"] == "Test CPU" and set(features["flags"]) == set(flags.split()) - {"fpu"}


@pytest.mark.parametrize("vendor, family, dtype, flop, half", [
    ("AuthenticAMD", 25, "float32", 32, True),  # Zen 4: AVX-512 split into two 256-bit halves, as fast as AVX2
    ("AuthenticAMD", 25, "bfloat16", 64, True),
    ("AuthenticAMD", 26, "float32", 64, False),  # Zen 5: full-width AVX-512
    ("GenuineIntel", 25, "float32", 64, False),  # the family number alone does not halve an Intel CPU
])
def test_avx512_on_256_bit_datapaths_counts_half_the_flops(tmp_path, vendor, family, dtype, flop, half):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"vendor_id\t: {vendor}\ncpu family\t: {family}\nmodel name\t: Test CPU\n"
                       "cpu MHz\t\t: 2000.000\nflags\t\t: fpu avx2 fma avx512f avx512_bf16\n")
    peak, how = strategies.cpu_peak_flops(str(cpuinfo), compute_dtype=dtype)
    cores = len(strategies.os.sched_getaffinity(0))
    assert peak == pytest.approx(cores * 2.0e9 * flop)
    assert ("256-bit" in how) == half
    assert strategies.cpu_features(str(cpuinfo))["avx512_bits"] == (256 if half else 512)


def test_mixed_float16_wraps_the_optimizer_in_loss_scaling():
    schedule = build_schedule(OPTIMIZER["learning_rate"], SCHEDULE, total_steps=100)
    optimizer = build_optimizer(OPTIMIZER, schedule, dtype_policy="mixed_float16")
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(optimizer.inner_optimizer, keras.optimizers.AdamW)
    assert isinstance(build_optimizer(OPTIMIZER, schedule), keras.optimizers.AdamW)


def test_schedule_warms_up_linearly_then_decays_to_the_floor():
    schedule = WarmupDecay(1e-3, warmup_steps=10, total_steps=110, decay="cosine", final_ratio=0.1)
    rates = [float(schedule(step)) for step in range(120)]
    assert rates[0] == pytest.approx(1e-4) and rates[9] == pytest.approx(1e-3)
    assert rates[59] == pytest.approx(0.55e-3, rel=1e-3)  # Halfway through the cosine.
    assert rates[109] == pytest.approx(1e-4) and rates[119] == pytest.approx(1e-4)
    linear = WarmupDecay(1.0, warmup_steps=0, total_steps=100, decay="linear", final_ratio=0.0)
    assert float(linear(49)) == pytest.approx(0.5)


def test_schedule_serializes():
    schedule = WarmupDecay(3e-4, warmup_steps=5, total_steps=50, decay="linear", final_ratio=0.1)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert isinstance(restored, WarmupDecay) and restored.get_config() == schedule.get_config()
