"""How a run executes on the hardware it finds: XLA on the whole step, on parts of it or not at all, and in
which dtype policy, chosen by a short timed probe when the study leaves it to lmzoo.

Which is fastest depends on the machine, not on the model alone. On a 2-core Xeon with AMX, the baby GPT runs
twice as fast with XLA (it is bound by per-op overhead, which XLA removes), while a large bfloat16 matrix
product runs 4.7x faster WITHOUT XLA (oneDNN reaches AMX; XLA's CPU backend does not). So with
`train.jit_compile: auto` or `train.dtype_policy: auto` a long run times each candidate for a couple of seconds
on one of its own batches (throwaway models, before the run's own model and seed exist), caches the winner per
machine and configuration, and records the choice and the figures with its results.

A model with a large vocabulary has a third choice where the CPU has native bfloat16: the split step
(`xla_split`) with the output layer's product in bfloat16 (`bfloat16_output`). On the Zen 4 EPYC the word
LSTM's 33k-word output products took 167 ms of a 256 ms float32 XLA step and run 1.94x faster in bfloat16
through oneDNN, which XLA's CPU backend cannot reach (docs/performance.md).

Examples:

    >>> candidates(jit_setting="auto", dtype_setting="float32", supports_xla=True, native_bf16=False)
    [('float32', 'xla'), ('float32', 'xla_parts'), ('float32', 'none')]
    >>> rule_of_thumb(jit_setting="auto", dtype_setting="auto", supports_xla=True, device="cpu")
    ('float32', 'xla')
"""

import functools
import hashlib
import json
import os
import pathlib
import time

import tensorflow as tf

# `Trainer(jit_compile=...)` for each mode: XLA on the whole step (the fused multi-step loop with one replica),
# XLA on the forward and backward passes only (the optimizer update outside), no XLA, or XLA on everything but
# the output layer (models with `splits_at_output`).
JIT_MODES = {"xla": True, "xla_parts": "parts", "none": False, "xla_split": "split"}
# A study's explicit `train.jit_compile` (true, false, parts, split) -> its mode.
MODE_OF_SETTING = {setting: mode for mode, setting in JIT_MODES.items()}
# Native bfloat16 arithmetic: AMX tiles or AVX512-BF16 dot products (Linux /proc/cpuinfo flags).
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
# bfloat16 is chosen only when it beats float32 by this margin: its rounding is a small cost in quality, worth
# paying for a clear speed-up, not for noise.
BF16_MIN_SPEEDUP = 1.1
# Seconds each candidate is timed for, after the call that compiles it, in PROBE_ROUNDS turns that alternate
# between the candidates.
PROBE_SECONDS = 2.0
PROBE_ROUNDS = 3
# `train.probe: auto` probes only runs expected to train for longer than this (at 30% of the device's peak):
# three candidates cost three compilations, which a short run would not earn back.
PROBE_MIN_RUN_SECONDS = 600.0
EXPECTED_MFU = 0.3
CACHE_FILE = "executions.json"
# The split step is a probe candidate only for models that spend at least this share of their FLOPs in the output
# layer (the word LSTM: 91%; the baby GPT at 65 characters: 1%): only there can a faster output product pay for
# the split's cost (9.5% of the word LSTM's step) and for compiling an unrolled loop.
SPLIT_MIN_OUTPUT_SHARE = 0.5


def cache_dir():
    """Where probe results are cached: `$LMZOO_CACHE_DIR`, else `~/.cache/lmzoo`."""
    return pathlib.Path(os.environ.get("LMZOO_CACHE_DIR") or pathlib.Path.home() / ".cache" / "lmzoo")


def has_native_bf16(flags):
    """Whether a CPU with these /proc/cpuinfo `flags` computes in bfloat16 natively (AMX or AVX512-BF16)."""
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


def device_kind(strategy):
    """`"tpu"`, `"gpu"` or `"cpu"`: what the strategy's replicas run on."""
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "tpu"
    return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"


