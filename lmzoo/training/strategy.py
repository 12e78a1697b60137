"""Choosing a `tf.distribute` strategy, a dtype policy, XLA, and the device's peak FLOP/s (for MFU).

All of these are plain functions with no global side effects, except `select_strategy("tpu")` which has to
connect to and initialise the TPU system (that is its whole job).
"""

import json
import os
import re

import keras
import tensorflow as tf

from lmzoo.errors import ConfigError, LmzooError
from lmzoo.training.registries import DTYPE_POLICIES, STRATEGIES

# Dense peak FLOP/s per device for the compute dtype (bf16/fp16 tensor cores; fp32 where no such units).
# Sources: the vendors' data sheets (dense, no sparsity).
DEVICE_PEAK_FLOPS = {
    "H100": {"float32": 67e12, "bfloat16": 989e12, "float16": 989e12},
    "A100": {"float32": 19.5e12, "bfloat16": 312e12, "float16": 312e12},
    "L4": {"float32": 30e12, "bfloat16": 121e12, "float16": 121e12},
    "A10G": {"float32": 31e12, "bfloat16": 125e12, "float16": 125e12},
    "T4": {"float32": 8.1e12, "bfloat16": 8.1e12, "float16": 65e12},
    "V100": {"float32": 15.7e12, "bfloat16": 15.7e12, "float16": 125e12},
    "TPU v2": {"float32": 46e12, "bfloat16": 46e12},
    "TPU v3": {"float32": 123e12, "bfloat16": 123e12},
    "TPU v4": {"float32": 275e12, "bfloat16": 275e12},
    "TPU v5 lite": {"float32": 197e12, "bfloat16": 197e12},
    "TPU v5p": {"float32": 459e12, "bfloat16": 459e12},
}
# FLOP per cycle per core for fp32: 2 FMA units x 8 lanes x 2 FLOP (AVX2), x 2 lanes again with AVX-512.
# FLOP per cycle per core of the widest unit for each compute dtype, best first: (cpuinfo flag, FLOP/cycle).
# float32: two FMA ports of 16 (AVX-512) or 8 (AVX2) lanes. bfloat16: AMX's tile unit, 1,024 (Intel's figure for
# Sapphire Rapids), or two ports of AVX512-BF16 dot products (16 lanes x 2 pairs x 2 FLOP). float16: AVX512-FP16's
# two ports of 32 lanes. Without a native unit a dtype runs on the float32 units (converted), at their peak.
CPU_FLOP_PER_CYCLE = {
    "float32": (("avx512f", 64), ("avx2", 32)),
    "bfloat16": (("amx_bf16", 1024), ("avx512_bf16", 128)),
    "float16": (("avx512_fp16", 128),),
}
CPU_FALLBACK_FLOP_PER_CYCLE = 16  # SSE-class FMA-less units, or an unknown CPU
# CPUs that run AVX-512 on 256-bit datapaths, as (vendor_id, cpu family): AMD's Zen 4 (family 0x19) splits each
# 512-bit operation into two 256-bit halves, so its AVX-512 units reach half the FLOP/cycle above (32 for float32,
# as its AVX2), and counting Intel's width would halve every MFU it reports. Zen 5 (0x1A) has full-width units.
CPU_HALF_WIDTH_AVX512 = (("AuthenticAMD", 25),)
AVX512_UNITS = ("avx512f", "avx512_bf16", "avx512_fp16")
# The cpuinfo flags that decide lmzoo's peaks and execution choices, recorded with every result.
CPU_FEATURE_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "avx_vnni", "amx_tile",
                     "amx_bf16", "amx_int8")
CPU_FALLBACK_GHZ = 2.5  # When /proc/cpuinfo gives no clock (macOS, some containers).


def select_strategy(name="auto", *, tpu=None):
    """Build the `tf.distribute` strategy named `name` (one of `STRATEGIES.names()`).

    Args:
        name: `"auto"` (a TPU if present, else mirrored over all GPUs, else the default strategy on the CPU),
            `"default"` (one device), `"mirrored"` (every GPU, else every logical CPU device),
            `"multi_worker"` (`MultiWorkerMirroredStrategy`; the cluster comes from `TF_CONFIG`) or `"tpu"`
            (the TPU named by `TPU_NAME`, or the local TPU VM).
        tpu: the TPU name or address for `"tpu"` and `"auto"` (None: `TPU_NAME`, or the local TPU VM).

    Returns:
        A `tf.distribute.Strategy`. Create it before any other TensorFlow work in the process: multi-worker
        and TPU strategies must initialise the runtime themselves.

    Examples:

        >>> select_strategy("default").num_replicas_in_sync
        1
    """
    if name not in STRATEGIES:
        raise ConfigError(f"train.strategy = {name!r}: {STRATEGIES.unknown_message(name)}")
    builder = STRATEGIES.get(name)
    return builder(tpu=tpu) if tpu is not None else builder()


