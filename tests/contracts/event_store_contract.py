"""The EventStore contract: every adapter, in-memory or durable, must pass these tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from aegispay.domain.errors import ConcurrencyError, EventIntegrityError
from aegispay.domain.events import PaymentEvent, event_to_json
from aegispay.infra.clock import VirtualClock
from aegispay.infra.events.chain import GENESIS, chain_hash
from aegispay.orchestration.ports import EventStore
from tests.factories import authenticated, initiated, opening

# Generous bound for a barrier: it only expires when a thread died, so a broken run fails
# instead of hanging; a healthy run never waits on it.
BARRIER_TIMEOUT = 30.0


class EventStoreContract:
    """Behaviour every EventStore adapter shares; subclass it and implement make_store and the
    two tamper hooks."""

    def make_store(self, tmp_path: Path, clock: VirtualClock) -> EventStore:
        """Return a new, empty store on `clock` (files, if any, under tmp_path)."""
        raise NotImplementedError

    def tamper(
        self, store: EventStore, tmp_path: Path, stream_id: str, version: int, /, **columns: object
    ) -> None:
        """Change one stored event behind the store's back, as a bad disk or an intruder would;
        `columns` are any of `data` (payload JSON), `hash` and `version`."""
        raise NotImplementedError

    def tamper_delete(
        self, store: EventStore, tmp_path: Path, stream_id: str, version: int
    ) -> None:
        """Remove one stored event behind the store's back."""
        raise NotImplementedError

    @pytest.fixture
    def clock(self) -> VirtualClock:
        """The clock the store stamps events with."""
        return VirtualClock()

    @pytest.fixture
    def store(self, tmp_path: Path, clock: VirtualClock) -> Iterator[EventStore]:
        """A fresh store, closed after the test if the adapter can be closed."""
        store = self.make_store(tmp_path, clock)
        yield store
        close = getattr(store, "close", None)
        if close is not None:
            close()

    def test_append_to_a_new_stream_starts_at_version_one(self, store: EventStore) -> None:
        assert store.append("pay_1", [initiated("pay_1")], expected_version=0) == 1
        assert [r.version for r in store.read("pay_1")] == [1]

    def test_append_returns_the_new_version_and_numbers_events_consecutively(
        self, store: EventStore
    ) -> None:
        assert store.append("pay_1", opening("pay_1")[:2], expected_version=0) == 2
        assert store.append("pay_1", opening("pay_1")[2:], expected_version=2) == 3
        assert [r.version for r in store.read("pay_1")] == [1, 2, 3]

    def test_append_with_a_stale_expected_version_raises_concurrency_error_and_writes_nothing(
        self, store: EventStore
    ) -> None:
        store.append("pay_1", opening("pay_1")[:2], expected_version=0)
        with pytest.raises(ConcurrencyError) as raised:
            store.append("pay_1", opening("pay_1")[2:], expected_version=1)
        assert (raised.value.stream_id, raised.value.expected, raised.value.actual) == (
            "pay_1",
            1,
            2,
        )
        assert [r.version for r in store.read("pay_1")] == [1, 2]
        assert len(list(store.read_all())) == 2

    def test_append_to_a_missing_stream_at_a_later_version_raises_and_creates_no_stream(
        self, store: EventStore
    ) -> None:
        with pytest.raises(ConcurrencyError) as raised:
            store.append("pay_1", [authenticated("pay_1")], expected_version=1)
        assert raised.value.actual == 0
        assert store.stream_ids() == []
        assert store.read("pay_1") == []

    def test_appending_no_events_checks_the_version_and_creates_no_stream(
        self, store: EventStore
    ) -> None:
        assert store.append("pay_1", [], expected_version=0) == 0
        with pytest.raises(ConcurrencyError):
            store.append("pay_1", [], expected_version=3)
        assert store.stream_ids() == []

    def test_events_come_back_as_they_were_appended(self, store: EventStore) -> None:
        events = opening("pay_1")
        store.append("pay_1", events, expected_version=0)
        recorded = store.read("pay_1")
        assert [r.event for r in recorded] == events
        assert all(r.stream_id == "pay_1" for r in recorded)
        assert recorded[0].event.occurred_at.tzinfo is not None

    def test_reading_an_unknown_stream_returns_no_events(self, store: EventStore) -> None:
        assert store.read("pay_missing") == []

    def test_read_all_yields_global_positions_in_order(self, store: EventStore) -> None:
        store.append("pay_a", [initiated("pay_a")], expected_version=0)
        store.append("pay_b", opening("pay_b")[:2], expected_version=0)
        store.append("pay_a", [authenticated("pay_a")], expected_version=1)
        recorded = list(store.read_all())
        assert [(r.stream_id, r.version) for r in recorded] == [
            ("pay_a", 1),
            ("pay_b", 1),
            ("pay_b", 2),
            ("pay_a", 2),
        ]
        positions = [r.position for r in recorded]
        assert positions == sorted(set(positions))
        assert positions[0] >= 1

    def test_read_all_agrees_with_read_on_each_event(self, store: EventStore) -> None:
        store.append("pay_a", opening("pay_a"), expected_version=0)
        store.append("pay_b", opening("pay_b"), expected_version=0)
        by_stream = {s: store.read(s) for s in ("pay_a", "pay_b")}
        for recorded in store.read_all():
            assert by_stream[recorded.stream_id][recorded.version - 1] == recorded

    def test_read_all_after_a_position(self, store: EventStore) -> None:
        store.append("pay_a", opening("pay_a"), expected_version=0)
        store.append("pay_b", opening("pay_b"), expected_version=0)
        everything = list(store.read_all())
        cut = everything[2].position
        assert list(store.read_all(after_position=cut)) == everything[3:]
        assert list(store.read_all(after_position=everything[-1].position)) == []

    def test_stream_ids_in_creation_order(self, store: EventStore) -> None:
        for stream_id in ("pay_c", "pay_a", "pay_b"):
            store.append(stream_id, [initiated(stream_id)], expected_version=0)
        store.append("pay_c", [authenticated("pay_c")], expected_version=1)
        assert store.stream_ids() == ["pay_c", "pay_a", "pay_b"]

    def test_a_batch_is_atomic_readers_see_all_of_it_or_none(self, store: EventStore) -> None:
        batches, size = 40, 3
        seen: list[int] = []
        done = threading.Event()

        def write() -> None:
            try:
                for n in range(batches):
                    store.append("pay_1", opening("pay_1"), expected_version=n * size)
            finally:
                done.set()

        def watch() -> None:
            while not done.is_set():
                seen.append(len(store.read("pay_1")))
                seen.append(sum(1 for _ in store.read_all()))

        with ThreadPoolExecutor(max_workers=2) as pool:
            watcher = pool.submit(watch)
            pool.submit(write).result()
            watcher.result()
        assert all(count % size == 0 for count in seen)
        assert len(store.read("pay_1")) == batches * size

    def test_concurrent_appenders_from_threads_exactly_one_wins_per_version(
        self, store: EventStore
    ) -> None:
        contenders, rounds = 6, 5
        barrier = threading.Barrier(contenders, timeout=BARRIER_TIMEOUT)
        wins: list[tuple[int, int]] = []

        def contend(contender: int) -> None:
            for version in range(rounds):
                barrier.wait()
                event = authenticated("pay_1", second=contender)
                try:
                    store.append("pay_1", [event], expected_version=version)
                except ConcurrencyError:
                    continue
                wins.append((version, contender))

        with ThreadPoolExecutor(max_workers=contenders) as pool:
            for future in [pool.submit(contend, n) for n in range(contenders)]:
                future.result()
        assert sorted(version for version, _ in wins) == list(range(rounds))
        stored = store.read("pay_1")
        assert [r.version for r in stored] == list(range(1, rounds + 1))
        for version, contender in wins:
            assert stored[version].event == authenticated("pay_1", second=contender)

    def test_each_event_is_recorded_at_the_clocks_time_with_a_hash_chained_to_the_one_before(
        self, store: EventStore, clock: VirtualClock
    ) -> None:
        clock.advance(90)
        first = clock.now()
        store.append("pay_1", opening("pay_1")[:2], expected_version=0)
        clock.advance(30)
        store.append("pay_1", opening("pay_1")[2:], expected_version=2)
        recorded = store.read("pay_1")
        assert [r.recorded_at for r in recorded] == [first, first, clock.now()]
        previous = GENESIS
        for r in recorded:
            previous = chain_hash(
                previous, "pay_1", r.version, r.event.type, event_to_json(r.event)
            )
            assert r.hash == previous
        assert list(store.read_all()) == recorded

    # Tampering: every case damages pay_a, leaves pay_b alone, and must be caught on read.

    def fill(self, store: EventStore) -> tuple[list[PaymentEvent], list[PaymentEvent]]:
        """Write two streams of four events; return their events."""
        streams = {s: [*opening(s), authenticated(s, second=9)] for s in ("pay_a", "pay_b")}
        for stream_id, events in streams.items():
            store.append(stream_id, events, expected_version=0)
        return streams["pay_a"], streams["pay_b"]

    def rechain(
        self, store: EventStore, tmp_path: Path, stream_id: str, payloads: list[PaymentEvent]
    ) -> None:
        """Recompute a stream's hashes over `payloads`, as an intruder who knows the scheme."""
        previous = GENESIS
        for version, event in enumerate(payloads, start=1):
            previous = chain_hash(previous, stream_id, version, event.type, event_to_json(event))
            self.tamper(store, tmp_path, stream_id, version, hash=previous)

    def assert_damaged(self, store: EventStore, version: int, problem: str) -> None:
        """pay_a halts naming `version` and the problem, on read and on read_all; pay_b reads."""
        with pytest.raises(EventIntegrityError, match=problem) as raised:
            store.read("pay_a")
        assert (raised.value.stream_id, raised.value.version) == ("pay_a", version)
        assert f"stream pay_a: version {version}" in str(raised.value)
        with pytest.raises(EventIntegrityError) as scanned:
            list(store.read_all())
        assert scanned.value.stream_id == "pay_a"
        assert [r.event for r in store.read("pay_b")][:3] == opening("pay_b")

    def test_an_amount_edited_in_place_halts_the_stream_at_that_version(
        self, store: EventStore, tmp_path: Path
    ) -> None:
        self.fill(store)
        edited = initiated("pay_a", minor=1)
        self.tamper(store, tmp_path, "pay_a", 1, data=event_to_json(edited))
        self.assert_damaged(store, 1, "hash mismatch")
        assert store.read_unverified("pay_a")[0].event == edited

    def test_an_edit_with_its_chain_recomputed_reads_cleanly_so_reconciliation_must_catch_it(
        self, store: EventStore, tmp_path: Path
    ) -> None:
        events, _ = self.fill(store)
        edited = initiated("pay_a", minor=1)
        self.tamper(store, tmp_path, "pay_a", 1, data=event_to_json(edited))
        self.rechain(store, tmp_path, "pay_a", [edited, *events[1:]])
        assert store.read("pay_a")[0].event == edited

    def test_a_later_event_whose_predecessor_changed_halts_even_when_read_from_a_position(
        self, store: EventStore, tmp_path: Path
    ) -> None:
        self.fill(store)
        self.tamper(store, tmp_path, "pay_a", 2, hash="f" * 64)
        third = store.read_unverified("pay_a")[2]
        with pytest.raises(EventIntegrityError) as raised:
            list(store.read_all(after_position=third.position - 1))
        assert (raised.value.stream_id, raised.value.version) == ("pay_a", 3)

    @pytest.mark.parametrize("rechained", [False, True])
    def test_an_event_copied_from_another_stream_halts_naming_the_version_and_its_owner(
        self, store: EventStore, tmp_path: Path, rechained: bool
    ) -> None:
        events, _ = self.fill(store)
        copied = store.read("pay_b")[1]
        self.tamper(store, tmp_path, "pay_a", 2, data=event_to_json(copied.event), hash=copied.hash)
        if rechained:
            self.rechain(store, tmp_path, "pay_a", [events[0], copied.event, *events[2:]])
        self.assert_damaged(store, 2, "belongs to stream 'pay_b'")

    def test_a_missing_middle_version_halts_naming_it(
        self, store: EventStore, tmp_path: Path
    ) -> None:
        self.fill(store)
        self.tamper_delete(store, tmp_path, "pay_a", 2)
        self.assert_damaged(store, 2, "missing")

    def test_swapped_versions_halt_at_the_first_of_them(
        self, store: EventStore, tmp_path: Path
    ) -> None:
        self.fill(store)
        self.tamper(store, tmp_path, "pay_a", 2, version=99)
        self.tamper(store, tmp_path, "pay_a", 3, version=2)
        self.tamper(store, tmp_path, "pay_a", 99, version=3)
        self.assert_damaged(store, 2, "hash mismatch")

    def test_append_runs_the_projection_write_once_beside_the_events(
        self, store: EventStore
    ) -> None:
        written: list[str] = []
        store.append("pay_1", opening("pay_1"), 0, lambda: written.append("row"))
        assert written == ["row"]

    def test_a_failing_projection_write_keeps_the_appended_events(self, store: EventStore) -> None:
        def fail() -> None:
            raise RuntimeError("the projection is down")

        assert store.append("pay_1", opening("pay_1"), 0, fail) == 3
        assert [recorded.version for recorded in store.read("pay_1")] == [1, 2, 3]

    def test_a_refused_append_runs_no_projection_write(self, store: EventStore) -> None:
        store.append("pay_1", [initiated("pay_1")], 0)
        written: list[str] = []
        with pytest.raises(ConcurrencyError):
            store.append("pay_1", [authenticated("pay_1")], 0, lambda: written.append("row"))
        assert written == []

    def test_stream_ids_after_pages_through_the_ids_in_id_order(self, store: EventStore) -> None:
        for stream_id in ("pay_c", "pay_a", "pay_b"):
            store.append(stream_id, [initiated(stream_id)], 0)
        assert store.stream_ids_after() == ["pay_a", "pay_b", "pay_c"]
        assert store.stream_ids_after("pay_a", limit=1) == ["pay_b"]
        assert store.stream_ids_after("pay_c") == []
