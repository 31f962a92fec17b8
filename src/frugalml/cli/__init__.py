"""``frugal`` command line: a thin layer over the library. ``main`` is the console script."""

from __future__ import annotations

import sys

from frugalml.cli import (  # noqa: F401  (importing a module registers its commands)
    data_cmds,
    ledger_cmds,
    optimize_cmds,
    place_cmds,
    prove_cmds,
    train_cmds,
)
from frugalml.cli.app import app, err
from frugalml.errors import FrugalError


def main() -> None:
    try:
        app(prog_name="frugal")
    except FrugalError as e:
        err.print(
            f"[bold red]frugal: error:[/] {e.message}" + (f" — {e.hint}" if e.hint else ""),
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err.print("[bold red]frugal: interrupted[/]")
        sys.exit(130)


__all__ = ["app", "main"]
