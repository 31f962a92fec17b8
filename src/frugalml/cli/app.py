"""The Typer application and what every command shares: consoles, options, output helpers."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console

from frugalml import __version__
from frugalml.outputs import OVERWRITE_HELP

app = typer.Typer(
    name="frugal",
    help="Make AI models cheaper to train and to serve, and prove it.\n\n"
    "Measure what a run costs (seconds, memory, joules, $, CO2), keep every run in a ledger, "
    "find the cheapest model that keeps its quality, and gate promotions on cost.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Off a terminal (pipes, CI logs) Rich would squeeze tables into 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

LedgerOpt = Annotated[
    str | None,
    typer.Option(
        "--ledger",
        envvar="FRUGAL_LEDGER",
        show_envvar=True,
        help="Ledger URL: sqlite:///FILE (or a bare path) or postgresql+psycopg://USER@HOST/DB. "
        "Default: sqlite file in the frugal data folder ($FRUGAL_HOME or ~/.local/share/frugal).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of tables.")]
# The Ray cluster for `--engine ray` (optimize's candidates, tune's trials).
RayAddressOpt = Annotated[
    str | None,
    typer.Option("--address", help="Ray cluster (auto, ray://HOST:10001); --engine ray."),
]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help=OVERWRITE_HELP)]  # every writer
InstanceOpt = Annotated[
    str | None,
    typer.Option(
        "--instance",
        help="Price the run as this instance type (see `frugal prices`); add :spot for "
        "the spot price. Default: config file's, else 'auto' (this machine at cloud per-vCPU/GPU "
        "rates).",
    ),
]
RegionOpt = Annotated[
    str | None,
    typer.Option(
        "--region",
        help="Electricity price and grid-carbon region (see `frugal prices`). Default: "
        "the instance's region, else 'world'.",
    ),
]


# Options for reading a data file, shared by every command that takes one (frugalml.data).
FormatOpt = Annotated[
    str,
    typer.Option(
        "--format", help="Data format: auto (by content), label-text, stsb, csv, tsv or jsonl."
    ),
]
TextColOpt = Annotated[
    str | None,
    typer.Option(
        "--text-col", help="Text column: a name, or a 0-based index for a file without a header."
    ),
]
Text2ColOpt = Annotated[
    str | None, typer.Option("--text2-col", help="Second text column, for sentence pairs.")
]
LabelColOpt = Annotated[str | None, typer.Option("--label-col", help="Label column.")]
ScoreColOpt = Annotated[
    str | None, typer.Option("--score-col", help="Gold-score column, for similarity pairs.")
]
EncodingOpt = Annotated[
    str | None,
    typer.Option("--encoding", help="Text encoding of the data (default: UTF-8, else ISO-8859-1)."),
]


def renamed(old_value: Any, new_value: Any, old: str, new: str) -> Any:
    """The value of a renamed option: the old (hidden) name still works, with a warning."""
    if old_value is None:
        return new_value
    err.print(f"frugal: warning: {old} is deprecated; use {new}", highlight=False)
    return old_value


def print_json(data: Any) -> None:
    """JSON on stdout, nothing else (Rich would wrap long lines)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def _version(value: bool) -> None:
    if value:
        typer.echo(f"frugal {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """frugal: measure → ledger → cut → search → prove."""
