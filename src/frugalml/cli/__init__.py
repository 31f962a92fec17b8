"""``frugal`` command line: a thin layer over the library. ``main`` is the console script."""

from __future__ import annotations

import sys
from typing import NoReturn

from rich.markup import escape

from frugalml.cli import (  # noqa: F401  (importing a module registers its commands)
    budget_cmds,
    data_cmds,
    ledger_cmds,
    optimize_cmds,
    place_cmds,
    prove_cmds,
    serve_cmds,
    train_cmds,
)
from frugalml.cli.app import app, err
from frugalml.errors import FrugalError
from frugalml.extras import missing_extra


def main() -> None:
    try:
        app(prog_name="frugal")
    except FrugalError as e:
        _fail(e)
    except ModuleNotFoundError as e:  # an optional package is not installed: name its extra
        command = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
        known = missing_extra(e, command)
        if known is None:
            raise
        _fail(known)
    except KeyboardInterrupt:
        err.print("[bold red]frugal: interrupted[/]")
        sys.exit(130)


def _fail(e: FrugalError) -> NoReturn:
    # escape: a message may hold [brackets] (``frugalml[mlflow]``) that are not Rich markup
    err.print(f"[bold red]frugal: error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
    sys.exit(e.exit_code)


__all__ = ["app", "main"]
