"""Search: Pareto/bound (pure), ask/tell order, and the runner end to end on a tiny real model."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import frugalml
from frugalml.data import stdlib_sentences
from frugalml.errors import BadInput
from frugalml.ledger import Ledger
from frugalml.passes import LayerDrop, OnnxExport, QuantizeDynamic, RuntimeSettings
from frugalml.search.constraints import Cheapest, QualityBound
from frugalml.search.pareto import dominates, pareto_front
from frugalml.search.space import Strategy, base_pipelines
from tinymodels import tiny_bert, write_jsonl


def rec(i: str, q: float, c: float, status: str = "ok") -> dict:  # type: ignore[type-arg]
    return {"id": i, "quality": q, "cost_usd_per_1m": c, "status": status, "higher_is_better": True}


def test_pareto_front_is_the_non_dominated_set_cheapest_first() -> None:
    rs = [
        rec("a", 90, 10),
        rec("b", 89, 5),
        rec("c", 88, 6),
        rec("d", 91, 20),
        rec("e", 85, 1),
        rec("f", 99, 0.5, status="failed"),
        rec("g", 89, 5),
    ]
    front = pareto_front(rs)
    assert [r["id"] for r in front] == ["e", "b", "g", "a", "d"]  # c is dominated by b
    assert dominates(rs[1], rs[2]) and not dominates(rs[0], rs[1])
    assert not dominates(rs[1], rs[6]) and not dominates(rs[6], rs[1])  # equal: no one wins
    # float noise on quality is a tie, not a win
    assert dominates(rec("x", 100.0, 1), rec("y", 100.0 + 1e-9, 2))


def test_bound_and_cheapest_pick() -> None:
    bound = QualityBound(baseline=90.0, max_drop=1.0)
    rs = [rec("base", 90, 10), rec("q8", 89.2, 3), rec("tiny", 85, 1), rec("nan", math.nan, 1)]
    assert [bound.allows(r) for r in rs] == [True, True, False, False]
    assert Cheapest().pick(rs, bound)["id"] == "q8"
    assert Cheapest().pick(rs, QualityBound(90.0, 0.0))["id"] == "base"
    with pytest.raises(BadInput):
        QualityBound(90.0, -1.0)


def test_a_cheapest_structural_candidate_gets_its_batch_sizes_next() -> None:
    strategy = Strategy(
        {
            "convert": [(QuantizeDynamic(),)],
            "structure": [(LayerDrop(keep=2),), (LayerDrop(keep=1),)],
        },
        bound_max_drop=1.0,
    )
    seen = []
    while (cand := strategy.ask()) is not None:
        seen.append(cand)
        cost = 1.0 if cand.pipeline == (LayerDrop(keep=2),) else 10.0
        strategy.tell(cand, {**rec(cand.id, 90.0, cost), "batch_size": 32})
    labels = [c.label for c in seen]
    i = labels.index("layer_drop(keep=2)")
    assert labels[i + 1].startswith("layer_drop(keep=2) + runtime_settings")
    assert labels.index("layer_drop(keep=1)") > i + 1


def test_the_last_runtime_round_goes_to_the_best_not_yet_given_batch_sizes() -> None:
    """The loaded run of issue 18: the two best had their batch sizes tried already (one as
    the new best of the structure tier, one in the first runtime round), and the third best
    (the OpenVINO student) never got its batch 64: now the last round gives it to the next
    best instead of asking again for what was tried."""
    a, s1, s2 = (QuantizeDynamic(),), (LayerDrop(keep=2),), (LayerDrop(keep=1),)
    strategy = Strategy({"convert": [a], "structure": [s1, s2]}, bound_max_drop=1.0, runtime_top=2)
    costs = {(): 10.0, a: 2.0, s1: 1.0, s2: 2.5}
    seen = []
    while (cand := strategy.ask()) is not None:
        seen.append(cand)
        strategy.tell(cand, {**rec(cand.id, 90.0, costs.get(cand.pipeline, 5.0)), "batch_size": 32})
    varied = {c.pipeline[:-1] for c in seen if c.tier == "runtime"}
    assert varied == {(), a, s1, s2}  # the first round: the original and a
    assert len({c.pipeline for c in seen}) == len(seen)


def test_strategy_asks_convert_then_runtime_then_structure() -> None:
    tiers = base_pipelines(engine="torch", device="cpu", layers=6, has_tune_text=True)
    assert tiers["convert"][0] == (OnnxExport(), QuantizeDynamic(per_channel=True))
    assert any(isinstance(p[0], LayerDrop) for p in tiers["structure"])
    strategy = Strategy(
        {"convert": tiers["convert"][:2], "structure": tiers["structure"][:1]}, bound_max_drop=1.0
    )
    seen = []
    costs = {0: 10.0, 1: 2.0, 2: 3.0}
    while (cand := strategy.ask()) is not None:
        seen.append(cand)
        n = len(seen) - 1
        strategy.tell(cand, {**rec(cand.id, 90 - 0.1 * n, costs.get(n, 5.0)), "batch_size": 32})
    tiers_seen = [c.tier for c in seen]
    assert tiers_seen[:3] == ["baseline", "convert", "convert"]
    assert tiers_seen[3] == "runtime"
    # runtime variants of the two cheapest in bound: c01 first (cost 2), then c02 (cost 3)
    runtime = [c for c in seen if c.tier == "runtime"]
    assert runtime[0].pipeline[:-1] == seen[1].pipeline
    assert isinstance(runtime[0].pipeline[-1], RuntimeSettings)
    assert "structure" in tiers_seen
    # the structural candidate came out cheapest (cost 5 < 10 but 2 is cheaper): no extra
    # runtime variants right after it; had it been cheapest, they would follow at once
    assert len({c.id for c in seen}) == len(seen)
    assert len({c.pipeline for c in seen}) == len(seen)


def test_structure_tier_tries_richly_distilled_shallow_students_first() -> None:
    """6 blocks: 3 then 4 blocks distilled on extra standard-library text with the teacher's
    block states come before the plain layer-drop recipe (whose students lost more than a
    point on STS-B train, which no pass saw)."""
    q8pc = QuantizeDynamic(per_channel=True)
    tiers = base_pipelines(engine="torch", device="cpu", layers=6, has_tune_text=True)
    rich = {"extra_texts": 4000, "hidden_weight": 1.0}
    from frugalml.passes import OpenVINOInt8
    from frugalml.passes.openvino import available

    # each rich student is also tried in OpenVINO int8 where frugalml[openvino] is installed
    ov = [OpenVINOInt8()] if available() else []
    assert tiers["structure"][: 3 + 2 * len(ov)] == [
        (LayerDrop(keep=3, **rich), OnnxExport(), q8pc),
        *((LayerDrop(keep=3, **rich), OnnxExport(), o) for o in ov),
        (LayerDrop(keep=4, **rich), OnnxExport(), q8pc),
        *((LayerDrop(keep=4, **rich), OnnxExport(), o) for o in ov),
        (LayerDrop(keep=4), OnnxExport(), q8pc),
    ]
    no_text = base_pipelines(engine="torch", device="cpu", layers=6, has_tune_text=False)
    assert not any(isinstance(p[0], LayerDrop) for p in no_text["structure"])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bert(tmp_path_factory.mktemp("tiny") / "m")


@pytest.fixture(scope="module")
def texts_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "texts.jsonl"
    return write_jsonl(path, [{"text": t} for t in stdlib_sentences(64, seed=11)])


def test_one_space_for_every_runtime_minus_what_a_model_already_is() -> None:
    """The space is one list; for a model already in ONNX the export is dropped and passes
    that need torch are filtered by what they declare. The expected list is the one that was
    written out by hand for ONNX models before (search/space.py had an engine branch)."""
    from frugalml.passes import HalfPrecision, OnnxOptimize, OpenVINOInt8, QuantizeStatic
    from frugalml.passes.openvino import available

    q8, q8pc = QuantizeDynamic(), QuantizeDynamic(per_channel=True)
    ov = [(OpenVINOInt8(),)] if available() else []  # where frugalml[openvino] is installed
    tiers = base_pipelines(engine="onnx", device="cpu", layers=6, has_tune_text=True)
    assert tiers["convert"] == [
        (q8pc,), *ov, (q8,), (OnnxOptimize(),), (OnnxOptimize(), q8pc), (QuantizeStatic(),)
    ]  # fmt: skip
    assert tiers["structure"] == []  # layer dropping, pruning and compile need torch
    torch_tiers = base_pipelines(engine="torch", device="cpu", layers=6, has_tune_text=True)
    assert (OnnxExport(), q8pc) in torch_tiers["convert"]
    assert (HalfPrecision("bfloat16"),) in torch_tiers["convert"]


def test_evaluate_reports_the_eval_keys_and_recomputes_quality(
    tiny: Path, texts_file: Path
) -> None:
    from frugalml.search.evaluate import EVAL_KEYS, evaluate

    r = evaluate(tiny, "fidelity", texts_file, repeats=2, instance="aws/c7i.large")
    d = r.to_dict()
    assert list(d)[: len(EVAL_KEYS)] == list(EVAL_KEYS)
    assert d["metric"] == "agreement" and d["higher_is_better"] is True
    assert r.quality == pytest.approx(100.0, abs=1e-3)  # a plain model vs itself
    assert r.texts_timed == 2 * 64 and r.rows_scored == r.rows_total == 64 and r.split == "all"
    assert r.cost_usd_per_1m == pytest.approx(1e6 / r.throughput_per_s / 3600 * 0.08925)
    assert r.latency_ms_p99 >= r.latency_ms_p50 > 0
    assert r.energy_source in ("rapl", "estimate", "nvml") and r.energy_j_per_1k > 0
    assert r.quality_on(np.arange(r.rows)) == pytest.approx(r.quality)
    local = evaluate(tiny, "fidelity", texts_file, repeats=1, instance="local")
    assert local.cost_usd_per_1m == pytest.approx(
        local.energy_j_per_1k * 1000 / 3.6e6 * local.usd_per_hour * 0
        + local.energy_j_per_1k * 1000 / 3.6e6 * _kwh_price(local.region)
    )


def test_the_warm_up_runs_every_batch_shape_before_the_timed_passes(
    tiny: Path, texts_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runtime that compiles per input shape (OpenVINO) must meet every shape untimed: with
    only two warm-up batches its first timed pass ran at half speed and widened its band."""
    from frugalml.models.base import Model
    from frugalml.search.evaluate import evaluate

    seen: list[tuple[int, ...]] = []
    timed: list[int] = []  # len(seen) when the first timed batch ended
    run = Model.run_encoded

    def recording(self: Model, enc: dict[str, np.ndarray]) -> np.ndarray:
        seen.append(tuple(enc["input_ids"].shape))
        return run(self, enc)

    monkeypatch.setattr(Model, "run_encoded", recording)
    r = evaluate(
        tiny, "fidelity", texts_file, repeats=2, batch_size=8,
        reference=np.ones((64, 32), dtype=np.float32),  # no run of the model for a reference
        on_batch=lambda n: timed.append(len(seen)) if not timed else None,
    )  # fmt: skip
    warm = set(seen[: timed[0] - 1])  # what ran before the first timed batch
    assert len(set(seen)) > 2  # several shapes (64 texts, batches of 8, sorted by length)
    passes = seen[timed[0] - 1 : timed[0] - 1 + 2 * 8]  # 2 repeats x 8 batches (then batch 1)
    assert set(passes) <= warm
    assert r.warmup_s > 0


