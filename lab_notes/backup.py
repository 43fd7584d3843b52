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
import math
import os
import shutil
import sqlite3
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from sqlalchemy import URL, create_engine, inspect, make_url, text

from lab_notes.artifacts import artifact_root, recorded_path_here

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
        _pg(["pg_dump", "--format=custom", f"--file={to}"], url)
    else:
        raise BackupError(f"no backup method for {engine.get_backend_name()} databases")
    here = {path: recorded_path_here(path, artifact_root()) for path in files}  # relative: under the shared root
    artifacts = [{"path": path, "bytes": os.path.getsize(here[path]) if os.path.exists(here[path]) else None}
                 for path in sorted(files)]
    manifest = to.with_name(to.name + ".manifest.json")
    manifest.write_text(json.dumps({
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(), "source": _without_password(url),
        "file": to.name, "rows": rows, "artifacts": artifacts,
        "restore": ("copy the file into place (python -m engine restore --from FILE --db URL)"
                    if engine.get_backend_name() == "sqlite" else "pg_restore --clean --if-exists -d URL FILE"),
    }, indent=1))
    return Backup(to, manifest, rows, len(artifacts), sum(a["bytes"] is None for a in artifacts))


def _without_password(url: str) -> str:
    """The notebook's URL as a manifest records it: no password, neither the user part's nor a query's."""
    parts = make_url(url)
    return parts.set(query={k: v for k, v in parts.query.items() if k != "password"}) \
        .render_as_string(hide_password=True)


def _sqlite_backup(source: Path, to: Path) -> None:
    if not source.is_file():
        raise BackupError(f"no notebook file at {source}")
    partial = to.with_name(to.name + ".partial")
    partial.unlink(missing_ok=True)
    reader = sqlite3.connect(source.resolve().as_uri() + "?mode=ro", uri=True, timeout=30)
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
            present = set(inspect(connection).get_table_names())  # a notebook not yet upgraded lacks some
            rows = {t: connection.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one()
                    for t in TABLES if t in present}
            files = set(connection.execute(text("SELECT path FROM checkpoints")).scalars()) \
                if "checkpoints" in present else set()
            provenance: Iterable[Any] = connection.execute(text("SELECT payload FROM snapshots WHERE kind = 'provenance'")) \
                if "snapshots" in present else []
            for (payload,) in provenance:
                document = json.loads(payload) if isinstance(payload, str) else payload
                if document.get("git", {}).get("diff_file"):
                    files.add(document["git"]["diff_file"])
    finally:
        engine.dispose()
    return rows, files


def restore(backup_file: str | Path, url: str, *, replace: bool = False) -> None:
    """Put a backup back as the notebook at `url`. Refused while a worker holds a lease on it (stop the app and
    workers first); a SQLite notebook being replaced is kept beside it as FILE.before-restore."""
    backup_file = Path(backup_file)
    if not backup_file.is_file():
        raise BackupError(f"no backup file {backup_file}")
    engine = make_url(url)
    if engine.get_backend_name() == "sqlite":
        target = Path(engine.database or "")
        if target.exists() and not replace:
            raise BackupError(f"{target} exists: restore over it with --replace (after stopping the app and "
                              "workers), or restore to a new path")
        _check_sqlite_backup(backup_file)
        if target.exists():
            _refuse_while_workers_run(url)
        partial = target.with_name(target.name + ".restoring")
        shutil.copyfile(backup_file, partial)
        if target.exists():  # checkpointed first, so the kept copy holds every committed write
            with sqlite3.connect(target) as live:
                live.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            shutil.copyfile(target, target.with_name(target.name + ".before-restore"))
        for leftover in (target.with_name(target.name + "-wal"), target.with_name(target.name + "-shm")):
            leftover.unlink(missing_ok=True)  # they belong to the file being replaced
        os.replace(partial, target)
    elif engine.get_backend_name() == "postgresql":
        _refuse_while_workers_run(url)
        _pg(["pg_restore", "--clean", "--if-exists", "--no-owner", "--dbname"], url, str(backup_file))
    else:
        raise BackupError(f"no restore method for {engine.get_backend_name()} databases")


