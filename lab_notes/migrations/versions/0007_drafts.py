"""Journal drafts: the entries the notebook writes itself when a run or a sweep ends, and the endings already
written up. Runs that ended before this upgrade count as written up, so upgrading does not flood the journal with
drafts of old runs.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.create_table(
        "drafts",
        sa.Column("note_id", sa.Integer, sa.ForeignKey("notes.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("run_id", sa.Integer),  # no foreign key: the entry outlives its run
        sa.Column("sweep_id", sa.Integer),
        sa.Column("generated_sha", sa.String(64), nullable=False),
        sa.Column("language", sa.String(10), nullable=False),
    )
    op.create_index("ix_drafts_run_id", "drafts", ["run_id"])
    op.create_index("ix_drafts_sweep_id", "drafts", ["sweep_id"])
    op.create_table(
        "draft_endings",
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("run_id", sa.Integer),
        sa.Column("sweep_id", sa.Integer),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_draft_endings_run_id", "draft_endings", ["run_id"])
    op.create_index("ix_draft_endings_sweep_id", "draft_endings", ["sweep_id"])
    op.execute("INSERT INTO draft_endings (key, run_id, sweep_id, written_at) "
               "SELECT 'run:' || CAST(id AS VARCHAR(20)) || ':' || CAST(attempt AS VARCHAR(20)), id, NULL, ended_at "
               "FROM runs WHERE status IN ('completed', 'stopped', 'diverged', 'failed') AND ended_at IS NOT NULL")


def downgrade() -> None:
    op.drop_index("ix_draft_endings_sweep_id", "draft_endings")
    op.drop_index("ix_draft_endings_run_id", "draft_endings")
    op.drop_table("draft_endings")
    op.drop_index("ix_drafts_sweep_id", "drafts")
    op.drop_index("ix_drafts_run_id", "drafts")
    op.drop_table("drafts")
