"""SQLite plumbing for the adapters: durable connections, one per thread, write transactions."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from aegispay.domain.errors import InvalidRequest

BUSY_TIMEOUT_SECONDS = 30.0
T = TypeVar("T")

# SQLite's result codes for a file it cannot open, write or read as a database.
FILE_ERRORS = frozenset(
    (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_NOTADB)
)


def connect(path: str) -> sqlite3.Connection:
    """Open a file in autocommit mode with WAL, synchronous=FULL, busy timeout, foreign keys."""
    # isolation_level=None: transactions are ours to begin (BEGIN IMMEDIATE), never implicit.
    # check_same_thread=False only so that close() may run on another thread; a connection is
    # otherwise used by the one thread that opened it (see ThreadConnections).
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
    )
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
    mode = retry_busy(lambda: str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]))
    if mode != "wal":
        conn.close()
        raise sqlite3.OperationalError(f"{path}: journal_mode is {mode!r}, WAL is required")
    # FULL syncs the WAL on every commit: a committed event survives power loss, not only kill -9.
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def retry_busy(
    action: Callable[[], T],
    timeout: float = BUSY_TIMEOUT_SECONDS,
    pause: float = 0.01,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `action`, again while SQLite answers "database is locked", for up to `timeout` s.

    Switching a new file to WAL takes its exclusive lock. When several processes open the same
    new file at once, two of them can each hold a shared lock and want the exclusive one; SQLite
    then refuses one at once, without its busy handler, rather than let both wait for ever.
    Asked again a moment later, it finds the file switched by the other.
    """
    deadline = clock() + timeout
    while True:
        try:
            return action()
        except sqlite3.OperationalError as error:
            if getattr(error, "sqlite_errorcode", None) != sqlite3.SQLITE_BUSY:
                raise
            if clock() >= deadline:
                raise
        sleep(pause)


class ThreadConnections:
    """One connection to a file per thread, each remembered so that close() closes them all."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._mutex = threading.Lock()
        self._closed = False

    def get(self) -> sqlite3.Connection:
        """Return this thread's connection, opening it on first use."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            with self._mutex:
                if self._closed:
                    raise sqlite3.ProgrammingError(f"{self._path}: the store is closed")
                conn = connect(self._path)
                self._opened.append(conn)
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close every thread's connection; using the store afterwards raises ProgrammingError."""
        with self._mutex:
            self._closed = True
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run the block in a BEGIN IMMEDIATE transaction: commit on success, roll back on any error."""
    # IMMEDIATE takes the write lock up front, so a read-then-write waits for other writers
    # instead of failing with "database is locked" when one commits in between.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        # SQLite may already have rolled back (a failed COMMIT, a full disk).
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


@contextmanager
def opening(field: str, path: str) -> Iterator[None]:
    """Turn SQLite's refusal of a file while opening it into an InvalidRequest naming the path."""
    try:
        yield
    except sqlite3.DatabaseError as error:
        # Extended codes (SQLITE_READONLY_DBMOVED, ...) carry the primary code in the low byte.
        code = getattr(error, "sqlite_errorcode", None)
        if code is None or code & 0xFF not in FILE_ERRORS:
            raise
        raise InvalidRequest(field, f"cannot be opened as a database ({error})", path) from None
