"""The hash chain every event store keeps, so that a stored event edited, moved or lost is seen.

Each event's hash covers its stream, version, type and payload, and the hash of the version
before it; version 1 chains from GENESIS. Reading checks every link and that every event names
its own stream, and raises EventIntegrityError naming the stream and the version.

A chain may be keyed: each hash is then an HMAC-SHA256 under a secret that only AegisPay's
processes hold, so an intruder who edits a payload cannot compute the hashes that would make it
read cleanly. A durable store records whether it is keyed (the key's fingerprint, or "" for no
key) when it is created, and refuses to open with a key it was not made with.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from aegispay.domain.errors import EventIntegrityError, InvalidRequest
from aegispay.orchestration.ports import RecordedEvent

R = TypeVar("R", bound=Sequence[object])

GENESIS = "0" * 64
# Where a process finds the chain key: the secret itself, or a file that holds it (one of the two).
KEY_VARIABLE = "AEGISPAY_CHAIN_KEY"
KEY_FILE_VARIABLE = "AEGISPAY_CHAIN_KEY_FILE"
# Anyone who can read the store can try keys offline against its hashes: a short key falls.
MIN_KEY_BYTES = 16
# What a keyed store records instead of its key: an HMAC of this text, which does not reveal it.
FINGERPRINT_TEXT = b"aegispay chain key fingerprint"
UNKEYED = ""


class ChainKeyRefused(InvalidRequest):
    """A store was opened with a chain key it was not made with, or without the key it was."""


def material(previous: str, stream_id: str, version: int, type_: str, data: str) -> bytes:
    """The bytes an event's hash covers: each field prefixed by its length."""
    # With the lengths, no choice of ids or payloads can shift a boundary and make two different
    # events hash alike.
    number = str(version)
    return (
        f"{len(previous)}:{previous}{len(stream_id)}:{stream_id}{len(number)}:{number}"
        f"{len(type_)}:{type_}{len(data)}:{data}"
    ).encode()


def chain_hash(previous: str, stream_id: str, version: int, type_: str, data: str) -> str:
    """Return the SHA-256 (hex) of one stored event, chained to the hash of the one before."""
    return hashlib.sha256(material(previous, stream_id, version, type_, data)).hexdigest()


class Chain:
    """How one store hashes and checks its events: SHA-256, or HMAC-SHA256 under `key`."""

    def __init__(self, key: bytes | None = None) -> None:
        if key is not None:
            _usable("chain_key", key)
        self.keyed = key is not None
        # Keyed once here; each event's HMAC is a copy of this state, so the key is not re-padded
        # and re-hashed per event.
        self._mac = None if key is None else hmac.new(key, digestmod=hashlib.sha256)
        self.fingerprint = (
            UNKEYED if key is None else hmac.new(key, FINGERPRINT_TEXT, hashlib.sha256).hexdigest()
        )

    def hash(self, previous: str, stream_id: str, version: int, type_: str, data: str) -> str:
        """Return one stored event's hash (hex), chained to the hash of the one before."""
        if self._mac is None:
            return chain_hash(previous, stream_id, version, type_, data)
        mac = self._mac.copy()
        mac.update(material(previous, stream_id, version, type_, data))
        return mac.hexdigest()

    def check_link(self, recorded: RecordedEvent, data: str, previous: str | None) -> None:
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
        expected = self.hash(previous, stream_id, version, recorded.event.type, data)
        if recorded.hash != expected:
            raise EventIntegrityError(
                stream_id,
                version,
                f"hash mismatch at position {position}: the event was edited or moved, "
                "or the one before it changed",
                position,
            )

    def check_stream(
        self,
        stream_id: str,
        rows: Iterable[tuple[RecordedEvent, str]],
        after: RecordedEvent | None = None,
    ) -> None:
        """Check a stream read in version order with each event's stored payload: the whole of
        it, or the part that follows `after`, an event already checked."""
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
            self.check_link(recorded, data, previous)
            previous = recorded.hash

    def verified(
        self, stream_id: str, rows: Sequence[R], decode: Callable[[R], RecordedEvent]
    ) -> list[RecordedEvent]:
        """Decode a stream's rows (their stored payload at index 4), check chain and membership."""
        events = [decode(row) for row in rows]
        self.check_stream(stream_id, zip(events, (str(row[4]) for row in rows), strict=True))
        return events