def _kwh_price(region: str) -> float:
    from frugalml.measure.prices import resolve

    return resolve("local", region).usd_per_kwh


def test_evaluate_refuses_nan_outputs(tiny: Path, texts_file: Path) -> None:
    import torch

    from frugalml.errors import CandidateFailed
    from frugalml.search.evaluate import evaluate

    model = frugalml.load(tiny)
    with torch.no_grad():
        model.module.encoder.layer[0].output.dense.weight.fill_(float("nan"))
    with pytest.raises(CandidateFailed, match="NaN"):
        evaluate(
            model, "fidelity", texts_file, repeats=1, reference=np.ones((32, 32), dtype=np.float32)
        )


def test_optimize_records_failures_and_goes_on(texts_file: Path, tmp_path: Path) -> None:
    """A failing candidate is a record with its error; the others run, best is saved.

    On the bundled MiniLM, whose ONNX int8 variant runs 2-3x faster than fp32 on a CPU, so a
    cheaper candidate exists whatever the machine's load (the tiny test model's variants are
    not reliably cheaper than the original)."""
    ledger = f"sqlite:///{tmp_path / 'l.db'}"
    tiers = {
        "convert": [
            (OnnxExport(), QuantizeDynamic(per_channel=True)),
            (LayerDrop(keep=9), OnnxExport()),
            (OnnxExport(),),
        ]
    }
    events: list[str] = []
    res = frugalml.optimize(
        "minilm",
        "fidelity",
        texts_file,
        out=tmp_path / "out",
        ledger=ledger,
        tiers=tiers,
        max_quality_drop=5.0,
        repeats=1,
        runtime_variants=1,
        listener=lambda e, _i: events.append(e),
    )
    by_label = {c["label"]: c for c in res.candidates}
    failed = by_label["layer_drop(keep=9) + onnx_export"]
    assert failed["status"] == "failed" and "keep=9" in failed["error"]
    ok = [c for c in res.candidates if c["status"] == "ok"]
    assert len(ok) >= 3 and res.best is not None and res.best["chosen"]
    assert {"start", "done"} <= set(events)
    # files
    out = tmp_path / "out"
    cands = json.loads((out / "candidates.json").read_text())["candidates"]
    assert [c["id"] for c in cands] == [c["id"] for c in res.candidates]
    assert all(c["optimize_run_id"] == res.run_id for c in cands)
    from frugalml.search.result import CandidateRecord

    declared = set(CandidateRecord.__annotations__)  # every figure is a typed, named field
    assert all(set(c) <= declared for c in cands), [set(c) - declared for c in cands]
    assert (out / "report.md").read_text().count("| c0") >= len(cands)
    manifest = json.loads((out / "best" / "frugal.json").read_text())
    assert manifest["optimize_run_id"] == res.run_id and manifest["candidate_id"] == res.best["id"]
    best = frugalml.load(out)  # the output folder resolves to best/
    assert [p.name for p in best.passes] == [p["name"] for p in res.best["passes"]]
    # ledger: the optimize run with one candidate child per record, failures included
    with Ledger(ledger) as book:
        parent = book.get(res.run_id)
        children = book.runs(parent_id=res.run_id)
    assert parent.kind == "optimize" and parent.status == "finished"
    assert len(children) == len(cands) and {c.kind for c in children} == {"candidate"}
    assert sum(c.status == "failed" for c in children) == 1
    assert all(c.usage is not None for c in children)
    chosen = next(c for c in children if c.id == res.best["run_id"])
    assert chosen.quality["agreement"] == pytest.approx(res.best["quality"])
    # a candidate's CPU includes its evaluating process: at least the CPU its timed passes
    # used (measured inside that process), and the candidates add up to no more than the search
    by_run = {c["run_id"]: c for c in res.candidates}
    for child in children:
        if child.status == "finished":
            assert child.usage.cpu_s >= by_run[child.id]["cpu_s"]
    assert parent.usage is not None
    assert sum(c.usage.cpu_s for c in children) <= parent.usage.cpu_s
    # the cost to produce the chosen model is the whole search, recorded with the result
    cost = json.loads((out / "candidates.json").read_text())["production_cost"]
    assert cost == res.production_cost.to_dict() and cost["runs"] == [res.run_id]
    assert cost["cpu_s"] >= sum(c.usage.cpu_s for c in children)
    assert cost["wall_s"] >= sum(c.usage.wall_s for c in children)
    assert cost["cost_usd"] > 2 * max(c.usage.cost_usd for c in children)
    assert parent.params["production_cost"] == cost
    assert manifest["production_cost"] == cost
    # both quality figures: the select split (chosen on) and the final one (checked on)
    assert res.best["final_check"] == "passed"
    assert res.best["final_quality_drop"] <= 5.0
    # ... with 90% confidence by default: the bootstrap's bound is within the bound, recorded
    assert res.best["final_confidence"] == 0.9 and res.best["final_drop_bound"] <= 5.0
    assert manifest["quality"]["final_drop_bound"] == pytest.approx(res.best["final_drop_bound"])
    assert parent.params["final_confidence"] == 0.9
    assert set(res.rows) == {"tune", "select", "final"} and sum(res.rows.values()) == 64
    assert "90% one-sided bound" in (out / "report.md").read_text()


