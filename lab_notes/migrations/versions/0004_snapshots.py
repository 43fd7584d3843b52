"""Snapshots: what a run records as a JSON document at a step — its held-out feature maps, the end-of-run few-shot
report, weight and gradient histograms, and each attempt's provenance.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_table(
        "snapshots",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("key", sa.String(200), nullable=False, server_default=""),
        sa.Column("payload", sa.JSON, nullable=False),
    )
    op.create_index("ix_snapshots_run_kind", "snapshots", ["run_id", "kind"])


def downgrade() -> None:
    op.drop_index("ix_snapshots_run_kind", "snapshots")
    op.drop_table("snapshots")
