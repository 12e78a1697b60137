"""Choosing the execution by measurement: the candidates, the rule of thumb, the cache, and a probed run that trains
exactly like a run given the same choice explicitly."""

import time

import pytest

from lmzoo.training import execution, strategy as strategies, train

TRAIN = {"jit_compile": "auto", "dtype_policy": "auto", "probe": True}


def choose(train_section=TRAIN, *, native_bf16=True, device="cpu", figures=None, expected_seconds=1e6):
    measured = []

    def measure(pairs):
        measured.extend(pairs)
        return {pair: (figures or {}).get(pair, 100.0) for pair in pairs}

    choice = execution.choose(train=train_section, supports_xla=True, device=device, native_bf16=native_bf16,
                              expected_seconds=expected_seconds, measure=measure, key_parts={"case": "test"})
    return choice, measured


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LMZOO_CACHE_DIR", str(tmp_path / "cache"))


def test_rule_of_thumb_per_device():
    rule = execution.rule_of_thumb
    assert rule(jit_setting="auto", dtype_setting="auto", supports_xla=True, device="cpu") == ("float32", "xla")
    assert rule(jit_setting="auto", dtype_setting="auto", supports_xla=True, device="tpu") == ("mixed_bfloat16",
                                                                                                "none")
    assert rule(jit_setting="auto", dtype_setting="auto", supports_xla=True, device="gpu", gpu_bf16=True)[0] == (
        "mixed_bfloat16")
    assert rule(jit_setting="auto", dtype_setting="auto", supports_xla=True, device="gpu")[0] == "float32"  # Volta
    assert rule(jit_setting="parts", dtype_setting="float32", supports_xla=True, device="cpu")[1] == "xla_parts"
    assert rule(jit_setting=True, dtype_setting="float32", supports_xla=False, device="gpu")[1] == "none"  # cuDNN


def test_auto_picks_float32_on_a_cpu_without_native_bfloat16(monkeypatch, tmp_path):
    # Even a probe that would find bfloat16 faster never times it on a CPU that emulates it.
    figures = {("mixed_bfloat16", "none"): 1000.0}
    choice, measured = choose(native_bf16=False, figures=figures)
    assert choice["dtype_policy"] == "float32" and all(dtype == "float32" for dtype, _ in measured)
    # Feature detection: the flags /proc/cpuinfo gives a Zen 3 (AVX2 only) and a Sapphire Rapids.
    zen3 = tmp_path / "zen3"
    zen3.write_text("model name\t: AMD EPYC 7B13\ncpu MHz\t\t: 2450.000\nflags\t\t: fpu sse avx2 fma\n")
    spr = tmp_path / "spr"
    spr.write_text("model name\t: Intel Xeon\ncpu MHz\t\t: 2100.000\nflags\t\t: avx2 fma avx512f avx512_bf16 "
                   "amx_bf16 amx_tile\n")
    assert not execution.has_native_bf16(strategies.cpu_features(str(zen3))["flags"])
    assert execution.has_native_bf16(strategies.cpu_features(str(spr))["flags"])


def test_bfloat16_needs_a_clear_margin_and_float32_keeps_the_fastest_jit():
    figures = {("float32", "xla"): 100.0, ("float32", "xla_parts"): 80.0, ("float32", "none"): 60.0,
               ("mixed_bfloat16", "none"): 105.0}
    choice, measured = choose(figures=figures)
    assert len(measured) == 4 and (choice["dtype_policy"], choice["jit_compile"]) == ("float32", "xla")
    assert choice["source"] == "probe" and choice["probe"]["mixed_bfloat16/none"] == 105.0
    choice, _ = choose(figures={**figures, ("mixed_bfloat16", "none"): 130.0})
    assert choice["source"] == "cache"  # same configuration and machine: the first probe is reused


def test_the_cache_is_per_configuration_and_explicit_settings_are_never_probed():
    first, measured = choose(figures={("mixed_bfloat16", "none"): 500.0})
    assert first["dtype_policy"] == "mixed_bfloat16" and len(measured) == 4
    again, measured = choose()
    assert again["source"] == "cache" and not measured and again["dtype_policy"] == "mixed_bfloat16"
    explicit, measured = choose({"jit_compile": False, "dtype_policy": "float32", "probe": True})
    assert explicit == {"dtype_policy": "float32", "jit_compile": "none", "source": "setting", "probe": {}}
    assert not measured