def test_optimize_is_reproducible_with_a_seed(tiny: Path, texts_file: Path, tmp_path: Path) -> None:
    """Same seed: same candidates, same splits, same quality (timings vary, quality not)."""
    tiers = {"convert": [(OnnxExport(), QuantizeDynamic()), (QuantizeDynamic(),)]}
    runs = [
        frugalml.optimize(
            tiny,
            "fidelity",
            texts_file,
            out=tmp_path / f"o{i}",
            seed=3,
            ledger=f"sqlite:///{tmp_path / 'l.db'}",
            tiers=tiers,
            repeats=1,
            runtime_variants=0,
        )
        for i in range(2)
    ]
    a, b = ([(c["label"], round(c["quality"], 6)) for c in r.candidates] for r in runs)
    assert a == b and len(a) == 3


def test_a_candidate_out_of_memory_fails_alone(
    tiny: Path, texts_file: Path, tmp_path: Path
) -> None:
    from frugalml.errors import CandidateFailed
    from frugalml.search.worker import run_isolated

    spec = {
        "model": str(tiny),
        "task": "fidelity",
        "out": str(tmp_path / "ok"),
        "data": {"path": str(texts_file), "options": {}},
        "repeats": 1,
    }
    assert run_isolated(spec, tmp_path).quality == pytest.approx(100.0, abs=1e-3)
    with pytest.raises(CandidateFailed, match="memory"):
        run_isolated(
            {**spec, "out": str(tmp_path / "oom")}, tmp_path, memory_limit_bytes=64 * 2**20
        )


