"""A team notebook: who made each run, note and pinned figure; where a run may execute (a host, a GPU kind); what each worker
offers (its GPUs and CPU slots). Runs and notes made before sign-in existed have no owner (the local user's).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("owner", sa.String(320)))
        batch.add_column(sa.Column("pinned_host", sa.String(200)))
        batch.add_column(sa.Column("pinned_gpu", sa.String(200)))
        batch.create_index("ix_runs_owner", ["owner"])
    with op.batch_alter_table("notes") as batch:
        batch.add_column(sa.Column("owner", sa.String(320)))
    with op.batch_alter_table("figures") as batch:  # a pinned chart or reconstruction: who pinned it
        batch.add_column(sa.Column("owner", sa.String(320)))
    with op.batch_alter_table("workers") as batch:
        batch.add_column(sa.Column("gpus", sa.JSON))
        batch.add_column(sa.Column("cpu_slots", sa.Integer))


def downgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.drop_column("cpu_slots")
        batch.drop_column("gpus")
    with op.batch_alter_table("figures") as batch:
        batch.drop_column("owner")
    with op.batch_alter_table("notes") as batch:
        batch.drop_column("owner")
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_owner")
        batch.drop_column("pinned_gpu")
        batch.drop_column("pinned_host")
        batch.drop_column("owner")