def test_probe_auto_only_pays_for_long_runs_and_only_on_one_cpu_replica():
    short, measured = choose({**TRAIN, "probe": "auto"}, expected_seconds=30.0)
    assert short["source"] == "rule" and not measured and short["jit_compile"] == "xla"
    long, measured = choose({**TRAIN, "probe": "auto"}, expected_seconds=3600.0)
    assert long["source"] == "probe" and measured
    off, measured = choose({**TRAIN, "probe": False})
    assert off["source"] == "rule" and not measured
    tpu, measured = choose(device="tpu")
    assert tpu["dtype_policy"] == "mixed_bfloat16" and not measured


class SharedMachine:
    """A machine another process loads for `burst` seconds from the first timed training call on: every step
    then takes three times as long."""

    def __init__(self, burst):
        self.burst, self.calls, self.busy_until = burst, 0, None

    def step_seconds(self, seconds):
        self.calls += 1
        if self.busy_until is None and self.calls > 2:  # after both candidates' compiling calls
            self.busy_until = time.perf_counter() + self.burst
        return seconds * (3 if self.busy_until and time.perf_counter() < self.busy_until else 1)


class FakeTrainer:
    steps_per_execution = 1

    def __init__(self, machine, step_seconds):
        self.machine, self.seconds = machine, step_seconds

    def iterator(self, dataset):
        return iter(())

    def train(self, iterator, steps):
        time.sleep(steps * self.machine.step_seconds(self.seconds))


@pytest.mark.parametrize("rounds, fastest_found", [(3, True), (1, False)])
def test_the_probe_alternates_candidates_so_a_burst_of_load_does_not_pick_the_slower(rounds, fastest_found):
    # The faster candidate's first turn falls entirely in a burst of load. Timed in one turn each, it looks three
    # times slower and the slower one wins; alternating over three rounds, its undisturbed turns keep it first.
    machine = SharedMachine(burst=0.36 / rounds)  # as long as one turn
    fast, slow = FakeTrainer(machine, 0.004), FakeTrainer(machine, 0.006)
    rates = execution.time_candidates([fast, slow], batch=0, tokens_per_step=1, seconds=0.36, rounds=rounds)
    assert (rates[0] > rates[1]) == fastest_found
    assert rates[1] == pytest.approx(1 / 0.006, rel=0.3)  # the slower one never ran in the burst


def test_a_probed_run_trains_exactly_like_the_same_choice_given_explicitly(tmp_path, monkeypatch):
    # The probe builds and trains throwaway models before the run's own model is seeded: the chosen run's losses
    # must equal those of a run told the same execution, and the choice is recorded.
    monkeypatch.setattr(execution, "PROBE_SECONDS", 0.2)
    study = {"name": "probe", "corpus": {"source": "synthetic:markov", "size": 4000},
             "data": {"sequence_length": 16, "batch_size": 4},
             "models": [{"family": "gru", "preset": "tiny", "args": {"hidden_dim": 8, "num_layers": 1,
                                                                     "dropout": 0.1}}],
             "budget": {"steps": 12}, "train": {"steps_per_execution": 4, "jit_compile": "auto", "probe": True},
             "evaluation": {"interval": 6, "max_batches": 2, "sample_length": 0, "test": False}}
    probed = train(study, model="gru", out_dir=tmp_path / "a", show_progress=False)
    choice = probed["execution"]
    assert choice["source"] == "probe" and set(choice["probe"]) == {"float32/xla", "float32/xla_parts",
                                                                    "float32/none"}
    assert probed["jit_compile"] == execution.JIT_MODES[choice["jit_compile"]]
    explicit = {**study, "train": {**study["train"], "jit_compile": probed["jit_compile"], "probe": False}}
    told = train(explicit, model="gru", out_dir=tmp_path / "b", show_progress=False)
    assert told["execution"]["source"] == "setting"
    losses = lambda record: [row["valid_loss"] for row in record["history"]]  # noqa: E731
    assert losses(probed) == pytest.approx(losses(told), rel=1e-6)