@pytest.mark.gpu
def test_evaluate_on_gpu_reads_energy_from_nvml(tiny: Path, texts_file: Path) -> None:
    import torch

    from frugalml.search.evaluate import evaluate

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    r = evaluate(tiny, "fidelity", texts_file, device="cuda", repeats=1)
    assert r.device == "cuda" and r.peak_memory_bytes > 0
    assert r.energy_source in ("nvml", "estimate")
    assert r.quality == pytest.approx(100.0, abs=1e-2)


def test_an_interrupted_search_still_reports_what_it_found(
    tiny: Path, texts_file: Path, tmp_path: Path
) -> None:
    def stop_after_first_variant(event: str, info: dict) -> None:  # type: ignore[type-arg]
        if event == "done" and info["record"]["id"] == "c01":
            raise KeyboardInterrupt

    tiers = {"convert": [(OnnxExport(), QuantizeDynamic()), (OnnxExport(),)]}
    with pytest.raises(KeyboardInterrupt):
        frugalml.optimize(
            tiny,
            "fidelity",
            texts_file,
            out=tmp_path / "o",
            repeats=1,
            ledger=f"sqlite:///{tmp_path / 'l.db'}",
            tiers=tiers,
            max_quality_drop=50,
            runtime_variants=0,
            listener=stop_after_first_variant,
        )
    cands = json.loads((tmp_path / "o" / "candidates.json").read_text())["candidates"]
    assert [c["id"] for c in cands] == ["c00", "c01"]
    assert "interrupted" in (tmp_path / "o" / "report.md").read_text()
    with Ledger(f"sqlite:///{tmp_path / 'l.db'}") as book:
        run = book.runs(kind="optimize")[0]
    assert run.status == "failed" and "interrupted" in (run.error or "")


