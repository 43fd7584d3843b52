"""Attempts: each start of a run gets a number and a fencing token, and the points it writes carry the number.
Runs that were running when this upgrade ran have no live attempt: their processes' writes are refused, and the
next worker's sweep fails them as stale.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("attempt", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("attempt_token", sa.String(64)))
    with op.batch_alter_table("metrics") as batch:
        batch.add_column(sa.Column("attempt", sa.Integer))


def downgrade() -> None:
    with op.batch_alter_table("metrics") as batch:
        batch.drop_column("attempt")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("attempt_token")
        batch.drop_column("attempt")