def test_auto_never_gives_the_recurrent_families_mixed_bfloat16(tmp_path, monkeypatch):
    # bench precision: the word LSTM lost 0.040 nats in mixed_bfloat16 (six times its rounding floor). `auto`
    # keeps them float32 on every device; the bfloat16 output layer (+0.011) stays a candidate; explicit wins.
    from lmzoo.models import model_class

    assert [model_class(f).auto_mixed_bfloat16 for f in ("lstm", "gru", "simple_rnn", "rnn_seq2seq")] == [False] * 4
    assert [model_class(f).auto_mixed_bfloat16 for f in ("gpt", "bert", "transformer_seq2seq")] == [True] * 3
    auto = dict(jit_setting="auto", dtype_setting="auto", supports_xla=True)
    for device in ("tpu", "gpu"):
        assert execution.rule_of_thumb(**auto, device=device, gpu_bf16=True, offer_mixed=False)[0] == "float32"
    assert execution.candidates(**auto, native_bf16=True, offer_split=True, offer_mixed=False) == [
        ("float32", "xla"), ("float32", "xla_parts"), ("float32", "none"), ("bfloat16_output", "xla_split")]
    explicit = dict(auto, dtype_setting="mixed_bfloat16")
    assert execution.candidates(**explicit, native_bf16=True, offer_mixed=False)[0] == ("mixed_bfloat16", "xla")
    # A study run: the probe of a GRU on a CPU with native bfloat16 (mocked) times float32 only.
    monkeypatch.setattr(execution, "PROBE_SECONDS", 0.2)
    monkeypatch.setattr(execution, "has_native_bf16", lambda flags: True)
    study = {"name": "rnn_auto", "corpus": {"source": "synthetic:markov", "size": 4000},
             "data": {"sequence_length": 16, "batch_size": 4},
             "models": [{"family": "gru", "preset": "tiny", "args": {"hidden_dim": 8, "num_layers": 1}}],
             "budget": {"steps": 4}, "train": {"steps_per_execution": 4, **TRAIN},
             "evaluation": {"interval": 4, "max_batches": 1, "sample_length": 0, "test": False}}
    record = train(study, model="gru", out_dir=tmp_path / "run", show_progress=False)
    assert record["execution"]["source"] == "probe"
    assert set(record["execution"]["probe"]) == {"float32/xla", "float32/xla_parts", "float32/none"}


def test_the_split_step_is_probed_only_where_bfloat16_is_native_and_the_output_layer_dominates():
    from lmzoo.models import model_class
    from lmzoo.training.plan import output_share

    def pairs(jit="auto", dtype="auto", **kwargs):
        return execution.candidates(jit_setting=jit, dtype_setting=dtype, supports_xla=True, **kwargs)

    split = ("bfloat16_output", "xla_split")
    assert pairs(native_bf16=True, offer_split=True)[-1] == split
    assert split not in pairs(native_bf16=False, offer_split=True)
    assert split not in pairs(native_bf16=True, offer_split=False)
    assert all(jit != "xla_split" for _, jit in pairs(native_bf16=True, offer_split=False))
    # Explicit settings: every dtype under an explicit split; an explicit bfloat16 output under every jit mode.
    assert pairs(jit="split", native_bf16=True, offer_split=True) == [
        ("float32", "xla_split"), ("mixed_bfloat16", "xla_split"), split]
    assert [jit for _, jit in pairs(dtype="bfloat16_output", native_bf16=False, offer_split=True)] == [
        "xla", "xla_parts", "none", "xla_split"]
    # Where the output layer dominates: the word LSTM (33k words) does, the baby GPT (65 characters) does not.
    word_lstm = output_share(model_class("lstm"), {"vocab_size": 33_278, "hidden_dim": 200}, 35)
    baby_gpt = output_share(model_class("gpt"), {"vocab_size": 65, "hidden_dim": 128, "num_layers": 4,
                                                 "num_heads": 4, "max_sequence_length": 64}, 64)
    assert word_lstm == pytest.approx(6 * 200 * 33_278 / (6 * (2 * 4 * 200 * 400) + 6 * 200 * 33_278))
    assert word_lstm >= execution.SPLIT_MIN_OUTPUT_SHARE > baby_gpt > 0
    assert output_share(model_class("bert"), {"vocab_size": 30_000, "hidden_dim": 64, "num_layers": 1,
                                              "num_heads": 2}, 32) == 0.0  # no separable output layer


def test_a_bfloat16_output_layer_is_chosen_only_with_a_clear_margin():
    figures = {("float32", "xla"): 100.0, ("mixed_bfloat16", "none"): 90.0, ("bfloat16_output", "xla_split"): 115.0}

    def chosen(figures):
        return execution.choose(train=TRAIN, supports_xla=True, device="cpu", native_bf16=True, expected_seconds=1e6,
                                measure=lambda pairs: {p: figures.get(p, 50.0) for p in pairs},
                                key_parts={"figures": str(figures)}, offer_split=True)

    choice = chosen(figures)
    assert (choice["dtype_policy"], choice["jit_compile"]) == ("bfloat16_output", "xla_split")
    assert choice["probe"]["bfloat16_output/xla_split"] == 115.0
    figures[("bfloat16_output", "xla_split")] = 105.0  # under BF16_MIN_SPEEDUP: float32 keeps it
    assert chosen(figures)["dtype_policy"] == "float32"
