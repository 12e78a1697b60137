"""`lmzoo bench precision`: whether every dtype policy lmzoo may choose on this machine keeps the model's quality.

`train.dtype_policy: auto` picks mixed_bfloat16, or a bfloat16 output layer, where it is faster
(`lmzoo.training.execution`). Speed bought with quality would tilt a comparison, so this benchmark trains each
case once per policy lmzoo can choose for it here, through the study runner, on the same seed and batches, and
reports each final full-split validation loss beside float32's. A policy passes when it is within `TOLERANCE`
nats of float32. The cases:

* `gpt_char`: the baby GPT of `tiny_shakespeare_char` (nanoGPT's Shakespeare-char CPU model: 4 layers, width
  128, context 64, batch 12), 2,000 steps;
* `lstm_word`: the 2x200 tied LSTM of `word_lm_wikitext2` (33k words, state carried, SGD), 1,000 steps (a third
  of an epoch), the case where the output layer is most of the work and lmzoo may compute it in bfloat16.

One seed measures the policy and the trajectory's chaos together (any rounding change sends training down
another path), so each case also trains a control: float32 without XLA, the reference's model, seed and batches
in another rounding order (the same dropout masks: `lmzoo.layers.Dropout` draws them under XLA in both). Its
difference from the reference is the floor, how far such changes alone move
that case's loss; a policy passes within `TOLERANCE` or within the floor, whichever is larger, and `seeds` can
average several seeds to lower the floor. (On the Zen 4 EPYC the word LSTM's control, 1,000 steps of SGD at
rate 20, moved by 0.006 nats once its dropout masks were the same in both, 0.056 before.)

Examples:

    >>> policies_to_check(native_bf16=True, device="cpu")
    [('float32', 'xla'), ('mixed_bfloat16', 'none')]
    >>> policies_to_check(native_bf16=True, device="cpu", offer_split=True)[-1]
    ('bfloat16_output', 'xla_split')
    >>> policies_to_check(native_bf16=True, device="cpu", offer_split=True, offer_mixed=False)  # an LSTM
    [('float32', 'xla'), ('bfloat16_output', 'xla_split')]
    >>> policies_to_check(native_bf16=False, device="cpu")
    [('float32', 'xla')]
"""

import statistics
import tempfile

from lmzoo.errors import LmzooError
from lmzoo.training import execution

CASES = {
    "gpt_char": dict(study="tiny_shakespeare_char", model="gpt_reference", steps=2000, unit="nats/char"),
    "lstm_word": dict(study="word_lm_wikitext2", model="lstm_word_lm", steps=1000, unit="nats/word"),
}
QUICK_STEPS = 20
QUICK_CHARACTERS = 20_000
TOLERANCE = 0.02  # nats per token: the bar for "equal quality"
REFERENCE = ("float32", "xla")
CONTROL = ("float32", "none")  # the reference in another rounding order (same dropout masks): the floor


def policies_to_check(*, native_bf16, device, gpu_bf16=False, offer_split=False, offer_mixed=True):
    """`(dtype_policy, jit mode)` pairs: float32 with XLA (the reference), then every other dtype lmzoo's probe
    or rule of thumb can choose on this device for the model (`offer_split`, `offer_mixed` as in
    `lmzoo.training.execution.candidates`), executed as lmzoo would execute it."""
    settings = dict(jit_setting="auto", dtype_setting="auto", supports_xla=True, offer_mixed=offer_mixed)
    pairs = [REFERENCE]
    probed = (execution.candidates(**settings, native_bf16=native_bf16, offer_split=offer_split)
              if device == "cpu" else [])
    ruled = execution.rule_of_thumb(**settings, device=device, gpu_bf16=gpu_bf16)
    for pair in [*probed, ruled]:
        if pair[0] != "float32" and pair not in pairs:
            pairs.append(pair)
    return pairs


def _base_study(case, data_dir):
    from lmzoo.training import load_study

    study = load_study(case["study"])
    study["models"] = [entry for entry in study["models"] if entry["name"] == case["model"]]
    if data_dir:
        study["corpus"] = {**study["corpus"], "data_dir": str(data_dir)}
    return study


def _offers_split(study):
    """Whether lmzoo's probe would offer the case's model the split step (at the real corpus's vocabulary)."""
    from lmzoo.training.run import offers_split
    from lmzoo.training.tasks import StudyData

    return offers_split(study, StudyData(study), study["models"][0])


