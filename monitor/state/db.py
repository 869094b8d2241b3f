"""One connection to the state database, with each backend's quirks in one place.

Every SQL statement of the project lives in ``monitor.state``; the modules
there write portable SQL with ``?`` placeholders, name every column they read
(rows are read by name, never by position), and run it through a
``Database``. The few things SQL dialects spell differently are methods of
the backend (``greatest``, the schema version, checkpoints, locks), so a state
module never branches on the backend itself.

* **SQLite** (the embedded default, this module): WAL mode, a busy timeout on
  every connection, every write inside ``BEGIN IMMEDIATE`` (a deferred
  transaction that upgrades to a write lock fails at once under WAL, whatever
  the timeout), ``synchronous=NORMAL``: in WAL mode no committed transaction is
  lost when the process crashes, and after a power cut the database keeps
  commit order, so a lost ``sent`` mark is a resend, never a lost alert.
* **PostgreSQL** (``monitor.state.postgres``), for several daemon instances on
  one database.

A ``Database`` is used from one thread at a time (the daemon's event loop);
the CLI opens its own.

One daemon per SQLite file: ``StateLock`` holds an exclusive ``flock`` on
``<state>.lock`` for the daemon's lifetime. Two daemons on one file each
alerted the same stories, and the second one's start-up re-queued the first
one's in-flight message; the second is now refused, naming the first (pid),
before it touches anything. The kernel drops the lock when the holder dies, so
a crash never leaves a stale lock behind. (Several instances share a
PostgreSQL state through leases instead: ``monitor.state.instances``.)
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from monitor.errors import MonitorError

__all__ = ["Database", "SqliteDatabase", "Row", "Cursor", "StateError", "StateBusy", "StateLocked", "StateLock",
           "connect_sqlite", "optional_float", "placeholders", "as_dict", "private_url", "is_url"]

#: Parameters of one statement: positional values for its ``?`` placeholders.
Params = Sequence[Any]


class Row(Protocol):
    """What a state module reads from a result row: columns by name."""

    def __getitem__(self, key: str) -> Any: ...

    def keys(self) -> Any: ...


class Cursor(Protocol):
    """What a state module reads from an executed statement."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class StateError(MonitorError):
    """The state database cannot be used or refused a statement (newer schema, corrupt file,
    disk full, read-only folder, lost connection...). Every driver error leaves the state layer
    as one of these."""


class StateBusy(StateError):
    """Another connection held a lock longer than the wait allows: try again later."""


class StateLocked(StateError):
    """Another monitor process holds the state's lock (one daemon per state file)."""


