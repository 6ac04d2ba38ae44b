"""A SQLite event store: durable streams in one file, shared safely by threads and processes."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from datetime import datetime

from pydantic import ValidationError

from aegispay.domain.errors import ConcurrencyError, EventIntegrityError
from aegispay.domain.events import PaymentEvent, event_from_json, event_to_json
from aegispay.infra.events.chain import (
    GENESIS,
    Chain,
    ChainKeyRefused,
    decide_key,
    readable,
)
from aegispay.infra.sqlite import ThreadConnections, immediate
from aegispay.orchestration.ports import Clock, Projector, RecordedEvent

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS streams (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        stream_id TEXT NOT NULL UNIQUE
    )""",
    """CREATE TABLE IF NOT EXISTS events (
        position INTEGER PRIMARY KEY AUTOINCREMENT,
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
# A file made before the hash chain has neither column; opening it adds them (see _upgrade).
UPGRADE = (
    "ALTER TABLE events ADD COLUMN recorded_at TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE events ADD COLUMN hash TEXT NOT NULL DEFAULT ''",
)

# Rows fetched per query by read_all by default, so a long history never sits in memory at once.
READ_ALL_BATCH = 500

# NOT INDEXED: otherwise SQLite serves the GROUP BY by walking the whole (stream_id, version)
# index, which grows with history; this way it searches the position range only.
STREAMS_SINCE = (
    "SELECT stream_id, MAX(version) FROM events NOT INDEXED WHERE position > ? GROUP BY stream_id"
)

# A stream's last version and hash, through the UNIQUE (stream_id, version) index.
HEAD = "SELECT version, hash FROM events WHERE stream_id = ? ORDER BY version DESC LIMIT 1"

# INSERT OR IGNORE: a stream whose events were all lost (a damaged file) keeps its place.
INSERT_STREAM = "INSERT OR IGNORE INTO streams (stream_id) VALUES (?)"
RECORDED_KEY = "SELECT fingerprint FROM chain_key"
RECORD_KEY = "INSERT INTO chain_key (id, fingerprint) VALUES (1, ?) ON CONFLICT DO NOTHING"
HAS_EVENTS = "SELECT EXISTS (SELECT 1 FROM events)"
INSERT_EVENT = (
    "INSERT INTO events (stream_id, version, type, data, recorded_at, hash)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)

Row = tuple[int, str, int, str, str, str, str]
COLUMNS = "position, stream_id, version, type, data, recorded_at, hash"
SELECT_ROW = f"SELECT {COLUMNS} FROM events"
# Each row with its predecessor's stored hash (NULL when that version is missing), found
# through the UNIQUE (stream_id, version) index: a scan checks every link in constant memory.
SELECT_LINKED = """
    SELECT e.position, e.stream_id, e.version, e.type, e.data, e.recorded_at, e.hash,
           CASE WHEN e.version = 1 THEN ? ELSE before.hash END
    FROM events AS e
    LEFT JOIN events AS before
      ON before.stream_id = e.stream_id AND before.version = e.version - 1
    WHERE e.position > ? ORDER BY e.position LIMIT ?
