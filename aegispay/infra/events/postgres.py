"""A PostgreSQL event store: streams shared by every process on every machine.

Global positions come from a sequence, and a sequence hands numbers out in the order
transactions ask, not in the order they commit: a reader past position 7 could miss a 6 that
commits later. So each append takes `LOCK TABLE events IN EXCLUSIVE MODE` (as eventsourcing's
PostgreSQL recorder does): writers queue, each commits before the next draws a position, and
readers (who take no conflicting lock) never wait.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import psycopg
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from aegispay.domain.errors import ConcurrencyError, InvalidRequest
from aegispay.domain.events import PaymentEvent, event_to_json
from aegispay.infra.events.chain import GENESIS, Chain, ChainKeyRefused, decide_key, readable

# One decoding of a stored row for both SQL stores: the columns and their checks are the same.
from aegispay.infra.events.sqlite import READ_ALL_BATCH, Row, read_all_batch_size
from aegispay.infra.events.sqlite import decode_row as decode
from aegispay.infra.postgres import Connection, PostgresDatabase
from aegispay.orchestration.ports import Clock, Projector, RecordedEvent

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS streams (
        seq BIGSERIAL PRIMARY KEY,
        stream_id TEXT NOT NULL UNIQUE
    )""",
    """CREATE TABLE IF NOT EXISTS events (
        position BIGSERIAL PRIMARY KEY,
        stream_id TEXT NOT NULL REFERENCES streams (stream_id),
        version INTEGER NOT NULL,
        type TEXT NOT NULL,
        data TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        hash TEXT NOT NULL,
        UNIQUE (stream_id, version)
    )""",
    # One row, written when the store is created: the chain key's fingerprint, "" for no key.
    """CREATE TABLE IF NOT EXISTS chain_key (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        fingerprint TEXT NOT NULL
    )""",
)

HEAD = "SELECT version, hash FROM events WHERE stream_id = %s ORDER BY version DESC LIMIT 1"
COLUMNS = "position, stream_id, version, type, data, recorded_at, hash"
# Each row with its predecessor's stored hash (NULL when that version is missing), through the
# UNIQUE (stream_id, version) index: a scan checks every link in constant memory.
SELECT_LINKED = """
    SELECT e.position, e.stream_id, e.version, e.type, e.data, e.recorded_at, e.hash,
           CASE WHEN e.version = 1 THEN %s ELSE before.hash END
    FROM events AS e
    LEFT JOIN events AS before
      ON before.stream_id = e.stream_id AND before.version = e.version - 1
    WHERE e.position > %s ORDER BY e.position LIMIT %s
"""
# An append that waited lock_timeout for the table lock wrote nothing: it is tried again, a few
# times with backoff, before the caller hears of it.
LOCK_ATTEMPTS = 4
INSERT = (
    "INSERT INTO events (stream_id, version, type, data, recorded_at, hash)"
    " VALUES (%s, %s, %s, %s, %s, %s)"
)