class Database:
    """A connection plus the transaction discipline every caller relies on.

    ``transaction()`` opens a write transaction, commits on success and rolls
    back on any exception; nested use joins the outer one. Functions of the
    state modules that take a ``Database`` and do not say otherwise run inside
    the caller's transaction. Subclasses implement the statements and the
    dialect's spellings.
    """

    dialect: str = ""

    def __init__(self, location: str, *, readonly: bool = False) -> None:
        #: Where the state is, for messages (a path, or a URL without its password).
        self.location = location
        self.readonly = readonly
        self._depth = 0

    # -- statements (per backend) ---------------------------------------------------

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        raise NotImplementedError

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        raise NotImplementedError

    def one(self, sql: str, params: Params = ()) -> Row | None:
        raise NotImplementedError

    def all(self, sql: str, params: Params = ()) -> list[Row]:
        raise NotImplementedError

    def scalar(self, sql: str, params: Params = ()) -> Any:
        """The first column of the first row (None without a row)."""
        raise NotImplementedError

    def insert_id(self, sql: str, params: Params = ()) -> int:
        """Run an INSERT and return the new row's integer primary key ``id``."""
        raise NotImplementedError

    def _begin(self) -> None:
        raise NotImplementedError

    def _commit(self) -> None:
        raise NotImplementedError

    def _rollback(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # -- transactions --------------------------------------------------------------

    @property
    def in_transaction(self) -> bool:
        return self._depth > 0

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """A write transaction; rolls back on any exception. Nested use joins the outer one."""
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        self._begin()
        self._depth = 1
        try:
            yield self
        except BaseException:
            self._depth = 0
            self._rollback()
            raise
        self._depth = 0
        try:
            self._commit()
        except StateError:
            self._rollback()
            raise

    # -- spellings that differ -------------------------------------------------------

    def greatest(self, a: str, b: str) -> str:
        """SQL for the larger of two values (SQLite's two-argument ``max``)."""
        return f"max({a}, {b})"

    def serialize(self, name: str) -> None:
        """Inside a transaction: only one writer at a time may pass this point for ``name``
        (across processes and hosts). SQLite's write transactions are serial already."""

    # -- schema and maintenance -------------------------------------------------------

    def schema_version(self) -> int:
        raise NotImplementedError

    def set_schema_version(self, version: int) -> None:
        """Inside the migration step's transaction."""
        raise NotImplementedError

    def has_tables(self) -> bool:
        raise NotImplementedError

    def ddl(self, statement: str) -> str:
        """A schema statement (written in SQLite's spelling) in this backend's spelling."""
        return statement

    @contextmanager
    def migration_lock(self) -> Iterator[None]:
        """Held while migrating, so two daemons starting at once do not both migrate."""
        yield

    def wal_bytes(self) -> int:
        """Size of the write-ahead log file (0 where the backend keeps none of ours)."""
        return 0

    def checkpoint(self, wait_ms: int) -> bool:
        """Truncate the write-ahead log; False if a reader kept it from completing."""
        return True


def _state_error(location: str, exc: sqlite3.Error) -> StateError:
    text = str(exc)
    kind = StateBusy if "locked" in text or "busy" in text else StateError
    return kind(f"{location}: {text}")


class SqliteDatabase(Database):
    """The embedded backend: one SQLite file in WAL mode."""

    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection, location: str, *, readonly: bool = False) -> None:
        super().__init__(location, readonly=readonly)
        self._conn = conn

    def execute(self, sql: str, params: Params = ()) -> sqlite3.Cursor:
        try:
            return self._conn.execute(sql, tuple(params))
        except sqlite3.Error as exc:
            raise _state_error(self.location, exc) from exc

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        try:
            self._conn.executemany(sql, [tuple(r) for r in rows])
        except sqlite3.Error as exc:
            raise _state_error(self.location, exc) from exc

    def one(self, sql: str, params: Params = ()) -> Row | None:
        try:
            row: Row | None = self._conn.execute(sql, tuple(params)).fetchone()
        except sqlite3.Error as exc:
            raise _state_error(self.location, exc) from exc
        return row

    def all(self, sql: str, params: Params = ()) -> list[Row]:
        try:
            rows: list[Row] = self._conn.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise _state_error(self.location, exc) from exc
        return rows

    def scalar(self, sql: str, params: Params = ()) -> Any:
        try:
            row = self._conn.execute(sql, tuple(params)).fetchone()
        except sqlite3.Error as exc:
            raise _state_error(self.location, exc) from exc
        return None if row is None else row[0]

    def insert_id(self, sql: str, params: Params = ()) -> int:
        cursor = self.execute(sql, params)
        if cursor.lastrowid is None:  # pragma: no cover - an INSERT always sets it
            raise StateError(f"{self.location}: insert returned no row id")
        return int(cursor.lastrowid)

    def _begin(self) -> None:
        self.execute("BEGIN IMMEDIATE")

    def _commit(self) -> None:
        self.execute("COMMIT")

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error:  # the connection is broken; SQLite rolled back itself
                pass

    def close(self) -> None:
        self._conn.close()

    def trace(self, callback: Callable[[str], None] | None) -> None:
        """Call ``callback`` with every statement this connection runs (tests check query plans)."""
        self._conn.set_trace_callback(callback)

    def count_steps(self, callback: Callable[[], None] | None, every: int = 100) -> None:
        """Call ``callback`` every ``every`` SQLite VM instructions: a measure of a statement's work
        that does not depend on the machine's speed (tests check cost stays flat as history grows)."""
        if callback is None:
            self._conn.set_progress_handler(None, every)
            return

        def tick() -> int:
            callback()
            return 0  # 0: go on

        self._conn.set_progress_handler(tick, every)

    def schema_version(self) -> int:
        return int(self.scalar("PRAGMA user_version") or 0)

    def set_schema_version(self, version: int) -> None:
        self.execute(f"PRAGMA user_version={int(version)}")

    def has_tables(self) -> bool:
        return bool(self.scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table'"))

    def wal_bytes(self) -> int:
        try:
            return os.path.getsize(self.location + "-wal")
        except OSError:
            return 0

    def checkpoint(self, wait_ms: int) -> bool:
        # TRUNCATE waits (busy handler) for readers to finish; cap that wait so
        # a CLI holding a snapshot cannot stall the daemon for a whole busy_timeout.
        previous = int(self.scalar("PRAGMA busy_timeout") or 0)
        self.execute(f"PRAGMA busy_timeout={int(wait_ms)}")
        try:
            row = self.one("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self.execute(f"PRAGMA busy_timeout={previous}")
        return not (row is not None and row["busy"])


def _private_folder(folder: Path) -> None:
    """Create the state folder readable by its owner only (it holds alert texts and errors)."""
    if not folder.exists():
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)


def _open_sqlite(path: Path, readonly: bool, timeout: float) -> sqlite3.Connection:
    if readonly:
        if not path.exists():
            raise StateError(f"{path}: no state database yet (has the daemon run?)")
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout, isolation_level=None,
                               check_same_thread=False)
    _private_folder(path.parent)
    existed = path.exists()
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    if not existed:
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    return conn


