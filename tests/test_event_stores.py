"""The EventStore contract run against each adapter, plus what only the SQLite store can show."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest

import aegispay.infra.events.sqlite as sqlite_events
from aegispay.domain.errors import ConcurrencyError, EventContinuityError, EventIntegrityError
from aegispay.domain.events import PaymentEvent, event_from_json, event_to_json
from aegispay.infra.clock import VirtualClock
from aegispay.infra.events.chain import GENESIS
from aegispay.infra.events.memory import InMemoryEventStore
from aegispay.infra.events.sqlite import SQLiteEventStore
from aegispay.infra.sqlite import ThreadConnections, connect, immediate
from aegispay.orchestration.ports import EventStore
from tests.contracts.event_store_contract import EventStoreContract
from tests.factories import authenticated, initiated, opening

FILE = "events.db"
# Bounds for waits on child processes: reached only when one died, never in a healthy run.
PROCESS_TIMEOUT = 60.0


def write_raw(path: Path, sql: str, *params: object) -> None:
    """Change the file behind the store's back, as a bug or a bad disk would."""
    conn = connect(str(path))
    try:
        conn.execute(sql, params)
    finally:
        conn.close()


def read_raw_versions(path: Path, stream_id: str) -> list[int]:
    """Read a stream's stored versions straight from the table."""
    conn = connect(str(path))
    try:
        rows = conn.execute(
            "SELECT version FROM events WHERE stream_id = ? ORDER BY version", (stream_id,)
        )
        return [version for (version,) in rows]
    finally:
        conn.close()


def append_first_event(path: str, contender: int, barrier: Any, outcomes: Any) -> None:
    """In a child process: open the store, wait for the rival, then append at version 0."""
    store = SQLiteEventStore(path, VirtualClock())
    try:
        barrier.wait()
        store.append("pay_shared", [authenticated("pay_shared", second=contender)], 0)
        outcomes.put("appended")
    except ConcurrencyError:
        outcomes.put("ConcurrencyError")
    except Exception as error:  # reported, so the parent fails with the child's reason
        outcomes.put(repr(error))
    finally:
        store.close()


class StaleHeadStore(SQLiteEventStore):
    """A SQLite store whose first head read returns `stale`, as a writer that checked the
    version outside the write lock would see; later reads are real."""

    def __init__(self, path: str, clock: VirtualClock, *, stale: tuple[int, str]) -> None:
        super().__init__(path, clock)
        self._stale: tuple[int, str] | None = stale

    def _head(self, conn: sqlite3.Connection, stream_id: str) -> tuple[int, str]:
        if self._stale is not None:
            head, self._stale = self._stale, None
            return head
        return super()._head(conn, stream_id)


class TestInMemoryEventStore(EventStoreContract):
    def make_store(self, tmp_path: Path, clock: VirtualClock) -> EventStore:
        return InMemoryEventStore(clock)

    # The memory store's two structures stand for its table and its unique index: a tamper
    # edits both, as a changed row in SQLite changes the row and its index entry.

    def tamper(
        self, store: EventStore, tmp_path: Path, stream_id: str, version: int, /, **columns: object
    ) -> None:
        memory = cast(InMemoryEventStore, store)
        stream = memory._streams[stream_id]
        row = stream.pop(version)
        data = columns.get("data")
        changed = replace(
            row,
            version=cast(int, columns.get("version", row.version)),
            hash=cast(str, columns.get("hash", row.hash)),
            event=row.event if data is None else event_from_json(cast(str, data)),
        )
        stream[changed.version] = changed
        memory._rows[row.position - 1] = changed

    def tamper_delete(
        self, store: EventStore, tmp_path: Path, stream_id: str, version: int
    ) -> None:
        memory = cast(InMemoryEventStore, store)
        row = memory._streams[stream_id].pop(version)
        memory._rows[row.position - 1] = None

    def test_read_all_reports_a_stream_gone_from_the_index_as_damage(
        self, store: EventStore
    ) -> None:
        memory = cast(InMemoryEventStore, store)
        memory.append("pay_a", opening("pay_a"), 0)
        del memory._streams["pay_a"]
        with pytest.raises(EventIntegrityError, match="pay_a"):
            list(memory.read_all())

    def test_read_all_reports_a_row_moved_to_version_zero_of_another_stream_as_damage(
        self, store: EventStore
    ) -> None:
        memory = cast(InMemoryEventStore, store)
        memory.append("pay_a", opening("pay_a"), 0)
        row = memory._streams["pay_a"].pop(2)
        moved = replace(row, stream_id="pay_x", version=0)
        memory._streams["pay_x"] = {0: moved}
        memory._rows[row.position - 1] = moved
        with pytest.raises(EventIntegrityError):
            list(memory.read_all())