UNKEYED_CHAIN = Chain()


def check_link(recorded: RecordedEvent, data: str, previous: str | None) -> None:
    """Check one event's link on an unkeyed chain (see Chain.check_link)."""
    UNKEYED_CHAIN.check_link(recorded, data, previous)


def check_stream(
    stream_id: str, rows: Iterable[tuple[RecordedEvent, str]], after: RecordedEvent | None = None
) -> None:
    """Check a stream on an unkeyed chain (see Chain.check_stream)."""
    UNKEYED_CHAIN.check_stream(stream_id, rows, after)


def verified(
    stream_id: str, rows: Sequence[R], decode: Callable[[R], RecordedEvent]
) -> list[RecordedEvent]:
    """Decode and check a stream on an unkeyed chain (see Chain.verified)."""
    return UNKEYED_CHAIN.verified(stream_id, rows, decode)


def readable(rows: Iterable[R], decode: Callable[[R], RecordedEvent]) -> list[RecordedEvent]:
    """Decode the rows that parse, in order, without the chain checks (for audits of damage)."""
    events = []
    for row in rows:
        try:
            events.append(decode(row))
        except EventIntegrityError:
            continue  # unreadable: nothing in it can be audited
    return events


def key_from_environment(environ: Mapping[str, str]) -> bytes | None:
    """The chain key that AEGISPAY_CHAIN_KEY or AEGISPAY_CHAIN_KEY_FILE gives, None if neither
    is set; raise InvalidRequest for both, an empty or short key, or an unreadable file."""
    secret, path = environ.get(KEY_VARIABLE), environ.get(KEY_FILE_VARIABLE)
    if secret is not None and path is not None:
        raise InvalidRequest(KEY_VARIABLE, f"give it or {KEY_FILE_VARIABLE}, not both")
    if secret is not None:
        return _usable(KEY_VARIABLE, secret.encode())
    if path is None:
        return None
    if not path:
        raise InvalidRequest(KEY_FILE_VARIABLE, "is empty: it must name a file holding the key")
    try:
        held = Path(path).read_bytes()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise InvalidRequest(KEY_FILE_VARIABLE, f"cannot be read ({reason})", path) from None
    # A file written by an editor or by `echo` ends with a newline that is not part of the key.
    return _usable(f"{KEY_FILE_VARIABLE} ({path})", held.strip())


def _usable(source: str, key: bytes) -> bytes:
    """Return a key that is long enough, else raise InvalidRequest naming where it came from."""
    if not key.strip():
        raise InvalidRequest(source, "the chain key is empty")
    if len(key) < MIN_KEY_BYTES:
        raise InvalidRequest(
            source,
            f"the chain key must be at least {MIN_KEY_BYTES} bytes "
            f"(it has {len(key)}; `openssl rand -hex 32` makes one)",
        )
    return key


def decide_key(chain: Chain, recorded: str | None, has_events: bool) -> str | None:
    """Check `chain` against what a store recorded; return what to record when nothing is.

    `recorded` is the fingerprint the store holds ("" for unkeyed), None when it holds none:
    a new store then records this chain's fingerprint; a store with events made before keys
    existed is unkeyed, and nothing is written to it. Raise ChainKeyRefused on a mismatch.
    """
    if recorded is None:
        if not has_events:
            return chain.fingerprint
        recorded = UNKEYED
    if recorded == chain.fingerprint:
        return None
    if recorded == UNKEYED:
        raise ChainKeyRefused(
            "store",
            f"its events are chained without a key, but a chain key is set: unset {KEY_VARIABLE}"
            f" and {KEY_FILE_VARIABLE} to read it (if this store was keyed, its record of the"
            " key was removed: treat it as tampered)",
        )
    if not chain.keyed:
        raise ChainKeyRefused(
            "store",
            f"its events are chained with a secret key: set {KEY_VARIABLE} (the key) or "
            f"{KEY_FILE_VARIABLE} (a file holding it)",
        )
    raise ChainKeyRefused("store", "the chain key set is not the key its events are chained with")
