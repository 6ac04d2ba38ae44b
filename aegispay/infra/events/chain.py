"""The hash chain every event store keeps, so that a stored event edited, moved or lost is seen.

Each event's hash covers its stream, version, type and payload, and the hash of the version
before it; version 1 chains from GENESIS. Reading checks every link and that every event names
its own stream, and raises EventIntegrityError naming the stream and the version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from aegispay.domain.errors import EventIntegrityError
from aegispay.orchestration.ports import RecordedEvent

R = TypeVar("R", bound=Sequence[object])

GENESIS = "0" * 64


def chain_hash(previous: str, stream_id: str, version: int, type_: str, data: str) -> str:
    """Return the SHA-256 (hex) of one stored event, chained to the hash of the one before."""
    # Each field is prefixed by its length, so no choice of ids or payloads can shift a boundary
    # and make two different events hash alike.
    number = str(version)
    material = (
        f"{len(previous)}:{previous}{len(stream_id)}:{stream_id}{len(number)}:{number}"
        f"{len(type_)}:{type_}{len(data)}:{data}"
    )
    return hashlib.sha256(material.encode()).hexdigest()


def check_link(recorded: RecordedEvent, data: str, previous: str | None) -> None:
    """Raise EventIntegrityError unless an event is in its own stream and chains to `previous`.

    `data` is the payload as stored; `previous` is the stored hash of the version before
    (GENESIS for version 1), or None when that version is missing.
    """
    stream_id, version, position = recorded.stream_id, recorded.version, recorded.position
    if previous is None:
        raise EventIntegrityError(
            stream_id,
            version - 1,
            f"missing (expected {version - 1}, found {version} at position {position})",
            position,
        )
    owner = recorded.event.payment_id
    if owner != stream_id:
        raise EventIntegrityError(
            stream_id,
            version,
            f"the event at position {position} belongs to stream {owner!r}, not to this one",
            position,
        )
    if recorded.hash != chain_hash(previous, stream_id, version, recorded.event.type, data):
        raise EventIntegrityError(
            stream_id,
            version,
            f"hash mismatch at position {position}: the event was edited or moved, "
            "or the one before it changed",
            position,
        )


def check_stream(
    stream_id: str, rows: Iterable[tuple[RecordedEvent, str]], after: RecordedEvent | None = None
) -> None:
    """Check a stream read in version order with each event's stored payload: the whole of it,
    or the part that follows `after`, an event already checked."""
    previous = GENESIS if after is None else after.hash
    start = 1 if after is None else after.version + 1
    for expected, (recorded, data) in enumerate(rows, start=start):
        if recorded.version != expected:
            raise EventIntegrityError(
                stream_id,
                expected,
                f"missing (expected {expected}, found {recorded.version} "
                f"at position {recorded.position})",
                recorded.position,
            )
        check_link(recorded, data, previous)
        previous = recorded.hash


def verified(
    stream_id: str, rows: Sequence[R], decode: Callable[[R], RecordedEvent]
) -> list[RecordedEvent]:
    """Decode a stream's rows (their stored payload at index 4), check chain and membership."""
    events = [decode(row) for row in rows]
    check_stream(stream_id, zip(events, (str(row[4]) for row in rows), strict=True))
    return events


def readable(rows: Iterable[R], decode: Callable[[R], RecordedEvent]) -> list[RecordedEvent]:
    """Decode the rows that parse, in order, without the chain checks (for audits of damage)."""
    events = []
    for row in rows:
        try:
            events.append(decode(row))
        except EventIntegrityError:
            continue  # unreadable: nothing in it can be audited
    return events