class TestSQLiteEventStore(EventStoreContract):
    def make_store(self, tmp_path: Path, clock: VirtualClock) -> EventStore:
        return SQLiteEventStore(str(tmp_path / FILE), clock)

    def tamper(
        self, store: EventStore, tmp_path: Path, stream_id: str, version: int, /, **columns: object
    ) -> None:
        assignments = ", ".join(f"{column} = ?" for column in columns)
        write_raw(
            tmp_path / FILE,
            f"UPDATE events SET {assignments} WHERE stream_id = ? AND version = ?",
            *columns.values(),
            stream_id,
            version,
        )

    def tamper_delete(
        self, store: EventStore, tmp_path: Path, stream_id: str, version: int
    ) -> None:
        write_raw(
            tmp_path / FILE,
            "DELETE FROM events WHERE stream_id = ? AND version = ?",
            stream_id,
            version,
        )

    def test_the_file_is_in_wal_mode(self, store: EventStore, tmp_path: Path) -> None:
        conn = sqlite3.connect(tmp_path / FILE)
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        finally:
            conn.close()

    def test_a_version_gap_written_into_the_table_raises_event_continuity_error(
        self, store: EventStore, tmp_path: Path
    ) -> None:
        store.append("pay_1", [initiated("pay_1")], expected_version=0)
        write_raw(
            tmp_path / FILE,
            "INSERT INTO events (stream_id, version, type, data, recorded_at, hash)"
            " VALUES (?, 3, ?, ?, '', '')",
            "pay_1",
            "ProcessingStarted",
            opening("pay_1")[2].model_dump_json(),
        )
        with pytest.raises(EventContinuityError, match="expected 2, found 3") as raised:
            store.read("pay_1")
        assert raised.value.stream_id == "pay_1"

    def test_a_corrupt_row_raises_naming_stream_version_and_position_and_others_still_read(
        self, store: EventStore, tmp_path: Path
    ) -> None:
        store.append("pay_a", opening("pay_a"), expected_version=0)
        store.append("pay_b", opening("pay_b"), expected_version=0)
        write_raw(
            tmp_path / FILE,
            "UPDATE events SET data = '{not json' WHERE stream_id = 'pay_a' AND version = 2",
        )
        with pytest.raises(EventContinuityError) as raised:
            store.read("pay_a")
        message = str(raised.value)
        assert "pay_a" in message
        assert "version 2" in message
        assert "position 2" in message
        assert [r.event for r in store.read("pay_b")] == opening("pay_b")

    @pytest.mark.parametrize(
        "data",
        [
            '{"type": "PaymentAuthenticated"}',
            '{"type": "NoSuchEvent", "payment_id": "pay_a", "occurred_at": "2026-01-01T12:00Z"}',
            "42",
        ],
    )
    def test_a_row_that_fails_validation_is_unreadable(
        self, store: EventStore, tmp_path: Path, data: str
    ) -> None:
        store.append("pay_a", opening("pay_a"), expected_version=0)
        write_raw(tmp_path / FILE, "UPDATE events SET data = ? WHERE version = 2", data)
        with pytest.raises(EventContinuityError, match="version 2"):
            store.read("pay_a")

    def test_a_row_whose_type_column_disagrees_with_its_data_is_unreadable(
        self, store: EventStore, tmp_path: Path
    ) -> None:
        store.append("pay_a", opening("pay_a"), expected_version=0)
        write_raw(tmp_path / FILE, "UPDATE events SET type = 'PaymentFailed' WHERE version = 3")
        with pytest.raises(EventContinuityError, match="type column says 'PaymentFailed'"):
            store.read("pay_a")

    def test_read_all_halts_at_a_corrupt_row_instead_of_skipping_it(
        self, store: EventStore, tmp_path: Path
    ) -> None:
        store.append("pay_a", opening("pay_a"), expected_version=0)
        write_raw(tmp_path / FILE, "UPDATE events SET data = '' WHERE version = 2")
        events = store.read_all()
        assert next(events).version == 1
        with pytest.raises(EventContinuityError, match="position 2"):
            next(events)

    def test_read_all_fetches_in_batches_without_losing_or_repeating_events(
        self, tmp_path: Path
    ) -> None:
        store = SQLiteEventStore(str(tmp_path / FILE), VirtualClock(), read_all_batch=2)
        try:
            for n in range(4):
                store.append(f"pay_{n}", opening(f"pay_{n}"), expected_version=0)
            assert [r.position for r in store.read_all()] == list(range(1, 13))
            assert [r.position for r in store.read_all(after_position=5)] == list(range(6, 13))
        finally:
            store.close()

    @pytest.mark.parametrize("batch", [0, -1, True, 2.5, "500", None])
    def test_a_read_all_batch_that_is_not_a_positive_int_is_refused_before_the_file_is_made(
        self, tmp_path: Path, batch: object
    ) -> None:
        with pytest.raises(ValueError, match=r"read_all_batch: must be a positive int \(got "):
            SQLiteEventStore(str(tmp_path / FILE), VirtualClock(), read_all_batch=cast(Any, batch))
        assert not (tmp_path / FILE).exists()

    def test_a_unique_violation_becomes_a_concurrency_error_and_rolls_back_the_whole_batch(
        self, store: EventStore, tmp_path: Path
    ) -> None:
        """A writer whose version check was fooled is still stopped by the UNIQUE constraint."""
        store.append("pay_1", opening("pay_1")[:1], expected_version=0)
        write_raw(
            tmp_path / FILE,
            "INSERT INTO events (stream_id, version, type, data, recorded_at, hash)"
            " VALUES (?, 3, ?, ?, '', '')",
            "pay_1",
            "ProcessingStarted",
            opening("pay_1")[2].model_dump_json(),
        )
        fooled = StaleHeadStore(str(tmp_path / FILE), VirtualClock(), stale=(1, GENESIS))
        try:
            with pytest.raises(ConcurrencyError) as raised:
                fooled.append("pay_1", opening("pay_1")[1:], expected_version=1)
        finally:
            fooled.close()
        assert raised.value.__cause__ is not None
        # After the rollback the error reports the head as it really is.
        assert (raised.value.expected, raised.value.actual) == (1, 3)
        assert read_raw_versions(tmp_path / FILE, "pay_1") == [1, 3]

    @pytest.mark.slow
    def test_two_processes_appending_at_version_zero_exactly_one_wins(
        self, store: EventStore, tmp_path: Path
    ) -> None:
        context = multiprocessing.get_context("spawn")
        barrier = context.Barrier(2, timeout=PROCESS_TIMEOUT)
        outcomes = context.Queue()
        processes = [
            context.Process(
                target=append_first_event, args=(str(tmp_path / FILE), n, barrier, outcomes)
            )
            for n in range(2)
        ]
        for process in processes:
            process.start()
        results = sorted(outcomes.get(timeout=PROCESS_TIMEOUT) for _ in processes)
        for process in processes:
            process.join(timeout=PROCESS_TIMEOUT)
        assert results == ["ConcurrencyError", "appended"]
        assert [r.version for r in store.read("pay_shared")] == [1]

    def test_events_survive_closing_and_reopening_the_file(self, tmp_path: Path) -> None:
        first = SQLiteEventStore(str(tmp_path / FILE), VirtualClock())
        first.append("pay_1", opening("pay_1"), expected_version=0)
        first.close()
        reopened = SQLiteEventStore(str(tmp_path / FILE), VirtualClock())
        try:
            assert [r.event for r in reopened.read("pay_1")] == opening("pay_1")
            assert reopened.stream_ids() == ["pay_1"]
            assert reopened.append("pay_1", [], expected_version=3) == 3
        finally:
            reopened.close()

    def test_a_closed_store_refuses_to_work(self, tmp_path: Path) -> None:
        store = SQLiteEventStore(str(tmp_path / FILE), VirtualClock())
        store.close()
        with pytest.raises(sqlite3.ProgrammingError):
            store.read("pay_1")