"""


def read_all_batch_size(value: int) -> int:
    """Return `value` if it is a usable read_all batch size (an int of at least 1), else raise
    ValueError; shared by the SQL event stores."""
    # bool is an int to Python, but True as a batch size is a mistake, not a request for one row.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"read_all_batch: must be a positive int (got {value!r})")
    return value


class SQLiteEventStore:
    """Events in one table, fenced by UNIQUE(stream_id, version), chained by hash; streams in
    creation order.

    `key` keys the chain (HMAC-SHA256): a new file records its fingerprint, and a file made
    with another key, or with none, is refused (ChainKeyRefused), as is a keyed file opened
    without one. `read_all_batch` is how many rows read_all fetches per query. `_head` is a
    protected hook:
    the read of a stream's last version and hash that an append checks and chains from.
    """

    def __init__(
        self,
        path: str,
        clock: Clock,
        *,
        read_all_batch: int = READ_ALL_BATCH,
        key: bytes | None = None,
    ) -> None:
        # Checked before the file is touched: a bad setting fails without creating anything.
        self._read_all_batch = read_all_batch_size(read_all_batch)
        self._clock = clock
        self._chain = Chain(key)
        # Shared with the SQLiteProjectionStore of the same file, so that a projection row can be
        # written in the transaction of its events.
        self.connections = ThreadConnections(path)
        with immediate(self.connections.get()) as conn:
            for statement in SCHEMA:
                conn.execute(statement)
            # A refused key raises here, and the transaction rolls back: nothing is written.
            _settle_key(conn, self._chain)
            # How many events of an older file were given a chain by this open (0 usually).
            self.upgraded_events = _upgrade(conn, self._chain)

    def read(self, stream_id: str) -> list[RecordedEvent]:
        """Return a stream's events in version order; raise EventIntegrityError on any damage."""
        return self._chain.verified(stream_id, self._rows_of(stream_id), decode_row)

    def read_unverified(self, stream_id: str) -> list[RecordedEvent]:
        """Return the rows of a stream that parse, in version order, without the chain checks."""
        return readable(self._rows_of(stream_id), decode_row)

    def _rows_of(self, stream_id: str) -> list[Row]:
        return (
            self.connections.get()
            .execute(f"{SELECT_ROW} WHERE stream_id = ? ORDER BY version", (stream_id,))
            .fetchall()
        )

    def append(
        self,
        stream_id: str,
        events: Sequence[PaymentEvent],
        expected_version: int,
        project: Projector | None = None,
    ) -> int:
        """Append all events if the stream is at `expected_version`, else ConcurrencyError;
        `project` writes its projection row in the same transaction, inside a savepoint."""
        payloads = [(event.type, event_to_json(event)) for event in events]
        recorded_at = self._clock.now().isoformat()
        conn = self.connections.get()
        try:
            with immediate(conn):
                # The stream's last hash is read in the transaction that checks its version, so
                # the chain costs one indexed lookup that the version check made anyway.
                actual, previous = self._head(conn, stream_id)
                if actual != expected_version:
                    raise ConcurrencyError(stream_id, expected_version, actual)
                if not payloads:
                    return actual
                rows = []
                for version, (type_, data) in enumerate(payloads, start=expected_version + 1):
                    previous = self._chain.hash(previous, stream_id, version, type_, data)
                    rows.append((stream_id, version, type_, data, recorded_at, previous))
                if expected_version == 0:
                    # Only a new stream takes its place in creation order.
                    conn.execute(INSERT_STREAM, (stream_id,))
                conn.executemany(INSERT_EVENT, rows)
                if project is not None:
                    _in_savepoint(conn, project)
        except sqlite3.IntegrityError as error:
            # The version check above is the fence for writers that use BEGIN IMMEDIATE; the
            # UNIQUE constraint is the last fence for any writer that did not. Either way the
            # whole batch has been rolled back.
            if error.sqlite_errorname != "SQLITE_CONSTRAINT_UNIQUE":
                raise
            actual, _ = self._head(conn, stream_id)
            raise ConcurrencyError(stream_id, expected_version, actual) from error
        return expected_version + len(payloads)

    def read_all(self, after_position: int = 0) -> Iterator[RecordedEvent]:
        """Yield every event after a global position, in order, fetching a batch at a time; each
        is checked against its predecessor in its stream."""
        # SQLite lets one writer commit at a time, so positions become visible in order: a
        # reader past position p never misses a smaller position that commits later.
        while True:
            rows: list[tuple[int, str, int, str, str, str, str, str | None]] = (
                self.connections.get()
                .execute(SELECT_LINKED, (GENESIS, after_position, self._read_all_batch))
                .fetchall()
            )
            for linked in rows:
                recorded = decode_row(linked[:7])
                self._chain.check_link(recorded, linked[4], linked[7])
                yield recorded
            if len(rows) < self._read_all_batch:
                return
            after_position = rows[-1][0]

    def stream_ids_after(self, after: str = "", limit: int = 1000) -> list[str]:
        """Return a page of stream ids greater than `after`, in id order, by the UNIQUE index."""
        rows = self.connections.get().execute(
            "SELECT stream_id FROM streams WHERE stream_id > ? ORDER BY stream_id LIMIT ?",
            (after, limit),
        )
        return [stream_id for (stream_id,) in rows]

    def last_position(self) -> int:
        """Return the global position of the newest event (0 when empty)."""
        row = self.connections.get().execute("SELECT COALESCE(MAX(position), 0) FROM events")
        return int(row.fetchone()[0])

    def streams_since(self, after_position: int) -> dict[str, int]:
        """Return each stream written after a position with its newest version; parses nothing."""
        rows = self.connections.get().execute(STREAMS_SINCE, (after_position,))
        return {stream_id: int(version) for stream_id, version in rows}

    def stream_ids(self) -> list[str]:
        """Return stream ids in order of creation."""
        rows = self.connections.get().execute("SELECT stream_id FROM streams ORDER BY seq")
        return [stream_id for (stream_id,) in rows]

    def close(self) -> None:
        """Close every thread's connection to the file."""
        self.connections.close()

    def _head(self, conn: sqlite3.Connection, stream_id: str) -> tuple[int, str]:
        """Return a stream's last version and hash ((0, GENESIS) for a new stream), by the index.

        Protected hook: append calls it on `conn` inside its write transaction, to check the
        expected version and to chain the new events, and again after a UNIQUE violation, to
        report the actual version. A subclass may override it to return a stale head, as a
        writer that checked outside the write lock would see, and so show that the UNIQUE
        constraint still stops the append.
        """
        row = conn.execute(HEAD, (stream_id,)).fetchone()
        return (0, GENESIS) if row is None else (int(row[0]), str(row[1]))


