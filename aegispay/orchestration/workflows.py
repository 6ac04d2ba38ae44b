"""Workflows: create, authenticate and process a payment, as IO programs built from ports.

Every function here returns an IO and runs nothing. The order of effects is the design:
events are appended first (the source of truth), the projection is updated after, and
ProcessingStarted is durable before the charge is sent, so a crash always leaves a trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from aegispay.domain import decisions
from aegispay.domain.commands import CreatePayment
from aegispay.domain.errors import ConcurrencyError, PaymentNotFound
from aegispay.domain.events import ChargeNotFound, PaymentEvent
from aegispay.domain.payment import Payment, evolve, replay
from aegispay.domain.states import PaymentState
from aegispay.io import IO
from aegispay.orchestration.ports import Ports


@dataclass(frozen=True)
class Created:
    """The payment a create returned, and whether this call created it."""

    payment: Payment
    created: bool


def now(ports: Ports) -> IO[datetime]:
    """Read the injected clock."""
    return IO.delay(ports.clock.now)


def load(ports: Ports, payment_id: str) -> IO[Payment | None]:
    """Rebuild a payment from its events; None when the stream is empty."""
    return IO.delay(lambda: ports.events.read(payment_id)).map(
        lambda recorded: replay(r.event for r in recorded)
    )


def require(ports: Ports, payment_id: str) -> IO[Payment]:
    """Rebuild a payment, or fail with PaymentNotFound."""

    def found(payment: Payment | None) -> IO[Payment]:
        return IO.of(payment) if payment is not None else IO.fail(PaymentNotFound(payment_id))

    return load(ports, payment_id).flat_map(found)


def append(ports: Ports, payment: Payment | None, events: Sequence[PaymentEvent]) -> IO[Payment]:
    """Append events at the payment's version (the fence), then update the projection."""
    stream_id = events[0].payment_id
    expected = payment.version if payment is not None else 0

    def write(after: Payment) -> IO[Payment]:
        return (
            IO.delay(lambda: ports.events.append(stream_id, events, expected))
            .then(project(ports, after))
            .map(lambda _: after)
        )

    # Fold first: an event the transition table forbids is never written.
    return IO.delay(lambda: _fold(payment, events)).flat_map(write)


def project(ports: Ports, payment: Payment) -> IO[None]:
    """Save the projection row; a failure is logged and counted, since events already hold it."""

    def failed(error: Exception) -> IO[None]:
        ports.metrics.increment("projection.write_failed")
        ports.logger.log("warning", "projection write failed", payment=payment.id, error=error)
        return IO.of(None)

    return IO.delay(lambda: ports.projections.save(payment)).recover(failed)


def create_payment(ports: Ports, command: CreatePayment) -> IO[Created]:
    """Return the key's payment if it exists (same parameters), else record a new one."""

    def decide(existing: Payment | None) -> IO[Created]:
        if existing is not None:
            return IO.of(Created(decisions.same_request(existing, command), created=False))
        return (
            now(ports)
            .flat_map(lambda at: append(ports, None, [decisions.initiate(command, at)]))
            .map(lambda payment: Created(payment, created=True))
        )

    def lost_race(error: Exception) -> IO[Created]:
        # Another writer created the stream between our read and our append: the fence held.
        if isinstance(error, ConcurrencyError):
            return load(ports, command.payment_id).flat_map(decide)
        return IO.fail(error)

    return load(ports, command.payment_id).flat_map(decide).recover(lost_race)


def process_payment(ports: Ports, payment_id: str) -> IO[Payment]:
    """Drive a payment from wherever it stands to a terminal state."""
    return require(ports, payment_id).flat_map(lambda payment: advance(ports, payment))


def advance(ports: Ports, payment: Payment) -> IO[Payment]:
    """Take the next step the payment's state calls for, until it is terminal."""
    match payment.state:
        case PaymentState.INITIATED:
            return authenticate(ports, payment).flat_map(lambda p: advance(ports, p))
        case PaymentState.AUTHENTICATED:
            return start_processing(ports, payment).flat_map(lambda p: charge(ports, p))
        case PaymentState.PROCESSING | PaymentState.UNKNOWN:
            # An earlier attempt may have sent the charge: ask the gateway before sending.
            return verify_with_gateway(ports, payment)
        case _:
            return IO.of(payment)


def authenticate(ports: Ports, payment: Payment) -> IO[Payment]:
    """Authenticate the payment method and record the result."""
    return now(ports).flat_map(
        lambda at: append(ports, payment, [decisions.authenticate(payment, at)])
    )


def start_processing(ports: Ports, payment: Payment) -> IO[Payment]:
    """Record ProcessingStarted durably, before any charge leaves the building."""
    return now(ports).flat_map(
        lambda at: append(
            ports, payment, [decisions.start_processing(payment, ports.gateway.name, at)]
        )
    )


def charge(ports: Ports, payment: Payment) -> IO[Payment]:
    """Send the charge with the payment's idempotency key and record the gateway's answer."""
    request = decisions.charge_request(payment)
    return IO.delay(lambda: ports.gateway.charge(request)).flat_map(
        lambda record: now(ports).flat_map(
            lambda at: append(ports, payment, [decisions.charge_outcome(payment, record, at)])
        )
    )


def verify_with_gateway(ports: Ports, payment: Payment) -> IO[Payment]:
    """Ask the gateway by merchant reference; settle, or re-drive the charge if it never saw it."""

    def settle(outcome: PaymentEvent) -> IO[Payment]:
        recorded = append(ports, payment, [outcome])
        if isinstance(outcome, ChargeNotFound):
            # Safe to send again: the gateway deduplicates by the same idempotency key.
            return recorded.flat_map(lambda p: charge(ports, p))
        return recorded

    return IO.delay(lambda: ports.gateway.status(payment.id)).flat_map(
        lambda record: (
            now(ports)
            .map(lambda at: decisions.verification_outcome(payment, record, at))
            .flat_map(settle)
        )
    )


def _fold(payment: Payment | None, events: Sequence[PaymentEvent]) -> Payment:
    if payment is None:
        started = replay(events)
        assert started is not None, "append needs at least one event"
        return started
    for event in events:
        payment = evolve(payment, event)
    return payment