class TestSQLiteConnections:
    def test_a_connection_uses_wal_synchronous_full_a_busy_timeout_and_foreign_keys(
        self, tmp_path: Path
    ) -> None:
        conn = connect(str(tmp_path / FILE))
        try:
            pragma = {
                name: conn.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
            }
        finally:
            conn.close()
        # synchronous reports a number: 2 is FULL.
        assert pragma == {
            "journal_mode": "wal",
            "synchronous": 2,
            "busy_timeout": 30_000,
            "foreign_keys": 1,
        }

    def test_closing_the_holder_closes_the_connection_of_every_thread(self, tmp_path: Path) -> None:
        holder = ThreadConnections(str(tmp_path / FILE))
        with ThreadPoolExecutor(max_workers=1) as pool:
            other = pool.submit(holder.get).result()
        mine = holder.get()
        assert mine is not other
        holder.close()
        for conn in (mine, other):
            with pytest.raises(sqlite3.ProgrammingError):
                conn.execute("SELECT 1")

    def test_each_thread_keeps_its_own_connection(self, tmp_path: Path) -> None:
        holder = ThreadConnections(str(tmp_path / FILE))
        try:
            assert holder.get() is holder.get()
            seen: list[sqlite3.Connection] = []
            thread = threading.Thread(target=lambda: seen.append(holder.get()))
            thread.start()
            thread.join()
            assert seen[0] is not holder.get()
        finally:
            holder.close()

    def test_immediate_rolls_back_when_the_block_raises(self, tmp_path: Path) -> None:
        conn = connect(str(tmp_path / FILE))
        try:
            conn.execute("CREATE TABLE t (x INTEGER)")
            with pytest.raises(RuntimeError), immediate(conn):
                conn.execute("INSERT INTO t VALUES (1)")
                raise RuntimeError("boom")
            with immediate(conn):
                conn.execute("INSERT INTO t VALUES (2)")
            assert conn.execute("SELECT x FROM t").fetchall() == [(2,)]
            assert not conn.in_transaction
        finally:
            conn.close()


