"""PostgreSQL plumbing for the adapters: one connection pool per database schema, transactions
bounded in time, and schema creation that runs once, not at every process's start.

No process may hold up the others for long (pyeventsourcing's PostgreSQL recorder is the model
for these settings, which the server leaves off by default):
- `idle_in_transaction_session_timeout`: the server ends a session that keeps a transaction
  open without a word (a process stopped, frozen or cut off while holding the events table
  lock), so its locks go with it;
- `lock_timeout`: a statement waits this long for a lock (the events table, a reference's
  advisory lock), then fails with LockNotAvailable and is retried, never stuck behind a holder;
- `statement_timeout`: no statement inside a transaction runs longer than this;
- TCP keepalives on both ends, and a user timeout on ours: a half-open connection is found dead
  in seconds, not after the kernel's two hours.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolTimeout

from aegispay.domain.errors import InvalidRequest

Connection = psycopg.Connection[tuple[Any, ...]]

# Connections per process: a worker's payment takes a few (appends, projection, gateway), its
# claim heartbeat and its janitor take others.
POOL_SIZE = 6
CONNECT_TIMEOUT_SECONDS = 5.0
# Errors of the server or the network that heal: a connection cut or terminated, a restart, a
# lock or statement timeout. What raised one is retried on a fresh connection.
TRANSIENT: tuple[type[Exception], ...] = (
    psycopg.OperationalError,
    psycopg.errors.IdleInTransactionSessionTimeout,
)
# Which schemas are current, and by which DDL: a process whose DDL is recorded here creates
# nothing and takes no lock.
MIGRATIONS = "aegispay_migrations"


@dataclass(frozen=True)
class Timeouts:
    """Seconds one process may hold up the others (see the module's docstring)."""

    idle_in_transaction: float = 3.0
    lock: float = 3.0
    statement: float = 10.0
    keepalive_idle: int = 5
    keepalive_interval: int = 2
    keepalive_count: int = 3

    def options(self, schema: str) -> str:
        """The server settings of every connection, as libpq's `options`."""
        settings = {
            "search_path": schema,
            "idle_in_transaction_session_timeout": _ms(self.idle_in_transaction),
            "lock_timeout": _ms(self.lock),
            "tcp_keepalives_idle": self.keepalive_idle,
            "tcp_keepalives_interval": self.keepalive_interval,
            "tcp_keepalives_count": self.keepalive_count,
        }
        return " ".join(f"-c {name}={value}" for name, value in settings.items())

    def client(self) -> dict[str, Any]:
        """The client side's keepalives and timeouts, as libpq connection parameters."""
        unanswered = self.keepalive_idle + self.keepalive_interval * self.keepalive_count
        return {
            "connect_timeout": int(CONNECT_TIMEOUT_SECONDS),
            "keepalives": 1,
            "keepalives_idle": self.keepalive_idle,
            "keepalives_interval": self.keepalive_interval,
            "keepalives_count": self.keepalive_count,
            # Data sent and never acknowledged for as long as keepalives allow: the peer is gone.
            "tcp_user_timeout": unanswered * 1000,
        }

    @property
    def bound(self) -> float:
        """Seconds a stalled process can hold a lock the fleet waits on."""
        return self.idle_in_transaction


DEFAULT_TIMEOUTS = Timeouts()


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


def is_transient(error: BaseException) -> bool:
    """Whether a database error heals by itself (retry on a fresh connection)."""
    return isinstance(error, TRANSIENT)


def digest(statements: Sequence[sql.Composed | str]) -> str:
    """A name for one set of DDL: a schema whose recorded digest matches needs none of it."""
    text = "\n".join(s if isinstance(s, str) else repr(s) for s in statements)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class PostgresDatabase:
    """A pool of autocommit connections to one database, each with its search_path on one schema
    and the timeouts above.

    Transactions are explicit (`transaction()`), as with SQLite: nothing is begun implicitly.
    """

    # What a worker waits out rather than dies of (aegispay.worker.outage_errors).
    outage_errors = TRANSIENT

    def __init__(
        self,
        conninfo: str,
        schema: str = "public",
        max_size: int = POOL_SIZE,
        field: str = "store",
        *,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        wait: float = CONNECT_TIMEOUT_SECONDS,
    ) -> None:
        self.schema = schema
        self.timeouts = timeouts
        # How many sets of DDL this process ran (0 when it found the schema current).
        self.migrations_run = 0
        # The connection of each thread's open transaction, which statements in it share.
        self._local = threading.local()
        probe(conninfo, field)
        self._pool = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=max_size,
            kwargs={
                "autocommit": True,
                "options": timeouts.options(schema),
                # A fleet's connections are found by schema in pg_stat_activity unless
                # PGAPPNAME or the URL names them.
                "fallback_application_name": f"aegispay {schema}"[:63],
                **timeouts.client(),
            },
            open=True,
            # A process waiting for a connection while the server is away hears so in seconds.
            timeout=wait,
        )
        try:
            self._pool.wait(timeout=CONNECT_TIMEOUT_SECONDS)
        except PoolTimeout:
            self._pool.close()
            raise InvalidRequest(
                field, "cannot be reached: is the PostgreSQL server running?", conninfo
            ) from None
        self._set_local = sql.SQL("SET LOCAL statement_timeout = {}").format(
            sql.Literal(_ms(timeouts.statement))
        )

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
            conn.execute(self._set_local)
            self._local.transaction = conn
            try:
                yield conn
            finally:
                self._local.transaction = None

    def create(self, statements: Sequence[sql.Composed | str]) -> None:
        """Make sure the tables `statements` describe exist: if this schema records that they
        ran as they are now, do nothing and take no lock; else run them once (`migrate`)."""
        if not self.is_current(statements):
            self.migrate(statements)

    def is_current(self, statements: Sequence[sql.Composed | str]) -> bool:
        """Whether this schema records that `statements` ran as they are now (reads only)."""
        with self.connection() as conn:
            table = conn.execute("SELECT to_regclass(%s)", (f"{self.schema}.{MIGRATIONS}",))
            found = table.fetchone()
            if found is None or found[0] is None:
                return False
            row = conn.execute(
                sql.SQL("SELECT 1 FROM {} WHERE digest = %s").format(self._migrations),
                (digest(statements),),
            ).fetchone()
        return row is not None

    def migrate(self, statements: Sequence[sql.Composed | str]) -> None:
        """Run DDL in one transaction and record its digest. Two processes migrating one schema
        at once take turns on an advisory lock named by the schema (never one lock for the
        whole server), and lock_timeout bounds the wait."""
        with self.connection() as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,)
            ).fetchone()
        with self.transaction() as conn:
            # Concurrent `CREATE ... IF NOT EXISTS` of one name can fail on a catalog index.
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext('aegispay'), hashtext(%s))", (self.schema,)
            )
            if exists is None:
                conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
                )
                # The search path named a schema that did not exist: look it up again.
                conn.execute(sql.SQL("SET LOCAL search_path = {}").format(
                    sql.Identifier(self.schema)))  # fmt: skip
            for statement in statements:
                conn.execute(statement)
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (digest TEXT PRIMARY KEY,"
                    " migrated_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                ).format(self._migrations)
            )
            conn.execute(
                sql.SQL("INSERT INTO {} (digest) VALUES (%s) ON CONFLICT DO NOTHING").format(
                    self._migrations
                ),
                (digest(statements),),
            )
        self.migrations_run += 1

    @property
    def _migrations(self) -> sql.Composed:
        return sql.SQL("{}").format(sql.Identifier(self.schema, MIGRATIONS))

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.close()


def _ms(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"
