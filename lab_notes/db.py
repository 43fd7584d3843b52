"""The notebook's database plumbing: engines (WAL SQLite or PostgreSQL), one managed session per call, the
schema upgraded by one process at a time, and the database's own clock, which every lease and heartbeat uses so
that hosts with skewed clocks agree."""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import socket
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, cast, overload

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, CursorResult, Engine, Result, create_engine, event, func, literal_column, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

DEFAULT_PATH = "notebook.db"
UMASK_VARIABLE = "LAB_UMASK"
# The notebook, its backups, run logs and checkpoints hold everything a team wrote: owner-only by default (0600 files,
# 0700 folders). A team sharing a root through a group sets LAB_UMASK=007 (and the folder's group, setgid).
PRIVATE_UMASK = 0o077
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# PostgreSQL advisory lock held while the schema is checked and upgraded: any fixed number, the same in every
# app server and worker of every host ("lab" "notebook" in ASCII, so it is unlikely to meet another app's key).
SCHEMA_LOCK_KEY = 0x6C6162_6E6F7465
log = logging.getLogger(__name__)


class Unreachable(OperationalError):
    """The database could not be reached, or was too busy, for one of the notebook's calls: worth retrying later.
    The notebook's own name for SQLAlchemy's OperationalError (a subclass, so older handlers still catch it);
    `orig` is the driver's error."""


@contextmanager
def _as_unreachable() -> Iterator[None]:
    """At the notebook's boundary, SQLAlchemy's OperationalError leaves as Unreachable."""
    try:
        yield
    except Unreachable:
        raise
    except OperationalError as error:
        raise Unreachable(error.statement, error.params, error.orig if error.orig is not None else error,
                          connection_invalidated=error.connection_invalidated) from error


@dataclass(frozen=True)
class SchemaCheck:
    """What opening the notebook found: the schema revision it had (None: an empty database) and the newest."""

    found: str | None
    head: str

    @property
    def upgraded(self) -> bool:
        return self.found != self.head

    def in_words(self) -> str:
        where = f"(pid {os.getpid()} on {os.environ.get('LAB_HOST_ID') or socket.gethostname()})"
        if self.upgraded:
            return f"notebook schema upgraded {self.found or 'empty'} → {self.head} {where}"
        return f"notebook schema current at {self.head} {where}"


class NotFound(KeyError):
    """No run or note with that id."""

    def __str__(self) -> str:
        return str(self.args[0])


def default_url() -> str:
    return os.environ.get("LAB_NOTEBOOK_URL") or f"sqlite:///{Path(DEFAULT_PATH).resolve()}"


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@overload
def as_utc(value: dt.datetime) -> dt.datetime: ...
@overload
def as_utc(value: dt.datetime | None) -> dt.datetime | None: ...
def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive datetimes; every time in the notebook is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.timezone.utc)


