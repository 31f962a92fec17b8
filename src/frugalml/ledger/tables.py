"""The ledger's tables (SQLAlchemy Core). Change them only together with a new migration."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("status", String(16), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True)),
    Column("heartbeat_at", DateTime(timezone=True)),
    Column("heartbeat_s", Float, nullable=False),
    Column("parent_id", String(32), ForeignKey("runs.id", ondelete="SET NULL")),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("pid_started_at", Float),  # process create time: tells a live pid from a reused one
    Column("params", JSON, nullable=False),
    Column("usage", JSON),
    Column("quality", JSON, nullable=False),
    Column("artifacts", JSON, nullable=False),
    Column("error", Text),
    Column("hardware", JSON),
    Column("environment", JSON, nullable=False),
    Index("ix_runs_started_at", "started_at"),
    Index("ix_runs_parent_id", "parent_id"),
    Index("ix_runs_status", "status"),
)

# Budgets (``frugal budget``): a cap in $ per day, week or month on a project's and/or user's
# runs (ledger/budgets.py).
budgets = Table(
    "budgets",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("usd", Float, nullable=False),
    Column("per", String(8), nullable=False),  # day | week | month (UTC calendar periods)
    Column("project", String(200)),
    Column("user_name", String(200)),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# A run's project and user, and the dollars it holds while running; written in the same
# transaction as the run's row when it starts under a budget.
run_tags = Table(
    "run_tags",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("project", String(200)),
    Column("user_name", String(200)),
    Column("reserved_usd", Float, nullable=False),
    Index("ix_run_tags_project", "project"),
)