class PostgresEventStore:
    """Events in one table, fenced by UNIQUE(stream_id, version), chained by hash, positions
    committed in order under a table lock; streams in creation order.

    `read_all_batch` is how many rows read_all fetches per query. `key` keys the chain
    (HMAC-SHA256), as for SQLiteEventStore: a schema records its fingerprint when created.
    """

    def __init__(
        self,
        database: PostgresDatabase,
        clock: Clock,
        *,
        read_all_batch: int = READ_ALL_BATCH,
        key: bytes | None = None,
    ) -> None:
        # Checked before the schema is created: a bad setting fails without touching the server.
        self._read_all_batch = read_all_batch_size(read_all_batch)
        self.database = database
        self._clock = clock
        self._chain = Chain(key)
        database.create(SCHEMA)
        self._settle_key()

    def read(self, stream_id: str) -> list[RecordedEvent]:
        """Return a stream's events in version order; raise EventIntegrityError on any damage."""
        return self._chain.verified(stream_id, self._rows_of(stream_id), decode)

    def read_unverified(self, stream_id: str) -> list[RecordedEvent]:
        """Return the rows of a stream that parse, in version order, without the chain checks."""
        return readable(self._rows_of(stream_id), decode)

    def _rows_of(self, stream_id: str) -> list[Row]:
        with self.database.connection() as conn:
            rows = conn.execute(
                f"SELECT {COLUMNS} FROM events WHERE stream_id = %s ORDER BY version", (stream_id,)
            ).fetchall()
        return [_row(row) for row in rows]

    def append(
        self,
        stream_id: str,
        events: Sequence[PaymentEvent],
        expected_version: int,
        project: Projector | None = None,
    ) -> int:
        """Append all events if the stream is at `expected_version`, else ConcurrencyError.

        `project` writes the projection row in the same transaction, inside a savepoint: an
        Exception there undoes the row only (the events commit, recovery repairs the row); a
        crash rolls both back.
        """
        payloads = [(event.type, event_to_json(event)) for event in events]
        recorded_at = self._clock.now().isoformat()
        retrying = Retrying(
            retry=retry_if_exception_type(psycopg.errors.LockNotAvailable),
            stop=stop_after_attempt(LOCK_ATTEMPTS),
            wait=wait_exponential_jitter(multiplier=0.05, max=1.0, jitter=0.05),
            sleep=self._clock.sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt, self.database.transaction() as conn:
                    self.write(conn, stream_id, payloads, expected_version, recorded_at)
                    if project is not None:
                        # The projector counted and logged its failure; the savepoint undid it.
                        with contextlib.suppress(Exception), conn.transaction():
                            project()
        except psycopg.errors.UniqueViolation as error:
            # Unreachable for writers that take the table lock; the last fence for any that do not.
            with self.database.connection() as conn:
                actual, _ = _head(conn, stream_id)
            raise ConcurrencyError(stream_id, expected_version, actual) from error
        return expected_version + len(payloads)

    def write(
        self,
        conn: Connection,
        stream_id: str,
        payloads: Sequence[tuple[str, str]],
        expected_version: int,
        recorded_at: str,
    ) -> None:
        """Check the version and insert the rows inside the caller's transaction on `conn`, so
        other writes (a projection row, a queue entry) may commit with the events."""
        if payloads:
            # Held to commit: the next writer draws its positions after ours are visible.
            conn.execute("LOCK TABLE events IN EXCLUSIVE MODE")
        actual, previous = _head(conn, stream_id)
        if actual != expected_version:
            raise ConcurrencyError(stream_id, expected_version, actual)
        if not payloads:
            return
        rows = []
        for version, (type_, data) in enumerate(payloads, start=expected_version + 1):
            previous = self._chain.hash(previous, stream_id, version, type_, data)
            rows.append((stream_id, version, type_, data, recorded_at, previous))
        conn.execute(
            "INSERT INTO streams (stream_id) VALUES (%s) ON CONFLICT DO NOTHING", (stream_id,)
        )
        # One statement for all rows, not executemany: psycopg pipelines that without a Sync,
        # so a process stopped right after it would hold the table lock with the server's
        # idle_in_transaction_session_timeout never armed.
        more = ", (%s, %s, %s, %s, %s, %s)" * (len(rows) - 1)
        conn.execute(INSERT + more, [value for row in rows for value in row])

    def read_all(self, after_position: int = 0) -> Iterator[RecordedEvent]:
        """Yield every event after a global position, in order, a batch per query; each is
        checked against its predecessor in its stream."""
        while True:
            with self.database.connection() as conn:
                rows = conn.execute(
                    SELECT_LINKED, (GENESIS, after_position, self._read_all_batch)
                ).fetchall()
            for linked in rows:
                recorded = decode(_row(linked))
                before = None if linked[7] is None else str(linked[7])
                self._chain.check_link(recorded, str(linked[4]), before)
                yield recorded
            if len(rows) < self._read_all_batch:
                return
            after_position = int(rows[-1][0])

    def last_position(self) -> int:
        """Return the global position of the newest event (0 when empty)."""
        with self.database.connection() as conn:
            row = conn.execute("SELECT COALESCE(MAX(position), 0) FROM events").fetchone()
        return 0 if row is None else int(row[0])

    def streams_since(self, after_position: int) -> dict[str, int]:
        """Return each stream written after a position with its newest version; parses nothing."""
        with self.database.connection() as conn:
            rows = conn.execute(
                "SELECT stream_id, MAX(version) FROM events WHERE position > %s GROUP BY stream_id",
                (after_position,),
            ).fetchall()
        return {str(stream_id): int(version) for stream_id, version in rows}

    def stream_ids_after(self, after: str = "", limit: int = 1000) -> list[str]:
        """Return a page of stream ids greater than `after`, in id order."""
        with self.database.connection() as conn:
            rows = conn.execute(
                "SELECT stream_id FROM streams WHERE stream_id > %s ORDER BY stream_id LIMIT %s",
                (after, limit),
            ).fetchall()
        return [str(stream_id) for (stream_id,) in rows]

    def stream_ids(self) -> list[str]:
        """Return stream ids in order of creation."""
        with self.database.connection() as conn:
            rows = conn.execute("SELECT stream_id FROM streams ORDER BY seq").fetchall()
        return [str(stream_id) for (stream_id,) in rows]

    def close(self) -> None:
        """Close the pool (the database is this store's alone when opened by URL)."""
        self.database.close()

    def _settle_key(self) -> None:
        """Record a new schema's chain key fingerprint, or raise ChainKeyRefused if this
        store's chain is not the one the schema was made with (see chain.decide_key)."""
        with self.database.connection() as conn:
            _check_columns(conn)
            recorded = _recorded_key(conn)
            if recorded is not None:
                decide_key(self._chain, recorded, has_events=True)
                return
            found = conn.execute("SELECT EXISTS (SELECT 1 FROM events)").fetchone()
            fingerprint = decide_key(self._chain, None, bool(found and found[0]))
            if fingerprint is None:
                return
            # Two processes creating the schema at once: the first row stays, and each checks
            # its own chain against that one.
            conn.execute(
                "INSERT INTO chain_key (id, fingerprint) VALUES (1, %s) ON CONFLICT DO NOTHING",
                (fingerprint,),
            )
            decide_key(self._chain, _recorded_key(conn), has_events=True)


def _head(conn: Connection, stream_id: str) -> tuple[int, str]:
    """Return a stream's last version and hash ((0, GENESIS) for a new stream), by the index."""
    row = conn.execute(HEAD, (stream_id,)).fetchone()
    return (0, GENESIS) if row is None else (int(row[0]), str(row[1]))


def _check_columns(conn: Connection) -> None:
    """Raise InvalidRequest unless the events table has every column a read selects."""
    # The schema records that its tables were made (see PostgresDatabase.create): a column
    # gone since was dropped by hand, and every read would fail on it.
    try:
        conn.execute(f"SELECT {COLUMNS} FROM events LIMIT 0")
    except psycopg.errors.UndefinedColumn as error:
        raise InvalidRequest(
            "store", f"its events table was altered ({error.diag.message_primary})"
        ) from None


def _recorded_key(conn: Connection) -> str | None:
    try:
        row = conn.execute("SELECT fingerprint FROM chain_key").fetchone()
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn):
        # As above: a chain_key table dropped or altered by hand.
        raise ChainKeyRefused(
            "store", "its chain_key table was dropped or altered: its record of the key is gone"
        ) from None
    return None if row is None else str(row[0])


def _row(row: tuple[object, ...]) -> Row:
    position, stream_id, version, type_, data, recorded_at, hash_ = row[:7]
    return (
        int(str(position)),
        str(stream_id),
        int(str(version)),
        str(type_),
        str(data),
        str(recorded_at),
        str(hash_),
    )
