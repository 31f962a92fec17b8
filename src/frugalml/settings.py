"""Where frugal keeps things, and the user's config file.

- Data folder: ``$FRUGAL_HOME``, else ``$XDG_DATA_HOME/frugal``, else ``~/.local/share/frugal``.
- Default ledger: ``sqlite:///<data folder>/ledger.db``; ``--ledger URL`` or ``$FRUGAL_LEDGER``
  override it (a bare file path means a SQLite file).
- Config file: ``$FRUGAL_CONFIG``, else ``$XDG_CONFIG_HOME/frugal/config.toml``, else
  ``~/.config/frugal/config.toml``. It may set ``ledger``, ``instance``, ``region`` and override
  or add prices (see ``docs/prices.md``).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from frugalml.errors import BadInput


def data_dir() -> Path:
    if home := os.environ.get("FRUGAL_HOME"):
        return Path(home).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "frugal"


def config_path() -> Path:
    if explicit := os.environ.get("FRUGAL_CONFIG"):
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "frugal" / "config.toml"


def load_config() -> dict[str, Any]:
    """The user's config as a dict; ``{}`` when there is none. A broken file is an error."""
    path = config_path()
    if not path.exists():
        return {}
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise BadInput(
            f"cannot read config file {path}: {exc}",
            hint="fix the TOML or point FRUGAL_CONFIG at another file",
        ) from exc


def ledger_url(explicit: str | None = None) -> str:
    """Resolve the ledger URL: argument, ``$FRUGAL_LEDGER``, config ``ledger``, then default."""
    url = explicit or os.environ.get("FRUGAL_LEDGER") or load_config().get("ledger")
    if not url:
        return f"sqlite:///{data_dir() / 'ledger.db'}"
    url = str(url)
    if "://" not in url:  # a bare path names a SQLite file
        return f"sqlite:///{Path(url).expanduser().absolute()}"
    return url
