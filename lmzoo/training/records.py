"""A run's result record: the settings that make a comparison fair, the budget spent, the final metrics.

The record is what `runs/<run>/run.json` holds and what `results.json`, `results.csv`, the report and the
HParams dashboard are built from.
"""

from lmzoo.training import strategy as strategies
from lmzoo.metrics import perplexity

FINISHED, FAILED, RUNNING = "finished", "failed", "running"

# The subset of a record shown as hyperparameters in TensorBoard's HParams dashboard.
HPARAM_KEYS = (
    "model", "family", "seed", "preset", "hidden_dim", "num_layers", "params", "non_embedding_params", "tokenizer",
    "sequence_length", "global_batch", "learning_rate", "train_steps", "dtype_policy", "jit_compile",
    "fused_kernel", "strategy", "replicas", "objective",
)


def run_settings(run):
    """The run's hyperparameters and the fairness columns of its results (tokenizer, batch, dtype, XLA, ...)."""
    config = run.model.get_config()
    return {
        "model": run.entry["name"],
        "family": run.entry["family"],
        "seed": run.seed,
        "preset": run.entry["preset"] or "",
        "hidden_dim": config.get("hidden_dim"),
        "num_layers": config.get("num_layers"),
        "params": run.model.num_parameters(),
        "non_embedding_params": run.model.num_non_embedding_parameters(),
        "tokenizer": run.study["tokenizer"]["name"],
        "vocab_size": run.task.data.tokenizer.vocab_size,
        "sequence_length": run.task.sequence_length,
        "global_batch": run.task.batch_size,
        "learning_rate": run.study["optimizer"]["learning_rate"],
        "train_steps": run.total_steps,
        "dtype_policy": run.execution["dtype_policy"],
        "jit_compile": run.xla,
        "execution": run.execution,
        "fused_kernel": run.model.uses_fused_kernel,
        "strategy": strategies.strategy_name(run.strategy),
        "replicas": run.strategy.num_replicas_in_sync,
        **run.task.record_fields(run.model),
    }


def record_hparams(record):
    """The subset of a record shown as hyperparameters in TensorBoard's HParams dashboard."""
    return {k: record.get(k) for k in HPARAM_KEYS}


def with_results(run, record, valid, test=None):
    """`record` with the budget spent (tokens, FLOPs), MFU and the final metrics (`valid_*`, `test_*`)."""
    tokens = record.get("train_steps", 0) * run.task.tokens_per_step()
    peak_dtype = strategies.peak_dtype(run.execution["dtype_policy"])
    peak, peak_source = strategies.device_peak_flops(run.strategy, peak_dtype)
    speed = record.get("tokens_per_second") or 0.0
    record.update(
        train_tokens=tokens,
        train_flops=tokens * run.flops_per_token,
        flops_per_token=run.flops_per_token,
        mfu=run.flops_per_token * speed / peak,
        device_peak_flops=peak,
        device=peak_source,
        cpu=strategies.cpu_description(),
        entropy_rate=run.task.data.entropy_rate,
        **{f"valid_{k}": v for k, v in valid.items()},
        **{f"test_{k}": v for k, v in (test or {}).items()},
        **run.task.final_fields(valid),
    )
    return record


def history_point(run, step, seconds, train_loss, metrics):
    """One periodic evaluation in the record's `history`: budget spent so far and `valid_*` metrics."""
    tokens = step * run.task.tokens_per_step()
    return {"step": step, "tokens": tokens, "flops": tokens * run.flops_per_token, "seconds": seconds,
            "train_loss": train_loss, **{f"valid_{k}": v for k, v in metrics.items()}}


def history_until(previous, start):
    """The history an uninterrupted run would have recorded up to the restored checkpoint's step `start`."""
    return [h for h in previous.get("history", []) if h["step"] <= start] if start else []


def train_scalars(result, learning_rate, speed):
    """The training scalars logged to TensorBoard at the end of each chunk of steps."""
    return {
        "loss": result["loss"],
        "perplexity": perplexity(result["nats"], result["weight"]),
        "learning_rate": learning_rate,
        "gradient_norm": result["gradient_norm"],
        "tokens_per_second": speed,
        "accuracy": result["accuracy"],
    }


def summary_line(record):
    """The one-line summary printed when a run ends.

    Examples:

        >>> summary_line({"model": "gru", "seed": 0, "status": "finished", "train_steps": 20, "valid_loss": 1.5})
        'gru seed 0: finished, 20 steps, valid loss 1.5000'
    """
    parts = [f"{record['model']} seed {record['seed']}: {record['status']}", f"{record.get('train_steps', 0)} steps"]
    for key, fmt in (("valid_loss", "valid loss {:.4f}"), ("valid_bits_per_char", "{:.3f} bpc"),
                     ("valid_accuracy", "acc {:.3f}"), ("tokens_per_second", "{:,.0f} tok/s"),
                     ("train_seconds", "{:.1f} s"), ("mfu", "MFU {:.2%}")):
        if record.get(key) is not None:
            parts.append(fmt.format(record[key]))
    return ", ".join(parts)