def test_extra_text_feeds_the_distillation_and_is_recorded(
    tiny: Path, texts_file: Path, tmp_path: Path
) -> None:
    """``extra_text``: its sentences, not the standard library's, are what layer dropping adds
    to the tune texts (5 in the file against up to 10 per tune text from the docstrings), and
    the optimize run records the file and how many sentences it gave."""
    extra = tmp_path / "extra.txt"
    sentences = stdlib_sentences(60, seed=9)[50:55]  # texts_file's are other sentences
    extra.write_text("= A heading =\n" + "\n".join(sentences) + "\n", encoding="utf-8")
    tiers = {"structure": [(LayerDrop(keep=2, choose="even", epochs=1, extra_texts=4000),)]}
    logs: list[str] = []

    def search(out: str, **kw: object) -> Any:
        return frugalml.optimize(
            tiny, "fidelity", texts_file, out=tmp_path / out, tiers=tiers, repeats=1,
            runtime_variants=0, max_quality_drop=100.0, ledger=f"sqlite:///{tmp_path / 'l.db'}",
            listener=lambda e, i: logs.append(str(i.get("text", ""))) if e == "log" else None,
            **kw,
        )  # fmt: skip

    with_file = search("a", extra_text=extra)
    tune = with_file.rows["tune"]
    assert any(f"distilling on {tune + 5} texts" in m for m in logs), logs
    logs.clear()
    search("b")
    assert any(f"distilling on {tune + 10 * tune} texts" in m for m in logs), logs
    with Ledger(f"sqlite:///{tmp_path / 'l.db'}") as book:
        run = book.get(with_file.run_id)
    assert run.params["extra_text"] == {"path": str(extra), "sentences": 5}


