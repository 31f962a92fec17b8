"""``frugal loadtest``: the open-loop schedule and figures (pure), and runs on a real server."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
from serving import Server

from frugalml.errors import BadInput
from frugalml.ledger import Ledger
from frugalml.serve.loadtest import (
    Outcome,
    check_loopback,
    percentile,
    poisson_schedule,
    summarize,
)


def test_poisson_schedule_is_seeded_sorted_bounded_and_at_the_rate() -> None:
    a = poisson_schedule(100.0, 100.0, seed=3)
    assert a == poisson_schedule(100.0, 100.0, seed=3)
    assert a != poisson_schedule(100.0, 100.0, seed=4)
    assert a == sorted(a) and a[0] > 0 and a[-1] < 100.0
    assert 9_500 < len(a) < 10_500  # 10,000 expected; Poisson sd 100
    gaps = [b - x for x, b in itertools.pairwise(a)]
    # exponential gaps: the sd equals the mean (a fixed-interval sender would have sd 0)
    mean = sum(gaps) / len(gaps)
    sd = math.sqrt(sum((g - mean) ** 2 for g in gaps) / len(gaps))
    assert 0.0095 < mean < 0.0105 and 0.9 < sd / mean < 1.1
    assert len(poisson_schedule(1000.0, 10.0, max_requests=50)) == 50


@pytest.mark.parametrize(("rate", "duration"), [(0, 1), (-1, 1), (1, 0), (1, 3601)])
def test_poisson_schedule_refuses_bad_rate_or_duration(rate: float, duration: float) -> None:
    with pytest.raises(BadInput):
        poisson_schedule(rate, duration)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 99.9) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def test_the_client_s_own_lag_is_measured_and_flagged() -> None:
    """Requests that left late (a client that cannot keep up, or waited for a connection
    slot): the headline latency keeps the lag (open loop), ``after_send_ms`` takes it out, and
    a p99 lag over the threshold flags the rate."""
    prompt = [Outcome(200, 0.020, "", 0.0) for _ in range(100)]
    quiet = summarize(10.0, prompt, window_s=10.0, slo_p99_ms=100.0)
    assert quiet["client_behind"] is False and quiet["client_lag_ms"]["p99_ms"] == 0.0
    # 100 answers of 20 ms server time; the last 5 left 2 s late: 2.02 s from their schedule
    late = [Outcome(200, 0.020, "", 0.0) for _ in range(95)]
    late += [Outcome(200, 2.020, "", 2.0) for _ in range(5)]
    behind = summarize(10.0, late, window_s=10.0, slo_p99_ms=100.0)
    assert behind["latency_ms"]["p99_ms"] == pytest.approx(2020.0)
    assert behind["after_send_ms"]["p99_ms"] == pytest.approx(20.0)
    assert behind["client_lag_ms"]["p99_ms"] == pytest.approx(2000.0)
    assert behind["client_behind"] is True and behind["meets_slo"] is False


def test_summarize_counts_failures_as_late_for_the_slo() -> None:
    fast = [Outcome(200, 0.010) for _ in range(99)]
    base = summarize(10.0, [*fast, Outcome(429, 0.001)], window_s=10.0, slo_p99_ms=100.0)
    assert (base["sent"], base["ok"], base["rejected_429"], base["errors"]) == (100, 99, 1, 0)
    assert base["throughput_rps"] == 9.9 and base["goodput_rps"] == 9.9
    assert base["meets_slo"] is True  # 1 late of 100: the 99th by rank is still 10 ms
    late = [*fast[:98], Outcome(200, 0.500), Outcome(429, 0.001)]
    two = summarize(10.0, late, window_s=10.0, slo_p99_ms=100.0)
    assert two["goodput_rps"] == 9.8  # the 500 ms answer is outside the SLO
    assert two["p99_all_ms"] == 500.0 and two["meets_slo"] is False
    worse = summarize(
        10.0, [*fast[:98], Outcome(0, 30.0, "ReadTimeout"), Outcome(500, 0.01)], 10.0, 100.0
    )
    assert worse["errors"] == 2 and worse["error_kinds"] == {"ReadTimeout": 1, "HTTP 500": 1}
    assert worse["p99_all_ms"] == math.inf and worse["meets_slo"] is False
    assert summarize(1.0, [], 1.0, 100.0)["meets_slo"] is False


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://localhost:1/v1/embeddings"])
def test_loopback_urls_are_allowed(url: str) -> None:
    base, _ = check_loopback(url)
    assert base.startswith("http://")


@pytest.mark.parametrize("url", ["http://10.1.2.3:8080", "http://192.0.2.7/embed"])
def test_remote_hosts_are_refused_unless_allowed(url: str) -> None:
    with pytest.raises(BadInput, match="loopback"):
        check_loopback(url)
    assert check_loopback(url, allow_remote=True)[0].startswith("http://")


def test_cli_refuses_remote_host_and_rate_plus_sweep(cli: Callable, shared_data: Path) -> None:
    data = str(shared_data / "sts-b" / "sts-dev.csv")
    r = cli("loadtest", "http://10.1.2.3:8080", "--rate", "1", "--data", data)
    assert r.returncode == 2 and "--allow-remote" in r.stderr and "Traceback" not in r.stderr
    r = cli("loadtest", "http://127.0.0.1:9", "--rate", "1", "--sweep", "1,2", "--data", data)
    assert r.returncode == 2 and "exactly one" in r.stderr
    r = cli("loadtest", "http://127.0.0.1:9", "--sweep", "1,x", "--data", data)
    assert r.returncode == 2 and "--sweep" in r.stderr


def test_loadtest_against_the_real_server_is_recorded_and_linked(
    server: Server, cli: Callable, shared_data: Path
) -> None:
    data = str(shared_data / "sts-b" / "sts-dev.csv")
    r = cli(
        "loadtest", server.url, "--sweep", "2,4", "--duration", "2", "--data", data,
        "--slo-p99-ms", "600000", "--ledger", server.ledger_url, "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["api"] == "openai" and out["url"] == server.url + "/v1/embeddings"
    assert out["server_run_id"] == server.run_id
    assert [x["rate_rps"] for x in out["rates"]] == [2.0, 4.0]
    for x in out["rates"]:
        assert x["sent"] > 0 and x["sent"] == x["ok"] + x["rejected_429"] + x["errors"]
        assert x["errors"] == 0
        assert set(x["latency_ms"]) == {"p50_ms", "p90_ms", "p99_ms", "p99_9_ms", "max_ms"}
        assert x["latency_ms"]["p50_ms"] <= x["latency_ms"]["p99_ms"]
        assert x["usd_per_1k_requests"] > 0
    # an SLO of 10 minutes: both rates meet it, the higher one is the answer
    assert out["best_rate_rps"] == 4.0
    assert out["usd_per_1k_requests_at_slo"] == out["rates"][1]["usd_per_1k_requests"]
    with Ledger(server.ledger_url) as book:
        run = book.get(out["run_id"])
    assert run.kind == "loadtest" and run.status == "finished"
    assert run.parent_id == server.run_id
    assert run.quality["max_rate_at_slo_rps"] == 4.0
    assert run.params["result"]["rates"][0]["sent"] == out["rates"][0]["sent"]


def test_loadtest_speaks_tei_too(server: Server, cli: Callable, tmp_path: Path) -> None:
    data = tmp_path / "texts.jsonl"
    data.write_text("".join(json.dumps({"text": f"sentence {i}"}) + "\n" for i in range(20)))
    r = cli(
        "loadtest", server.url + "/embed", "--rate", "3", "--duration", "2", "--data",
        str(data), "--json", "--ledger", f"sqlite:///{tmp_path / 'own.db'}",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["api"] == "tei" and out["rates"][0]["ok"] == out["rates"][0]["sent"] > 0
    assert out["best_rate_rps"] is None  # no SLO given
    with Ledger(f"sqlite:///{tmp_path / 'own.db'}") as book:
        run = book.get(out["run_id"])
    # the server's run is in another ledger: the id is kept, not linked as parent
    assert run.parent_id is None and run.params["server_run_id"] == server.run_id


def test_loadtest_table_names_the_best_rate(
    server: Server, cli: Callable, shared_data: Path
) -> None:
    data = str(shared_data / "sts-b" / "sts-dev.csv")
    r = cli(
        "loadtest", server.url, "--rate", "2", "--duration", "1", "--data", data,
        "--slo-p99-ms", "600000", "--ledger", server.ledger_url,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "highest rate meeting p99 <= 600000 ms: 2 req/s" in r.stdout
    assert "ledger run" in r.stdout


@pytest.mark.parametrize(
    ("command", "package"), [("serve", "fastapi"), ("loadtest", "httpx2"), ("loadtest", "aiohttp")]
)
def test_a_missing_serve_package_is_named_with_its_extra(
    command: str, package: str, tmp_path: Path
) -> None:
    import subprocess
    import sys

    data = tmp_path / "t.jsonl"
    data.write_text('{"text": "a"}\n')
    argv = ["frugal", command, "minilm" if command == "serve" else "http://127.0.0.1:9"]
    if command == "loadtest":
        argv += ["--rate", "1", "--data", str(data)]
    code = (
        f"import sys; sys.modules[{package!r}] = None; sys.argv = {argv!r}\n"
        "from frugalml.cli import main; main()"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    assert f"'{package}'" in r.stderr and "frugalml[serve]" in r.stderr
    assert "Traceback" not in r.stderr


class Recorder:
    """A real HTTP endpoint (uvicorn, in a thread) that holds each POST but the first (the
    client's probe) ``hold_s`` seconds and records every body it got and the most requests it
    had in flight at once."""

    def __init__(self, hold_s: float) -> None:
        import threading

        import uvicorn

        self.hold_s, self.bodies, self.inflight, self.peak = hold_s, [], 0, 0
        self.frozen: list[int] = []  # gc.get_freeze_count() as each POST arrived
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=port, log_level="warning", interface="asgi3"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    async def app(self, scope: dict, receive: Callable, send: Callable) -> None:
        import asyncio

        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["method"] == "POST":
            import gc

            self.frozen.append(gc.get_freeze_count())
            self.bodies.append(json.loads(body))
            self.inflight += 1
            self.peak = max(self.peak, self.inflight)
            await asyncio.sleep(self.hold_s if len(self.bodies) > 1 else 0.0)
            self.inflight -= 1
        answer = json.dumps({"data": [{"embedding": [0.5]}]}).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    def __enter__(self) -> Recorder:
        import time

        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_open_loop_a_full_client_counts_its_wait_and_keeps_every_request_its_own() -> None:
    """Two connections, each request held 100 ms by the server, offered 100 req/s: the
    requests must queue in the client. Each one is still sent exactly once with its own
    body, never more than two at once, and the wait for a connection counts as lag and in
    the latency from the scheduled time (open loop). Bounds follow from the server's hold
    and the schedule, not from how fast this machine is."""
    from frugalml.serve.loadtest import loadtest, poisson_schedule

    texts = [f"sentence number {i}" for i in range(50)]
    with Recorder(hold_s=0.1) as rec:
        out = loadtest(
            rec.url + "/v1/embeddings", [100.0], 0.4, texts, model="m", concurrency=2,
            timeout_s=60.0,
        )  # fmt: skip
    n = len(poisson_schedule(100.0, 0.4, seed=0))
    r = out["rates"][0]
    assert r["sent"] == r["ok"] == n and r["errors"] == 0
    posted = rec.bodies[1:]  # the first POST is the endpoint probe
    assert len(posted) == n and rec.peak <= 2
    assert all(b["model"] == "m" and b["input"] in texts for b in posted)
    assert len({b["input"] for b in posted}) > 1  # texts drawn from the file, not one repeated
    # two connections serve at most 20 req/s: the last of n requests cannot leave before
    # (n/2 - 1) x 100 ms, though it was scheduled before 0.4 s
    assert r["client_lag_ms"]["p99_ms"] >= 1000.0 * ((n // 2 - 1) * 0.1 - 0.4) - 1.0
    assert r["after_send_ms"]["p50_ms"] >= 100.0  # the server's hold
    assert r["latency_ms"]["max_ms"] >= r["client_lag_ms"]["p99_ms"] + 100.0
    assert r["client_behind"] is True


def test_the_client_reports_its_own_cpu_and_counts_timeouts_as_failures() -> None:
    """A server slower than ``timeout_s``: every request fails (none hangs the run), and the
    client's own CPU per rate is reported (so a saturated client shows in the figures)."""
    from frugalml.serve.loadtest import loadtest

    with Recorder(hold_s=0.0) as rec:
        ok = loadtest(rec.url + "/embed", [50.0], 0.5, ["one", "two"], timeout_s=30.0)
    with Recorder(hold_s=5.0) as slow:
        late = loadtest(slow.url + "/embed", [20.0], 0.5, ["one", "two"], timeout_s=0.3)
    r = ok["rates"][0]
    assert ok["api"] == "tei" and r["ok"] == r["sent"] > 0
    assert r["client_cpu_s"] > 0 and r["client_cpu_share"] > 0
    assert {b["inputs"] for b in rec.bodies} <= {"one", "two"}
    bad = late["rates"][0]
    assert bad["sent"] > 0 and bad["ok"] == 0 and bad["errors"] == bad["sent"]
    assert bad["meets_slo"] is None and bad["p99_all_ms"] == math.inf


def test_no_full_garbage_collection_walks_the_heap_while_requests_are_timed() -> None:
    """In a process holding a model a full collection stalls the client for 100+ ms and every
    request due meanwhile leaves late; the client freezes the heap (``gc.freeze``) for each
    rate and unfreezes it after (a caller's own frozen objects are left frozen)."""
    import gc

    from frugalml.serve.loadtest import loadtest

    assert gc.get_freeze_count() == 0
    with Recorder(hold_s=0.0) as rec:
        out = loadtest(rec.url + "/embed", [40.0, 40.0], 0.5, ["one", "two"], timeout_s=30.0)
    assert sum(r["ok"] for r in out["rates"]) == len(rec.frozen) - 1 > 0
    assert all(n > 0 for n in rec.frozen[1:])  # every timed request: heap frozen (not the probe)
    assert gc.get_freeze_count() == 0
