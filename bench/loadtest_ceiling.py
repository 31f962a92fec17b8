"""How many requests/s ``frugal loadtest``'s client can send on one core, and how late.

    flock /tmp/frugal-cpu.lock python bench/loadtest_ceiling.py [--rates 500,1000,1500,2000,3000]
        [--duration 5] [--json]

A trivially fast endpoint (a bare ASGI app under uvicorn answering every POST with one fixed
384-float OpenAI-style embedding, no model) runs as a subprocess on CPU 0; this process runs
``frugalml.serve.loadtest.loadtest`` on CPU 1 (``taskset``/``sched_setaffinity``) at each rate.
Whatever limits the rate here is the client: its send lag (how late requests left after their
scheduled time) and its own CPU share say whether it kept up. ``serve_minilm.py`` records the
same lag per rate, so a server benchmark can show it measured the server, not the client.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

APP = """
import json
BODY = json.dumps({"object": "list", "model": "m", "usage": {"prompt_tokens": 5,
    "total_tokens": 5}, "data": [{"object": "embedding", "index": 0,
    "embedding": [0.01] * 384}]}).encode()
HEADERS = [(b"content-type", b"application/json")]

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", default="500,1000,1500,2000,3000")
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--concurrency", type=int, default=256)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from frugalml.serve.loadtest import loadtest
    from serve_minilm import free_port, wait_health

    tmp = Path(tempfile.mkdtemp(prefix="loadtest-ceiling-"))
    (tmp / "fixed_answer.py").write_text(APP)
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "fixed_answer:app", "--port", str(port)]
    cmd += ["--log-level", "warning", "--no-access-log"]
    pin = shutil.which("taskset") is not None and (os.cpu_count() or 1) > 1
    if pin:
        cmd = ["taskset", "-c", "0", *cmd]
        os.sched_setaffinity(0, {1})
    log = (tmp / "server.log").open("wb")
    proc = subprocess.Popen(cmd, cwd=tmp, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    rows = []
    try:
        if wait_health(url, proc, timeout_s=60) is None and proc.poll() is not None:
            sys.exit(f"loadtest_ceiling: the endpoint did not start: {tmp / 'server.log'}")
        texts = [
            f"a sentence of about ten words, number {i}, sent as one request" for i in range(100)
        ]
        for rate in (float(r) for r in args.rates.split(",")):
            r = loadtest(
                url + "/v1/embeddings", [rate], args.duration, texts, model="m",
                concurrency=args.concurrency, timeout_s=30.0,
            )["rates"][0]  # fmt: skip
            rows.append(
                {
                    "rate_rps": rate,
                    "sent": r["sent"],
                    "ok": r["ok"],
                    "errors": r["errors"],
                    "throughput_rps": round(r["throughput_rps"], 1),
                    "client_lag_p50_ms": round(r["client_lag_ms"]["p50_ms"], 2),
                    "client_lag_p99_ms": round(r["client_lag_ms"]["p99_ms"], 2),
                    "p99_ms": round(r["latency_ms"]["p99_ms"], 2),
                    "client_cpu_share": round(r["client_cpu_share"], 3),
                    "client_behind": r["client_behind"],
                }
            )
            time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    result = {
        "benchmark": "loadtest_ceiling",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/loadtest_ceiling.py " + " ".join(sys.argv[1:]),
        "pinned": pin,
        "duration_s": args.duration,
        "concurrency": args.concurrency,
        "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        "rates": rows,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for row in rows:
        print(
            f"{row['rate_rps']:>7g} req/s offered: {row['throughput_rps']:>7.1f} answered, "
            f"send lag p50/p99 {row['client_lag_p50_ms']}/{row['client_lag_p99_ms']} ms, "
            f"client CPU {row['client_cpu_share']:.0%}"
        )


if __name__ == "__main__":
    main()
