"""A SQLite event store: durable streams in one file, shared safely by threads and processes."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence

from pydantic import ValidationError

from aegispay.domain.errors import ConcurrencyError, EventContinuityError
from aegispay.domain.events import PaymentEvent, event_from_json, event_to_json
from aegispay.infra.sqlite import ThreadConnections, immediate
from aegispay.orchestration.ports import RecordedEvent

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
        UNIQUE (stream_id, version)
    )""",
)

# Rows fetched per query by read_all, so a long history never sits in memory at once.
READ_ALL_BATCH = 500

# NOT INDEXED: otherwise SQLite serves the GROUP BY by walking the whole (stream_id, version)
# index, which grows with history; this way it searches the position range only.
STREAMS_SINCE = (
    "SELECT stream_id, MAX(version) FROM events NOT INDEXED WHERE position > ? GROUP BY stream_id"
)

Row = tuple[int, str, int, str, str]
SELECT_ROW = "SELECT position, stream_id, version, type, data FROM events"


class SQLiteEventStore:
    """Events in one table, fenced by UNIQUE(stream_id, version); streams in creation order."""

    def __init__(self, path: str) -> None:
        self._connections = ThreadConnections(path)
        with immediate(self._connections.get()) as conn:
            for statement in SCHEMA:
                conn.execute(statement)

    def read(self, stream_id: str) -> list[RecordedEvent]:
        """Return a stream's events in version order; raise on a version gap or a bad row."""
        rows: list[Row] = (
            self._connections.get()
            .execute(f"{SELECT_ROW} WHERE stream_id = ? ORDER BY version", (stream_id,))
            .fetchall()
        )
        events = []
        for expected, row in enumerate(rows, start=1):
            position, _, version, _, _ = row
            if version != expected:
                raise EventContinuityError(
                    stream_id,
                    f"version gap: expected {expected}, found {version} at position {position}",
                )
            events.append(_decode(row))
        return events

    def append(self, stream_id: str, events: Sequence[PaymentEvent], expected_version: int) -> int:
        """Append all events if the stream is at `expected_version`, else ConcurrencyError."""
        rows = [
            (stream_id, expected_version + offset, event.type, event_to_json(event))
            for offset, event in enumerate(events, start=1)
        ]
        conn = self._connections.get()
        try:
            with immediate(conn):
                actual = _current_version(conn, stream_id)
                if actual != expected_version:
                    raise ConcurrencyError(stream_id, expected_version, actual)
                if rows:
                    conn.execute(
                        "INSERT OR IGNORE INTO streams (stream_id) VALUES (?)", (stream_id,)
                    )
                    conn.executemany(
                        "INSERT INTO events (stream_id, version, type, data) VALUES (?, ?, ?, ?)",
                        rows,
                    )
        except sqlite3.IntegrityError as error:
            # The version check above is the fence for writers that use BEGIN IMMEDIATE; the
            # UNIQUE constraint is the last fence for any writer that did not. Either way the
            # whole batch has been rolled back.
            if error.sqlite_errorname != "SQLITE_CONSTRAINT_UNIQUE":
                raise
            actual = _current_version(conn, stream_id)
            raise ConcurrencyError(stream_id, expected_version, actual) from error
        return expected_version + len(rows)

    def read_all(self, after_position: int = 0) -> Iterator[RecordedEvent]:
        """Yield every event after a global position, in order, fetching a batch at a time."""
        # SQLite lets one writer commit at a time, so positions become visible in order: a
        # reader past position p never misses a smaller position that commits later.
        while True:
            rows: list[Row] = (
                self._connections.get()
                .execute(
                    f"{SELECT_ROW} WHERE position > ? ORDER BY position LIMIT ?",
                    (after_position, READ_ALL_BATCH),
                )
                .fetchall()
            )
            for row in rows:
                yield _decode(row)
            if len(rows) < READ_ALL_BATCH:
                return
            after_position = rows[-1][0]

    def last_position(self) -> int:
        """Return the global position of the newest event (0 when empty)."""
        row = self._connections.get().execute("SELECT COALESCE(MAX(position), 0) FROM events")
        return int(row.fetchone()[0])

    def streams_since(self, after_position: int) -> dict[str, int]:
        """Return each stream written after a position with its newest version; parses nothing."""
        rows = self._connections.get().execute(STREAMS_SINCE, (after_position,))
        return {stream_id: int(version) for stream_id, version in rows}

    def stream_ids(self) -> list[str]:
        """Return stream ids in order of creation."""
        rows = self._connections.get().execute("SELECT stream_id FROM streams ORDER BY seq")
        return [stream_id for (stream_id,) in rows]

    def close(self) -> None:
        """Close every thread's connection to the file."""
        self._connections.close()


def _current_version(conn: sqlite3.Connection, stream_id: str) -> int:
    """Return a stream's last version (0 for a new stream), read through the UNIQUE index."""
    row = conn.execute(
        "SELECT COALESCE(MAX(version), 0) FROM events WHERE stream_id = ?", (stream_id,)
    ).fetchone()
    return int(row[0])


def _decode(row: Row) -> RecordedEvent:
    """Turn a stored row into a RecordedEvent, or raise EventContinuityError naming the row."""
    position, stream_id, version, type_, data = row
    where = f"unreadable event at version {version} (position {position})"
    try:
        event = event_from_json(data)
    except ValidationError as error:
        raise EventContinuityError(stream_id, f"{where}: {_describe(error)}") from error
    if event.type != type_:
        raise EventContinuityError(
            stream_id, f"{where}: type column says {type_!r}, data says {event.type!r}"
        )
    return RecordedEvent(stream_id, version, position, event)


def _describe(error: ValidationError) -> str:
    """Summarise a validation error on one line: each failing field and what was wrong."""
    problems = (
        f"{'.'.join(map(str, e['loc']))}: {e['msg']}" if e["loc"] else e["msg"]
        for e in error.errors(include_url=False)
    )
    return "; ".join(problems)
