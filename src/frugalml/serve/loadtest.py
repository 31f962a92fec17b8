"""``loadtest``: an open-loop load generator for any OpenAI- or TEI-compatible embedding API.

Open loop: send times are drawn up front (a Poisson process: exponential gaps at the offered
rate) and each request's latency is measured from its *scheduled* send time, not from when a
connection happened to be free. A slow server therefore cannot slow the client down and hide
its tail (no coordinated omission): time spent waiting for a connection, or by a late client,
counts against the server's latency.

Per rate: requests sent, answered, 429s, other errors, achieved throughput and goodput (answers
within the SLO) per second, latency percentiles (p50/p90/p99/p99.9 of answered requests), and
``p99_all_ms``: the p99 over *every* request with failures counted as infinitely slow. A rate
meets the SLO when ``p99_all_ms <= slo_p99_ms`` (at most 1% of requests failed or were late).
The $ per 1k requests at a rate prices the serving machine for the time 1,000 requests take at
the achieved throughput (``--instance``; energy estimated as every core busy).

The client's own lag is measured too: ``client_lag_ms`` (p50/p99) is how late each request left
after its scheduled time (waiting for the client's ``--concurrency`` slots, or a client that
cannot keep up with the rate on a busy machine), and ``after_send_ms`` the percentiles of
answered requests timed from when they actually left. The headline latency still counts the
lag (that is the open-loop contract); ``client_behind`` is true when the p99 lag exceeds
``CLIENT_LAG_WARN_MS``, and the figures then measure the client as much as the server.
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import json
import math
import random
import socket
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from frugalml.errors import BadInput

R = TypeVar("R")
Api = Literal["openai", "tei", "auto"]
PERCENTILES = (("p50_ms", 50.0), ("p90_ms", 90.0), ("p99_ms", 99.0), ("p99_9_ms", 99.9))
MAX_DURATION_S = 3600.0
CLIENT_LAG_WARN_MS = 10.0  # p99 send lag above this: the client, not only the server, is slow


def check_loopback(url: str, allow_remote: bool = False) -> tuple[str, str]:
    """``(base_url, path)`` of ``url``; refuses a host that is not loopback unless allowed."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInput(f"not an http(s) URL: {url}", hint="e.g. http://127.0.0.1:8080")
    host = parts.hostname
    if not allow_remote:
        try:
            addrs = {str(a[4][0]) for a in socket.getaddrinfo(host, parts.port or 80)}
        except OSError as e:
            raise BadInput(f"cannot resolve {host}: {e}") from e
        remote = [a for a in addrs if not ipaddress.ip_address(a.split("%")[0]).is_loopback]
        if remote:
            raise BadInput(
                f"{host} is not a loopback address ({', '.join(sorted(remote))}); a load test "
                "sends many requests",
                hint="pass --allow-remote to load a server you own on another host",
            )
    base = f"{parts.scheme}://{parts.netloc}"
    return base, parts.path.rstrip("/")


def server_run_id(url: str, allow_remote: bool = False, timeout_s: float = 5.0) -> str | None:
    """The ledger run id a frugal server shows on ``GET /health`` (None for other servers)."""
    import httpx2

    base, _path = check_loopback(url, allow_remote)
    try:
        r = httpx2.get(base + "/health", timeout=timeout_s, trust_env=False)
        value = r.json().get("run_id") if r.status_code == 200 else None
    except Exception:
        return None
    return value if isinstance(value, str) else None


def poisson_schedule(
    rate_rps: float, duration_s: float, *, seed: int = 0, max_requests: int = 100_000
) -> list[float]:
    """Send offsets in seconds (sorted, < ``duration_s``): Poisson arrivals at ``rate_rps``."""
    if rate_rps <= 0:
        raise BadInput(f"rate {rate_rps} must be positive (requests per second)")
    if not 0 < duration_s <= MAX_DURATION_S:
        raise BadInput(f"duration {duration_s} s must be in (0, {MAX_DURATION_S:.0f}]")
    rng = random.Random(seed)
    out: list[float] = []
    t = rng.expovariate(rate_rps)
    while t < duration_s and len(out) < max_requests:
        out.append(t)
        t += rng.expovariate(rate_rps)
    return out


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0-100) of ``values``; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class Outcome:
    """One request: ``status`` (HTTP code, or 0 for a transport error/timeout) and latency."""

    status: int
    latency_s: float
    error: str = ""
    lag_s: float = 0.0  # how late it left after its scheduled send time (the client's own delay)


