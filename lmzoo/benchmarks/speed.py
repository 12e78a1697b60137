"""`lmzoo bench speed`: lmzoo against the models a user would otherwise pick, in one process, as ratios.

The machines are shared and noisy, so every comparison is measured in the same process, alternating lmzoo and
the reference over several rounds, and reported as the ratio of their best rounds. What is compared:

| row | lmzoo | reference |
|---|---|---|
| `gpt_baby` | `GPT` 4 layers, 4 heads, width 128, context 64, batch 12, vocab 65 | keras-hub `TransformerDecoder` stack, `fit` with XLA |
| `gpt_6x384` | `GPT` 6 layers, 6 heads, width 384, context 256, batch 64 | (reported alone) |
| `lstm_word` | `RNNLM` LSTM 2x200, vocab 33,278, BPTT 35, batch 20 | plain Keras Embedding-LSTM-LSTM-Dense, `fit` with XLA |
| `gru_word`, `simple_rnn_word` | the same size with the other cells | (reported beside it) |

Each row reports lmzoo in every execution its probe would time on this machine (`lmzoo.training.execution`:
float32 with XLA on the whole step, on parts, without XLA; where the CPU has AMX or AVX512-BF16, bfloat16 without
XLA and, for the word-level cases, whose output layer is most of the work, the split step with a bfloat16 output
layer), the one it would choose and that one's ratio to the reference, the float32-XLA ratio beside it, training
FLOPs per token, MFU against the chosen dtype's peak, and whether the model kept its fused kernel. The result
carries the machine's CPU model and features (`machine`). Peak resident memory is measured in a separate
baby-GPT training process, so the benchmark's own models do not count against it.

Examples:

    >>> from lmzoo.benchmarks.speed import SPEED_CASES
    >>> sorted(SPEED_CASES)
    ['gpt_6x384', 'gpt_baby', 'gru_word', 'lstm_word', 'simple_rnn_word']
"""

import json
import subprocess
import sys
import time

SPEED_CASES = {
    "gpt_baby": dict(
        family="gpt", vocab_size=65, batch_size=12, sequence_length=64, reference="keras_hub_gpt", steps=60,
        model=dict(hidden_dim=128, num_layers=4, num_heads=4, max_sequence_length=64),
    ),
    "gpt_6x384": dict(
        family="gpt", vocab_size=65, batch_size=64, sequence_length=256, reference=None, steps=4,
        model=dict(hidden_dim=384, num_layers=6, num_heads=6, max_sequence_length=256),
    ),
    "lstm_word": dict(
        family="lstm", vocab_size=33_278, batch_size=20, sequence_length=35, reference="keras_lstm", steps=20,
        model=dict(hidden_dim=200, num_layers=2, tie_embeddings=False),
    ),
    "gru_word": dict(
        family="gru", vocab_size=33_278, batch_size=20, sequence_length=35, reference=None, steps=20,
        model=dict(hidden_dim=200, num_layers=2, tie_embeddings=False),
    ),
    "simple_rnn_word": dict(
        family="simple_rnn", vocab_size=33_278, batch_size=20, sequence_length=35, reference=None, steps=20,
        model=dict(hidden_dim=200, num_layers=2, tie_embeddings=False),
    ),
}
# Each case times `steps` steps per round (a few seconds of work), ROUNDS rounds; `quick` times 4 steps of the
# case at a toy size (`toy_case`).
ROUNDS = 3
STEPS_PER_EXECUTION = 20


def toy_case(case):
    """`case` at a toy size with the same family, reference and shape of batch: what `quick` runs to check that
    the benchmark works end to end in seconds (its figures mean nothing).

    Examples:

        >>> toy = toy_case(SPEED_CASES["lstm_word"])
        >>> toy["vocab_size"], toy["model"]["hidden_dim"], toy["reference"]
        (512, 32, 'keras_lstm')
    """
    model = dict(case["model"], hidden_dim=32, num_layers=1)
    if "num_heads" in model:
        model["num_heads"] = 2
    return dict(case, vocab_size=min(case["vocab_size"], 512), model=model)


def _random_batches(case, seed=0):
    import tensorflow as tf

    shape = (case["batch_size"], case["sequence_length"])
    x = tf.random.stateless_uniform(shape, (seed, 0), 0, case["vocab_size"], tf.int32)
    y = tf.random.stateless_uniform(shape, (seed, 1), 0, case["vocab_size"], tf.int32)
    return tf.data.Dataset.from_tensors((x, y)).repeat()


def _lmzoo_timer(case, steps_per_execution=STEPS_PER_EXECUTION, dtype_policy="float32", jit="xla"):
    """Build lmzoo's model and trainer in one execution; return (model, a function that trains n steps)."""
    import keras

    from lmzoo.models import build_model
    from lmzoo.training import Trainer, strategy
    from lmzoo.training.execution import JIT_MODES

    model = build_model(case["family"], vocab_size=case["vocab_size"], dtype=strategy.dtype_policy(dtype_policy),
                        **case["model"])
    trainer = Trainer(
        model, keras.optimizers.AdamW(1e-3), clipnorm=1.0, jit_compile=JIT_MODES[jit],
        steps_per_execution=steps_per_execution, output_dtype=strategy.output_dtype(dtype_policy),
    )
    iterator = trainer.iterator(_random_batches(case))
    return model, lambda steps: trainer.train(iterator, steps)


