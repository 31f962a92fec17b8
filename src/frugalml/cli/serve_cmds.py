"""Commands for serving: ``frugal serve`` (an embedding API) and ``frugal loadtest``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from frugalml.cli.app import (
    EncodingOpt,
    FormatOpt,
    InstanceOpt,
    JsonOpt,
    LedgerOpt,
    RegionOpt,
    TextColOpt,
    app,
    console,
    err,
    print_json,
)
from frugalml.errors import BadInput


@app.command(no_args_is_help=True)
def serve(
    model: Annotated[
        str,
        typer.Argument(
            help="Model to serve: 'minilm', a model folder, an .onnx file, or "
            "a frugal optimize output (its best/).",
            show_default=False,
        ),
    ],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8080,
    max_batch_tokens: Annotated[
        int,
        typer.Option(
            help="Token budget of one batch, padding included (texts x longest text). "
            "A text over the budget runs alone; 1 means batch size 1.",
            min=1,
        ),
    ] = 256,
    max_wait_ms: Annotated[
        float,
        typer.Option(help="How long the oldest queued text waits for others to batch with.", min=0),
    ] = 5.0,
    max_concurrency: Annotated[
        int, typer.Option(help="Requests in flight before new ones get 429 at once.", min=1)
    ] = 256,
    threads: Annotated[
        int | None, typer.Option(help="Intra-op threads of the model (default: every core).", min=1)
    ] = None,
    oversize: Annotated[
        str,
        typer.Option(
            help="A text over the model's token limit: 'truncate' (say so in the response) or "
            "'refuse' (400/413 with the reason)."
        ),
    ] = "truncate",
    device: Annotated[str, typer.Option(help="cpu or cuda[:N].")] = "cpu",
    flush_s: Annotated[
        float,
        typer.Option(help="Seconds between writes of the run's figures to the ledger.", min=0.1),
    ] = 5.0,
    ledger: LedgerOpt = None,
    instance: InstanceOpt = None,
    region: RegionOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Serve an embedding model: OpenAI /v1/embeddings, TEI /embed, /health, /metrics.

    Requests arriving within --max-wait-ms are packed by length into batches of at most
    --max-batch-tokens and run on one worker thread that owns the model. Over
    --max-concurrency the server answers 429. The server is a ledger run (kind 'serve'):
    requests, tokens, energy, $ and $ per 1k requests (active and amortized). Ctrl-C or
    SIGTERM stop it after the in-flight requests finish.
    """
    from frugalml.serve.app import ServeConfig
    from frugalml.serve.server import serve as run_server

    if oversize not in ("truncate", "refuse"):
        raise BadInput(f"--oversize {oversize}", hint="use truncate or refuse")
    config = ServeConfig(
        max_batch_tokens=max_batch_tokens,
        max_wait_ms=max_wait_ms,
        max_concurrency=max_concurrency,
        oversize=oversize,  # type: ignore[arg-type]
        flush_s=flush_s,
    )
    final = run_server(
        model, host=host, port=port, config=config, threads=threads, ledger=ledger,
        instance=instance, region=region, device=device,
    )  # fmt: skip
    if json_out:
        print_json(final)
        return
    err.print(
        f"frugal serve: stopped after {final['uptime_s']:.1f} s: {final['requests']} requests, "
        f"{final['rejected_429']} refused (429), {final['tokens']} tokens, "
        f"${final['cost_usd']:.6f}; $ per 1k requests: active "
        f"{_usd(final['usd_per_1k_requests_active'])}, amortized "
        f"{_usd(final['usd_per_1k_requests_amortized'])} (run {final['run_id'][:12]})"
    )


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:.6f}"


def _ms(value: float) -> str:
    return (
        "-"
        if value is None or math.isnan(value)
        else ("inf" if math.isinf(value) else f"{value:.1f}")
    )


