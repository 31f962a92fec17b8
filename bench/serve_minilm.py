"""Serving MiniLM under open-loop load: dynamic batching vs batch 1, optimized vs fp32.

    flock /tmp/frugal-cpu.lock python bench/serve_minilm.py --json \
        [--sweep 5,10,20,40,80,160,320] [--duration 10] [--slo-p99-ms 200] \
        [--optimized frugal-out/best] [--pin] [--infinity]

Each arm starts ``frugal serve`` as a subprocess on a free loopback port, then this process
loads it with ``frugalml.serve.loadtest`` (the same open-loop client as ``frugal loadtest``:
Poisson arrivals, latency from the scheduled send time, one real STS-B sentence per request)
at each rate of the sweep, lowest first, stopping after two rates in a row miss the SLO
(one miss on a shared machine can be noise).
Reported per arm: every rate's throughput, p50/p99 and failures, the highest rate meeting
p99 <= SLO ("sustained req/s"), the $ per 1k requests there, and the server run's own
active/amortized $ per 1k requests from the ledger.

Arms: ``fp32-batch1`` (``--max-batch-tokens 1``: every request runs alone), ``fp32-dynamic``
(token-budget batching), ``optimized-dynamic`` (with ``--optimized PATH``, an optimize
``best/`` folder), and ``infinity`` (with ``--infinity``: Infinity's ``infinity_emb v2``
serving the same fp32 MiniLM folder; skipped with the reason when ``infinity_emb`` is not on
PATH; install it in its own venv, see docs/serve.md). ``--pin`` puts the server on CPU 0 and
this client on CPU 1 (``taskset``) so they do not fight for a core.

On a shared machine the figures move with the load: the JSON records the load average
before and after every arm; compare arms of one run, not runs.
"""

from __future__ import annotations

import argparse
import json
import os
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


def start(cmd: list[str], pin: bool, log: Path) -> subprocess.Popen[bytes]:
    if pin and shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    with log.open("wb") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)


def sweep(url: str, texts: list[str], rates: list[float], args: argparse.Namespace) -> list[dict]:
    from frugalml.serve.loadtest import loadtest

    out: list[dict] = []
    for rate in rates:  # lowest first; two misses in a row: the server is saturated
        res = loadtest(
            url,
            [rate],
            args.duration,
            texts,
            concurrency=args.concurrency,
            slo_p99_ms=args.slo_p99_ms,
            timeout_s=args.timeout,
        )["rates"][0]
        out.append(res)
        if len(out) >= 2 and not out[-1]["meets_slo"] and not out[-2]["meets_slo"]:
            break
    return out


def summarize_arm(name: str, results: list[dict], extra: dict[str, Any]) -> dict[str, Any]:
    meeting = [r for r in results if r["meets_slo"]]
    best = max(meeting, key=lambda r: r["throughput_rps"]) if meeting else None
    return {
        "arm": name,
        "sustained_rps": best["throughput_rps"] if best else 0.0,
        "rate_at_slo_rps": best["rate_rps"] if best else None,
        "p99_ms_at_slo": best["latency_ms"]["p99_ms"] if best else None,
        "usd_per_1k_requests_at_slo": best["usd_per_1k_requests"] if best else None,
        "rates": [
            {
                "rate_rps": r["rate_rps"],
                "sent": r["sent"],
                "ok": r["ok"],
                "rejected_429": r["rejected_429"],
                "errors": r["errors"],
                "throughput_rps": round(r["throughput_rps"], 2),
                "p50_ms": round(r["latency_ms"]["p50_ms"], 1),
                "p99_ms": round(r["latency_ms"]["p99_ms"], 1),
                "meets_slo": r["meets_slo"],
            }
            for r in results
        ],
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
        results = sweep(url, texts, args.rates, args)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=300)
    with Ledger(ledger) as book:
        run = book.get(health["run_id"])
    q = run.quality
    return summarize_arm(
        name,
        results,
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
    )


