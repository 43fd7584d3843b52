"""Backups of the notebook, taken while runs write: SQLite through its online backup API (one consistent snapshot,
writers in WAL mode are not blocked), PostgreSQL through `pg_dump`. Each backup has a manifest beside it
(`FILE.manifest.json`) listing the rows it holds and the artifact files (checkpoints, diffs) it refers to, which
live on disk and are not inside it.

Restore: SQLite, `restore(FILE, URL)` copies the backup into place (refusing to overwrite unless asked);
PostgreSQL, `pg_restore --clean --if-exists`. Either way the notebook upgrades its schema when next opened.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, make_url, text

TABLES = ("runs", "metrics", "metric_rollups", "images", "snapshots", "checkpoints", "notes", "figures")
BACKUP_PREFIX = "notebook-"


class BackupError(RuntimeError):
    """A backup or restore that could not be made; the message says what to do."""


@dataclass(frozen=True)
class Backup:
    path: Path
    manifest: Path
    rows: dict[str, int]
    artifacts: int  # files the notebook refers to
    missing: int  # of those, not found on this host


def backup(url: str, to: str | Path) -> Backup:
    """A consistent copy of the notebook at `url` in the file `to`, and its manifest."""
    to = Path(to)
    to.parent.mkdir(parents=True, exist_ok=True)
    engine = make_url(url)
    if engine.get_backend_name() == "sqlite":
        _sqlite_backup(Path(engine.database or ""), to)
        rows, files = _inventory(f"sqlite:///{to}")
    elif engine.get_backend_name() == "postgresql":
        rows, files = _inventory(url)  # counted first: the dump holds at least these rows
        _pg(["pg_dump", "--format=custom", f"--file={to}", _libpq(url)])
    else:
        raise BackupError(f"no backup method for {engine.get_backend_name()} databases")
    artifacts = [{"path": path, "bytes": os.path.getsize(path) if os.path.exists(path) else None}
                 for path in sorted(files)]
    manifest = to.with_name(to.name + ".manifest.json")
    manifest.write_text(json.dumps({
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(), "source": make_url(url).render_as_string(),
        "file": to.name, "rows": rows, "artifacts": artifacts,
        "restore": ("copy the file into place (python -m engine restore --from FILE --db URL)"
                    if engine.get_backend_name() == "sqlite" else "pg_restore --clean --if-exists -d URL FILE"),
    }, indent=1))
    return Backup(to, manifest, rows, len(artifacts), sum(a["bytes"] is None for a in artifacts))


def _sqlite_backup(source: Path, to: Path) -> None:
    if not source.is_file():
        raise BackupError(f"no notebook file at {source}")
    partial = to.with_name(to.name + ".partial")
    partial.unlink(missing_ok=True)
    reader = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    copy = sqlite3.connect(partial)
    try:
        reader.backup(copy)  # all pages in one step: one read transaction, so one consistent snapshot
        copy.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file, no -wal beside it
        verdict = copy.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        copy.close()
        reader.close()
    if verdict != "ok":
        partial.unlink(missing_ok=True)
        raise BackupError(f"the copy of {source} failed its integrity check: {verdict}")
    os.replace(partial, to)  # never a half-written backup under the final name


def _inventory(url: str) -> tuple[dict[str, int], set[str]]:
    """Rows per table, and the files on disk that rows refer to (checkpoints, provenance diffs)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = {t: connection.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in TABLES}
            files = set(connection.execute(text("SELECT path FROM checkpoints")).scalars())
            for (payload,) in connection.execute(text("SELECT payload FROM snapshots WHERE kind = 'provenance'")):
                document = json.loads(payload) if isinstance(payload, str) else payload
                if document.get("git", {}).get("diff_file"):
                    files.add(document["git"]["diff_file"])
    finally:
        engine.dispose()
    return rows, files


def restore(backup_file: str | Path, url: str, *, replace: bool = False) -> None:
    """Put a backup back as the notebook at `url` (stop the app and workers first)."""
    backup_file = Path(backup_file)
    if not backup_file.is_file():
        raise BackupError(f"no backup file {backup_file}")
    engine = make_url(url)
    if engine.get_backend_name() == "sqlite":
        target = Path(engine.database or "")
        if target.exists() and not replace:
            raise BackupError(f"{target} exists: restore over it with --replace (after stopping the app and "
                              "workers), or restore to a new path")
        for leftover in (target.with_name(target.name + "-wal"), target.with_name(target.name + "-shm")):
            leftover.unlink(missing_ok=True)  # they belong to the file being replaced
        partial = target.with_name(target.name + ".restoring")
        shutil.copyfile(backup_file, partial)
        os.replace(partial, target)
    elif engine.get_backend_name() == "postgresql":
        _pg(["pg_restore", "--clean", "--if-exists", "--no-owner", f"--dbname={_libpq(url)}", str(backup_file)])
    else:
        raise BackupError(f"no restore method for {engine.get_backend_name()} databases")


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _pg(command: list[str]) -> None:
    if shutil.which(command[0]) is None:
        raise BackupError(f"{command[0]} is not installed (it comes with the PostgreSQL client package)")
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise BackupError(f"{command[0]} failed: {done.stderr.strip()[:500]}")


# --- backups into a folder, kept N deep -----------------------------------------------------------------------


def backup_into(url: str, folder: str | Path, *, keep: int) -> Backup:
    """A new timestamped backup in `folder`; only the newest `keep` are kept (with their manifests)."""
    suffix = ".db" if make_url(url).get_backend_name() == "sqlite" else ".dump"
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
    made = backup(url, Path(folder) / f"{BACKUP_PREFIX}{stamp}{suffix}")
    for old in backups_in(folder)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
        old.with_name(old.name + ".manifest.json").unlink(missing_ok=True)
    return made


def backups_in(folder: str | Path) -> list[Path]:
    """The backups in `folder`, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f"{BACKUP_PREFIX}*") if p.suffix in (".db", ".dump"))


def backup_if_due(url: str, folder: str | Path, *, keep: int, every: dt.timedelta) -> Backup | None:
    """A backup when the newest in `folder` is older than `every` (or there is none): the automatic daily one."""
    found = backups_in(folder)
    if found:
        age = dt.datetime.now().timestamp() - found[-1].stat().st_mtime
        if age < every.total_seconds():
            return None
    return backup_into(url, folder, keep=keep)