def _study(base, dtype, jit, *, steps, seeds, quick):
    study = dict(base, name=f"precision_{base['models'][0]['name']}_{dtype}_{jit}")
    study["budget"] = {**study["budget"], "steps": steps, "epochs": None}
    study["train"] = {**study["train"], "seeds": list(seeds), "dtype_policy": dtype,
                      "jit_compile": execution.JIT_MODES[jit], "probe": False}
    # Only the final evaluation, over the whole validation split; no test split, a short sample.
    study["evaluation"] = {**study["evaluation"], "interval": steps, "test": False, "sample_length": 8,
                           "also_windows": False}
    if quick:  # a small synthetic corpus: the quick check is that every policy runs, not what it scores
        study["corpus"] = {**study["corpus"], "source": "synthetic:markov", "size": QUICK_CHARACTERS}
    return study


def bench_precision(*, cases=None, seeds=(0,), steps=None, data_dir=None, quick=False):
    """Each case's validation loss after its steps under each policy of `policies_to_check`.

    Args:
        cases: names from `CASES` (default: all).
        seeds: training seeds; each policy's loss is their mean.
        steps: training steps per run (default: the case's; `QUICK_STEPS` with `quick`).
        data_dir: where the corpora are looked for first (then `$LMZOO_DATA_DIR`).
        quick: a few steps on a small synthetic corpus, to check the benchmark runs (the losses mean nothing);
            every policy the full case could be offered is run.

    Returns:
        `{"benchmark": "precision", "rows": [{"case", "role" ("reference", "control" or "policy"),
        "dtype_policy", "jit_compile", "vocab_size", "valid_loss", "difference", "floor", "within_tolerance",
        "passes", "tokens_per_second"}, ...], "tolerance", "settings", "machine", "notes"}`.
    """
    import tensorflow as tf

    from lmzoo.models import model_class
    from lmzoo.training.strategy import cpu_features

    features = cpu_features()
    device = execution.device_kind(tf.distribute.get_strategy())
    rows, settings = [], {}
    for name in cases or list(CASES):
        case = CASES[name]
        base = _base_study(case, data_dir)
        family = model_class(base["models"][0]["family"])
        splits = family.splits_at_output if quick else _offers_split(base)
        pairs = policies_to_check(native_bf16=execution.has_native_bf16(features["flags"]), device=device,
                                  gpu_bf16=execution.gpu_supports_bf16(), offer_split=splits,
                                  offer_mixed=family.auto_mixed_bfloat16)
        case_steps = steps or (QUICK_STEPS if quick else case["steps"])
        settings[name] = {"study": case["study"], "model": case["model"], "steps": case_steps, "unit": case["unit"]}
        pairs = [pairs[0], CONTROL, *pairs[1:]]
        case_rows = [_trained_row(name, _study(base, dtype, jit, steps=case_steps, seeds=seeds, quick=quick))
                     for dtype, jit in pairs]
        rows.extend(_compared(case_rows))
    return {
        "benchmark": "precision",
        "rows": rows,
        "tolerance": TOLERANCE,
        "settings": {"cases": settings, "seeds": list(seeds)},
        "machine": features,
        "notes": [f"final validation loss (nats per token, whole split) after each case's steps, same seeds and "
                  f"batches; difference from float32 XLA (the case's first row); floor = the control's (float32 "
                  f"without XLA) distance from it; a policy passes within max({TOLERANCE}, floor)"]
                 + ([] if len(rows) > 2 * len(settings) else ["lmzoo chooses only float32 on this machine: nothing "
                                                              "to compare"]),
    }


def _compared(case_rows):
    """The case's rows (reference, control, policies) with their differences, floor and verdicts."""
    reference, control = case_rows[0]["valid_loss"], case_rows[1]["valid_loss"]
    floor = abs(control - reference)
    for role, row in zip(["reference", "control"] + ["policy"] * (len(case_rows) - 2), case_rows):
        difference = row["valid_loss"] - reference
        row.update(role=role, difference=difference, floor=floor,
                   within_tolerance=bool(abs(difference) <= TOLERANCE),
                   passes=bool(abs(difference) <= max(TOLERANCE, floor)))
    return case_rows


def _trained_row(case_name, study):
    from lmzoo.training import compare

    dtype, jit = study["train"]["dtype_policy"], study["train"]["jit_compile"]
    with tempfile.TemporaryDirectory() as out_dir:
        records = compare(study, out_dir=out_dir, show_progress=False)
    for record in records:
        if record["status"] != "finished":
            raise LmzooError(f"The {dtype} (jit_compile {jit}) run of the precision benchmark's {case_name} case "
                             f"{record['status']}: {record['message']}")
    return {"case": case_name, "dtype_policy": dtype, "jit_compile": records[0]["execution"]["jit_compile"],
            "vocab_size": records[0]["vocab_size"],
            "valid_loss": float(statistics.mean(r["valid_loss"] for r in records)),
            "tokens_per_second": float(statistics.mean(r["tokens_per_second"] for r in records))}