def summarize(
    rate_rps: float,
    outcomes: Sequence[Outcome],
    window_s: float,
    slo_p99_ms: float | None,
) -> dict[str, Any]:
    """Figures of one rate from its outcomes (see the module docstring)."""
    ok = [o.latency_s * 1000.0 for o in outcomes if o.status == 200]
    rejected = sum(1 for o in outcomes if o.status == 429)
    errors = len(outcomes) - len(ok) - rejected
    lat = {name: percentile(ok, q) for name, q in PERCENTILES}
    lat["max_ms"] = max(ok) if ok else math.nan
    all_ms = [o.latency_s * 1000.0 if o.status == 200 else math.inf for o in outcomes]
    p99_all = percentile(all_ms, 99.0)
    within = sum(1 for v in ok if slo_p99_ms is None or v <= slo_p99_ms)
    lags = [o.lag_s * 1000.0 for o in outcomes if math.isfinite(o.lag_s)]
    sent_ok = [(o.latency_s - o.lag_s) * 1000.0 for o in outcomes if o.status == 200]
    lag = {"p50_ms": percentile(lags, 50.0), "p99_ms": percentile(lags, 99.0)}
    error_kinds: dict[str, int] = {}
    for o in outcomes:
        if o.status not in (200, 429):
            key = o.error or f"HTTP {o.status}"
            error_kinds[key] = error_kinds.get(key, 0) + 1
    return {
        "rate_rps": rate_rps,
        "sent": len(outcomes),
        "ok": len(ok),
        "rejected_429": rejected,
        "errors": errors,
        "error_kinds": error_kinds,
        "window_s": window_s,
        "throughput_rps": len(ok) / window_s if window_s > 0 else 0.0,
        "goodput_rps": within / window_s if window_s > 0 else 0.0,
        "latency_ms": lat,
        "p99_all_ms": p99_all,
        "client_lag_ms": lag,
        "after_send_ms": {name: percentile(sent_ok, q) for name, q in PERCENTILES},
        "client_behind": bool(lags) and lag["p99_ms"] > CLIENT_LAG_WARN_MS,
        "meets_slo": None if slo_p99_ms is None else bool(outcomes) and p99_all <= slo_p99_ms,
    }


@dataclass
class Target:
    """Where and how to send: the endpoint URL, its API, the model name (OpenAI)."""

    url: str
    api: Literal["openai", "tei"]
    model: str
    server_run_id: str | None = None

    def body(self, text: str) -> dict[str, Any]:
        if self.api == "openai":
            return {"model": self.model, "input": text, "encoding_format": "float"}
        return {"inputs": text}

    def encoded(self, text: str) -> bytes:
        """The request body of ``text`` as bytes (encoded once, before the clock starts)."""
        return _dumps(self.body(text))


def _json_dumps() -> Callable[[Any], bytes]:
    try:
        import orjson
    except ImportError:
        return lambda obj: json.dumps(obj, ensure_ascii=False).encode()
    return orjson.dumps


_dumps = _json_dumps()
JSON_HEADERS = {"Content-Type": "application/json"}


async def _request(
    session: Any, method: str, url: str, body: bytes | None = None
) -> tuple[int, str, bytes]:
    """``(status, content type, body)`` of one request (the body read in full)."""
    headers = JSON_HEADERS if body is not None else None
    async with session.request(method, url, data=body, headers=headers) as r:
        return r.status, r.headers.get("Content-Type", ""), await r.read()


async def resolve_target(
    session: Any, base: str, path: str, api: Api, model: str | None, probe_text: str
) -> Target:
    """The endpoint to load: from the URL's path, or probed (``api="auto"``)."""
    run_id = None
    try:
        status, ctype, raw = await _request(session, "GET", base + "/health")
        if status == 200 and "json" in ctype:
            run_id = json.loads(raw).get("run_id")
    except Exception:
        pass
    if model is None:
        model = "default"
        lists = [path + "/v1/models", path + "/models"]  # OpenAI's route; Infinity's default
        if path.endswith("/embeddings"):
            lists.insert(0, path[: -len("/embeddings")] + "/models")
        for route in lists:
            try:
                status, _ctype, raw = await _request(session, "GET", base + route)
                if status == 200:
                    model = json.loads(raw)["data"][0]["id"]
                    break
            except Exception:
                continue
    candidates: list[tuple[Literal["openai", "tei"], str]] = []
    if path.endswith("/embeddings"):
        candidates = [("openai", path)]
    elif path.endswith("/embed"):
        candidates = [("tei", path)]
    elif api == "openai":
        candidates = [("openai", path + "/v1/embeddings"), ("openai", path + "/embeddings")]
    elif api == "tei":
        candidates = [("tei", path + "/embed")]
    else:
        candidates = [
            ("openai", path + "/v1/embeddings"),
            ("tei", path + "/embed"),
            ("openai", path + "/embeddings"),  # OpenAI's route without /v1 (Infinity's default)
        ]
    tried = []
    for kind, p in candidates:
        target = Target(base + p, kind, str(model), run_id if isinstance(run_id, str) else None)
        try:
            status, _ctype, _raw = await _request(
                session, "POST", target.url, target.encoded(probe_text)
            )
        except Exception as e:
            raise BadInput(f"cannot reach {target.url}: {type(e).__name__}: {e}") from e
        if status == 200:
            return target
        tried.append(f"{target.url} → HTTP {status}")
    raise BadInput(
        "no embedding endpoint answered: " + "; ".join(tried),
        hint="give the endpoint's full URL, or --api openai|tei",
    )


