"""``frugal place``: ranking against hand-computed costs for a small catalog given here.

The test catalog (a real config file) has one measured CPU chip and two instances:

- measured run: 2 cores of ``test-cpu`` (0.1 TFLOP/s fp32 and 10 GB/s per core), a 40 MB fp32
  model (10 M parameters), 50 tokens per request: 1 GFLOP per request; batch 10 at
  100 requests/s = 0.1 s per batch, of which 0.01 s is the stated overhead. The roofline part
  on the measured machine: compute 10 x 1e9 / 2e11 = 0.05 s, memory 4e7 / 2e10 = 0.002 s,
  so compute-bound and efficiency = 0.05 / 0.09.
- ``t/gpu``: 2 x ``test-gpu`` (10 TFLOP/s, 100 GB/s, 16 GiB each), 2.00 $/h, spot 1.00 $/h.
  Per GPU: compute 10 x 1e9 / 1e13 = 0.001 s (memory 0.0004 s): one batch takes
  0.01 + 0.001 x 0.09 / 0.05 = 0.0118 s; two replicas serve 2 x 10 / 0.0118 requests/s.
- ``t/cpu``: 8 vCPUs = 4 cores of ``test-cpu``, 0.50 $/h, no spot price.
  compute 10 x 1e9 / 4e11 = 0.025 s: 0.01 + 0.025 x 0.09 / 0.05 = 0.055 s per batch.

The same eval with ``latency_ms_batch1`` = 28 ms recorded (the line calibration): the line
through 0.028 s at batch 1 and 0.1 s at batch 10 has a slope of 0.072 / 9 = 0.008 s per
request and an intercept (overhead, measured) of 0.020 s; efficiency = 1e9 / (2e11 x 0.008)
= 0.625. ``t/gpu``: 0.020 + 0.001 / 0.625 = 0.0216 s per batch (memory 0.0004 s), two replicas
20 / 0.0216 = 925.9 requests/s; ``t/cpu``: 0.020 + 0.025 / 0.625 = 0.060 s, 166.7/s, p99
150 x 0.06 / 0.1 = 90 ms.

A causal-LM eval on the same 2 cores (the decode calibration): 100 M fp32 parameters (400 MB)
+ 10 MB of KV cache read per token, 50 tokens/s at batch 1 (0.02 s per step), copy probe
41 GB/s. Memory at the probe: 410e6 / 41e9 = 0.010 s, compute 2e8 / 2e11 = 0.001 s, so the
overhead (measured) is 0.010 s and the bandwidth fraction 41 / 20 = 2.05. ``t/cpu`` (same
chip, 4 cores, 40 GB/s x 2.05 = 82 GB/s): 0.010 + 410e6 / 82e9 = 0.015 s per token, 66.67
tokens/s; ``t/gpu`` (another chip: the fraction is not carried above 1): 0.010 + 410e6 / 1e11
= 0.0141 s, two replicas 141.84 tokens/s. Priced per 1M output tokens.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from frugalml.ledger import Ledger
from frugalml.records import Hardware, Usage
from testcatalog import TEST_CHIPS

CONFIG = (
    TEST_CHIPS
    + """
[instances."t/gpu"]
chip = "test-gpu"
gpus = 2
vcpus = 8
usd_per_hour = 2.0
spot_usd_per_hour = 1.0
checked = "2026-11"

[instances."t/cpu"]
chip = "test-cpu"
vcpus = 8
memory_gib = 32
usd_per_hour = 0.5
checked = "2026-10"

[spot]
restart_minutes = 12.0