def _in_savepoint(conn: sqlite3.Connection, project: Projector) -> None:
    """Run a projection write inside the open transaction; an Exception undoes its writes only."""
    conn.execute("SAVEPOINT projection")
    try:
        project()
    except Exception:
        # The events stay and commit: the row is left for recovery to repair, and the writer
        # has counted its failure. A BaseException (a crash) rolls the whole append back.
        conn.execute("ROLLBACK TO projection")
    conn.execute("RELEASE projection")


def _settle_key(conn: sqlite3.Connection, chain: Chain) -> None:
    """Record a new file's chain key fingerprint, or raise ChainKeyRefused if `chain` is not
    the one the file was made with (see chain.decide_key)."""
    row = conn.execute(RECORDED_KEY).fetchone()
    recorded = None if row is None else str(row[0])
    if recorded is None:
        has_events = bool(conn.execute(HAS_EVENTS).fetchone()[0])
        fingerprint = decide_key(chain, None, has_events)
        if fingerprint is not None:
            conn.execute(RECORD_KEY, (fingerprint,))
        return
    decide_key(chain, recorded, has_events=True)


def _upgrade(conn: sqlite3.Connection, chain: Chain) -> int:
    """Give a file made before the hash chain its columns and a chain; return the events chained.

    Runs inside the caller's BEGIN IMMEDIATE transaction: another process opening the file at the
    same moment waits, then finds the columns there. The chain is computed over the rows as they
    are now, so it proves nothing about edits made before the upgrade, only about later ones.
    """
    columns = {str(row[1]) for row in conn.execute("PRAGMA table_info(events)")}
    if "hash" in columns:
        return 0
    if chain.keyed:
        # A keyed file always had the column: chaining its rows now would seal whatever was
        # edited in them with the key.
        raise ChainKeyRefused(
            "store", "is keyed but its events table has lost its hash column: it was altered"
        )
    for statement in UPGRADE:
        conn.execute(statement)
    chained = 0
    streams = conn.execute("SELECT DISTINCT stream_id FROM events").fetchall()
    for (stream_id,) in streams:
        previous = GENESIS
        rows = conn.execute(
            "SELECT position, version, type, data FROM events WHERE stream_id = ? ORDER BY version",
            (stream_id,),
        ).fetchall()
        hashes = []
        for position, version, type_, data in rows:
            previous = chain.hash(previous, stream_id, version, type_, data)
            hashes.append((previous, position))
        conn.executemany("UPDATE events SET hash = ? WHERE position = ?", hashes)
        chained += len(hashes)
    return chained


def decode_row(row: Row) -> RecordedEvent:
    """Turn a stored row into a RecordedEvent, or raise EventIntegrityError naming the row."""
    position, stream_id, version, type_, data, recorded_at, hash_ = row
    where = f"unreadable event (position {position})"
    try:
        event = event_from_json(data)
    except ValidationError as error:
        raise EventIntegrityError(
            stream_id, version, f"{where}: {_describe(error)}", position
        ) from error
    if event.type != type_:
        raise EventIntegrityError(
            stream_id,
            version,
            f"{where}: type column says {type_!r}, data says {event.type!r}",
            position,
        )
    try:
        # Rows written before the upgrade have no time of writing: their event's time stands in.
        written = datetime.fromisoformat(recorded_at) if recorded_at else event.occurred_at
    except ValueError as error:
        raise EventIntegrityError(
            stream_id, version, f"{where}: recorded_at {recorded_at!r} is not a time", position
        ) from error
    return RecordedEvent(
        stream_id=stream_id,
        version=version,
        position=position,
        recorded_at=written,
        hash=hash_,
        event=event,
    )


def _describe(error: ValidationError) -> str:
    """Summarise a validation error on one line: each failing field and what was wrong."""
    problems = (
        f"{'.'.join(map(str, e['loc']))}: {e['msg']}" if e["loc"] else e["msg"]
        for e in error.errors(include_url=False)
    )
    return "; ".join(problems)
