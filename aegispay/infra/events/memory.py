"""An in-memory event store: the fake that passes the same contract as the durable ones."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

from aegispay.domain.errors import ConcurrencyError
from aegispay.domain.events import PaymentEvent, event_to_json
from aegispay.infra.events.chain import GENESIS, chain_hash, check_link, check_stream
from aegispay.orchestration.ports import Clock, RecordedEvent


class InMemoryEventStore:
    """Events in a list by position and a (stream, version) index, guarded by one lock."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        # Index = position - 1, as a table's rows; a position is never reused, so a row removed
        # (only ever by a test playing a bad disk) leaves a hole, as in SQLite.
        self._rows: list[RecordedEvent | None] = []
        # The UNIQUE (stream_id, version) index: stream -> version -> row; streams by creation.
        self._streams: dict[str, dict[int, RecordedEvent]] = {}
        self._lock = threading.Lock()

    def read(self, stream_id: str) -> list[RecordedEvent]:
        """Return a stream's events in version order; raise EventIntegrityError on any damage."""
        events = self.read_unverified(stream_id)
        # The payload is serialised again to check it: what is held is the parsed event.
        check_stream(stream_id, ((recorded, event_to_json(recorded.event)) for recorded in events))
        return events

    def read_unverified(self, stream_id: str) -> list[RecordedEvent]:
        """Return a stream's events in version order without the chain checks."""
        with self._lock:
            stream = self._streams.get(stream_id, {})
            return [stream[version] for version in sorted(stream)]

    def append(self, stream_id: str, events: Sequence[PaymentEvent], expected_version: int) -> int:
        """Append all events if the stream is at `expected_version`, else ConcurrencyError."""
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
            for version, event in enumerate(events, start=expected_version + 1):
                data = event_to_json(event)
                previous = chain_hash(previous, stream_id, version, event.type, data)
                recorded = RecordedEvent(
                    stream_id=stream_id,
                    version=version,
                    position=len(self._rows) + 1,
                    recorded_at=recorded_at,
                    hash=previous,
                    event=event,
                )
                stream[version] = recorded
                self._rows.append(recorded)
            return expected_version + len(events)

    def read_all(self, after_position: int = 0) -> Iterator[RecordedEvent]:
        """Yield every event after a global position, in order, each checked against its
        predecessor in its stream."""
        with self._lock:
            tail = [
                (recorded, self._previous_hash(recorded))
                for recorded in self._rows[after_position:]
                if recorded is not None
            ]
        for recorded, previous in tail:
            check_link(recorded, event_to_json(recorded.event), previous)
            yield recorded

    def _previous_hash(self, recorded: RecordedEvent) -> str | None:
        """The stored hash of the version before (GENESIS for version 1), None if it is gone."""
        if recorded.version == 1:
            return GENESIS
        before = self._streams.get(recorded.stream_id, {}).get(recorded.version - 1)
        return None if before is None else before.hash

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