def _reference_timer(case):
    """Build the reference and compile it for `fit`; return a function that trains n steps."""
    from lmzoo.benchmarks import references

    builder = getattr(references, case["reference"])
    sizes = {k: v for k, v in case["model"].items() if k in ("hidden_dim", "num_layers", "num_heads")}
    model = references.compile_for_fit(
        builder(vocab_size=case["vocab_size"], sequence_length=case["sequence_length"], **sizes)
    )
    data = _random_batches(case)
    return lambda steps: model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)


def _input_tokens_per_second(case, batches=300):
    """Tokens/s that lmzoo's training pipeline feeds at this case's shape (windows, shuffle, batch, prefetch)."""
    import numpy as np

    from lmzoo.data import causal_lm_dataset

    stream = np.random.default_rng(0).integers(0, case["vocab_size"], 2_000_000, dtype=np.int32)
    dataset = causal_lm_dataset(stream, sequence_length=case["sequence_length"], batch_size=case["batch_size"])
    iterator = iter(dataset)
    next(iterator)  # start the prefetch threads
    seconds = _timed(lambda n: [next(iterator) for _ in range(n)], batches)
    return case["batch_size"] * case["sequence_length"] * batches / seconds


def _timed(train_steps, steps):
    start = time.perf_counter()
    train_steps(steps)
    return time.perf_counter() - start


def _alternating_best_seconds(timers, steps):
    """Best seconds per timer over ROUNDS rounds that alternate between them, so all see the same noise (the
    probe's own `best_rates`)."""
    from lmzoo.training.execution import best_rates

    rates = best_rates([lambda timer=timer: (1.0, _timed(timer, steps)) for timer in timers], ROUNDS)
    return [1.0 / rate for rate in rates]


def lmzoo_candidates(case):
    """The executions a run of `case` with `jit_compile: auto` and `dtype_policy: auto` would probe on this
    machine."""
    from lmzoo.models import model_class
    from lmzoo.training import execution
    from lmzoo.training.plan import output_share
    from lmzoo.training.strategy import cpu_features

    native_bf16 = execution.has_native_bf16(cpu_features()["flags"])
    family = model_class(case["family"])
    share = output_share(family, dict(case["model"], vocab_size=case["vocab_size"]), case["sequence_length"])
    return execution.candidates(jit_setting="auto", dtype_setting="auto", supports_xla=True, native_bf16=native_bf16,
                                offer_split=share >= execution.SPLIT_MIN_OUTPUT_SHARE,
                                offer_mixed=family.auto_mixed_bfloat16)


def measure_case(name, *, steps=None, quick=False):
    """Measure one case of `SPEED_CASES` in this process: every execution lmzoo would probe, the one it would
    choose (`lmzoo.training.execution.best`) and its reference, if any, alternating over `ROUNDS` rounds
    (`quick`: the case at a toy size, `toy_case`)."""
    import tensorflow as tf

    from lmzoo.training import execution
    from lmzoo.training.strategy import device_peak_flops, peak_dtype

    case = toy_case(SPEED_CASES[name]) if quick else SPEED_CASES[name]
    steps = steps or case["steps"]
    # lmzoo's steps per compiled call; the reference runs `fit` as its documentation does (one step per call).
    chunk = min(steps, STEPS_PER_EXECUTION)
    tokens = case["batch_size"] * case["sequence_length"] * steps
    pairs = lmzoo_candidates(SPEED_CASES[name])  # at the case's real size, also when `quick` shrinks it
    timers, compile_seconds = [], {}
    for dtype, jit in pairs:
        model, train_steps = _lmzoo_timer(case, steps_per_execution=chunk, dtype_policy=dtype, jit=jit)
        compile_seconds[f"{dtype}/{jit}"] = _timed(train_steps, chunk)
        timers.append(train_steps)
    if case["reference"]:
        timers.append(_reference_timer(case))
        timers[-1](chunk)  # compile
    seconds = _alternating_best_seconds(timers, steps)
    figures = {pair: tokens / s for pair, s in zip(pairs, seconds)}
    chosen = execution.best(figures)
    lmzoo_tps, float32_xla_tps = figures[chosen], figures[("float32", "xla")]
    reference_tps = tokens / seconds[-1] if case["reference"] else None
    flops = model.flops_per_token(case["sequence_length"])
    strategy = tf.distribute.get_strategy()
    peak, peak_source = device_peak_flops(strategy, peak_dtype(chosen[0]))
    input_tps = _input_tokens_per_second(case, batches=30 if quick else 300)
    return {
        "case": name,
        "execution": "/".join(chosen),
        "lmzoo_tokens_per_second": lmzoo_tps,
        "float32_xla_tokens_per_second": float32_xla_tps,
        "reference": case["reference"],
        "reference_tokens_per_second": reference_tps,
        "ratio": lmzoo_tps / reference_tps if reference_tps else None,
        "float32_xla_ratio": float32_xla_tps / reference_tps if reference_tps else None,
        "flops_per_token": flops,
        "mfu": flops * lmzoo_tps / peak,
        "mfu_peak": peak_source,
        "parameters": model.num_parameters(),
        "fused_kernel": model.uses_fused_kernel,
        "executions": {"/".join(pair): tps for pair, tps in figures.items()},
        "compile_seconds": compile_seconds,
        "input_tokens_per_second": input_tps,
        "input_ratio": input_tps / lmzoo_tps,
    }