def auto_strategy(tpu=None):
    """A TPU if present, else mirrored over every GPU when there are several, else the default strategy."""
    if tpu is not None or _tpu_present():
        return tpu_strategy(tpu)
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return mirrored_strategy()
    return default_strategy()


def default_strategy():
    """The default strategy: one device, no replication."""
    return tf.distribute.get_strategy()


def _tpu_present():
    # Checked without touching the network: a TPU VM exposes local TPU devices, a TPU node sets TPU_NAME.
    return bool(os.environ.get("TPU_NAME")) or bool(tf.config.list_physical_devices("TPU"))


def mirrored_strategy():
    """`MirroredStrategy` over every GPU, else over every logical CPU device (tests, CPU-only machines)."""
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices=devices)


def multi_worker_strategy():
    """`MultiWorkerMirroredStrategy` over the cluster `TF_CONFIG` describes."""
    config = os.environ.get("TF_CONFIG")
    if not config:
        raise LmzooError(
            "--strategy multi_worker needs TF_CONFIG describing the cluster, e.g. "
            '{"cluster": {"worker": ["host1:2222", "host2:2222"]}, "task": {"type": "worker", "index": 0}}; '
            "see docs/distributed.md."
        )
    try:
        json.loads(config)
    except ValueError:
        raise LmzooError(f"TF_CONFIG is not valid JSON: {config[:200]!r}.") from None
    return tf.distribute.MultiWorkerMirroredStrategy()


def tpu_strategy(tpu=None):
    """Connect to the TPU system and return a `TPUStrategy` (what `select_strategy("tpu")` does).

    Args:
        tpu: the TPU name or `grpc://` address; None uses `TPU_NAME`, or `"local"` on a TPU VM.

    Examples:

        >>> strategy = tpu_strategy("my-tpu")  # doctest: +SKIP
    """
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or os.environ.get("TPU_NAME") or "local")
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def strategy_name(strategy):
    """A short name for results: `default`, `mirrored`, `multi_worker` or `tpu`."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "multi_worker"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "mirrored"
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "tpu"
    return "default"


def is_chief(strategy):
    """Whether this process writes results, logs and checkpoints (worker 0, or the only process)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    return resolver.task_type in (None, "chief") or (resolver.task_type == "worker" and resolver.task_id == 0)