def _parse_rates(rate: float | None, sweep: str | None) -> list[float]:
    if (rate is None) == (sweep is None):
        raise BadInput("give exactly one of --rate R or --sweep R1,R2,...")
    if rate is not None:
        return [rate]
    assert sweep is not None
    try:
        rates = [float(x) for x in sweep.split(",") if x.strip()]
    except ValueError as e:
        raise BadInput(
            f"--sweep {sweep}: not a list of numbers", hint="e.g. --sweep 10,20,40"
        ) from e
    if not rates or any(r <= 0 for r in rates):
        raise BadInput(f"--sweep {sweep}: give positive rates", hint="e.g. --sweep 10,20,40")
    return rates


@app.command(no_args_is_help=True)
def loadtest(
    url: Annotated[
        str,
        typer.Argument(
            help="Server base URL (http://127.0.0.1:8080) or the endpoint's full URL.",
            show_default=False,
        ),
    ],
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="Texts to send, one per request (any frugal data file; both sides of "
            "STS-B pairs), e.g. ../shared/data/sts-b/sts-dev.csv.",
            show_default=False,
        ),
    ],
    rate: Annotated[
        float | None, typer.Option(help="Offered load: requests per second (Poisson).")
    ] = None,
    sweep: Annotated[
        str | None, typer.Option(help="Several rates in turn, e.g. 10,20,40,80.")
    ] = None,
    duration: Annotated[float, typer.Option(help="Seconds per rate (at most 3600).")] = 10.0,
    concurrency: Annotated[
        int,
        typer.Option(
            help="Most connections open at once (waiting for one counts as latency).", min=1
        ),
    ] = 256,
    slo_p99_ms: Annotated[
        float | None, typer.Option(help="Latency SLO: p99 in ms (failures count as late).")
    ] = None,
    api: Annotated[str, typer.Option(help="openai, tei or auto (probe the server).")] = "auto",
    model: Annotated[
        str | None, typer.Option(help="Model name in OpenAI requests (default: /v1/models).")
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds before a request counts as failed.", min=0.1)
    ] = 30.0,
    max_requests: Annotated[int, typer.Option(help="Most requests per rate.", min=1)] = 100_000,
    seed: Annotated[int, typer.Option(help="Seed of arrivals and text choice.")] = 0,
    allow_remote: Annotated[
        bool, typer.Option(help="Allow a host that is not loopback (a server you own).")
    ] = False,
    format: FormatOpt = "auto",
    text_col: TextColOpt = None,
    encoding: EncodingOpt = None,
    ledger: LedgerOpt = None,
    instance: InstanceOpt = None,
    region: RegionOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Load an embedding endpoint open-loop and record latency, throughput and $ per 1k requests.

    Poisson arrivals at each rate; latency from the scheduled send time (no coordinated
    omission). Works with any OpenAI- or TEI-compatible endpoint; loopback only unless
    --allow-remote. Recorded as a ledger run (kind 'loadtest') linked to a frugal server's run.
    """
    import frugalml
    from frugalml.data import load_data
    from frugalml.ledger import Ledger
    from frugalml.serve.loadtest import loadtest as run_loadtest
    from frugalml.serve.loadtest import server_run_id

    if api not in ("openai", "tei", "auto"):
        raise BadInput(f"--api {api}", hint="use openai, tei or auto")
    rates = _parse_rates(rate, sweep)
    dataset = load_data(data, format=format, text_col=text_col, encoding=encoding, option="--data")  # type: ignore[arg-type]
    texts = [t for t in dataset.texts_all() if t.strip()]
    params: dict[str, Any] = {
        "url": url, "rates": rates, "duration_s": duration, "concurrency": concurrency,
        "slo_p99_ms": slo_p99_ms, "data": str(data), "api": api, "seed": seed,
    }  # fmt: skip
    server_run = server_run_id(url, allow_remote)
    with Ledger(ledger) as book:
        parent = _in_ledger(book, server_run)
        if server_run:
            params["server_run_id"] = server_run
        tracker = frugalml.track(
            f"loadtest {url}", ledger=book, kind="loadtest", params=params, instance=instance,
            region=region, parent=parent,
        )  # fmt: skip
        with tracker as run:
            result = run_loadtest(
                url, rates, duration, texts, api=api, model=model,  # type: ignore[arg-type]
                concurrency=concurrency, slo_p99_ms=slo_p99_ms, timeout_s=timeout,
                allow_remote=allow_remote, seed=seed, max_requests=max_requests,
                price=tracker.price,
            )  # fmt: skip
            run.log_params(result=result)
            run.log_quality(**_quality(result))
        result["run_id"] = run.id
    if json_out:
        print_json(result)
    else:
        _print_table(result)


def _in_ledger(book: Any, run_id: str | None) -> str | None:
    """``run_id`` when that run is in this ledger (then it is the loadtest's parent)."""
    from frugalml.errors import NotFound

    if not run_id:
        return None
    try:
        book.get(run_id)
    except NotFound:
        return None
    return run_id


def _quality(result: dict[str, Any]) -> dict[str, float]:
    """Numbers a gate or comparison can read: the best rate at the SLO, else the one rate."""
    rates = result["rates"]
    pick = None
    if result["best_rate_rps"] is not None:
        pick = next(r for r in rates if r["rate_rps"] == result["best_rate_rps"])
    elif len(rates) == 1 and result["slo_p99_ms"] is None:
        pick = rates[0]
    out: dict[str, float] = {}
    if pick is not None:
        out.update(
            throughput_rps=pick["throughput_rps"], goodput_rps=pick["goodput_rps"],
            p99_ms=pick["latency_ms"]["p99_ms"],
        )  # fmt: skip
        if pick.get("usd_per_1k_requests") is not None:
            out["usd_per_1k_requests"] = pick["usd_per_1k_requests"]
    if result["best_rate_rps"] is not None:
        out["max_rate_at_slo_rps"] = result["best_rate_rps"]
    return {k: v for k, v in out.items() if v is not None and not math.isnan(v)}


def _print_table(result: dict[str, Any]) -> None:
    slo = result["slo_p99_ms"]
    table = Table(
        title=f"loadtest {result['url']} ({result['api']}, {result['duration_s']:g} s per rate)"
    )
    for col in ("rate/s", "sent", "ok", "429", "errors", "thru/s", "good/s", "p50 ms", "p90 ms",
                "p99 ms", "p99.9 ms", "$/1k req"):  # fmt: skip
        table.add_column(col, justify="right")
    if slo is not None:
        table.add_column(f"p99<={slo:g}ms")
    for r in result["rates"]:
        lat = r["latency_ms"]
        row = [
            f"{r['rate_rps']:g}", str(r["sent"]), str(r["ok"]), str(r["rejected_429"]),
            str(r["errors"]), f"{r['throughput_rps']:.1f}", f"{r['goodput_rps']:.1f}",
            _ms(lat["p50_ms"]), _ms(lat["p90_ms"]), _ms(lat["p99_ms"]), _ms(lat["p99_9_ms"]),
            _usd(r["usd_per_1k_requests"]),
        ]  # fmt: skip
        if slo is not None:
            row.append("[green]yes[/]" if r["meets_slo"] else "[red]no[/]")
        table.add_row(*row)
    console.print(table)
    behind = [r for r in result["rates"] if r.get("client_behind")]
    for r in behind:
        console.print(
            f"[yellow]at {r['rate_rps']:g}/s the client fell behind[/]: requests left "
            f"{_ms(r['client_lag_ms']['p99_ms'])} ms late (p99); timed from when they left, "
            f"p99 {_ms(r['after_send_ms']['p99_ms'])} ms. The latencies above count that lag "
            "(open loop); run the client on another machine or core to measure the server alone."
        )
    if slo is not None:
        if result["best_rate_rps"] is None:
            console.print(f"no rate met p99 <= {slo:g} ms")
        else:
            console.print(
                f"highest rate meeting p99 <= {slo:g} ms: {result['best_rate_rps']:g} req/s "
                f"({result['best_throughput_rps']:.1f} answered/s), "
                f"{_usd(result['usd_per_1k_requests_at_slo'])} per 1k requests "
                f"({result['instance']})"
            )
    console.print(f"ledger run {result['run_id'][:12]}")
