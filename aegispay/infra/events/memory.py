"""An in-memory event store: the fake that passes the same contract as the durable ones."""

from __future__ import annotations

import bisect
import operator
import threading
from collections.abc import Iterator, Sequence

from aegispay.domain.errors import ConcurrencyError
from aegispay.domain.events import PaymentEvent, event_to_json
from aegispay.infra.events.chain import GENESIS, Chain
from aegispay.orchestration.ports import Clock, Projector, RecordedEvent


class InMemoryEventStore:
    """Events in a list by position and a (stream, version) index, guarded by one lock.

    Rows are frozen, and the store remembers, by identity, the rows it wrote or found sound: a
    row replaced since (a test playing a bad disk) is another object and is checked again. A
    row mutated in place through object.__setattr__ is beyond what it guards against. `key`
    keys the chain (HMAC-SHA256); nothing outlives the store, so nothing records it.
    """

    def __init__(self, clock: Clock, *, key: bytes | None = None) -> None:
        self._clock = clock
        self._chain = Chain(key)
        # Index = position - 1, as a table's rows; a position is never reused, so a row removed
        # (only ever by a test playing a bad disk) leaves a hole, as in SQLite.
        self._rows: list[RecordedEvent | None] = []
        # The UNIQUE (stream_id, version) index: stream -> version -> row; streams by creation.
        self._streams: dict[str, dict[int, RecordedEvent]] = {}
        # Per stream, the rows read and found sound last time, so a read checks only new rows.
        self._checked: dict[str, tuple[RecordedEvent, ...]] = {}
        self._lock = threading.Lock()

    def read(self, stream_id: str) -> list[RecordedEvent]:
        """Return a stream's events in version order; raise EventIntegrityError on any damage."""
        with self._lock:
            stream = self._streams.get(stream_id, {})
            events = [stream[version] for version in sorted(stream)]
            checked = self._checked.get(stream_id, ())
        # Rows are immutable: those that are the very objects checked before need no second
        # check (a tampered row is a new object, so it is checked). Only the rest are.
        known = len(checked)
        if known > len(events) or not all(map(operator.is_, checked, events)):
            known = 0
        elif known == len(events):
            return events  # nothing written or replaced since the last check: none to check
        # The payload is serialised again to check it: what is held is the parsed event.
        unchecked = ((recorded, event_to_json(recorded.event)) for recorded in events[known:])
        self._chain.check_stream(stream_id, unchecked, after=checked[known - 1] if known else None)
        with self._lock:
            self._checked[stream_id] = tuple(events)
        return events

    def read_unverified(self, stream_id: str) -> list[RecordedEvent]:
        """Return a stream's events in version order without the chain checks."""
        with self._lock:
            stream = self._streams.get(stream_id, {})
            return [stream[version] for version in sorted(stream)]

    def append(
        self,
        stream_id: str,
        events: Sequence[PaymentEvent],
        expected_version: int,
        project: Projector | None = None,
    ) -> int:
        """Append all events if the stream is at `expected_version`, else ConcurrencyError;
        then `project` writes the projection row (memory has no transaction to share)."""
        with self._lock:
            stream = self._streams.get(stream_id, {})
            actual = max(stream, default=0)
            if actual != expected_version:
                raise ConcurrencyError(stream_id, expected_version, actual)
            if not events:
                return actual
            previous = stream[actual].hash if stream else GENESIS
            recorded_at = self._clock.now()
            stream = self._streams.setdefault(stream_id, stream)
            checked = self._checked.get(stream_id, ())
            # The rows written here are sound by construction: when the rows before them were
            # found sound, the next read need not hash them again. (A read still compares every
            # row with the checked ones by identity, so a row replaced since is seen there.)
            sound = len(checked) == actual and (not actual or checked[-1] is stream[actual])
            written = []
            for version, event in enumerate(events, start=expected_version + 1):
                data = event_to_json(event)
                previous = self._chain.hash(previous, stream_id, version, event.type, data)
                # Fields by position (stream, version, position, time, hash, event): a frozen
                # dataclass's __init__ binds keywords noticeably slower, once per event written.
                recorded = RecordedEvent(
                    stream_id, version, len(self._rows) + 1, recorded_at, previous, event
                )
                stream[version] = recorded
                self._rows.append(recorded)
                written.append(recorded)
            if sound:
                self._checked[stream_id] = (*checked, *written)
        # Outside the lock: whatever the write crosses (a crash point's listener, another
        # actor) may read this store.
        if project is not None:
            # A failed write leaves the row behind for repair; the events are kept, and the
            # writer has counted the failure. (A try statement, not contextlib.suppress: free
            # when nothing is raised, on every append.)
            try:  # noqa: SIM105
                project()
            except Exception:
                pass
        return expected_version + len(events)

    def read_all(self, after_position: int = 0) -> Iterator[RecordedEvent]:
        """Yield every event after a global position, in order, each checked against its
        predecessor in its stream."""
        with self._lock:
            tail = [
                (recorded, self._previous_hash(recorded), self._known_sound(recorded))
                for recorded in self._rows[after_position:]
                if recorded is not None
            ]
        for recorded, previous, sound in tail:
            if not sound:
                self._chain.check_link(recorded, event_to_json(recorded.event), previous)
            yield recorded

    def _known_sound(self, recorded: RecordedEvent) -> bool:
        """Whether a row and the one before it are the very rows a read or an append found
        sound, both still in place: then its link holds. (A row replaced since is another
        object, so it and the row after it are checked.)"""
        checked = self._checked.get(recorded.stream_id, ())
        stream = self._streams.get(recorded.stream_id, {})
        version = recorded.version
        return (
            1 <= version <= len(checked)
            and checked[version - 1] is recorded
            and stream.get(version) is recorded
            and (version == 1 or stream.get(version - 1) is checked[version - 2])
        )

    def _previous_hash(self, recorded: RecordedEvent) -> str | None:
        """The stored hash of the version before (GENESIS for version 1), None if it is gone."""
        if recorded.version == 1:
            return GENESIS
        before = self._streams.get(recorded.stream_id, {}).get(recorded.version - 1)
        return None if before is None else before.hash

    def stream_ids_after(self, after: str = "", limit: int = 1000) -> list[str]:
        """Return a page of stream ids greater than `after`, in id order."""
        with self._lock:
            ids = sorted(self._streams)
        start = bisect.bisect_right(ids, after)
        return ids[start : start + limit]

    def last_position(self) -> int:
        """Return the global position of the newest event (0 when empty)."""
        with self._lock:
            return len(self._rows)

    def streams_since(self, after_position: int) -> dict[str, int]:
        """Return each stream written after a position with its newest version."""
        with self._lock:
            tail = self._rows[after_position:]
        return {recorded.stream_id: recorded.version for recorded in tail if recorded is not None}

    def stream_ids(self) -> list[str]:
        """Return stream ids in order of creation."""
        with self._lock:
            return list(self._streams)