async def run_rate(
    session: Any,
    target: Target,
    texts: Sequence[str],
    rate_rps: float,
    duration_s: float,
    *,
    concurrency: int,
    slo_p99_ms: float | None,
    timeout_s: float,
    seed: int = 0,
    max_requests: int = 100_000,
) -> dict[str, Any]:
    """Offer ``rate_rps`` for ``duration_s`` (open loop); the rate's figures.

    Every body is encoded before the clock starts. ``concurrency`` senders (one connection
    each, kept alive) take the scheduled requests in order: each sleeps until its request's
    scheduled time and sends it; a request whose time has come while every sender is busy
    leaves when one is free, and that wait counts as its lag and in its latency. Requests not
    answered ``timeout_s`` after the schedule's end count as failures (``unfinished``). The
    heap is frozen for the garbage collector meanwhile (``_freeze_heap``).
    """
    schedule = poisson_schedule(rate_rps, duration_s, seed=seed, max_requests=max_requests)
    rng = random.Random(seed + 1)
    cache: dict[int, bytes] = {}
    bodies: list[bytes] = []
    for _ in schedule:
        k = rng.randrange(len(texts))
        if k not in cache:
            cache[k] = target.encoded(texts[k])
        bodies.append(cache[k])
    frozen = _freeze_heap()
    try:
        return await _send_all(
            session, target, schedule, bodies, duration_s, concurrency, slo_p99_ms, timeout_s,
            rate_rps,
        )  # fmt: skip
    finally:
        if frozen:
            gc.unfreeze()


def _freeze_heap() -> bool:
    """Collect now and freeze what is alive (``gc.freeze``), so no full collection walks the
    whole heap while requests are timed: in a process that has loaded a model (the benchmark
    ran ``frugal compare`` first) one takes over 100 ms, and every request due meanwhile left
    that late. True when this call froze (the caller unfreezes); False when the process had
    frozen objects of its own already (left as they are)."""
    if gc.get_freeze_count():
        return False
    gc.collect()
    gc.freeze()
    return True


