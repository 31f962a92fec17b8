"""Probe: does OpenVINO (AMX/VNNI int8, bf16) run the 4-block MiniLM student faster than ORT int8?

The student is the one ``bench/optimize_minilm.py`` chose (all-MiniLM-L6-v2, 4 of 6 blocks +
distillation), whose ``best/`` folder holds only its ONNX Runtime int8 graph. Its float32 graph
is that graph with the int8 MatMul weights dequantized (``bench/dequantize_onnx.py``: the
same student, weights on the int8 grid), placed by hand in ``WORK/student-fp32``; without it
the student is rebuilt from the same tune split and seed (``LayerDrop(keep=4, extra_texts=4000,
hidden_weight=1.0)``: ~7 minutes of distillation on an idle 2-core machine). ``--quick``: an
undistilled student of the same shapes, for timing only.

Arms, each run by frugal's encode loop (token-count-sorted batches, mean pooling, 2 cores),
timed interleaved over the 3000 STS-B dev sentences, medians of ``--repeats``; Spearman x 100
on dev's select and final thirds, all of dev and STS-B train; cosine to the float32 graph:

- ONNX Runtime dynamic int8 per channel as frugal runs it (one session, 2 threads), batch 32
  (the baseline) and 64, and as two 1-thread sessions each given half of every batch;
- ONNX Runtime on the float32 graph (the cosine reference);
- OpenVINO on the float32 graph (default precision hint: bf16 on AMX CPUs; the hint each
  compiled model used is recorded), and on ``nncf.quantize``'s int8 (calibration on the tune
  split's sentences, ``ModelType.TRANSFORMER``), one 2-thread stream or two 1-thread streams
  each given half of every batch;
- the shipped path: ``OpenVINOInt8`` on the float32 graph, run by frugal's ``openvino``
  runtime (f32 for what stays float), batch 32 and 64.

usage: python bench/openvino_probe.py [--work DIR] [--repeats 5] [--quick]
Run it under ``flock /tmp/frugal-cpu.lock`` on a shared machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED, THREADS, cpu  # sets the offline variables first

BEST = Path("/work/bench-out/enc/best")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def build_student(work: Path, seed: int, quick: bool = False) -> Path:
    """The fp32 ONNX graph of the 4-block distilled student (cached in ``work``). ``quick``:
    the same shapes without distillation (blocks 0, 2, 3, 5 as they are): for timing only."""
    import frugalml
    from frugalml.data import load_data
    from frugalml.passes import LayerDrop, OnnxExport, QuantizeDynamic, apply
    from frugalml.passes.persist import save
    from frugalml.passes.registry import PassContext
    from frugalml.search.space import DISTILL_MORE
    from frugalml.tasks import get_task

    fp32 = work / ("quick-fp32" if quick else "student-fp32")
    if (fp32 / "frugal.json").exists():
        return fp32
    dev = load_data(SHARED / "sts-b" / "sts-dev.csv")
    tune, _select, _final = get_task("similarity").search_split(dev, seed)
    ctx = PassContext(texts=tune.texts_all(), work_dir=work / "passes", seed=seed, log=log)
    base = frugalml.load("minilm")
    t0 = time.perf_counter()
    drop = (
        LayerDrop(keep=4, choose="even", epochs=0) if quick else LayerDrop(keep=4, **DISTILL_MORE)
    )
    student = apply(base, [drop, OnnxExport()], ctx)
    log(f"student built in {time.perf_counter() - t0:.0f} s")
    save(student, fp32)
    int8 = QuantizeDynamic(per_channel=True)
    save(apply(student, int8, ctx), fp32.with_name(fp32.name.replace("fp32", "int8")))
    return fp32


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/work/bench-out/enc3-probe"))
    ap.add_argument("--best", type=Path, default=BEST)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--build-only", action="store_true")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="time an undistilled student of the same shapes (speed only; quality is meaningless)",
    )
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    fp32_dir = build_student(args.work, args.seed, args.quick)
    if args.build_only:
        return 0
    import numpy as np
    import openvino as ov

    import frugalml
    from frugalml.data import load_data
    from frugalml.models import Runtime
    from frugalml.models.base import _pad_batch
    from frugalml.tasks import get_task
    from optimize_minilm import _held_rows, spearman

    rt = Runtime(threads=THREADS, batch_size=32)
    student = frugalml.load(fp32_dir, runtime=rt)
    ort_int8_best = frugalml.load(args.best, runtime=rt)
    ort_int8_rebuilt = frugalml.load(
        fp32_dir.with_name(fp32_dir.name.replace("fp32", "int8")), runtime=rt
    )
    fp32_graph = fp32_dir / "onnx" / "model.onnx"

    dev = load_data(SHARED / "sts-b" / "sts-dev.csv")
    tune, select, final = get_task("similarity").search_split(dev, args.seed)
    select_idx = np.asarray(sorted(_held_rows(dev, select)))
    final_idx = np.asarray(sorted(_held_rows(dev, final)))
    sentences = [*dev.texts, *(dev.texts2 or ())]
    n = len(dev)
    train = load_data(SHARED / "sts-b" / "sts-train.csv")

    def encoder(
        model: Any, run: Callable[[dict[str, np.ndarray]], np.ndarray], batch: int = 32
    ) -> Any:
        """frugal's encode loop (Model.encode) with ``run`` in place of the engine."""

        def enc(texts: list[str]) -> np.ndarray:
            tokens = model._tokenize_each(texts)
            out = np.empty((len(texts), 384), dtype=np.float32)
            for idx in model.batches(texts, batch, tokens=tokens):
                feed = _pad_batch(tokens, idx, model.tokenizer)
                out[idx] = model.pooling.apply(run(feed), feed["attention_mask"])
            return out

        return enc

    def ort_run(model: Any) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
        return lambda feed: model.engine_runtime.run(model, feed)

    core = ov.Core()
    info: dict[str, Any] = {"openvino": ov.__version__}
    cpu_caps = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    info["ov_cpu_capabilities"] = list(cpu_caps)

    def ov_run(ov_model: Any, hint: str | None, key: str, streams: int = 1) -> Any:
        """One stream of 2 threads (a batch at a time), or ``streams`` streams of one thread
        each: every batch split in ``streams`` parts run at once (asynchronous requests)."""
        config: dict[str, Any] = {
            "INFERENCE_NUM_THREADS": THREADS,
            "NUM_STREAMS": streams,
            "PERFORMANCE_HINT": "LATENCY" if streams == 1 else "THROUGHPUT",
        }
        if hint:
            config["INFERENCE_PRECISION_HINT"] = hint
        compiled = core.compile_model(ov_model, "CPU", config)
        info.setdefault("ov_precision", {})[key] = str(
            compiled.get_property("INFERENCE_PRECISION_HINT")
        )
        reqs = [compiled.create_infer_request() for _ in range(streams)]
        names = [i.get_any_name() for i in compiled.inputs]
        out0 = compiled.output(0)

        def run(feed: dict[str, np.ndarray]) -> np.ndarray:
            f = {k: feed[k] for k in names if k in feed}
            if "token_type_ids" in names and "token_type_ids" not in feed:
                f["token_type_ids"] = np.zeros_like(feed["input_ids"])
            if streams == 1:
                return np.asarray(reqs[0].infer(f)[out0])
            parts = np.array_split(np.arange(len(f["input_ids"])), streams)
            used = [(r, p) for r, p in zip(reqs, parts, strict=True) if len(p)]
            for r, p in used:
                r.start_async({k: v[p] for k, v in f.items()})
            for r, _p in used:
                r.wait()
            return np.concatenate([r.get_tensor(out0).data.copy() for r, _p in used])

        return run

    def ort_split(path: Path) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
        """ONNX Runtime the same way: two sessions of one thread, each half a batch at once."""
        from concurrent.futures import ThreadPoolExecutor

        import onnxruntime as ort

        def session() -> Any:
            so = ort.SessionOptions()
            so.intra_op_num_threads = 1
            so.inter_op_num_threads = 1
            so.log_severity_level = 3
            return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

        sessions = [session() for _ in range(THREADS)]
        pool = ThreadPoolExecutor(THREADS)

        def run(feed: dict[str, np.ndarray]) -> np.ndarray:
            parts = np.array_split(np.arange(len(feed["input_ids"])), THREADS)
            jobs = [
                pool.submit(lambda s, p: s.run(None, {k: v[p] for k, v in feed.items()})[0], s, p)
                for s, p in zip(sessions, parts, strict=True)
                if len(p)
            ]
            return np.concatenate([j.result() for j in jobs])

        return run

    fp32_ov = core.read_model(str(fp32_graph))
    # nncf post-training int8 (OpenVINO backend), calibrated on the tune split's sentences
    # in the batches they would run in
    import nncf

    calib_texts = tune.texts_all()
    ctok = student._tokenize_each(calib_texts)
    calib = [
        _pad_batch(ctok, idx, student.tokenizer)
        for idx in student.batches(calib_texts, 32, tokens=ctok)
    ]
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # NNCF's progress bars
        int8_ov = nncf.quantize(
            core.read_model(str(fp32_graph)),
            nncf.Dataset(calib),
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(calib),
        )
    info["nncf_quantize_s"] = time.perf_counter() - t0
    info["nncf_calibration_batches"] = len(calib)
    ov.save_model(int8_ov, str(fp32_dir.with_name(fp32_dir.name + "-ov-int8") / "model.xml"))

    best_graph = args.best / "onnx" / "model.onnx"
    # the pass and runtime frugal ships: OpenVINOInt8 on the student's ONNX graph, calibrated
    # on the same tune split, run by the openvino runtime (threads streams, batches split)
    from frugalml.passes import OpenVINOInt8, apply
    from frugalml.passes.registry import PassContext

    ctx = PassContext(texts=tune.texts_all(), work_dir=args.work / "passes", seed=args.seed)
    with contextlib.redirect_stdout(sys.stderr):
        shipped = apply(student, OpenVINOInt8(), ctx)
    shipped64 = shipped.evolve(runtime=Runtime(threads=THREADS, batch_size=64))
    split = ort_split(best_graph)
    encoders: dict[str, Any] = {
        "ort int8 (best/)": encoder(ort_int8_best, ort_run(ort_int8_best)),
        "ort int8 (best/), batch 64": encoder(ort_int8_best, ort_run(ort_int8_best), 64),
        **(
            {"ort int8 (rebuilt)": encoder(ort_int8_rebuilt, ort_run(ort_int8_rebuilt))}
            if args.quick
            else {}
        ),
        "ort int8 (best/), 2 sessions x 1 thread": encoder(student, split),
        "ort int8 (best/), 2 sessions x 1 thread, batch 64": encoder(student, split, 64),
        "ort fp32": encoder(student, ort_run(student)),
        "ov fp32 graph, default hint, 2 streams": encoder(
            student, ov_run(fp32_ov, None, "fp32 default 2 streams", 2)
        ),
        "ov int8 (nncf), f32, 1 stream x 2 threads": encoder(
            student, ov_run(int8_ov, "f32", "int8 f32", 1)
        ),
        "ov int8 (nncf), default hint, 2 streams": encoder(
            student, ov_run(int8_ov, None, "int8 default 2 streams", 2)
        ),
        "ov int8 (nncf), default hint, 2 streams, batch 64": encoder(
            student, ov_run(int8_ov, None, "int8 default 2 streams b64", 2), 64
        ),
        "frugal openvino_int8 (f32), batch 32": shipped.encode,
        "frugal openvino_int8 (f32), batch 64": shipped64.encode,
    }
    ref = encoders["ort fp32"](sentences)
    rows: dict[str, dict[str, Any]] = {}
    for name, enc in encoders.items():
        log(f"quality: {name} ...")
        emb = enc(sentences)
        cos = (emb * ref).sum(1) / (np.linalg.norm(emb, axis=1) * np.linalg.norm(ref, axis=1))
        rows[name] = {
            "cosine_to_ort_fp32_min": float(cos.min()),
            "cosine_to_ort_fp32_mean": float(cos.mean()),
            "spearman_select": spearman(emb, n, dev.scores, select_idx),
            "spearman_final": spearman(emb, n, dev.scores, final_idx),
            "spearman_dev": spearman(emb, n, dev.scores),
        }
        if not args.quick:
            rows[name]["spearman_train"] = spearman(
                enc([*train.texts, *(train.texts2 or ())]), len(train), train.scores
            )

    log(f"timing: {args.repeats} interleaved rounds over {len(sentences)} sentences ...")
    for enc in encoders.values():
        enc(sentences[:256])
    names = list(encoders)
    seconds: dict[str, list[float]] = {k: [] for k in names}
    for r in range(args.repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.perf_counter()
            encoders[name](sentences)
            seconds[name].append(time.perf_counter() - t0)
    base = names[0]
    for name in names:
        rows[name].update(
            sentences_per_s=len(sentences) / statistics.median(seconds[name]),
            speedup_vs_ort_int8_best=statistics.median(
                b / t for b, t in zip(seconds[base], seconds[name], strict=True)
            ),
            seconds=seconds[name],
        )
        for key in ("spearman_select", "spearman_final", "spearman_dev", "spearman_train"):
            if key in rows[name]:
                rows[name]["delta_" + key.split("_", 1)[1]] = rows[name][key] - rows[base][key]
    info.update(
        student=str(fp32_dir),
        quick=args.quick,
        command=" ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        threads=THREADS,
        batch_size=32,
        repeats=args.repeats,
        sentences=len(sentences),
        cpu=cpu(),
        rows=rows,
    )
    print(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
