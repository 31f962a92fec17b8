"""Load-test runs as sides of ``compare``/``gate`` and as a report: $ per 1k requests at an SLO.

A ``frugal loadtest`` run (kind ``loadtest``) holds every offered rate's figures (params
``result``). One side of a served comparison is read from it:

- with an SLO and a sweep, **the highest rate meeting the SLO** (``p99_all_ms <= SLO``:
  failures count as late); its achieved throughput, p50/p99, goodput and $ per 1k requests;
- with one rate and no SLO, **the measured rate**; with several and no SLO, the rate with the
  highest throughput (said so);
- when no rate met the SLO, no figures at the SLO (and no cost ratio: the side has no cost
  *at the SLO* to divide).

When the loaded server was a ``frugal serve`` in the same ledger (the loadtest's parent), its
settings (model, ``--max-batch-tokens``, ``--max-wait-ms``, ``--max-concurrency``,
``--threads``) and its own active/amortized $ per 1k requests come with the side.

:func:`compare_runs` builds a :class:`LoadStatement` (ratios candidate / baseline of the cost
per 1k requests at the SLO, the sustained throughput, p99 and goodput);
:func:`cost_condition` is ``frugal gate``'s condition on one (``--cost-metric cost``: $ per
1k requests at the SLO); :func:`write_report` writes one self-contained HTML page for a
loadtest run.
``frugalml.compare`` and ``frugal report`` call these when given loadtest runs.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from frugalml import units
from frugalml.errors import BadInput, NotFound
from frugalml.records import RunRecord
from frugalml.report.jinja import template

if TYPE_CHECKING:
    from frugalml.ledger import Ledger

KIND = "loadtest"
# server run params shown as the side's settings, with the flag that set each
SERVER_FLAGS: tuple[tuple[str, str], ...] = (
    ("max_batch_tokens", "--max-batch-tokens"),
    ("max_wait_ms", "--max-wait-ms"),
    ("max_concurrency", "--max-concurrency"),
    ("threads", "--threads"),
    ("oversize", "--oversize"),
)
# ratio name -> LoadSide figure it divides (candidate / baseline)
RATIO_KEYS: dict[str, str] = {
    "cost": "usd_per_1k_requests",
    "throughput": "throughput_rps",
    "goodput": "goodput_rps",
    "latency_p99": "p99_ms",
    "latency_p50": "p50_ms",
}
# gate --cost-metric -> (ratio, LoadSide figure, words)
GATE_METRICS: dict[str, tuple[str, str, str]] = {
    "cost": ("cost", "usd_per_1k_requests", "$ per 1k requests at the SLO"),
    "latency": ("latency_p99", "p99_ms", "p99 latency at the SLO"),
}
QUALITY_WORDS = (
    "A load test measures serving, not quality: compare or gate the models' eval runs for "
    "the quality drop."
)


def is_loadtest(record: RunRecord) -> bool:
    return record.kind == KIND


@dataclass(frozen=True)
class LoadSide:
    """One served model under open-loop load, at the rate that answers for it (``basis``).

    ``basis``: ``slo`` (the highest offered rate meeting the SLO), ``rate`` (the one measured
    rate, no SLO), ``peak`` (several rates, no SLO: the highest throughput), ``missed`` (an SLO
    no rate met: the figures at the SLO are None). Latency in ms, rates in requests/s, $ per
    1k requests on ``instance``.
    """

    name: str
    source: str
    run_id: str
    url: str
    api: str
    basis: str
    slo_p99_ms: float | None = None
    rate_rps: float | None = None
    throughput_rps: float | None = None
    goodput_rps: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    usd_per_1k_requests: float | None = None
    rejected_429: int | None = None
    errors: int | None = None
    sent: int | None = None
    rates_tried: tuple[float, ...] = ()
    instance: str | None = None
    data: str | None = None
    duration_s: float | None = None
    concurrency: int | None = None
    server_run_id: str | None = None
    server: dict[str, Any] | None = None  # the frugal server's settings (None: not known)
    server_usd_per_1k_active: float | None = None
    server_usd_per_1k_amortized: float | None = None
    rates: tuple[dict[str, Any], ...] = field(default=(), repr=False)

    @property
    def usd_per_1m_requests(self) -> float | None:
        return None if self.usd_per_1k_requests is None else self.usd_per_1k_requests * 1000

    def settings_words(self) -> str:
        """``frugal serve minilm --max-batch-tokens 4096 ...`` or why it is not known."""
        if self.server is None:
            if self.server_run_id:
                return f"a frugal server whose run {self.server_run_id[:12]} is not in this ledger"
            return f"a server frugal did not start ({self.api} API at {self.url})"
        flags = " ".join(
            f"{flag} {_num(self.server[key])}"
            for key, flag in SERVER_FLAGS
            if self.server.get(key) is not None
        )
        return f"frugal serve {self.server.get('model', '?')} {flags}".strip()

    def basis_words(self) -> str:
        n = len(self.rates_tried)
        tried = ", ".join(_num(r) for r in self.rates_tried)
        if self.basis == "slo":
            of = f"the highest offered rate meeting p99 <= {_num(self.slo_p99_ms)} ms"
            of += f" (of {tried} req/s tried)" if n > 1 else ""
            return f"{of}: {_num(self.rate_rps)} req/s"
        if self.basis == "rate":
            return f"the measured rate, {_num(self.rate_rps)} req/s offered, no SLO given"
        if self.basis == "peak":
            return f"the highest throughput of {n} offered rates ({tried} req/s), no SLO given"
        return f"no offered rate ({tried} req/s) met p99 <= {_num(self.slo_p99_ms)} ms"

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["usd_per_1m_requests"] = self.usd_per_1m_requests
        data["settings"] = self.settings_words()
        data["basis_words"] = self.basis_words()
        return data


def _num(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _pick(result: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """The rate that answers for a load test, and why (see :class:`LoadSide`)."""
    rates = [r for r in result.get("rates") or [] if isinstance(r, dict)]
    slo = result.get("slo_p99_ms")
    if slo is not None:
        meeting = [r for r in rates if r.get("meets_slo")]
        if not meeting:
            return "missed", None
        return "slo", max(meeting, key=lambda r: (float(r["rate_rps"]), r["throughput_rps"]))
    if len(rates) == 1:
        return "rate", rates[0]
    if not rates:
        return "missed", None
    return "peak", max(rates, key=lambda r: r.get("throughput_rps") or 0.0)


def _server(book: Ledger, run_id: str | None) -> RunRecord | None:
    if not run_id:
        return None
    try:
        record = book.get(run_id)
    except (NotFound, BadInput):
        return None
    return record if record.kind == "serve" else None


def _display(model: Any) -> str:
    path = Path(str(model))
    if path.name == "best" and str(path.parent) not in ("", "."):
        return f"{path.parent.name}/{path.name}"
    return path.name or str(model)


def side_of(book: Ledger, record: RunRecord) -> LoadSide:
    """The side a finished loadtest run gives (``BadInput`` when it holds no result)."""
    if not is_loadtest(record):
        raise BadInput(f"run {record.id[:12]} is a {record.kind} run, not a loadtest run")
    if record.status != "finished":
        raise BadInput(
            f"run {record.id[:12]} is {record.status}, not finished",
            hint=record.error or "pick a finished loadtest run (`frugal runs --kind loadtest`)",
        )
    result = record.params.get("result")
    if not isinstance(result, dict) or not result.get("rates"):
        raise BadInput(f"loadtest run {record.id[:12]} recorded no rates")
    basis, pick = _pick(result)
    server_id = result.get("server_run_id") or record.params.get("server_run_id")
    server = _server(book, server_id)
    settings = None
    active = amortized = None
    if server is not None:
        settings = {k: server.params.get(k) for k in ("model", *(k for k, _ in SERVER_FLAGS))}
        settings["model_describe"] = server.params.get("model_describe")
        active = _float(server.quality.get("usd_per_1k_requests_active"))
        amortized = _float(server.quality.get("usd_per_1k_requests_amortized"))
    name = _display(settings["model"]) if settings else str(result.get("model") or "?")
    lat = (pick or {}).get("latency_ms") or {}
    return LoadSide(
        name=name,
        source=f"run {record.id[:12]}",
        run_id=record.id,
        url=str(result.get("url") or record.params.get("url") or ""),
        api=str(result.get("api") or ""),
        basis=basis,
        slo_p99_ms=_float(result.get("slo_p99_ms")),
        rate_rps=_float(pick.get("rate_rps")) if pick else None,
        throughput_rps=_float(pick.get("throughput_rps")) if pick else None,
        goodput_rps=_float(pick.get("goodput_rps")) if pick else None,
        p50_ms=_float(lat.get("p50_ms")),
        p99_ms=_float(lat.get("p99_ms")),
        usd_per_1k_requests=_float(pick.get("usd_per_1k_requests")) if pick else None,
        rejected_429=pick.get("rejected_429") if pick else None,
        errors=pick.get("errors") if pick else None,
        sent=pick.get("sent") if pick else None,
        rates_tried=tuple(float(r["rate_rps"]) for r in result["rates"]),
        instance=result.get("instance") or (record.usage.instance if record.usage else None),
        data=record.params.get("data"),
        duration_s=_float(result.get("duration_s")),
        concurrency=result.get("concurrency"),
        server_run_id=server_id,
        server=settings,
        server_usd_per_1k_active=active,
        server_usd_per_1k_amortized=amortized,
        rates=tuple(result["rates"]),
    )


def _ratio(candidate: float | None, baseline: float | None) -> float | None:
    if candidate is None or baseline is None or baseline == 0:
        return None
    value = candidate / baseline
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class LoadStatement:
    """Two load tests side by side: what serving the candidate costs against the baseline.

    ``ratios`` are candidate / baseline (:data:`RATIO_KEYS`); ``why`` says why a ratio is None.
    A load test measures each rate once, so there are no intervals (``ratio_cis`` is empty).
    """

    baseline: LoadSide
    candidate: LoadSide
    ratios: dict[str, float | None]
    why: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    ratio_cis: dict[str, Any] = field(default_factory=dict)
    recorded_run_ids: tuple[str, ...] = ()
    kind: str = KIND

    @property
    def slo_p99_ms(self) -> float | None:
        return self.baseline.slo_p99_ms

    def why_no_ratio(self, name: str) -> str:
        return self.why.get(name) or f"{name} is missing for a side"

    def why_no_interval(self, name: str) -> str:
        if self.ratios.get(name) is None:
            return self.why_no_ratio(name)
        return "a load test measures each rate once, so its figures have no interval"

    def _side_words(self, role: str, s: LoadSide) -> str:
        the = s.name if role in s.name.lower() else f"the {role} {s.name}"
        if s.basis == "missed":
            return f"{the} ({s.basis_words()})"
        return (
            f"{the} sustains {units.per_s(s.throughput_rps)} ({s.basis_words()}; p99 "
            f"{units.ms(s.p99_ms)}, goodput {units.per_s(s.goodput_rps)}) at "
            f"{units.usd(s.usd_per_1k_requests)} per 1k requests"
        )

    def paragraph(self) -> str:
        b, c = self.baseline, self.candidate
        slo = f"At p99 <= {_num(b.slo_p99_ms)} ms" if b.slo_p99_ms is not None else "Under load"
        text = (
            f"{slo}, {self._side_words('candidate', c)}, against: "
            f"{self._side_words('baseline', b)}."
        )
        cost = self.ratios.get("cost")
        if cost is not None:
            text += (
                f" Serving the candidate costs {units.ratio(cost)} the baseline per request "
                f"({units.change(cost)})"
            )
            thr = self.ratios.get("throughput")
            if thr is not None:
                text += f" and sustains {units.ratio(thr)} its rate"
            text += "."
        else:
            text += f" No cost ratio: {self.why_no_ratio('cost')}."
        text += (
            f" Candidate served by {c.settings_words()}; baseline by {b.settings_words()}. "
            + QUALITY_WORDS
        )
        return text

    def rows(self) -> list[tuple[str, str, str, str]]:
        b, c = self.baseline, self.candidate

        def r(name: str) -> str:
            return units.ratio(self.ratios.get(name))

        return [
            ("served by", b.settings_words(), c.settings_words(), ""),
            ("SLO", _slo(b), _slo(c), ""),
            ("rate used", b.basis_words(), c.basis_words(), ""),
            ("sustained throughput", units.per_s(b.throughput_rps),
             units.per_s(c.throughput_rps), r("throughput")),
            ("goodput", units.per_s(b.goodput_rps), units.per_s(c.goodput_rps), r("goodput")),
            ("latency p50", units.ms(b.p50_ms), units.ms(c.p50_ms), r("latency_p50")),
            ("latency p99", units.ms(b.p99_ms), units.ms(c.p99_ms), r("latency_p99")),
            ("429s / errors", _fails(b), _fails(c), ""),
            ("$ per 1k requests at the SLO", units.usd(b.usd_per_1k_requests),
             units.usd(c.usd_per_1k_requests), r("cost")),
            ("server's own $ per 1k (active / amortized)", _server_cost(b), _server_cost(c), ""),
            ("priced as", b.instance or "-", c.instance or "-", ""),
        ]  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "slo_p99_ms": self.slo_p99_ms,
            "baseline": self.baseline.to_dict(),
            "candidate": self.candidate.to_dict(),
            "ratios": self.ratios,
            "why_no_ratio": self.why,
            "paragraph": self.paragraph(),
            "table": [
                dict(zip(("figure", "baseline", "candidate", "change"), row, strict=True))
                for row in self.rows()
            ],
            "notes": list(self.notes),
        }


def _slo(s: LoadSide) -> str:
    return "-" if s.slo_p99_ms is None else f"p99 <= {_num(s.slo_p99_ms)} ms"


def _fails(s: LoadSide) -> str:
    return "-" if s.sent is None else f"{s.rejected_429} / {s.errors} of {s.sent}"


def _server_cost(s: LoadSide) -> str:
    if s.server_usd_per_1k_active is None and s.server_usd_per_1k_amortized is None:
        return "-"
    return f"{units.usd(s.server_usd_per_1k_active)} / {units.usd(s.server_usd_per_1k_amortized)}"


def build_load_statement(baseline: LoadSide, candidate: LoadSide) -> LoadStatement:
    """The statement of two load-test sides (ratios None where they do not compare)."""
    b, c = baseline, candidate
    ratios = {name: _ratio(getattr(c, key), getattr(b, key)) for name, key in RATIO_KEYS.items()}
    why: dict[str, str] = {}
    for role, side in (("baseline", b), ("candidate", c)):
        if side.basis == "missed":
            for name in RATIO_KEYS:
                ratios[name] = None
                why.setdefault(name, f"the {role} {side.basis_words()}")
    notes: list[str] = []
    if b.slo_p99_ms != c.slo_p99_ms:
        for name in RATIO_KEYS:
            ratios[name] = None
            why.setdefault(
                name,
                f"the sides were held to different SLOs (baseline {_slo(b)}, candidate "
                f"{_slo(c)}); load both with the same --slo-p99-ms",
            )
    if b.instance and c.instance and b.instance != c.instance:
        notes.append(
            f"The sides were priced as different machines (baseline {b.instance}, candidate "
            f"{c.instance}): the cost ratio includes the difference in price."
        )
    if b.data and c.data and Path(b.data).name != Path(c.data).name:
        notes.append(
            f"The sides were loaded with different texts ({b.data} against {c.data}): "
            "longer texts cost more per request."
        )
    notes.append(
        "$ per 1k requests at a rate = the machine's price for the time 1,000 requests take at "
        "the achieved throughput (energy estimated with every core busy); p99 over answered "
        "requests, the SLO judged over all of them (failures count as late)."
    )
    return LoadStatement(b, c, ratios, why, tuple(notes))


def kinds_of(book: Ledger, texts: list[str]) -> list[RunRecord | None]:
    """The loadtest runs ``texts`` name (None for anything else: a model, a folder, another run)."""
    from frugalml.report import sources as src

    out: list[RunRecord | None] = []
    for text in texts:
        record = None
        if src.classify(text).kind == "run":
            try:
                record = book.get(text)
            except (NotFound, BadInput):
                record = None
        out.append(record if record is not None and is_loadtest(record) else None)
    return out


def compare_runs(book: Ledger, baseline: str, candidate: str) -> LoadStatement | None:
    """The statement when both sides are loadtest runs; None when neither is; ``BadInput``
    when only one is (a load test's $ at an SLO and an evaluation's do not compare)."""
    found = kinds_of(book, [baseline, candidate])
    if all(r is None for r in found):
        return None
    if any(r is None for r in found):
        which = baseline if found[0] is not None else candidate
        other = candidate if found[0] is not None else baseline
        raise BadInput(
            f"{which} is a loadtest run and {other} is not: a load test's $ per 1k requests at "
            "an SLO does not compare with an evaluation's figures",
            hint="compare two loadtest runs (`frugal runs --kind loadtest`), or two eval runs",
        )
    base, cand = found
    assert base is not None and cand is not None
    return build_load_statement(side_of(book, base), side_of(book, cand))


def cost_condition(
    st: LoadStatement, limit: float, cost_metric: str = "cost", strict: bool = False
) -> tuple[float | None, bool, str]:
    """``frugal gate``'s cost condition on a served comparison: (value, passed, words).

    ``cost`` divides $ per 1k requests at the SLO, ``latency`` the p99 there. A load test
    measures each rate once, so it has no interval: under ``strict`` the condition fails.
    """
    if cost_metric not in GATE_METRICS:
        raise BadInput(
            f"--cost-metric {cost_metric} is not recorded by load tests",
            hint=f"use {' or '.join(GATE_METRICS)} to gate loadtest runs",
        )
    key, figure, label = GATE_METRICS[cost_metric]
    name = f"{cost_metric} ratio"
    value = st.ratios.get(key)
    if value is None:
        return None, False, f"{name} unknown: {st.why_no_ratio(key)}"
    show = units.usd if figure == "usd_per_1k_requests" else units.ms
    figures = (
        f"{label}: candidate {show(getattr(st.candidate, figure))} / baseline "
        f"{show(getattr(st.baseline, figure))}"
    )
    if strict:
        return (
            None,
            False,
            (
                f"{name} {value:.3f} has no confidence interval, which --strict requires: "
                f"{st.why_no_interval(key)} ({figures})"
            ),
        )
    ok = value <= limit
    return (
        value,
        ok,
        (f"{name} {value:.3f} {'<=' if ok else '>'} {limit:g} ({figures}; one load test per side)"),
    )


# ---- the HTML page of one load test ---------------------------------------------------------
def _template() -> Any:
    return template("loadtest.html.j2")


def chart(side: LoadSide, width: int = 640, height: int = 300) -> dict[str, Any]:
    """Geometry of latency (p50, p99) against offered rate, with the SLO line (for the page)."""
    ml, mr, mt, mb = 60, 20, 16, 44
    pts = [
        (float(r["rate_rps"]), _float((r.get("latency_ms") or {}).get(k)))
        for r in side.rates
        for k in ("p50_ms", "p99_ms")
    ]
    ys = [y for _, y in pts if y is not None]
    if side.slo_p99_ms is not None:
        ys.append(side.slo_p99_ms)
    xs = [x for x, _ in pts]
    if not xs or not ys:
        return {"empty": True, "width": width, "height": 60}
    x_max, y_max = max(xs) * 1.05, max(ys) * 1.1

    def px(x: float) -> float:
        return round(ml + x / x_max * (width - ml - mr), 1)

    def py(y: float) -> float:
        return round(height - mb - min(y, y_max) / y_max * (height - mt - mb), 1)

    series = []
    for key, color in (("p50_ms", "#3b82c4"), ("p99_ms", "#d9822b")):
        coords = []
        for r in sorted(side.rates, key=lambda r: float(r["rate_rps"])):
            y = _float((r.get("latency_ms") or {}).get(key))
            if y is not None:
                coords.append((px(float(r["rate_rps"])), py(y), f"{r['rate_rps']:g} req/s: "
                               f"{key[:3]} {y:.1f} ms"))  # fmt: skip
        path = " ".join(f"{'M' if i == 0 else 'L'}{x},{y}" for i, (x, y, _) in enumerate(coords))
        series.append({"name": key[:3], "color": color, "path": path, "points": coords})
    ticks = 5
    return {
        "empty": False, "width": width, "height": height, "ml": ml, "mr": mr, "mt": mt,
        "mb": mb, "series": series,
        "xticks": [(px(x_max * i / ticks), f"{x_max * i / ticks:.0f}") for i in range(ticks + 1)],
        "yticks": [(py(y_max * i / ticks), f"{y_max * i / ticks:.0f}") for i in range(ticks + 1)],
        "slo": None if side.slo_p99_ms is None else py(side.slo_p99_ms),
        "slo_text": f"SLO p99 <= {_num(side.slo_p99_ms)} ms",
    }  # fmt: skip


def render(side: LoadSide) -> str:
    """The page: headline, settings, the latency chart and every rate's figures."""
    rows = []
    for r in side.rates:
        lat = r.get("latency_ms") or {}
        rows.append(
            {
                "rate": _num(r.get("rate_rps")), "sent": r.get("sent"), "ok": r.get("ok"),
                "rejected": r.get("rejected_429"), "errors": r.get("errors"),
                "throughput": units.per_s(_float(r.get("throughput_rps"))),
                "goodput": units.per_s(_float(r.get("goodput_rps"))),
                "p50": units.ms(_float(lat.get("p50_ms"))),
                "p90": units.ms(_float(lat.get("p90_ms"))),
                "p99": units.ms(_float(lat.get("p99_ms"))),
                "p99_9": units.ms(_float(lat.get("p99_9_ms"))),
                "usd": units.usd(_float(r.get("usd_per_1k_requests"))),
                "meets": r.get("meets_slo"),
                "chosen": side.rate_rps is not None and _float(r.get("rate_rps")) == side.rate_rps,
            }
        )  # fmt: skip
    headline = (
        f"{units.per_s(side.throughput_rps)} at {units.usd(side.usd_per_1k_requests)} per 1k "
        f"requests ({side.basis_words()})"
        if side.basis != "missed"
        else side.basis_words()
    )
    return str(
        _template().render(
            side=side, rows=rows, headline=headline, settings=side.settings_words(),
            server_cost=_server_cost(side), v=chart(side),
        )
    )  # fmt: skip


def loadtest_record(book: Ledger, source: str | None) -> RunRecord | None:
    """The loadtest run ``source`` names (None when it names something else)."""
    if not source:
        return None
    found = kinds_of(book, [source])[0]
    return found


def write_report(book: Ledger, record: RunRecord, out: Path) -> Path:
    """Write the page of a loadtest run to ``out`` (the caller guards the path)."""
    page = render(side_of(book, record))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
