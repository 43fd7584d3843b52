"""The first notebook schema: runs, metrics, images, checkpoints, notes, their runs and figures, note search.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("preset", sa.String(200)),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="SET NULL")),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("status_reason", sa.Text),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("started_at", TZ),
        sa.Column("ended_at", TZ),
        sa.Column("heartbeat_at", TZ),
        sa.Column("stop_requested", sa.Boolean, nullable=False),
        sa.Column("device", sa.String(100)),
        sa.Column("exit_code", sa.Integer),
        sa.Column("lint", sa.JSON, nullable=False),
        sa.Column("divergence_report", sa.JSON),
        sa.Column("log_tail", sa.Text, nullable=False),
    )
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_table(
        "metrics",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("wall_time", sa.Float, nullable=False),
    )
    op.create_index("ix_metrics_run_key_step", "metrics", ["run_id", "key", "step"])
    op.create_table(
        "images",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("png", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_images_run_key_step", "images", ["run_id", "key", "step"], unique=True)
    op.create_table(
        "checkpoints",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index("ix_checkpoints_run_id", "checkpoints", ["run_id"])
    op.create_table(
        "notes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("entry_date", sa.Date),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_index("ix_notes_entry_date", "notes", ["entry_date"])
    op.create_table(
        "note_runs",
        sa.Column("note_id", sa.Integer, sa.ForeignKey("notes.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    )
    op.create_table(
        "figures",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("note_id", sa.Integer, sa.ForeignKey("notes.id", ondelete="CASCADE"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("caption", sa.Text, nullable=False),
        sa.Column("image", sa.LargeBinary),
        sa.Column("missing", sa.Text),
        sa.Column("chart_spec", sa.JSON),
    )
    op.create_index("ix_figures_note_id", "figures", ["note_id"])
    if op.get_bind().dialect.name == "sqlite":
        # Trigram tokens find substrings, which Chinese prose (no spaces between words) needs.
        op.execute("CREATE VIRTUAL TABLE notes_fts USING fts5(title, body, content='notes', content_rowid='id', "
                   "tokenize='trigram')")
        op.execute("CREATE TRIGGER notes_fts_insert AFTER INSERT ON notes BEGIN "
                   "INSERT INTO notes_fts(rowid, title, body) VALUES (new.id, new.title, new.body); END")
        op.execute("CREATE TRIGGER notes_fts_delete AFTER DELETE ON notes BEGIN "
                   "INSERT INTO notes_fts(notes_fts, rowid, title, body) VALUES ('delete', old.id, old.title, "
                   "old.body); END")
        op.execute("CREATE TRIGGER notes_fts_update AFTER UPDATE ON notes BEGIN "
                   "INSERT INTO notes_fts(notes_fts, rowid, title, body) VALUES ('delete', old.id, old.title, "
                   "old.body); INSERT INTO notes_fts(rowid, title, body) VALUES (new.id, new.title, new.body); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE notes_fts")
    for table in ("figures", "note_runs", "notes", "checkpoints", "images", "metrics", "runs"):
        op.drop_table(table)
