"""The spool: finished runs that could not reach their ledger, kept locally until they can.

When a run ends and its ledger cannot be written (a server down, a disk full), the finished
row is saved as one JSON file under ``<frugal data folder>/spool/`` and the caller goes on
(the command's exit code is never lost to the ledger). The next time any frugal command
reaches that ledger, the spooled rows are written (``flush``) and their files removed.
Files are matched to a ledger by a hash of its URL, so the spool never holds a password.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from frugalml.settings import data_dir

DATES = ("started_at", "ended_at", "heartbeat_at")
FINAL = ("status", "ended_at", "heartbeat_at", "usage", "error")  # what a finish writes


def folder() -> Path:
    return data_dir() / "spool"


def ledger_key(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:24]


def keep(url: str, row: dict[str, Any]) -> Path:
    """Save one run row for the ledger at ``url``; the file written."""
    out = folder()
    out.mkdir(parents=True, exist_ok=True)
    data = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
    path = out / f"{row['id']}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"ledger": ledger_key(url), "row": data}, default=str))
    os.replace(tmp, path)  # a reader never sees half a file
    return path


def pending(url: str) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Spooled rows for this ledger: (file, row with datetimes restored)."""
    where = folder()
    if not where.is_dir():
        return
    key = ledger_key(url)
    for path in sorted(where.glob("*.json")):
        with contextlib.suppress(OSError, ValueError):
            entry = json.loads(path.read_text())
            if entry.get("ledger") != key:
                continue
            row = dict(entry["row"])
            for name in DATES:
                if row.get(name):
                    row[name] = datetime.fromisoformat(row[name])
            yield path, row
