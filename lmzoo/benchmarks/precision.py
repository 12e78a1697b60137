"""`lmzoo bench precision`: whether every dtype policy lmzoo may choose on this machine keeps the model's quality.

`train.dtype_policy: auto` picks mixed_bfloat16 where it is faster (`lmzoo.training.execution`). Speed bought
with quality would tilt a comparison, so this benchmark trains the baby GPT of `tiny_shakespeare_char`
(nanoGPT's Shakespeare-char CPU model: 4 layers, width 128, context 64, batch 12) for 2,000 steps once per
policy lmzoo can choose here, through the study runner, on the same seed and batches, and reports each final
full-split validation loss beside float32's. A policy passes when it is within `TOLERANCE` nats of float32.

One seed measures the policy and the trajectory's chaos together (any rounding change sends training down
another path), so `seeds` can average several.

Examples:

    >>> pairs = policies_to_check(native_bf16=True, device="cpu")
    >>> pairs
    [('float32', 'xla'), ('mixed_bfloat16', 'none')]
    >>> policies_to_check(native_bf16=False, device="cpu")
    [('float32', 'xla')]
"""

import statistics
import tempfile

from lmzoo.errors import LmzooError
from lmzoo.training import execution

STUDY = "tiny_shakespeare_char"
MODEL = "gpt_reference"
STEPS = 2000
QUICK_STEPS = 20
QUICK_CHARACTERS = 20_000
TOLERANCE = 0.02  # nats per character: the bar for "equal quality"


def policies_to_check(*, native_bf16, device, gpu_bf16=False):
    """`(dtype_policy, jit mode)` pairs: float32 with XLA (the reference), then every other dtype lmzoo's probe
    or rule of thumb can choose on this device, executed as lmzoo would execute it."""
    settings = dict(jit_setting="auto", dtype_setting="auto", supports_xla=True)
    pairs = [("float32", "xla")]
    probed = execution.candidates(**settings, native_bf16=native_bf16) if device == "cpu" else []
    ruled = execution.rule_of_thumb(**settings, device=device, gpu_bf16=gpu_bf16)
    for pair in [*probed, ruled]:
        if pair[0] != "float32" and pair not in pairs:
            pairs.append(pair)
    return pairs


def _study(dtype, jit, *, steps, seeds, data_dir, quick):
    from lmzoo.training import load_study

    study = load_study(STUDY)
    study["name"] = f"precision_{dtype}_{jit}"
    study["models"] = [entry for entry in study["models"] if entry["name"] == MODEL]
    study["budget"] = {**study["budget"], "steps": steps}
    study["train"] = {**study["train"], "seeds": list(seeds), "dtype_policy": dtype,
                      "jit_compile": execution.JIT_MODES[jit], "probe": False}
    # Only the final evaluation, over the whole validation split; no test split, a short sample.
    study["evaluation"] = {**study["evaluation"], "interval": steps, "test": False, "sample_length": 8}
    if data_dir:
        study["corpus"] = {**study["corpus"], "data_dir": str(data_dir)}
    if quick:  # a small synthetic corpus: the quick check is that every policy runs, not what it scores
        study["corpus"] = {**study["corpus"], "source": "synthetic:markov", "size": QUICK_CHARACTERS}
    return study


def bench_precision(*, seeds=(0,), steps=None, data_dir=None, quick=False):
    """Validation loss of the baby GPT after `steps` steps under each policy of `policies_to_check`.

    Args:
        seeds: training seeds; each policy's loss is their mean.
        steps: training steps per run (default `STEPS`; `QUICK_STEPS` with `quick`).
        data_dir: where Tiny Shakespeare is looked for first (then `$LMZOO_DATA_DIR`).
        quick: a few steps on a small synthetic corpus, to check the benchmark runs (the losses mean nothing).

    Returns:
        `{"benchmark": "precision", "rows": [{"dtype_policy", "jit_compile", "vocab_size", "valid_loss", "difference",
        "within_tolerance", "tokens_per_second"}, ...], "tolerance", "settings", "machine", "notes"}`.
    """
    import tensorflow as tf

    from lmzoo.training import compare
    from lmzoo.training.strategy import cpu_features

    steps = steps or (QUICK_STEPS if quick else STEPS)
    features = cpu_features()
    device = execution.device_kind(tf.distribute.get_strategy())
    pairs = policies_to_check(native_bf16=execution.has_native_bf16(features["flags"]), device=device,
                              gpu_bf16=execution.gpu_supports_bf16())
    rows = []
    with tempfile.TemporaryDirectory() as out_dir:
        for dtype, jit in pairs:
            records = compare(_study(dtype, jit, steps=steps, seeds=seeds, data_dir=data_dir, quick=quick), out_dir=out_dir,
                              show_progress=False)
            for record in records:
                if record["status"] != "finished":
                    raise LmzooError(f"The {dtype}/{jit} run of the precision benchmark {record['status']}: "
                                     f"{record['message']}")
            rows.append({"dtype_policy": dtype, "jit_compile": jit, "vocab_size": records[0]["vocab_size"],
                         "valid_loss": float(statistics.mean(r["valid_loss"] for r in records)),
                         "tokens_per_second": float(statistics.mean(r["tokens_per_second"] for r in records))})
    reference = rows[0]["valid_loss"]
    for row in rows:
        row["difference"] = row["valid_loss"] - reference
        row["within_tolerance"] = bool(abs(row["difference"]) <= TOLERANCE)
    return {
        "benchmark": "precision",
        "rows": rows,
        "tolerance": TOLERANCE,
        "settings": {"study": STUDY, "model": MODEL, "steps": steps, "seeds": list(seeds)},
        "machine": features,
        "notes": [f"final validation loss (nats/char, whole split) after {steps} steps, same seed and batches; "
                  f"a policy passes within {TOLERANCE} of float32"]
                 + ([] if len(rows) > 1 else ["lmzoo chooses only float32 on this machine: nothing to compare"]),
    }