[spot.interruptions_per_hour]
gpu = 0.5
"""
)

# Hand-computed (see the module docstring).
GPU_BATCH_S = 0.01 + 0.001 * 0.09 / 0.05
GPU_RATE = 2 * 10 / GPU_BATCH_S
CPU_BATCH_S = 0.01 + 0.025 * 0.09 / 0.05
CPU_RATE = 10 / CPU_BATCH_S
MEASURED_USD_1M = 0.2 / (100 * 3600) * 1e6
ON_CPU_USD_1M = 0.5 / (100 * 3600) * 1e6  # measured on t/cpu: 100/s at 0.50 $/h
LM_EVAL = {
    "throughput_per_s": 50.0,
    "decode_tokens_per_s": 50.0,
    "latency_ms_p99": 25.0,
    "batch_size": 1,
    "threads": 2,
    "device": "cpu",
    "size_bytes": 400_000_000,
    "weights_bytes": 400_000_000,
    "kv_bytes_per_token": 10_000_000.0,
    "bytes_per_token": 410_000_000.0,
    "memory_bandwidth_bytes_per_s": 41e9,
    "peak_memory_bytes": 900_000_000,
    "usd_per_hour": 0.2,
    "instance": "auto",
    "model": "original (causal_lm, float32, cpu)",
    "task": "perplexity",
}


@pytest.fixture
def setup(_isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    cfg = _isolated_home / "config.toml"
    cfg.write_text(CONFIG)
    monkeypatch.setenv("FRUGAL_CONFIG", str(cfg))
    hw = Hardware(
        cpu_model="TestCPU 9000 @ 3 GHz",
        cpu_logical_cores=2,
        cpu_physical_cores=2,
        memory_bytes=8 * 2**30,
        hostname="elsewhere",  # not this host: matched by name, not by this CPU's flags
    )
    ev = {
        "throughput_per_s": 100.0,
        "latency_ms_p99": 150.0,
        "batch_size": 10,
        "threads": 2,
        "device": "cpu",
        "size_bytes": 40_000_000,
        "peak_memory_bytes": 500_000_000,
        "tokens_per_request": 50,
        "usd_per_hour": 0.2,
        "cost_usd_per_1m": MEASURED_USD_1M,
        "instance": "auto",
        "model": "original (torch, float32, cpu)",
        "task": "similarity",
        "metric": "spearman",
        "quality": 80.0,
    }
    model_dir = _isolated_home / "my-model"
    model_dir.mkdir()
    with Ledger() as book:
        eval_id = book.record(
            "eval m",
            kind="eval",
            status="finished",
            params={"eval": ev, "model": str(model_dir)},
            hardware=hw,
        )
        cmd_id = book.record("sleep", kind="command", status="finished", hardware=hw)
        # the same workload measured on t/cpu itself (its catalog price): a measured t/cpu row
        on_cpu = book.record(
            "eval m on t/cpu",
            kind="eval",
            status="finished",
            params={"eval": {**ev, "instance": "t/cpu", "usd_per_hour": 0.5,
                             "cost_usd_per_1m": ON_CPU_USD_1M}, "model": "m-on-cpu"},
            hardware=hw,
        )  # fmt: skip
        line_id = book.record(
            "eval m (batch-1 time recorded)",
            kind="eval",
            status="finished",
            params={"eval": {**ev, "latency_ms_batch1": 28.0}, "model": "m-line"},
            hardware=hw,
        )
        lm_id = book.record(
            "eval lm",
            kind="eval",
            status="finished",
            params={"eval": LM_EVAL, "model": "lm"},
            hardware=hw,
        )
        train_id = book.record(
            "finetune m",
            kind="finetune",
            status="finished",
            params={"device": "cpu", "precision": "fp32"},
            usage=_usage(wall_s=3600.0, usd_per_hour=0.2),
            hardware=hw,
        )
    return {
        "eval": eval_id,
        "command": cmd_id,
        "train": train_id,
        "model_dir": str(model_dir),
        "on_cpu": on_cpu,
        "line": line_id,
        "lm": lm_id,
    }


def _usage(wall_s: float, usd_per_hour: float) -> Usage:
    cost = wall_s / 3600 * usd_per_hour
    return Usage(
        wall_s=wall_s,
        cpu_s=wall_s,
        device_s=0.0,
        peak_host_bytes=1,
        peak_device_bytes=0,
        energy_j=1.0,
        energy_source="estimate",
        instance_cost_usd=cost,
        energy_cost_usd=0.0,
        cost_usd=cost,
        co2_g=0.0,
        instance="auto",
        region="world",
        usd_per_hour=usd_per_hour,
        usd_per_kwh=0.1,
        g_co2_per_kwh=100.0,
    )


def _place(cli: Callable[..., Any], *args: str) -> Any:
    proc = cli("place", *args, "--instances", "t/*", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_ranking_matches_hand_computed_costs(cli: Callable[..., Any], setup: dict) -> None:
    out = _place(cli, setup["eval"])
    rows = {r["instance"]: r for r in out["rows"]}
    assert [r["instance"] for r in out["rows"]] == [
        "t/gpu",
        "auto (this run's hardware)",
        "t/cpu",
    ]
    assert rows["t/gpu"]["throughput_per_s"] == pytest.approx(GPU_RATE)
    assert rows["t/gpu"]["usd"] == pytest.approx(2.0 / (GPU_RATE * 3600) * 1e6)
    assert rows["t/cpu"]["usd"] == pytest.approx(0.5 / (CPU_RATE * 3600) * 1e6)
    assert rows["t/cpu"]["latency_ms_p99"] == pytest.approx(150.0 * CPU_BATCH_S / 0.1)
    measured = rows["auto (this run's hardware)"]
    assert measured["label"] == "measured" and measured["usd"] == pytest.approx(MEASURED_USD_1M)
    gpu = rows["t/gpu"]
    assert gpu["label"] == "predicted" and gpu["inputs"]["bound"] == "compute"
    assert gpu["inputs"]["efficiency"] == pytest.approx(0.05 / 0.09)
    assert "test-gpu" in gpu["inputs"]["chip"]
    gpu_usd = 2.0 / (GPU_RATE * 3600) * 1e6
    cut = round((1 - gpu_usd / MEASURED_USD_1M) * 100)  # 41 %
    assert out["statement"].startswith(
        f"moving this workload from auto (this run's hardware) (measured, "
        f"${MEASURED_USD_1M:.4g} per 1M requests) to t/gpu (predicted, ${gpu_usd:.4g}) cuts "
        f"$ per 1M requests by {cut}% with no SLO given (prices checked 2026-10"
    )
    # the catalog's age comes with the ranking: the oldest month among the entries used
    assert out["catalog_age"].startswith("prices checked 2026-10 (")


def test_batch1_time_calibrates_overhead_and_efficiency_by_a_line(
    cli: Callable[..., Any], setup: dict
) -> None:
    rows = {r["instance"]: r for r in _place(cli, setup["line"])["rows"]}
    gpu, cpu = rows["t/gpu"], rows["t/cpu"]
    assert gpu["throughput_per_s"] == pytest.approx(925.926, rel=1e-5)
    assert cpu["throughput_per_s"] == pytest.approx(166.667, rel=1e-5)
    assert cpu["latency_ms_p99"] == pytest.approx(90.0)
    assert cpu["usd"] == pytest.approx(0.5 / (166.667 * 3600) * 1e6, rel=1e-5)
    for row in (gpu, cpu):
        inputs = row["inputs"]
        assert inputs["calibration"] == "line" and inputs["bound"] == "compute"
        assert inputs["overhead_ms"] == pytest.approx(20.0)
        assert inputs["efficiency"] == pytest.approx(0.625)
        assert inputs["sources"]["overhead"].startswith("measured: intercept of 28 ms")
    # without the batch-1 time the overhead is the catalog's, and says so
    old = {r["instance"]: r for r in _place(cli, setup["eval"])["rows"]}
    assert old["t/gpu"]["inputs"]["calibration"] == "one-point"
    assert old["t/gpu"]["inputs"]["sources"]["overhead"].startswith("stated: the catalog's 10")


def test_lm_decode_is_placed_per_output_token_from_its_probe(
    cli: Callable[..., Any], setup: dict
) -> None:
    out = _place(cli, setup["lm"])
    assert out["unit"] == "1M output tokens"
    rows = {r["instance"]: r for r in out["rows"]}
    cpu, gpu = rows["t/cpu"], rows["t/gpu"]
    assert cpu["throughput_per_s"] == pytest.approx(66.6667, rel=1e-5)
    assert gpu["throughput_per_s"] == pytest.approx(141.844, rel=1e-5)
    assert cpu["usd"] == pytest.approx(0.5 / (66.6667 * 3600) * 1e6, rel=1e-5)
    assert gpu["usd"] == pytest.approx(2.0 / (141.844 * 3600) * 1e6, rel=1e-5)
    assert cpu["latency_ms_p99"] == pytest.approx(25.0 * 0.015 / 0.02)
    assert cpu["inputs"]["bound"] == "memory" and cpu["inputs"]["calibration"] == "decode"
    assert cpu["inputs"]["overhead_ms"] == pytest.approx(10.0)
    assert cpu["inputs"]["bandwidth_fraction"] == pytest.approx(2.05)
    assert gpu["inputs"]["bandwidth_fraction"] == pytest.approx(1.0)
    assert cpu["inputs"]["sources"]["bandwidth"] == "measured: copy probe 41 GB/s"
    # measured: 0.2 $/h at 50 tokens/s = $1.111 per 1M tokens; t/cpu $2.083: 87.5% more
    assert out["rows"][0]["label"] == "measured"
    moved = _place(cli, setup["lm"], "--to", "t/cpu")
    assert moved["change"]["cut"] == pytest.approx(-0.875, rel=1e-4)
    assert "per 1M output tokens) to t/cpu (predicted, $2.083) raises" in moved["statement"]


def test_slo_and_min_throughput_filter(cli: Callable[..., Any], setup: dict) -> None:
    out = _place(cli, setup["eval"], "--slo-p99-ms", "50")
    meets = [r["instance"] for r in out["rows"] if r["meets"]]
    assert meets == ["t/gpu"]  # cpu p99 = 82.5 ms, measured 150 ms
    out = _place(cli, setup["eval"], "--min-throughput", "150")
    assert [r["instance"] for r in out["rows"] if r["meets"]] == ["t/gpu", "t/cpu"]


def test_spot_counts_expected_restarts(cli: Callable[..., Any], setup: dict) -> None:
    out = _place(cli, setup["eval"], "--spot")
    rows = {r["instance"]: r for r in out["rows"]}
    # 0.5 interruptions/h x 12 min lost = 1.1 hours paid per useful hour
    assert rows["t/gpu"]["usd"] == pytest.approx(1.0 * 1.1 / (GPU_RATE * 3600) * 1e6)
    assert not rows["t/cpu"]["meets"] and "no spot price" in rows["t/cpu"]["reason"]
    assert out["rows"][0]["instance"] == "t/gpu"


def test_human_output_names_prediction_and_catalog_age(
    cli: Callable[..., Any], setup: dict
) -> None:
    proc = cli("place", setup["eval"], "--instances", "t/*")
    assert proc.returncode == 0, proc.stderr
    assert "predicted" in proc.stdout and "measured" in proc.stdout
    assert "prices checked" in proc.stdout and "months ago" in proc.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["{eval}", "--instances", "nope/*"], "unknown instance 'nope/*'"),
        (["{eval}", "--instances", "t/*", "--slo-p99-ms", "1"], "no instance meets the SLO"),
        (["{command}"], "has no throughput recorded"),
        (["deadbeefcafe"], "neither a run id"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    cli: Callable[..., Any], setup: dict, args: list[str], message: str
) -> None:
    proc = cli("place", *[a.format(**setup) for a in args])
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("frugal: error")]
    assert len(lines) == 1


def test_training_run_is_priced_per_run(cli: Callable[..., Any], setup: dict) -> None:
    # measured 2 cores x 0.1 TFLOP/s for 3600 s; t/gpu has 2 x 10 TFLOP/s: 3600 x 2e11 / 2e13
    out = _place(cli, setup["train"])
    assert out["unit"] == "training run"
    rows = {r["instance"]: r for r in out["rows"]}
    assert out["rows"][0]["instance"] == "t/gpu"
    assert rows["t/gpu"]["wall_s"] == pytest.approx(36.0)
    assert rows["t/gpu"]["usd"] == pytest.approx(36 / 3600 * 2.0)
    assert rows["t/cpu"]["usd"] == pytest.approx(1800 / 3600 * 0.5)
    assert rows["auto (this run's hardware)"]["usd"] == pytest.approx(0.2)
    spot = _place(cli, setup["train"], "--spot")
    # 0.5 interruptions/h x (30 min checkpoint / 2 + 12 min restart) = 1.225 hours per hour
    gpu = next(r for r in spot["rows"] if r["instance"] == "t/gpu")
    assert gpu["usd"] == pytest.approx(36 / 3600 * 1.0 * 1.225)
    spot = _place(cli, setup["train"], "--spot", "--checkpoint-minutes", "60")
    # 0.5 x (60 / 2 + 12 minutes) / 60 = 0.35 extra hours per useful hour
    gpu = next(r for r in spot["rows"] if r["instance"] == "t/gpu")
    assert gpu["usd"] == pytest.approx(36 / 3600 * 1.0 * 1.35)


def test_a_model_folder_places_its_newest_eval_run(cli: Callable[..., Any], setup: dict) -> None:
    out = _place(cli, setup["model_dir"])
    assert out["run_id"] == setup["eval"]


def test_host_chip_by_flags_most_specific_wins() -> None:
    from frugalml.measure import prices
    from frugalml.measure.roofline import match_chip

    cat = prices.catalog()
    generic = {"avx2", "fma", "sse4_2"}
    assert match_chip(cat, cpu_model="Some VM CPU", cpu_flags=generic) == "generic-x86-avx2"
    spr = generic | {"amx_bf16", "avx512f"}
    assert match_chip(cat, cpu_model="Intel(R) Xeon(R) Processor", cpu_flags=spr) == (
        "xeon-sapphire-rapids"
    )
    assert match_chip(cat, cpu_model="Some VM CPU", cpu_flags={"neon"}) is None


# ---- placement statements: one move, each side labelled, at the same SLO --------------------
GPU_USD_1M = 2.0 / (GPU_RATE * 3600) * 1e6  # 0.328 $: 1694.9 requests/s at 2.00 $/h
CPU_USD_1M = 0.5 / (CPU_RATE * 3600) * 1e6  # 0.764 $: 181.8 requests/s at 0.50 $/h


def test_place_from_to_states_one_move(cli: Callable[..., Any], setup: dict) -> None:
    out = _place(cli, setup["eval"], "--from", "t/cpu", "--to", "t/gpu", "--slo-p99-ms", "100")
    change = out["change"]
    assert change["from"]["instance"] == "t/cpu" and change["from"]["label"] == "predicted"
    assert change["to"]["instance"] == "t/gpu" and change["to"]["label"] == "predicted"
    assert change["cut"] == pytest.approx(1 - GPU_USD_1M / CPU_USD_1M)  # 57 %
    assert out["statement"] == change["statement"]
    assert change["statement"].startswith(
        f"moving this workload from t/cpu (predicted, ${CPU_USD_1M:.4g} per 1M requests) to "
        f"t/gpu (predicted, ${GPU_USD_1M:.4g}) cuts $ per 1M requests by 57% at the same SLO "
        "(p99 ≤ 100 ms) (prices checked 2026-10 ("
    )


def test_place_to_a_slower_instance_says_it_misses_the_slo(
    cli: Callable[..., Any], setup: dict
) -> None:
    # from the measured hardware (p99 150 ms) to t/cpu (82.5 ms) at p99 ≤ 50 ms: both miss it
    out = _place(cli, setup["eval"], "--to", "t/cpu", "--slo-p99-ms", "50")
    st = out["change"]["statement"]
    assert st.startswith(
        f"moving this workload from auto (this run's hardware) (measured, "
        f"${MEASURED_USD_1M:.4g} per 1M requests) to t/cpu (predicted, ${CPU_USD_1M:.4g}) "
        "raises $ per 1M requests by "
    )
    assert out["change"]["cut"] == pytest.approx(-0.375)  # 0.764 / 0.556 = 1.375
    assert "not at the same SLO (p99 ≤ 50 ms; t/cpu misses it: p99 82.5 ms > 50 ms" in st
    assert "auto (this run's hardware) misses it: p99 150.0 ms > 50 ms" in st
    assert "prices checked 2026-10" in st


def test_place_to_a_glob_takes_its_cheapest_meeting_the_slo(
    cli: Callable[..., Any], setup: dict
) -> None:
    out = _place(cli, setup["eval"], "--to", "t/*", "--slo-p99-ms", "100")
    assert out["change"]["to"]["instance"] == "t/gpu"
    assert out["change"]["from"]["label"] == "measured"


def test_moving_from_the_measured_instance_uses_the_measurement(
    cli: Callable[..., Any], setup: dict
) -> None:
    # run measured on t/cpu: "from t/cpu" is its measured row (exact), not the prediction
    out = _place(cli, setup["on_cpu"], "--from", "t/cpu", "--to", "t/gpu")
    assert out["change"]["from"]["label"] == "measured"
    assert out["change"]["from"]["usd"] == pytest.approx(ON_CPU_USD_1M)
    assert out["change"]["cut"] == pytest.approx(1 - GPU_USD_1M / ON_CPU_USD_1M)
    assert "with no SLO given (prices checked 2026-10" in out["statement"]


def test_moving_back_to_the_measured_hardware(cli: Callable[..., Any], setup: dict) -> None:
    # "auto" is no catalog instance: it names the run's own (measured) row
    out = _place(cli, setup["eval"], "--from", "t/gpu", "--to", "auto")
    assert out["change"]["to"]["label"] == "measured"
    assert out["change"]["cut"] == pytest.approx(1 - MEASURED_USD_1M / GPU_USD_1M)  # < 0
    assert "raises $ per 1M requests by 69%" in out["statement"]  # 0.556 / 0.328 = 1.69


@pytest.mark.parametrize(
    "args, message",
    [
        (["--from", "nope/x"], "unknown instance 'nope/x' to move from"),
        (["--to", "nope/x"], "unknown instance 'nope/x'"),
    ],
)
def test_bad_move_is_one_line_and_exit_2(
    cli: Callable[..., Any], setup: dict, args: list[str], message: str
) -> None:
    proc = cli("place", setup["eval"], *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_compare_states_the_candidate_s_placement(cli: Callable[..., Any], setup: dict) -> None:
    proc = cli(
        "compare", setup["on_cpu"], setup["eval"], "--place-to", "t/gpu",
        "--slo-p99-ms", "200", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    placed = json.loads(proc.stdout)["placement"]
    assert placed["run_id"] == setup["eval"]  # the candidate's workload
    assert placed["from"]["label"] == "measured" and placed["to"]["label"] == "predicted"
    assert placed["cut"] == pytest.approx(1 - GPU_USD_1M / MEASURED_USD_1M)  # 41 %
    assert "cuts $ per 1M requests by 41% at the same SLO (p99 ≤ 200 ms)" in placed["statement"]
    assert "prices checked 2026-11" in placed["statement"]  # t/gpu's: the only entry used
    human = cli("compare", setup["on_cpu"], setup["eval"], "--place-to", "t/gpu")
    assert human.returncode == 0, human.stderr
    assert "Placement" in human.stdout and "with no SLO given" in human.stdout
    assert "prices checked 2026-11" in human.stdout
    # the cost-delta statement names the catalog's age too: t/cpu's 2026-10 and, for the
    # "auto" side, the built-in per-vCPU rate of the shipped catalog (2025-06)
    notes = json.loads(proc.stdout)["notes"]
    assert any(
        n.startswith("$ figures at the catalog's prices for t/cpu, auto: prices checked 2025-06")
        for n in notes
    ), notes
    assert "prices checked 2025-06" in human.stdout
    bad = cli("compare", setup["on_cpu"], setup["eval"], "--place-to", "nope/x")
    assert bad.returncode == 2 and "unknown instance 'nope/x'" in bad.stderr


def test_an_eval_records_the_batch1_time_place_calibrates_on(tmp_path: Path) -> None:
    """``latency_ms_batch1`` (the key the line calibration reads) comes from every encoder
    eval: texts run alone after the passes, or 1 / throughput at batch size 1."""
    import math

    from frugalml.data import stdlib_sentences
    from frugalml.search.evaluate import evaluate
    from tinymodels import tiny_bert, write_jsonl

    tiny = tiny_bert(tmp_path / "m")
    texts = write_jsonl(tmp_path / "t.jsonl", [{"text": t} for t in stdlib_sentences(24, seed=3)])
    batched = evaluate(tiny, "fidelity", texts, repeats=1, batch_size=8).to_dict()
    assert math.isfinite(batched["latency_ms_batch1"]) and batched["latency_ms_batch1"] > 0
    alone = evaluate(tiny, "fidelity", texts, repeats=1, batch_size=1)
    assert alone.latency_ms_batch1 == pytest.approx(1e3 / alone.throughput_per_s)
