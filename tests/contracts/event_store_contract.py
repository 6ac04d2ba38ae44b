"""The EventStore contract: every adapter, in-memory or durable, must pass these tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from aegispay.domain.errors import ConcurrencyError
from aegispay.orchestration.ports import EventStore
from tests.factories import authenticated, initiated, opening

# Generous bound for a barrier: it only expires when a thread died, so a broken run fails
# instead of hanging; a healthy run never waits on it.
BARRIER_TIMEOUT = 30.0


class EventStoreContract:
    """Behaviour every EventStore adapter shares; subclass it and implement make_store."""

    def make_store(self, tmp_path: Path) -> EventStore:
        """Return a new, empty store (files, if any, under tmp_path)."""
        raise NotImplementedError

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[EventStore]:
        """A fresh store, closed after the test if the adapter can be closed."""
        store = self.make_store(tmp_path)
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