def test_streams_since_searches_the_position_range_instead_of_scanning_history(
    tmp_path: Path,
) -> None:
    """Recovery's repair step must cost the events since the checkpoint, not all events."""
    store = SQLiteEventStore(str(tmp_path / "events.db"), VirtualClock())
    store.append("pay_1", opening("pay_1"), 0)
    conn = sqlite3.connect(tmp_path / "events.db")
    plan = " ".join(
        row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sqlite_events.STREAMS_SINCE}", (0,))
    )
    assert "SEARCH events USING INTEGER PRIMARY KEY" in plan
    assert store.streams_since(0) == {"pay_1": 3}
    assert store.streams_since(3) == {}


# The tables as they were before the hash chain: a file made then must open without loss.
PRE_CHAIN_SCHEMA = (
    "CREATE TABLE streams (seq INTEGER PRIMARY KEY AUTOINCREMENT, stream_id TEXT NOT NULL UNIQUE)",
    """CREATE TABLE events (
        position INTEGER PRIMARY KEY AUTOINCREMENT,
        stream_id TEXT NOT NULL REFERENCES streams (stream_id),
        version INTEGER NOT NULL,
        type TEXT NOT NULL,
        data TEXT NOT NULL,
        UNIQUE (stream_id, version)
    )""",
)


def write_pre_chain_file(path: Path, streams: dict[str, list[PaymentEvent]]) -> None:
    """Write a file as the store wrote it before events had a hash or a time of writing."""
    conn = connect(str(path))
    try:
        for statement in PRE_CHAIN_SCHEMA:
            conn.execute(statement)
        for stream_id, events in streams.items():
            conn.execute("INSERT INTO streams (stream_id) VALUES (?)", (stream_id,))
            conn.executemany(
                "INSERT INTO events (stream_id, version, type, data) VALUES (?, ?, ?, ?)",
                [(stream_id, v, e.type, event_to_json(e)) for v, e in enumerate(events, start=1)],
            )
    finally:
        conn.close()


def test_a_file_made_before_the_hash_chain_is_upgraded_on_open_without_losing_an_event(
    tmp_path: Path,
) -> None:
    streams = {"pay_a": opening("pay_a"), "pay_b": opening("pay_b")[:2]}
    write_pre_chain_file(tmp_path / FILE, streams)
    store = SQLiteEventStore(str(tmp_path / FILE), VirtualClock())
    try:
        assert store.upgraded_events == 5
        for stream_id, events in streams.items():
            recorded = store.read(stream_id)
            assert [r.event for r in recorded] == events
            # Written before anyone noted the time of writing: the event's own time stands in.
            assert [r.recorded_at for r in recorded] == [e.occurred_at for e in events]
        assert [r.position for r in store.read_all()] == [1, 2, 3, 4, 5]
        assert store.append("pay_b", opening("pay_b")[2:], expected_version=2) == 3
        assert [r.event for r in store.read("pay_b")] == opening("pay_b")
    finally:
        store.close()


def test_an_upgraded_file_is_not_upgraded_again_and_later_edits_are_caught(tmp_path: Path) -> None:
    write_pre_chain_file(tmp_path / FILE, {"pay_a": opening("pay_a")})
    SQLiteEventStore(str(tmp_path / FILE), VirtualClock()).close()
    store = SQLiteEventStore(str(tmp_path / FILE), VirtualClock())
    try:
        assert store.upgraded_events == 0
        edited = initiated("pay_a", minor=1)
        write_raw(
            tmp_path / FILE, "UPDATE events SET data = ? WHERE version = 1", event_to_json(edited)
        )
        with pytest.raises(EventIntegrityError, match="hash mismatch") as raised:
            store.read("pay_a")
        assert raised.value.version == 1
    finally:
        store.close()


def test_an_append_reads_the_streams_last_hash_through_the_unique_index(tmp_path: Path) -> None:
    """The chain must not make appends cost the length of the stream or of history."""
    store = SQLiteEventStore(str(tmp_path / FILE), VirtualClock())
    store.close()
    conn = sqlite3.connect(tmp_path / FILE)
    try:
        plan = " ".join(
            row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sqlite_events.HEAD}", ("pay_1",))
        )
    finally:
        conn.close()
    assert "USING INDEX sqlite_autoindex_events_1 (stream_id=?)" in plan
    assert "TEMP B-TREE" not in plan