def test_unusable_extra_text_is_refused_before_any_work(
    tiny: Path, texts_file: Path, tmp_path: Path
) -> None:
    binary = tmp_path / "weights.bin"
    binary.write_bytes(bytes(range(256)) * 8)
    code = tmp_path / "code.txt"
    code.write_text("x=1;y=2\nfor(i=0;i<n;i++){}\n", encoding="utf-8")
    for bad, words in ((tmp_path / "missing.txt", "cannot read"), (binary, "cannot read"),
                       (code, "no prose sentences")):  # fmt: skip
        with pytest.raises(BadInput, match=words):
            frugalml.optimize(
                tiny, "fidelity", texts_file, out=tmp_path / "o", extra_text=bad,
                ledger=f"sqlite:///{tmp_path / 'l.db'}",
            )  # fmt: skip
        assert not (tmp_path / "o" / ".work").exists()  # no search began


def test_an_unusable_final_confidence_is_refused_before_any_work(
    tiny: Path, texts_file: Path, tmp_path: Path
) -> None:
    for bad in (1.0, 0.2):
        with pytest.raises(BadInput, match=r"--final-confidence must be at least 0\.5"):
            frugalml.optimize(
                tiny, "fidelity", texts_file, out=tmp_path / "o", final_confidence=bad,
                ledger=f"sqlite:///{tmp_path / 'l.db'}",
            )  # fmt: skip
        assert not (tmp_path / "o" / ".work").exists()  # no search began
    text = tmp_path / "t.txt"
    text.write_text(" ".join(stdlib_sentences(20, seed=1)), encoding="utf-8")
    with pytest.raises(BadInput, match="no final split"):  # a causal LM's search: one text
        frugalml.optimize("smollm2", "perplexity", text, out=tmp_path / "p", final_confidence=0.9)


def test_extra_text_is_refused_for_a_causal_lm(tmp_path: Path) -> None:
    """A causal LM's search distills nothing: the option would be silently unused."""
    text = tmp_path / "t.txt"
    text.write_text(" ".join(stdlib_sentences(20, seed=1)), encoding="utf-8")
    with pytest.raises(BadInput, match="causal LM"):
        frugalml.optimize("smollm2", "perplexity", text, out=tmp_path / "o", extra_text=text)