def gpu_supports_bf16():
    """Whether the first GPU computes bfloat16 on tensor cores (compute capability 8.0, Ampere, and later)."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return False
    capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0))
    return tuple(capability) >= (8, 0)


def rule_of_thumb(*, jit_setting, dtype_setting, supports_xla, device, gpu_bf16=False, offer_mixed=True):
    """The `(dtype_policy, jit mode)` used without a probe: explicit settings as given; `auto` dtype is
    mixed_bfloat16 on TPUs and Ampere-or-later GPUs, float32 on CPUs (bfloat16 pays there only at shapes a
    probe must confirm) and for a family that does not `offer_mixed` (its `auto_mixed_bfloat16`); `auto` XLA is
    on wherever the model supports it, except on TPUs (compiled anyway)."""
    if dtype_setting == "auto":
        bf16_device = device == "tpu" or (device == "gpu" and gpu_bf16)
        dtype_setting = "mixed_bfloat16" if bf16_device and offer_mixed else "float32"
    if jit_setting == "auto":
        jit = "xla" if supports_xla and device != "tpu" else "none"
    else:
        jit = MODE_OF_SETTING[jit_setting]
    if not supports_xla:
        jit = "none"
    return dtype_setting, jit


def candidates(*, jit_setting, dtype_setting, supports_xla, native_bf16, offer_split=False, offer_mixed=True):
    """The `(dtype_policy, jit mode)` pairs a CPU probe times.

    Every jit mode but the split one for float32 when XLA is left to lmzoo (split in float32 only adds a boundary:
    0.91x the whole step on the word LSTM). When the dtype is left to lmzoo and the CPU has native bfloat16:
    mixed_bfloat16 without XLA (oneDNN reaches AMX and AVX512-BF16; XLA's CPU backend upcasts, so bfloat16 under
    XLA is not worth a compilation), and with `offer_split` (a model whose output layer runs apart and is most of
    its FLOPs, `SPLIT_MIN_OUTPUT_SHARE`) the split step with a bfloat16 output layer; mixed_bfloat16 only with
    `offer_mixed` (the family's `auto_mixed_bfloat16`: not the recurrent ones, which lose quality in it). An
    explicit dtype is timed under every jit mode left open.

    Examples:

        >>> candidates(jit_setting="auto", dtype_setting="auto", supports_xla=True, native_bf16=True,
        ...            offer_split=True)[-2:]
        [('mixed_bfloat16', 'none'), ('bfloat16_output', 'xla_split')]
    """
    split_allowed = supports_xla and offer_split and jit_setting in ("auto", "split")
    if not supports_xla:
        jits = ["none"]
    elif jit_setting == "auto":
        jits = [mode for mode in JIT_MODES if mode != "xla_split"]
    else:
        jits = [MODE_OF_SETTING[jit_setting]]
    if dtype_setting != "auto":
        extra = ["xla_split"] if split_allowed and dtype_setting == "bfloat16_output" and jit_setting == "auto" else []
        return [(dtype_setting, jit) for jit in jits + extra]
    pairs = [("float32", jit) for jit in jits]
    if native_bf16:
        if offer_mixed:
            pairs.append(("mixed_bfloat16", "none" if "none" in jits else jits[0]))
        if split_allowed:
            pairs.append(("bfloat16_output", "xla_split"))
    return pairs


def best(figures):
    """The winning `(dtype, jit)` of `{(dtype, jit): tokens/s}`: the fastest float32 candidate, unless a
    bfloat16 one beats it by `BF16_MIN_SPEEDUP`.

    Examples:

        >>> best({("float32", "xla"): 100.0, ("float32", "none"): 90.0, ("mixed_bfloat16", "none"): 105.0})
        ('float32', 'xla')
        >>> best({("float32", "xla"): 100.0, ("mixed_bfloat16", "none"): 120.0})
        ('mixed_bfloat16', 'none')
    """
    float32 = {pair: tps for pair, tps in figures.items() if pair[0] == "float32"}
    others = {pair: tps for pair, tps in figures.items() if pair[0] != "float32"}
    if not float32:
        return max(others, key=others.get)
    winner = max(float32, key=float32.get)
    if others:
        challenger = max(others, key=others.get)
        if others[challenger] >= BF16_MIN_SPEEDUP * float32[winner]:
            return challenger
    return winner


def best_rates(turns, rounds):
    """The best rate each of `turns` reaches over `rounds` rounds that alternate between them.

    Each turn is a callable doing some work and returning `(work, seconds)`. Alternating means a burst of other
    work on the machine slows every candidate's nearby turn rather than all of one candidate's; the best turn is
    the one least disturbed (the reason `timeit` reports the minimum), so the ranking holds under load.

    Examples:

        >>> best_rates([lambda: (10, 2.0), lambda: (10, 1.0)], rounds=2)
        [5.0, 10.0]
    """
    best = [0.0] * len(turns)
    for _ in range(rounds):
        for i, turn in enumerate(turns):
            work, seconds = turn()
            best[i] = max(best[i], work / seconds)
    return best


def time_candidates(trainers, batch, tokens_per_step, seconds=PROBE_SECONDS, rounds=PROBE_ROUNDS):
    """Tokens/s of each trainer in `trainers`, training on `batch` repeated: one compiling call each, then
    `rounds` rounds that alternate between them (`best_rates`), each turn whole calls of `steps_per_execution`
    steps for `seconds / rounds` (at least one call).

    All candidates are alive together (so their turns can alternate): the probe holds one copy of the model and
    its optimizer state per candidate.
    """
    iterators = [trainer.iterator(tf.data.Dataset.from_tensors(batch).repeat()) for trainer in trainers]
    for trainer, iterator in zip(trainers, iterators):
        trainer.train(iterator, trainer.steps_per_execution)  # compiles

    def turn(trainer, iterator):
        chunk, steps, start = trainer.steps_per_execution, 0, time.perf_counter()
        while steps == 0 or time.perf_counter() - start < seconds / rounds:
            trainer.train(iterator, chunk)
            steps += chunk
        return steps * tokens_per_step, time.perf_counter() - start

    return best_rates([functools.partial(turn, *pair) for pair in zip(trainers, iterators)], rounds)


def _key(parts):
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def read_cache(key_parts):
    """The cached probe of this configuration on this machine, or None."""
    path = cache_dir() / CACHE_FILE
    try:
        return json.loads(path.read_text()).get(_key(key_parts))
    except (OSError, ValueError):
        return None


def write_cache(key_parts, entry):
    """Add one probe to the cache (written whole to a temporary file, then renamed: never half a file)."""
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CACHE_FILE
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    cache[_key(key_parts)] = entry
    scratch = path.with_name(f".{CACHE_FILE}.{os.getpid()}")
    scratch.write_text(json.dumps(cache, indent=1, sort_keys=True))
    os.replace(scratch, path)


def choose(*, train, supports_xla, device, native_bf16, expected_seconds, measure, key_parts, can_probe=True,
           gpu_bf16=False, offer_split=False, offer_mixed=True):
    """Resolve a study's `train.jit_compile` and `train.dtype_policy` for one run.

    Args:
        train: the study's `train` section (`jit_compile`, `dtype_policy`, `probe`).
        supports_xla: whether the model can be compiled with XLA (keras' cuDNN kernels cannot).
        offer_split: whether the split step is a candidate: the model runs its output layer apart
            (`splits_at_output`) and spends at least `SPLIT_MIN_OUTPUT_SHARE` of its FLOPs there.
        offer_mixed: whether `auto` may choose mixed_bfloat16 for the model (its `auto_mixed_bfloat16`).
        device: `device_kind(strategy)`.
        can_probe: whether this run can be probed (lmzoo probes CPU runs with one replica).
        native_bf16: whether the CPU has native bfloat16 (`has_native_bf16`).
        expected_seconds: the run's training time at `EXPECTED_MFU` (for `probe: auto`).
        measure: `measure([(dtype, jit), ...]) -> {(dtype, jit): tokens/s}`, timing the candidates.
        key_parts: what identifies the configuration and the machine in the cache.

    Returns:
        `{"dtype_policy", "jit_compile" (a `JIT_MODES` key), "source": "setting" | "rule" | "probe" | "cache",
        "probe": {"dtype/jit": tokens/s} (empty without a probe)}`.
    """
    settings = dict(jit_setting=train["jit_compile"], dtype_setting=train["dtype_policy"])
    dtype, jit = rule_of_thumb(**settings, supports_xla=supports_xla, device=device, gpu_bf16=gpu_bf16,
                               offer_mixed=offer_mixed)
    choice = {"dtype_policy": dtype, "jit_compile": jit, "source": "setting", "probe": {}}
    pairs = candidates(**settings, supports_xla=supports_xla, native_bf16=native_bf16,
                       offer_split=offer_split, offer_mixed=offer_mixed)
    if "auto" not in settings.values() or device != "cpu" or not can_probe or len(pairs) < 2:
        return {**choice, "source": "setting" if "auto" not in settings.values() else "rule"}
    wanted = train["probe"] is True or (train["probe"] == "auto" and expected_seconds >= PROBE_MIN_RUN_SECONDS)
    if not wanted:
        return {**choice, "source": "rule"}
    key_parts = {**key_parts, "candidates": pairs}
    cached = read_cache(key_parts)
    if cached:
        return {**cached, "source": "cache"}
    figures = measure(pairs)
    dtype, jit = best(figures)
    choice = {"dtype_policy": dtype, "jit_compile": jit, "source": "probe",
              "probe": {f"{d}/{j}": round(tps, 1) for (d, j), tps in figures.items()}}
    write_cache(key_parts, {**choice, "measured": time.strftime("%Y-%m-%d")})
    return choice
