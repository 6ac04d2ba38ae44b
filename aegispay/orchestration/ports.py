"""Ports: the protocols the workflows need from the world; aegispay.infra implements them."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from aegispay.domain.charges import ChargeRecord, ChargeRequest
from aegispay.domain.events import PaymentEvent
from aegispay.domain.payment import Payment
from aegispay.domain.states import PaymentState
from aegispay.orchestration.folds import Folds

if TYPE_CHECKING:
    from aegispay.orchestration.policy import Policy


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as stored: its stream, version, global position, time of writing and chain hash."""

    stream_id: str
    version: int
    position: int
    recorded_at: datetime
    # SHA-256 (hex) over stream, version, type, payload and the previous version's hash.
    hash: str
    event: PaymentEvent


# Writes a projection row for an append; the event store runs it beside the events it writes.
Projector = Callable[[], None]


class EventStore(Protocol):
    """Append-only streams of events, one per payment: the source of truth."""

    def read(self, stream_id: str) -> list[RecordedEvent]:
        """Return a stream's events in version order (empty if none), verified: a gap, a bad row,
        a broken hash chain or an event of another stream raises EventIntegrityError."""
        ...

    def read_unverified(self, stream_id: str) -> list[RecordedEvent]:
        """Return the rows of a stream that parse, in version order, without the chain checks.

        For audits of a damaged stream only: what it returns may have been tampered with.
        """
        ...

    def append(
        self,
        stream_id: str,
        events: Sequence[PaymentEvent],
        expected_version: int,
        project: Projector | None = None,
    ) -> int:
        """Append atomically if the stream is at `expected_version`; return the new version.

        `project`, if given, writes the projection row of the appended events: in the same
        transaction where the store has one (inside a savepoint), else right after the events.
        An Exception from it undoes its own writes only and is not raised: the events are kept.
        """
        ...

    def read_all(self, after_position: int = 0) -> Iterator[RecordedEvent]:
        """Yield every event in global order after a position, each checked against the one
        before it in its stream; the first damaged event raises EventIntegrityError."""
        ...

    def stream_ids(self) -> list[str]:
        """Return the id of every stream, in order of creation."""
        ...

    def stream_ids_after(self, after: str = "", limit: int = 1000) -> list[str]:
        """Return up to `limit` stream ids greater than `after`, in id order: a page of them,
        so that a pass over every stream holds one page at a time."""
        ...

    def last_position(self) -> int:
        """Return the global position of the newest event (0 when empty)."""
        ...

    def streams_since(self, after_position: int) -> dict[str, int]:
        """Return each stream written after a position with its newest version (no parsing)."""
        ...


class ProjectionStore(Protocol):
    """Current payment rows, derived from events, for queries and for finding in-flight work."""

    def save(self, payment: Payment) -> None:
        """Insert or replace a row, unless the stored row is of a newer version."""
        ...

    def get(self, payment_id: str) -> Payment | None:
        """Return a payment's row, or None."""
        ...

    def list(self, state: PaymentState | None = None) -> builtins.list[Payment]:
        """Return rows (of one state, if given) in order of creation."""
        ...

    def ids_in_states(self, states: Sequence[PaymentState]) -> builtins.list[str]:
        """Return ids in the given states in creation order, through an index (no full scan)."""
        ...

    def ids_after(self, after: str = "", limit: int = 1000) -> builtins.list[str]:
        """Return up to `limit` row ids greater than `after`, in id order (a page of them)."""
        ...

    def delete(self, payment_id: str) -> None:
        """Remove a row (used by repair when a row has no events behind it)."""
        ...


class RecoveryLog(Protocol):
    """Recovery's own bookkeeping: how far rows are checked, and which streams are halted."""

    def checkpoint(self) -> int:
        """Return the event position up to which recovery has checked every row."""
        ...

    def set_checkpoint(self, position: int) -> None:
        """Record that every row is checked up to an event position."""
        ...

    def halted(self) -> dict[str, str]:
        """Return the streams recovery found unreadable, with the reason, until they are fixed."""
        ...

    def mark_halted(self, stream_id: str, reason: str) -> None:
        """Remember that a stream cannot be read, so every run reports it again."""
        ...

    def clear_halted(self, stream_id: str) -> None:
        """Forget a halted stream that reads cleanly again."""
        ...


class LockManager(Protocol):
    """Leases with a TTL and an owner; a lock is for efficiency, the event store is the fence."""

    def acquire(self, resource: str, owner: str, ttl: float, wait: float = 0.0) -> bool:
        """Take the lease, waiting up to `wait` seconds on the clock; False if still held."""
        ...

    def release(self, resource: str, owner: str) -> None:
        """Give the lease back; raises LockNotHeld for a non-owner or an expired lease."""
        ...

    def extend(self, resource: str, owner: str, ttl: float) -> None:
        """Push the lease's expiry to now + ttl; raises LockNotHeld for a non-owner."""
        ...

    def holder(self, resource: str) -> str | None:
        """Return the owner of a live lease, or None."""
        ...


class PaymentGateway(Protocol):
    """A payment service provider that deduplicates charges by idempotency key."""

    @property
    def name(self) -> str:
        """The gateway's routing name."""
        ...

    def charge(self, request: ChargeRequest) -> ChargeRecord:
        """Charge once per idempotency key; a repeat returns the first record."""
        ...

    def status(self, merchant_reference: str) -> ChargeRecord | None:
        """Look a charge up by our payment id; None when the gateway never saw it."""
        ...

    def cancel(self, merchant_reference: str) -> ChargeRecord:
        """Cancel our reference unless it was charged or declined; return what is held for it.

        Once the answer is a cancellation, every later charge with the reference is refused.
        """
        ...


class Gateways(Protocol):
    """The gateways a payment may be sent to, in priority order, and the routing rule."""

    def get(self, name: str) -> PaymentGateway:
        """The gateway of this name."""
        ...

    def route(self, exclude: Collection[str] = ()) -> str | None:
        """The first gateway not excluded that would take a call now, or None."""
        ...


class Clock(Protocol):
    """Where time comes from; a VirtualClock makes sleeps instant and runs reproducible."""

    def now(self) -> datetime:
        """Return the current time (timezone-aware, UTC)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait for `seconds` of this clock's time."""
        ...


class IdGenerator(Protocol):
    """Where ids come from; a seeded generator repeats its sequence."""

    def new_id(self, prefix: str) -> str:
        """Return a new id such as 'evt_3f2a...'."""
        ...


class Logger(Protocol):
    """Structured log lines."""

    def log(self, level: str, message: str, **fields: object) -> None:
        """Record one line with its fields."""
        ...


class Metrics(Protocol):
    """Named counters."""

    def increment(self, name: str, by: int = 1) -> None:
        """Add to a counter."""
        ...


@dataclass(frozen=True)
class Ports:
    """Everything a workflow may touch, handed in by the composition root."""

    events: EventStore
    projections: ProjectionStore
    recovery_log: RecoveryLog
    gateways: Gateways
    clock: Clock
    ids: IdGenerator
    logger: Logger
    metrics: Metrics
    # The replaceable decisions of processing (recovery, a failed charge, the order of start).
    policy: Policy
    # Loads fold through it: a stream that has not moved since it was folded is not replayed.
    folds: Folds = field(default_factory=Folds)
