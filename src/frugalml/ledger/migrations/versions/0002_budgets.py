"""budgets and run tags (project, user, reserved dollars)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "budgets",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("usd", sa.Float, nullable=False),
        sa.Column("per", sa.String(8), nullable=False),
        sa.Column("project", sa.String(200)),
        sa.Column("user_name", sa.String(200)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "run_tags",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("project", sa.String(200)),
        sa.Column("user_name", sa.String(200)),
        sa.Column("reserved_usd", sa.Float, nullable=False),
    )
    op.create_index("ix_run_tags_project", "run_tags", ["project"])


def downgrade() -> None:
    op.drop_index("ix_run_tags_project", "run_tags")
    op.drop_table("run_tags")
    op.drop_table("budgets")
