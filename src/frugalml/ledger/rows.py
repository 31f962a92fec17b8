"""Rows of the runs table: building a new one, telling a dead owner, reading one back."""

from __future__ import annotations

import functools
import os
import socket
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import psutil

from frugalml.records import Hardware, RunRecord, Usage

DEFAULT_HEARTBEAT_S = 15.0
STALE_AFTER_BEATS = 4  # a run whose heartbeat is this many intervals old is crashed


def now() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything the ledger stores is UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@functools.lru_cache(maxsize=64)
def own_start(pid: int) -> float | None:
    return process_started_at(pid)


def process_started_at(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, OSError):
        return None


def new_row(
    name: str,
    kind: str,
    status: str,
    started_at: datetime,
    params: Mapping[str, Any] | None,
    hardware: Hardware | None,
    environment: Mapping[str, Any] | None,
    parent_id: str | None,
) -> dict[str, Any]:
    """A new row's columns, with this process as its owner (callers override what differs)."""
    return {
        "id": uuid.uuid4().hex,
        "name": name,
        "kind": kind,
        "status": status,
        "started_at": started_at,
        "ended_at": None,
        "heartbeat_at": started_at,
        "heartbeat_s": DEFAULT_HEARTBEAT_S,
        "parent_id": parent_id,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "pid_started_at": own_start(os.getpid()),
        "params": dict(params or {}),
        "usage": None,
        "quality": {},
        "artifacts": {},
        "error": None,
        "hardware": hardware.to_dict() if hardware else None,
        "environment": dict(environment or {}),
    }


def is_dead(row: Any, host: str, now: datetime) -> bool:
    if row.host == host:
        started = process_started_at(row.pid)
        return started is None or (
            row.pid_started_at is not None and abs(started - row.pid_started_at) >= 1.0
        )
    beat = aware(row.heartbeat_at)
    return beat is None or now - beat > timedelta(seconds=STALE_AFTER_BEATS * row.heartbeat_s)


def to_record(row: Any) -> RunRecord:
    return RunRecord(
        id=row["id"],
        name=row["name"],
        kind=row["kind"],
        status=row["status"],
        started_at=aware(row["started_at"]),  # type: ignore[arg-type]
        ended_at=aware(row["ended_at"]),
        heartbeat_at=aware(row["heartbeat_at"]),
        parent_id=row["parent_id"],
        params=row["params"] or {},
        usage=Usage.from_dict(row["usage"]) if row["usage"] else None,
        quality=row["quality"] or {},
        artifacts=row["artifacts"] or {},
        error=row["error"],
        hardware=Hardware.from_dict(row["hardware"]) if row["hardware"] else None,
        environment=row["environment"] or {},
        host=row["host"],
        pid=row["pid"],
    )
