"""Background jobs: which worker runs a run (and its process id), the workers' lease rows; and per-bucket
metric summaries (rollups), filled in here for the metrics an older notebook already holds.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from lab_notes.series import ROLLUP_COLUMNS, summarise

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("worker_id", sa.String(200)))
        batch.add_column(sa.Column("pid", sa.Integer))
    op.create_table(
        "workers",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("max_parallel", sa.Integer, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
    )


    op.create_table(
        "metric_rollups",
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("bucket", sa.Integer, primary_key=True),
        sa.Column("n", sa.Integer, nullable=False),
        sa.Column("min_step", sa.Integer),
        sa.Column("min_value", sa.Float),
        sa.Column("max_step", sa.Integer),
        sa.Column("max_value", sa.Float),
        sa.Column("last_step", sa.Integer, nullable=False),
        sa.Column("last_value", sa.Float),
        sa.Column("nan_step", sa.Integer),
        sa.Column("posinf_step", sa.Integer),
        sa.Column("neginf_step", sa.Integer),
    )
    connection = op.get_bind()
    rows = connection.execute(sa.text("SELECT run_id, key, step, value FROM metrics ORDER BY id")).all()
    summaries = summarise(rows)
    if summaries:
        table = sa.table("metric_rollups", *[sa.column(c) for c in ("run_id", "key", "bucket", *ROLLUP_COLUMNS)])
        op.bulk_insert(table, [{"run_id": r, "key": k, "bucket": b, **summary}
                               for (r, k, b), summary in summaries.items()])


def downgrade() -> None:
    op.drop_table("metric_rollups")
    op.drop_table("workers")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("pid")
        batch.drop_column("worker_id")
