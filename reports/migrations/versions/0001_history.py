"""The first history schema: runs, their metrics, and pinned baselines.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.String(80), nullable=False, unique=True),
        sa.Column("scenario", sa.String(200), nullable=False, index=True),
        sa.Column("profile", sa.String(16), nullable=False),
        sa.Column("target", sa.String(80), nullable=False),
        sa.Column("target_version", sa.String(80), nullable=False),
        sa.Column("harness_version", sa.String(80), nullable=False),
        sa.Column("fingerprint", sa.String(32), nullable=False, index=True),
        sa.Column("machine", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("recorded_at", sa.Float(), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("verdicts", sa.JSON(), nullable=False),
        sa.Column("run_dir", sa.String(1000), nullable=False),
    )
    op.create_table(
        "metrics",
        sa.Column("run_pk", sa.Integer(), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Float(), nullable=False),
    )
    op.create_table(
        "baselines",
        sa.Column("scenario", sa.String(200), primary_key=True),
        sa.Column("profile", sa.String(16), primary_key=True),
        sa.Column("fingerprint", sa.String(32), primary_key=True),
        sa.Column("run_id", sa.String(80), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
        sa.Column("pinned_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("baselines")
    op.drop_table("metrics")
    op.drop_table("runs")