def connect_sqlite(path: Path, *, readonly: bool = False, timeout: float = 10.0) -> SqliteDatabase:
    """Open a SQLite state file with the pragmas every connection needs (see ``monitor.state.connect``)."""
    try:
        conn = _open_sqlite(path, readonly, timeout)
    except (sqlite3.Error, OSError) as exc:
        raise StateError(f"{path}: cannot open the state database: {exc}") from None
    conn.row_factory = sqlite3.Row
    try:
        conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        conn.execute("PRAGMA foreign_keys=ON")
        if readonly:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # fails now on a corrupt file
        else:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StateError(f"{path}: cannot use state database: {exc}") from None
    return SqliteDatabase(conn, str(path), readonly=readonly)


def private_url(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.hostname or ""
    if parts.username:
        netloc = f"{parts.username}:***@{netloc}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class StateLock:
    """The exclusive lock of one state database, held until ``release`` or the process ends."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @staticmethod
    def path_for(state_path: str | Path) -> Path:
        state_path = Path(state_path)
        return state_path.with_name(state_path.name + ".lock")

    @classmethod
    def acquire(cls, state_path: str | Path) -> StateLock:
        """Take the lock or raise ``StateLocked`` naming the process that has it.

        The lock file is created 0600 in the state folder (created 0700) and
        opened close-on-exec, so no child process ever inherits the lock.
        """
        path = cls.path_for(state_path)
        try:
            _private_folder(path.parent)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StateError(f"{path}: cannot create the state lock: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder_text(fd)
            os.close(fd)
            raise StateLocked(f"{state_path}: in use by another monitor ({holder}); one daemon per state file: "
                              "stop that one, or give this one its own state_path") from None
        except OSError as exc:
            os.close(fd)
            raise StateError(f"{path}: cannot lock the state: {exc.strerror or exc}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return cls(path, fd)

    @classmethod
    def holder(cls, state_path: str | Path) -> int | None:
        """The pid of the daemon holding the lock, or None when no process holds it."""
        try:
            fd = os.open(cls.path_for(state_path), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _holder_pid(fd)
            except OSError:
                return None
            return None
        finally:
            os.close(fd)

    def release(self) -> None:
        """Let go (the file stays: removing it would race with the next daemon's open)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _holder_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _holder_text(fd: int) -> str:
    pid = _holder_pid(fd)
    if pid is None:
        return "pid unknown"
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        command = ""
    return f"pid {pid}" + (f": {command[:200]}" if command else "")


def is_url(target: str | Path) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def as_dict(row: Row) -> dict[str, Any]:
    """A result row as a plain dict (for JSON output)."""
    return {key: row[key] for key in row.keys()}


def optional_float(value: object) -> float | None:
    """A nullable REAL column as a float (None stays None)."""
    return float(value) if isinstance(value, (int, float)) else None


def placeholders(values: Sequence[Any] | Mapping[Any, Any]) -> str:
    """``?, ?, ?`` for an ``IN (...)`` list of ``len(values)`` values."""
    return ",".join("?" * len(values))