def worker_count(strategy):
    """The processes that train each run together: the workers (and chief) of a multi-worker cluster, else 1."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return 1
    spec = resolver.cluster_spec().as_dict()
    return sum(len(spec.get(job, [])) for job in ("chief", "worker")) or 1


# `train.dtype_policy` values that are not keras policies: a float32 model whose output layer's product the
# trainer computes in another dtype (`Trainer(output_dtype=...)`).
OUTPUT_LAYER_POLICIES = {"bfloat16_output": "bfloat16"}


def dtype_policy(name):
    """The `keras.DTypePolicy` for a study's `train.dtype_policy`, to pass to the model's constructor.

    Examples:

        >>> dtype_policy("mixed_bfloat16").compute_dtype
        'bfloat16'
        >>> dtype_policy("bfloat16_output").compute_dtype  # the output layer's dtype is the trainer's
        'float32'
    """
    if name not in DTYPE_POLICIES:
        raise ConfigError(f"train.dtype_policy = {name!r}: {DTYPE_POLICIES.unknown_message(name)}")
    return keras.DTypePolicy("float32" if name in OUTPUT_LAYER_POLICIES else name)


def output_dtype(name):
    """`Trainer(output_dtype=...)` for a study's `train.dtype_policy`: None (the model's own) but for
    `OUTPUT_LAYER_POLICIES`.

    Examples:

        >>> output_dtype("bfloat16_output"), output_dtype("mixed_bfloat16")
        ('bfloat16', None)
    """
    return OUTPUT_LAYER_POLICIES.get(name)


def peak_dtype(name):
    """The dtype whose peak a run under the `train.dtype_policy` `name` is measured against (for MFU)."""
    return DTYPE_POLICIES.get(name)


def device_peak_flops(strategy, compute_dtype="float32"):
    """Peak FLOP/s of all the strategy's devices together in `compute_dtype`, for MFU, and where it came from.

    GPUs and TPUs come from `DEVICE_PEAK_FLOPS` (matched on the device name, per dtype); the CPU peak is
    computed from the machine as cores x GHz x FLOP/cycle of its widest unit for the dtype (`cpu_peak_flops`),
    read from /proc/cpuinfo; without it, `CPU_FALLBACK_GHZ` and `os.cpu_count()`.

    Returns:
        `(peak_flops, description)`.

    Examples:

        >>> peak, how = device_peak_flops(tf.distribute.get_strategy())
        >>> peak > 0
        True
    """
    gpus = tf.config.list_physical_devices("GPU")
    if isinstance(strategy, tf.distribute.TPUStrategy):
        kind = "TPU " + os.environ.get("TPU_ACCELERATOR_TYPE", "v4").split("-")[0]
        return _table_peak(kind, compute_dtype) * strategy.num_replicas_in_sync, kind
    if gpus:
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
        return _table_peak(name, compute_dtype) * strategy.num_replicas_in_sync, name
    return cpu_peak_flops(compute_dtype=compute_dtype)


def _table_peak(name, compute_dtype):
    dtype = "float32" if compute_dtype == "float32" else compute_dtype
    for key, peaks in DEVICE_PEAK_FLOPS.items():
        if key.lower() in name.lower():
            return peaks.get(dtype, peaks["float32"])
    return DEVICE_PEAK_FLOPS["T4"]["float32"]  # An unknown accelerator: a conservative guess, said in results.


def cpu_features(cpuinfo_path="/proc/cpuinfo"):
    """This machine's CPU: `{"model", "cores", "ghz", "flags", "avx512_bits"}`, `flags` the `CPU_FEATURE_FLAGS`
    it has, `avx512_bits` the width its AVX-512 units execute at (256 on `CPU_HALF_WIDTH_AVX512`; 0 without).

    Examples:

        >>> features = cpu_features()
        >>> features["cores"] >= 1 and set(features["flags"]) <= set(CPU_FEATURE_FLAGS)
        True
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        with open(cpuinfo_path) as f:
            text = f.read()
    except OSError:
        text = ""
    mhz = re.findall(r"^cpu MHz\s*:\s*([\d.]+)", text, re.MULTILINE)
    model = re.findall(r"^model name\s*:\s*(.*)$", text, re.MULTILINE)
    flags = set(re.findall(r"^flags\s*:(.*)$", text, re.MULTILINE)[0].split()) if "flags" in text else set()
    vendor = re.findall(r"^vendor_id\s*:\s*(\S+)", text, re.MULTILINE)
    family = re.findall(r"^cpu family\s*:\s*(\d+)", text, re.MULTILINE)
    half_width = bool(vendor and family) and (vendor[0], int(family[0])) in CPU_HALF_WIDTH_AVX512
    return {"model": model[0].strip() if model else "unknown CPU", "cores": cores,
            "ghz": float(mhz[0]) / 1000 if mhz else CPU_FALLBACK_GHZ,
            "flags": [flag for flag in CPU_FEATURE_FLAGS if flag in flags],
            "avx512_bits": 0 if "avx512f" not in flags else 256 if half_width else 512}


def cpu_peak_flops(cpuinfo_path="/proc/cpuinfo", compute_dtype="float32"):
    """Peak of this machine's CPUs in `compute_dtype`: `(cores x GHz x FLOP/cycle, description)`.

    The unit is the widest the CPU has for that dtype (`CPU_FLOP_PER_CYCLE`): a bfloat16 run on an AMX CPU is
    measured against AMX's peak, not float32's; without a native unit, against the float32 units it runs on.

    Examples:

        >>> cpu_peak_flops()[0] > 1e9
        True
    """
    features = cpu_features(cpuinfo_path)
    cores, ghz, flags = features["cores"], features["ghz"], set(features["flags"])
    native = [(flag, flop) for flag, flop in CPU_FLOP_PER_CYCLE.get(compute_dtype, ()) if flag in flags]
    units = native or [(flag, flop) for flag, flop in CPU_FLOP_PER_CYCLE["float32"] if flag in flags]
    unit, flop = units[0] if units else ("fallback", CPU_FALLBACK_FLOP_PER_CYCLE)
    if unit in AVX512_UNITS and features["avx512_bits"] == 256:
        unit, flop = f"{unit} on 256-bit datapaths", flop // 2
    how = f"CPU: {cores} cores x {ghz:.2f} GHz x {flop} FLOP/cycle ({unit}, {compute_dtype} peak"
    how += ")" if native or compute_dtype == "float32" else f": no native {compute_dtype} unit)"
    return cores * ghz * 1e9 * flop, how


def cpu_description():
    """One line naming the CPU and its `CPU_FEATURE_FLAGS`, recorded with every result (speed figures hold only
    on the machine they were measured on).

    Examples:

        >>> "cores" in cpu_description()
        True
    """
    features = cpu_features()
    width = " (AVX-512 on 256-bit datapaths)" if features["avx512_bits"] == 256 else ""
    return f"{features['model']}, {features['cores']} cores, {' '.join(features['flags']) or 'no AVX2'}{width}"