def infinity_arm(model_dir: str, texts: list[str], args: argparse.Namespace) -> dict[str, Any]:
    exe = args.infinity_cmd or shutil.which("infinity_emb")
    if not exe:
        return {"arm": "infinity", "skipped": "infinity_emb is not on PATH (--infinity-cmd)"}
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
    load0 = os.getloadavg()[0]
    proc = start(cmd, args.pin, tmp / "infinity.log")
    url = f"http://127.0.0.1:{port}"
    if wait_health(url, proc) is None:
        proc.kill()
        return {"arm": "infinity", "error": (tmp / "infinity.log").read_text()[-2000:]}
    try:
        results = sweep(url, texts, args.rates, args)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    return summarize_arm(
        "infinity",
        results,
        {"command": " ".join(cmd), "load_avg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)]},
    )


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--sweep", default="5,10,20,40,80,160,320")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per rate")
    ap.add_argument("--slo-p99-ms", type=float, default=200.0)
    ap.add_argument("--concurrency", type=int, default=256)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--threads", type=int, default=None, help="server intra-op threads")
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--optimized", default=None, help="an optimize best/ folder")
    ap.add_argument("--max-batch-tokens", type=int, default=4096)
    ap.add_argument("--max-wait-ms", type=float, default=5.0)
    ap.add_argument("--pin", action="store_true", help="server on CPU 0, client on CPU 1")
    ap.add_argument("--infinity", action="store_true", help="add the Infinity arm")
    ap.add_argument("--infinity-cmd", default=None, help="path of infinity_emb")
    ap.add_argument("--note", default=None, help="a line about the machine, kept in the JSON")
    ap.add_argument("--arms", default="fp32-batch1,fp32-dynamic,optimized-dynamic")
    args = ap.parse_args()
    args.rates = [float(r) for r in args.sweep.split(",")]
    load_at_start = [round(x, 2) for x in os.getloadavg()]

    from frugalml.data import load_data
    from frugalml.measure.hardware import hardware, usable_cpus
    from frugalml.models import resolve_path

    if not Path(args.data).exists():
        sys.exit(f"serve_minilm: STS-B not found at {args.data} (--data)")
    texts = [t for t in load_data(args.data).texts_all() if t.strip()]
    if args.pin and shutil.which("taskset") and usable_cpus() > 1:
        os.sched_setaffinity(0, {1})
    dynamic = [
        "--max-batch-tokens",
        str(args.max_batch_tokens),
        "--max-wait-ms",
        str(args.max_wait_ms),
    ]
    wanted = args.arms.split(",")
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
        arms.append(frugal_arm("fp32-dynamic", "minilm", dynamic, texts, args))
    if "optimized-dynamic" in wanted:
        if args.optimized:
            arms.append(frugal_arm("optimized-dynamic", args.optimized, dynamic, texts, args))
        else:
            arms.append({"arm": "optimized-dynamic", "skipped": "no --optimized PATH given"})
    if args.infinity:
        arms.append(infinity_arm(str(resolve_path("minilm")), texts, args))
    else:
        arms.append({"arm": "infinity", "skipped": "not requested (--infinity)"})

    by = {a["arm"]: a for a in arms}

    def get(arm: str, key: str) -> Any:
        return by.get(arm, {}).get(key)

    hw = hardware()
    result = {
        "benchmark": "serve_minilm",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "hardware": {
            "cpu": hw.cpu_model,
            "logical_cores": hw.cpu_logical_cores,
            "memory_gib": round(hw.memory_bytes / 2**30, 1),
        },
        "load_avg_at_start": load_at_start,
        "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
        "note": args.note,
        "settings": {
            "sweep_rps": args.rates,
            "duration_s": args.duration,
            "slo_p99_ms": args.slo_p99_ms,
            "concurrency": args.concurrency,
            "threads": args.threads,
            "pin": args.pin,
            "data": str(args.data),
            "texts": len(texts),
            "max_batch_tokens": args.max_batch_tokens,
            "max_wait_ms": args.max_wait_ms,
        },
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
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for a in arms:
        if "rates" not in a:
            print(f"{a['arm']:<20} {a.get('skipped') or 'error: ' + str(a.get('error'))[:200]}")
            continue
        print(
            f"{a['arm']:<20} sustained {a['sustained_rps']:.1f} req/s at p99 <= "
            f"{args.slo_p99_ms:g} ms; $ per 1k at SLO {a['usd_per_1k_requests_at_slo']}"
        )
    print(f"dynamic / batch 1: {result['dynamic_over_batch1']}x")


if __name__ == "__main__":
    main()
