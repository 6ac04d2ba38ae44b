"""An in-memory event store: the fake that passes the same contract as the durable ones."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

from aegispay.domain.errors import ConcurrencyError, EventContinuityError
from aegispay.domain.events import PaymentEvent
from aegispay.orchestration.ports import RecordedEvent


class InMemoryEventStore:
    """Streams in a dict and a global list, guarded by one lock."""

    def __init__(self) -> None:
        self._streams: dict[str, list[RecordedEvent]] = {}
        self._log: list[RecordedEvent] = []
        self._lock = threading.Lock()

    def read(self, stream_id: str) -> list[RecordedEvent]:
        """Return a stream's events in version order; raise on a version gap."""
        with self._lock:
            events = list(self._streams.get(stream_id, ()))
        for expected, recorded in enumerate(events, start=1):
            if recorded.version != expected:
                raise EventContinuityError(
                    stream_id, f"version gap: expected {expected}, found {recorded.version}"
                )
        return events

    def append(self, stream_id: str, events: Sequence[PaymentEvent], expected_version: int) -> int:
        """Append all events if the stream is at `expected_version`, else ConcurrencyError."""
        with self._lock:
            stream = self._streams.setdefault(stream_id, [])
            if len(stream) != expected_version:
                actual = len(stream)
                if not stream:
                    del self._streams[stream_id]
                raise ConcurrencyError(stream_id, expected_version, actual)
            for offset, event in enumerate(events, start=1):
                recorded = RecordedEvent(
                    stream_id, expected_version + offset, len(self._log) + 1, event
                )
                stream.append(recorded)
                self._log.append(recorded)
            if not stream:
                del self._streams[stream_id]
            return expected_version + len(events)

    def read_all(self, after_position: int = 0) -> Iterator[RecordedEvent]:
        """Yield every event after a global position, in order."""
        with self._lock:
            tail = self._log[after_position:]
        yield from tail

    def last_position(self) -> int:
        """Return the global position of the newest event (0 when empty)."""
        with self._lock:
            return len(self._log)

    def streams_since(self, after_position: int) -> dict[str, int]:
        """Return each stream written after a position with its newest version."""
        with self._lock:
            tail = self._log[after_position:]
        return {recorded.stream_id: recorded.version for recorded in tail}

    def stream_ids(self) -> list[str]:
        """Return stream ids in order of creation."""
        with self._lock:
            return list(self._streams)
