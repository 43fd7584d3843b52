"""Sweeps that search: a search's settings on its sweep, each trial's number on its run, and the study's Optuna
journal as rows of the notebook (so it is backed up and exported with it, on SQLite and PostgreSQL alike, and
never meets Optuna's own tables or their alembic_version).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    with op.batch_alter_table("sweeps") as batch:
        batch.add_column(sa.Column("search", sa.JSON))
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("trial", sa.Integer))
        # one run per trial of a sweep: a second queueing of the same trial fails instead of running it twice
        batch.create_index("ix_runs_sweep_trial", ["sweep_id", "trial"], unique=True)
    op.create_table(
        "study_log",
        sa.Column("sweep_id", sa.Integer, sa.ForeignKey("sweeps.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("entry", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("study_log")
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_sweep_trial")
        batch.drop_column("trial")
    with op.batch_alter_table("sweeps") as batch:
        batch.drop_column("search")