def measure_dropout(name, *, rate=0.2, dtype_policy="float32", jit="xla", batch_size=None, steps=None,
                    quick=False):
    """Tokens/s of one case of `SPEED_CASES` with dropout `rate`, trained with lmzoo's `Dropout` and with keras'
    own traced into the same step instead (the layer lmzoo used before), alternating over `ROUNDS` rounds in
    this process. Returns `{"case", "execution", "rate", "batch_size", "keras_tokens_per_second",
    "lmzoo_tokens_per_second", "ratio"}` (ratio: lmzoo's tokens/s over keras').

    `batch_size` overrides the case's (GPT 6x384 at its batch of 64 takes minutes per round without XLA).
    """
    import keras

    from lmzoo.layers import dropout

    case = toy_case(SPEED_CASES[name]) if quick else SPEED_CASES[name]
    case = dict(case, model=dict(case["model"], dropout=rate), batch_size=batch_size or case["batch_size"])
    steps = steps or case["steps"]
    chunk = min(steps, STEPS_PER_EXECUTION)
    timers, lmzoo_call = [], dropout.Dropout.call
    try:
        for call in (keras.layers.Dropout.call, lmzoo_call):
            dropout.Dropout.call = call  # read when the step is traced, by its first call
            _, train_steps = _lmzoo_timer(case, steps_per_execution=chunk, dtype_policy=dtype_policy, jit=jit)
            train_steps(chunk)
            timers.append(train_steps)
    finally:
        dropout.Dropout.call = lmzoo_call
    keras_seconds, lmzoo_seconds = _alternating_best_seconds(timers, steps)
    tokens = case["batch_size"] * case["sequence_length"] * steps
    return {"case": name, "execution": f"{dtype_policy}/{jit}", "rate": rate, "batch_size": case["batch_size"],
            "keras_tokens_per_second": tokens / keras_seconds, "lmzoo_tokens_per_second": tokens / lmzoo_seconds,
            "ratio": keras_seconds / lmzoo_seconds}


def peak_training_memory_bytes(case_name="gpt_baby", steps=40):
    """Peak resident memory of a fresh process that trains `case_name` for `steps` steps.

    Read from the child's own `VmHWM` in /proc/self/status, not `ru_maxrss`: Linux carries `ru_maxrss` across
    fork and exec, so a child of this (large) benchmark process would report the parent's peak.
    """
    code = (
        "from lmzoo.benchmarks.speed import _lmzoo_timer, SPEED_CASES;"
        f"m, run = _lmzoo_timer(SPEED_CASES[{case_name!r}]); run({steps});"
        "print(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return int(out.split()[-1]) * 1024  # VmHWM is in KiB.


def bench_speed(*, quick=False, cases=None):
    """Run the speed comparison; returns `{"benchmark": "speed", "rows": [...], "peak_memory_gib": ...}`.

    Args:
        quick: a few steps per round of each case at a toy size, to check that the benchmark runs (figures
            meaningless).
        cases: names from `SPEED_CASES` (default: all; `quick` keeps the two compared against references).
    """
    cases = cases or (["gpt_baby", "lstm_word"] if quick else list(SPEED_CASES))
    rows = [measure_case(name, steps=4 if quick else None, quick=quick) for name in cases]
    memory = peak_training_memory_bytes(steps=4 if quick else 40)
    from lmzoo.training.strategy import cpu_features

    return {
        "benchmark": "speed",
        "machine": cpu_features(),
        "rows": rows,
        "peak_memory_gib": memory / 2**30,
        "notes": [
            "execution = the dtype/XLA mode lmzoo's probe chooses (train.jit_compile and dtype_policy: auto); "
            "float32_xla = lmzoo in float32 with XLA on the whole step",
            f"peak resident memory of a baby-GPT training process: {memory / 2**30:.2f} GiB",
            "ratio = lmzoo tokens/s / reference tokens/s, best of rounds alternating in one process",
        ],
    }


if __name__ == "__main__":
    print(json.dumps(bench_speed(quick="--quick" in sys.argv), indent=2, default=float))