async def _send_all(
    session: Any,
    target: Target,
    schedule: list[float],
    bodies: list[bytes],
    duration_s: float,
    concurrency: int,
    slo_p99_ms: float | None,
    timeout_s: float,
    rate_rps: float,
) -> dict[str, Any]:
    n = len(schedule)
    status = [0] * n
    errors = [""] * n
    sent = [math.nan] * n
    done = [math.nan] * n
    url, post, clock, sleep = target.url, session.post, time.perf_counter, asyncio.sleep
    order = iter(range(n))  # shared by the senders: each request is taken once, in order
    cpu0 = time.process_time()
    t0 = clock() + 0.05
    starts = [t0 + off for off in schedule]

    async def sender() -> None:
        for i in order:
            delay = starts[i] - clock()
            if delay > 0:
                await sleep(delay)
            sent[i] = clock()
            try:
                async with post(url, data=bodies[i], headers=JSON_HEADERS) as r:
                    await r.read()
                    status[i] = r.status
            except Exception as e:
                errors[i] = type(e).__name__
            done[i] = clock()

    senders = [asyncio.create_task(sender()) for _ in range(min(concurrency, n))]
    pending: set[Any] = set()
    if senders:
        wait_s = max(0.0, t0 + duration_s - clock()) + timeout_s
        _done, pending = await asyncio.wait(senders, timeout=wait_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    end = clock()
    cpu_s = time.process_time() - cpu0
    outcomes = []
    for i in range(n):
        lag = (sent[i] if sent[i] == sent[i] else end) - starts[i]
        if done[i] != done[i]:  # NaN: never sent, or no answer before the deadline
            outcomes.append(Outcome(0, math.inf, "unfinished", max(0.0, lag)))
        else:
            outcomes.append(Outcome(status[i], done[i] - starts[i], errors[i], max(0.0, lag)))
    window = max(duration_s, end - t0) if not pending else duration_s + timeout_s
    out = summarize(rate_rps, outcomes, window, slo_p99_ms)
    out["client_cpu_s"] = cpu_s
    out["client_cpu_share"] = cpu_s / (end - t0) if end > t0 else 0.0
    return out


def _run(coro: Coroutine[Any, Any, R]) -> R:
    """Run ``coro`` on uvloop when installed (uvicorn[standard] brings it), else asyncio's
    loop: uvloop's loop costs the client less CPU per request."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def usd_per_1k(price: Any, throughput_rps: float, cores: int, w_per_core: float) -> float | None:
    """$ for the time 1,000 requests take at ``throughput_rps`` on the priced machine."""
    if throughput_rps <= 0:
        return None
    wall_s = 1000.0 / throughput_rps
    return float(price.cost(wall_s, wall_s * cores * w_per_core)[2])


async def _loadtest(
    url: str,
    rates: Sequence[float],
    duration_s: float,
    texts: Sequence[str],
    *,
    api: Api,
    model: str | None,
    concurrency: int,
    slo_p99_ms: float | None,
    timeout_s: float,
    allow_remote: bool,
    seed: int,
    max_requests: int,
) -> tuple[Target, list[dict[str, Any]]]:
    import aiohttp

    base, path = check_loopback(url, allow_remote)
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        target = await resolve_target(session, base, path, api, model, texts[0])
        results = []
        for i, rate in enumerate(rates):
            results.append(
                await run_rate(
                    session, target, texts, rate, duration_s, concurrency=concurrency,
                    slo_p99_ms=slo_p99_ms, timeout_s=timeout_s, seed=seed + i,
                    max_requests=max_requests,
                )
            )  # fmt: skip
    return target, results


def loadtest(
    url: str,
    rates: Sequence[float],
    duration_s: float,
    texts: Sequence[str],
    *,
    api: Api = "auto",
    model: str | None = None,
    concurrency: int = 256,
    slo_p99_ms: float | None = None,
    timeout_s: float = 30.0,
    allow_remote: bool = False,
    seed: int = 0,
    max_requests: int = 100_000,
    price: Any = None,
) -> dict[str, Any]:
    """Load ``url`` at each rate in turn; per-rate figures and, with an SLO, the best rate."""
    from frugalml.measure.hardware import hardware, usable_cpus
    from frugalml.measure.prices import cpu_watts, resolve

    if not rates:
        raise BadInput("give a rate (--rate R) or rates (--sweep R1,R2,...)")
    if not texts:
        raise BadInput("no texts to send: the data file has no text rows")
    if concurrency < 1:
        raise BadInput(f"--concurrency {concurrency} must be at least 1")
    for r in rates:
        poisson_schedule(r, duration_s, max_requests=1)  # validates rate and duration
    price = price or resolve(None, None)
    target, results = _run(
        _loadtest(
            url, rates, duration_s, texts, api=api, model=model, concurrency=concurrency,
            slo_p99_ms=slo_p99_ms, timeout_s=timeout_s, allow_remote=allow_remote, seed=seed,
            max_requests=max_requests,
        )
    )  # fmt: skip
    cores, watts = usable_cpus(), cpu_watts(hardware().cpu_model)
    for res in results:
        res["usd_per_1k_requests"] = usd_per_1k(price, res["throughput_rps"], cores, watts)
    best = None
    if slo_p99_ms is not None:
        meeting = [r for r in results if r["meets_slo"]]
        best = max(meeting, key=lambda r: r["throughput_rps"]) if meeting else None
    return {
        "url": target.url,
        "api": target.api,
        "model": target.model,
        "server_run_id": target.server_run_id,
        "duration_s": duration_s,
        "concurrency": concurrency,
        "slo_p99_ms": slo_p99_ms,
        "instance": price.instance,
        "rates": results,
        "best_rate_rps": best["rate_rps"] if best else None,
        "best_throughput_rps": best["throughput_rps"] if best else None,
        "usd_per_1k_requests_at_slo": best["usd_per_1k_requests"] if best else None,
    }
