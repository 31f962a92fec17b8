"""What a server has done so far: Prometheus metrics and the cost figures of a ``serve`` run.

``ServeStats`` is updated from the event loop only (requests and finished batches), so it needs
no lock. Costs:

- **amortized**: everything the server cost since it started (idle time included: the
  utilization tax) divided by the requests it answered.
- **active**: the same cost times the share of uptime the model was busy running batches,
  divided by the requests: what the requests cost if the machine did nothing else.

While the server runs, energy is estimated from the process's CPU seconds (the catalog's watts
per busy core, labelled ``estimate``); the ledger run's final ``Usage`` uses the same meters as
every other run (RAPL/NVML where readable).
"""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from frugalml.measure.prices import Price, cpu_watts
from frugalml.records import Hardware
from frugalml.serve.batcher import BatchDone

# Latency buckets in seconds: 1 ms .. 30 s, dense where an SLO usually sits (50-500 ms).
LATENCY_BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5,
    0.75, 1.0, 2.0, 5.0, 10.0, 30.0,
)  # fmt: skip
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
TOKEN_BUCKETS = (16, 64, 256, 1024, 2048, 4096, 8192, 16384, 32768)


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def cost_per_1k(cost_usd: float, requests: int) -> float | None:
    """$ per 1,000 requests, or None before the first request."""
    return cost_usd / requests * 1000.0 if requests else None


class ServeStats:
    """Counters of one server, its Prometheus registry, and its cost so far."""

    def __init__(self, price: Price, hw: Hardware, model_name: str) -> None:
        self.price, self.model_name = price, model_name
        self._w_per_core = cpu_watts(hw.cpu_model)
        self.started_s = time.perf_counter()
        self._cpu0 = _cpu_seconds()
        self.requests = 0  # answered 200
        self.rejected = 0  # 429: over --max-concurrency
        self.failed = 0  # 4xx/5xx other than 429
        self.inputs = 0
        self.tokens = 0
        self.batches = 0
        self.busy_s = 0.0
        self.inflight = 0
        r = self.registry = CollectorRegistry()
        self.m_requests = Counter(
            "frugal_requests", "HTTP requests by endpoint and status code", ["endpoint", "code"],
            registry=r,
        )  # fmt: skip
        self.m_latency = Histogram(
            "frugal_request_latency_seconds", "Time from request received to response ready",
            ["endpoint"], buckets=LATENCY_BUCKETS_S, registry=r,
        )  # fmt: skip
        self.m_queue = Histogram(
            "frugal_queue_wait_seconds", "Time a text waited before its batch started",
            buckets=LATENCY_BUCKETS_S, registry=r,
        )  # fmt: skip
        self.m_batch = Histogram(
            "frugal_batch_size", "Texts per batch", buckets=BATCH_SIZE_BUCKETS, registry=r
        )
        self.m_batch_tokens = Histogram(
            "frugal_batch_padded_tokens", "Tokens per batch after padding to its longest text",
            buckets=TOKEN_BUCKETS, registry=r,
        )  # fmt: skip
        self.m_tokens = Counter("frugal_tokens", "Input tokens embedded", registry=r)
        self.m_inflight = Gauge("frugal_inflight_requests", "Requests being served", registry=r)
        self.m_uptime = Gauge(
            "frugal_uptime_seconds", "Seconds since the server started", registry=r
        )
        self.m_busy = Gauge(
            "frugal_busy_seconds", "Seconds the model spent running batches", registry=r
        )
        self.m_energy = Gauge(
            "frugal_energy_joules_estimate", "Energy so far (estimate from CPU seconds)", registry=r
        )
        self.m_cost = Gauge("frugal_cost_usd", "Estimated $ so far (all uptime)", registry=r)
        self.m_per_1k = Gauge(
            "frugal_usd_per_1k_requests", "Estimated $ per 1k requests so far", ["basis"],
            registry=r,
        )  # fmt: skip

    # ---- updates (event loop) -----------------------------------------------------------
    def on_response(self, endpoint: str, code: int, latency_s: float) -> None:
        self.m_requests.labels(endpoint, str(code)).inc()
        if code == 200:
            self.requests += 1
            self.m_latency.labels(endpoint).observe(latency_s)
        elif code == 429:
            self.rejected += 1
        else:
            self.failed += 1

    def on_batch(self, done: BatchDone) -> None:
        self.batches += 1
        self.inputs += done.size
        self.tokens += done.tokens
        self.busy_s += done.busy_s
        self.m_batch.observe(done.size)
        self.m_batch_tokens.observe(done.padded_tokens)
        self.m_tokens.inc(done.tokens)
        for w in done.queue_wait_s:
            self.m_queue.observe(w)

    # ---- figures ------------------------------------------------------------------------
    def figures(
        self, *, wall_s: float | None = None, energy_j: float | None = None
    ) -> dict[str, Any]:
        """Uptime, counts, energy, $ and $ per 1k requests (active and amortized).

        Pass the final ``wall_s``/``energy_j`` of the ledger run's ``Usage`` to price with
        them; by default: uptime so far and an energy estimate from CPU seconds.
        """
        uptime_s = time.perf_counter() - self.started_s if wall_s is None else wall_s
        cpu_s = max(0.0, _cpu_seconds() - self._cpu0)
        if energy_j is None:
            energy_j = cpu_s * self._w_per_core
        cost = self.price.cost(uptime_s, energy_j)[2]
        busy_share = min(1.0, self.busy_s / uptime_s) if uptime_s > 0 else 0.0
        return {
            "uptime_s": uptime_s,
            "busy_s": self.busy_s,
            "busy_share": busy_share,
            "requests": self.requests,
            "rejected_429": self.rejected,
            "failed": self.failed,
            "inputs": self.inputs,
            "tokens": self.tokens,
            "batches": self.batches,
            "cpu_s": cpu_s,
            "energy_j": energy_j,
            "cost_usd": cost,
            "usd_per_1k_requests_amortized": cost_per_1k(cost, self.requests),
            "usd_per_1k_requests_active": cost_per_1k(cost * busy_share, self.requests),
        }

    def exposition(self) -> bytes:
        """The Prometheus text format, gauges refreshed."""
        f = self.figures()
        self.m_inflight.set(self.inflight)
        self.m_uptime.set(f["uptime_s"])
        self.m_busy.set(f["busy_s"])
        self.m_energy.set(f["energy_j"])
        self.m_cost.set(f["cost_usd"])
        for basis in ("active", "amortized"):
            value = f[f"usd_per_1k_requests_{basis}"]
            self.m_per_1k.labels(basis).set(value if value is not None else float("nan"))
        return generate_latest(self.registry)
