"""One connection to the state database, with each backend's quirks in one place.

Every SQL statement of the project lives in ``monitor.state``; the modules
there write portable SQL with ``?`` placeholders, name every column they read
(rows are read by name, never by position), and run it through a
``Database``. The backend decides what the portable SQL becomes:

* **SQLite** (the embedded default): WAL mode, a busy timeout on every
  connection, every write inside ``BEGIN IMMEDIATE`` (a deferred transaction
  that upgrades to a write lock fails at once under WAL, whatever the timeout),
  ``synchronous=NORMAL``: in WAL mode no committed transaction is lost when the
  process crashes, and after a power cut the database keeps commit order, so a
  lost ``sent`` mark is a resend, never a lost alert.

A ``Database`` is used from one thread at a time (the daemon's event loop);
the CLI opens its own, read-only.

One daemon per state file: ``StateLock`` holds an exclusive ``flock`` on
``<state>.lock`` for the daemon's lifetime. Two daemons on one file each
alerted the same stories, and the second one's start-up re-queued the first
one's in-flight message; the second is now refused, naming the first (pid),
before it touches anything. The kernel drops the lock when the holder dies, so
a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import stat
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from monitor.errors import MonitorError

__all__ = ["Database", "Row", "StateError", "StateBusy", "StateLocked", "StateLock", "connect"]

#: Parameters of one statement: positional values for its ``?`` placeholders.
Params = Sequence[Any]


class Row(Protocol):
    """What a state module reads from a result row: columns by name."""

    def __getitem__(self, key: str) -> Any: ...

    def keys(self) -> Any: ...


class StateError(MonitorError):
    """The state database cannot be used or refused a statement (newer schema, corrupt file,
    disk full, read-only folder...). Every driver error leaves the state layer as one of these."""


class StateBusy(StateError):
    """Another connection held the write lock longer than the busy timeout: try again later."""


class StateLocked(StateError):
    """Another monitor process holds the state's lock (one daemon per state file)."""


def _state_error(location: str, exc: sqlite3.Error) -> StateError:
    text = str(exc)
    kind = StateBusy if "locked" in text or "busy" in text else StateError
    return kind(f"{location}: {text}")


class Database:
    """A connection plus the transaction discipline every caller relies on.

    ``transaction()`` opens a write transaction (``BEGIN IMMEDIATE`` on
    SQLite), commits on success and rolls back on any exception. Functions of
    the state modules that take a ``Database`` and do not say otherwise run
    inside the caller's transaction.
    """

    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection, location: str, *, readonly: bool = False) -> None:
        self._conn = conn
        self.location = location
        self.readonly = readonly
        self._depth = 0

    # -- statements ------------------------------------------------------------

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
        """The first column of the first row (None without a row)."""
        try:
            row = self._conn.execute(sql, tuple(params)).fetchone()
        except sqlite3.Error as exc:
            raise _state_error(self.location, exc) from exc
        return None if row is None else row[0]

    def insert_id(self, sql: str, params: Params = ()) -> int:
        """Run an INSERT and return the new row's integer primary key."""
        cursor = self.execute(sql, params)
        if cursor.lastrowid is None:  # pragma: no cover - an INSERT always sets it
            raise StateError(f"{self.location}: insert returned no row id")
        return int(cursor.lastrowid)

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolls back on any exception.

        Nested use joins the outer transaction (the outer one commits).
        """
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        self.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self
        except BaseException:
            self._depth = 0
            if self._conn.in_transaction:
                try:
                    self._conn.execute("ROLLBACK")
                except sqlite3.Error:  # the connection is broken; SQLite rolled back itself
                    pass
            raise
        self._depth = 0
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._conn.in_transaction:
                try:
                    self._conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            raise _state_error(self.location, exc) from exc

    # -- maintenance -------------------------------------------------------------

    def pragma(self, name: str) -> Any:
        """One SQLite pragma's value (for the schema version and checks)."""
        return self.scalar(f"PRAGMA {name}")

    def wal_bytes(self) -> int:
        """Size of the write-ahead log file (0 if there is none)."""
        try:
            return os.path.getsize(self.location + "-wal")
        except OSError:
            return 0

    def close(self) -> None:
        self._conn.close()


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
        _private_file(path)
    return conn


def _private_folder(folder: Path) -> None:
    """Create the state folder readable by its owner only (it holds alert texts and errors)."""
    if not folder.exists():
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)


def _private_file(path: Path) -> None:
    try:
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    except OSError:  # pragma: no cover - a file we just created is ours
        pass


def connect(path: str | Path, *, readonly: bool = False, timeout: float = 10.0) -> Database:
    """Open the SQLite state database with the pragmas every connection needs.

    ``readonly`` is for the CLI reading while the daemon runs: WAL lets it read
    without blocking the writer. It never uses ``immutable`` (stale reads).
    """
    path = Path(path)
    try:
        conn = _open_sqlite(path, readonly, timeout)
    except sqlite3.Error as exc:
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
    return Database(conn, str(path), readonly=readonly)


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


def as_dict(row: Row) -> dict[str, Any]:
    """A result row as a plain dict (for JSON output)."""
    return {key: row[key] for key in row.keys()}


def placeholders(values: Sequence[Any] | Mapping[Any, Any]) -> str:
    """``?, ?, ?`` for an ``IN (...)`` list of ``len(values)`` values."""
    return ",".join("?" * len(values))