def sqlite_engine(url: str, immediate: bool) -> Engine:
    """WAL, synchronous=NORMAL, a busy timeout and foreign keys; writers take the write lock when they begin
    (BEGIN IMMEDIATE), so two writers queue on the busy timeout instead of failing mid-transaction."""
    engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
        _files_as_the_umask_says(engine.url.database)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Database:
    """Engines and sessions; the rooms of the store (runs, metrics, artifacts, notes) build on this."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_url()
        if self.url.startswith("sqlite"):
            self._writer = sqlite_engine(self.url, immediate=True)
            self._reader = sqlite_engine(self.url, immediate=False)
        else:
            self._writer = self._reader = create_engine(self.url, pool_pre_ping=True)
        self.dialect = self._writer.dialect.name
        self._placeholder = "?" if self._writer.dialect.paramstyle == "qmark" else "%s"
        self.schema = self._upgrade_schema()

    def _upgrade_schema(self) -> SchemaCheck:
        """Bring the schema to the newest revision, one process at a time: app servers and workers that open a
        notebook at once wait for the first to upgrade it, then find it current. Says which did the upgrade."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        head = ScriptDirectory.from_config(config).get_current_head()
        assert head is not None, f"no migrations under {MIGRATIONS}"
        with self._sqlite_upgrade_lock(), self._writer.begin() as connection:
            if self.dialect == "postgresql":  # released when this transaction ends, whatever happens in it
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
            check = SchemaCheck(current_revision(connection), head)
            if check.upgraded:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        if check.upgraded:  # rare and worth seeing in any process's output: which process changed the schema
            print(check.in_words(), file=sys.stderr, flush=True)
        else:
            log.info(check.in_words())
        return check

    @contextmanager
    def _sqlite_upgrade_lock(self) -> Iterator[None]:
        """On SQLite, an exclusive lock on `<database file>.lock` while the schema is checked and upgraded (an
        in-memory database, or a folder where the lock file cannot be made, has no one to wait for)."""
        database = self._writer.url.database if self.dialect == "sqlite" else None
        if not database or database == ":memory:" or database.startswith("file:"):
            yield
            return
        try:
            lock = open(f"{database}.lock", "a")
        except OSError:
            yield
            return
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # waits for another process's upgrade; released when closed
            yield

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with _as_unreachable(), Session(self._writer, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with _as_unreachable(), Session(self._reader) as session, session.begin():
            yield session

    def _clock(self, offset_seconds: float = 0.0) -> ColumnElement:
        """The database's time now (plus an offset), as SQL: leases never depend on a host's clock.
        SQLite's text form matches how SQLAlchemy stores datetimes there (microseconds, six digits)."""
        if self.dialect == "sqlite":
            return func.strftime("%Y-%m-%d %H:%M:%f000", "now", f"{float(offset_seconds):+.3f} seconds")
        clock = func.statement_timestamp()
        return clock + literal_column(f"interval '{float(offset_seconds):.3f} seconds'") if offset_seconds else clock

    def database_time(self) -> dt.datetime:
        """The database's clock, read once (pages show ages against it)."""
        with self._read() as session:
            value = session.execute(select(self._clock())).scalar_one()
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value[:26])
        return as_utc(value)

    def dispose(self) -> None:
        self._writer.dispose()
        self._reader.dispose()


def rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE changed (Session.execute is typed as a plain Result; it is a CursorResult)."""
    return cast(CursorResult[Any], result).rowcount


def current_revision(connection: Connection) -> str | None:
    """The schema revision Alembic recorded in the database (None: none yet)."""
    return MigrationContext.configure(connection).get_current_revision()


def get_row(session: Session, model: type, ident: int) -> Any:
    row = session.get(model, ident)
    if row is None:
        raise NotFound(f"no {getattr(model, '__tablename__')[:-1]} {ident}")
    return row


def apply_umask() -> int:
    """Set this process's umask from $LAB_UMASK (octal, default 077) before it creates any file; its children
    inherit it. Called first by every entry point (app, CLI, worker). Returns the umask set."""
    said = os.environ.get(UMASK_VARIABLE, "").strip()
    try:
        mask = int(said, 8) if said else PRIVATE_UMASK
    except ValueError:
        raise ValueError(f"{UMASK_VARIABLE}: {said!r} is not an octal umask (e.g. 077, or 007 for a group)") from None
    if not 0 <= mask <= 0o777 or mask & 0o700:
        raise ValueError(f"{UMASK_VARIABLE}: {said!r} must be between 000 and 077 (the owner keeps every right)")
    os.umask(mask)
    global _applied_umask
    _applied_umask = mask
    return mask


_applied_umask: int | None = None  # set by apply_umask: the entry points' choice, which SQLite's files follow


def _files_as_the_umask_says(database: str | None) -> None:
    """SQLite makes its files 0644 less the umask (never group-writable): after `apply_umask`, the notebook file
    and its -wal/-shm get 0666 less the umask, so LAB_UMASK=007 lets the group write it too."""
    if _applied_umask is None or not database or database == ":memory:" or database.startswith("file:"):
        return
    for path in (database, f"{database}-wal", f"{database}-shm"):
        try:
            if os.stat(path).st_uid == os.geteuid():  # only our own files: another's keeps what its owner chose
                os.chmod(path, 0o666 & ~_applied_umask)
        except OSError:
            pass  # not there (yet), or not ours to change

