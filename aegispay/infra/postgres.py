"""PostgreSQL plumbing for the adapters: one connection pool per database schema, transactions,
and schema creation that several processes may run at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolTimeout

from aegispay.domain.errors import InvalidRequest

Connection = psycopg.Connection[tuple[Any, ...]]

# Connections per process: a worker holds one for its queue claim while its payment's appends,
# projection writes and gateway calls take others.
POOL_SIZE = 6
CONNECT_TIMEOUT_SECONDS = 5.0
# Any constant will do: every process creating tables takes this one advisory lock first, since
# two concurrent `CREATE TABLE IF NOT EXISTS` of one name can fail on the catalog's unique index.
SCHEMA_LOCK = 0x_AE615_5C4E


def probe(conninfo: str, field: str) -> None:
    """Connect once, so that a wrong database, user or host is named as such before a pool
    (which would only retry and time out) is built; raise InvalidRequest saying why."""
    try:
        psycopg.connect(conninfo, connect_timeout=int(CONNECT_TIMEOUT_SECONDS)).close()
    except psycopg.Error as error:
        raise InvalidRequest(field, f"cannot connect: {reason(error)}", conninfo) from None


def reason(error: psycopg.Error) -> str:
    """The server's or the network's own words for a failed connection, on one line."""
    text = " ".join(str(error).split())
    # libpq prefixes its answer with the address it tried: the cause is what follows.
    return text.split(" failed: ")[-1].removeprefix("FATAL: ").strip() or type(error).__name__


class PostgresDatabase:
    """A pool of autocommit connections to one database, each with its search_path on one schema.

    Transactions are explicit (`transaction()`), as with SQLite: nothing is begun implicitly.
    """

    def __init__(
        self, conninfo: str, schema: str = "public", max_size: int = POOL_SIZE, field: str = "store"
    ) -> None:
        self.schema = schema
        # The connection of each thread's open transaction, which statements in it share.
        self._local = threading.local()
        probe(conninfo, field)
        self._pool = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=max_size,
            kwargs={"autocommit": True, "options": f"-c search_path={schema}"},
            open=True,
            timeout=60.0,
        )
        try:
            self._pool.wait(timeout=CONNECT_TIMEOUT_SECONDS)
        except PoolTimeout:
            self._pool.close()
            raise InvalidRequest(
                field, "cannot be reached: is the PostgreSQL server running?", conninfo
            ) from None
        self.create([sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))])

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """Lend a connection for one or more statements: this thread's open transaction's, if
        it has one (so a projection row joins its events), else an autocommit one."""
        current: Connection | None = getattr(self._local, "transaction", None)
        if current is not None:
            yield current
            return
        with self._pool.connection() as conn:
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """Lend a connection inside a transaction: commit on success, roll back on any error."""
        with self._pool.connection() as conn, conn.transaction():
            self._local.transaction = conn
            try:
                yield conn
            finally:
                self._local.transaction = None

    def create(self, statements: Sequence[sql.Composed | str]) -> None:
        """Run DDL in one transaction, one process at a time across the whole server."""
        with self.transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            for statement in statements:
                conn.execute(statement)

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.close()