def _check_sqlite_backup(path: Path) -> None:
    """A restore never replaces a notebook with a file that is not a whole SQLite notebook."""
    try:
        with sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True) as copy:
            verdict = copy.execute("PRAGMA integrity_check").fetchone()[0]
            tables = {name for (name,) in copy.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as error:
        raise BackupError(f"{path} is not a SQLite notebook backup ({error}); nothing was changed") from None
    if verdict != "ok" or "runs" not in tables:
        raise BackupError(f"{path} is not a whole notebook (integrity check: {verdict}; tables: "
                          f"{', '.join(sorted(tables)) or 'none'}); nothing was changed")


def _refuse_while_workers_run(url: str) -> None:
    from lab_notes.store import Notebook  # the store does not import backups: no cycle

    try:
        with Notebook(url) as notebook:
            alive = notebook.live_workers(60)  # leases judged on the database's own clock
    except Exception:  # noqa: BLE001 - a target that cannot be opened has no workers to protect
        return
    if alive:
        hosts = ", ".join(sorted({w.host for w in alive}))
        raise BackupError(f"{len(alive)} worker(s) hold a lease on this notebook (on {hosts}): stop the app and "
                          "workers first, or their writes would go to the replaced notebook")


def _pg(command: list[str], url: str, *after: str) -> None:
    """Run a PostgreSQL client tool against `url`, the password in its environment (PGPASSWORD), never on its
    command line (where `ps` shows it to every user of the host)."""
    if shutil.which(command[0]) is None:
        raise BackupError(f"{command[0]} is not installed (it comes with the PostgreSQL client package)")
    target, password = libpq_target(url)
    env = {**os.environ, **({"PGPASSWORD": password} if password else {})}
    done = subprocess.run([*command, target, *after], capture_output=True, text=True, env=env)
    if done.returncode:
        raise BackupError(f"{command[0]} failed: {done.stderr.strip()[:500]}")


def libpq_target(url: str) -> tuple[str, str | None]:
    """`url` as a libpq connection URI without any password, and the password apart (from the URL's user part
    or its `?password=` query). Built anew rather than with `URL.set(password=None)`, which SQLAlchemy reads
    as "leave the password as it is"."""
    parts = make_url(url)
    query = dict(parts.query)
    password = parts.password if parts.password is not None else query.get("password")
    query.pop("password", None)
    if isinstance(password, (tuple, list)):  # a query key given twice
        password = password[0] if password else None
    bare = URL.create("postgresql", username=parts.username, host=parts.host, port=parts.port,
                      database=parts.database, query=query)
    return bare.render_as_string(hide_password=False), (str(password) if password else None)


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


@dataclass
class ScheduledBackups:
    """$LAB_BACKUP_DIR set: a backup there when the newest is older than $LAB_BACKUP_EVERY_HOURS (24), keeping
    the newest $LAB_BACKUP_KEEP (7). A worker asks at most once a minute; the backup runs in a thread, so a large
    notebook never delays claims or heartbeats."""

    url: str
    folder: Path | None
    keep: int = 7
    every: dt.timedelta = dt.timedelta(hours=24)
    report: Callable[[str], None] = print
    checked: float = -math.inf
    thread: threading.Thread | None = None

    @classmethod
    def from_environment(cls, url: str, *, report: Callable[[str], None] = print) -> "ScheduledBackups":
        folder = os.environ.get("LAB_BACKUP_DIR")
        return cls(url, Path(folder) if folder else None, backups_to_keep(),
                   dt.timedelta(hours=float(os.environ.get("LAB_BACKUP_EVERY_HOURS", "24"))), report)

    def start_if_due(self) -> None:
        if self.folder is None or time.monotonic() - self.checked < 60 or (self.thread and self.thread.is_alive()):
            return
        self.checked = time.monotonic()
        self.thread = threading.Thread(target=self._take, name="backup", daemon=True)
        self.thread.start()

    def _take(self) -> None:
        try:
            assert self.folder is not None  # start_if_due starts this thread only with a folder
            made = backup_if_due(self.url, self.folder, keep=self.keep, every=self.every)
        except Exception as error:  # noqa: BLE001 - a failed backup is reported, and tried again next time
            self.report(f"automatic backup to {self.folder} failed: {error}")
            return
        if made is not None:
            self.report(f"automatic backup: {made.path} ({made.artifacts} artifact files in its manifest)")


def backups_to_keep() -> int:
    return int(os.environ.get("LAB_BACKUP_KEEP", "7"))
