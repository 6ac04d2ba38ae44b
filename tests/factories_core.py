"""Small event and payment factories for the pure-core tests: one payment, fixed times."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from aegispay.domain.events import (
    CancelConfirmed,
    CancelRequested,
    ChargeConfirmed,
    ChargeNotFound,
    DeclineConfirmed,
    GatewayOutcomeUnknown,
    PaymentAuthenticated,
    PaymentEvent,
    PaymentFailed,
    PaymentInitiated,
    PaymentRerouted,
    PaymentSucceeded,
    ProcessingStarted,
)
from aegispay.domain.money import Money

PAYMENT_ID = "pay_1"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(step: int) -> datetime:
    """Return the time of the n-th event: one second apart from T0."""
    return T0 + timedelta(seconds=step)


def initiated(payment_id: str = PAYMENT_ID, when: datetime = T0) -> PaymentInitiated:
    """A PaymentInitiated for 19.99 USD."""
    return PaymentInitiated(
        payment_id=payment_id,
        occurred_at=when,
        idempotency_key=f"key-{payment_id}",
        amount=Money(minor=1999, currency="USD"),
        customer_id="cus_1",
        payment_method="card",
    )


_BUILDERS: dict[str, Callable[[str, datetime], PaymentEvent]] = {
    "PaymentInitiated": initiated,
    "PaymentAuthenticated": lambda pid, when: PaymentAuthenticated(
        payment_id=pid, occurred_at=when
    ),
    "ProcessingStarted": lambda pid, when: ProcessingStarted(
        payment_id=pid, occurred_at=when, gateway="sim", gateway_idempotency_key=f"aegispay-{pid}"
    ),
    "PaymentRerouted": lambda pid, when: PaymentRerouted(
        payment_id=pid, occurred_at=when, gateway="fallback", reason="circuit_open"
    ),
    "PaymentSucceeded": lambda pid, when: PaymentSucceeded(
        payment_id=pid, occurred_at=when, transaction_id="txn_1"
    ),
    "PaymentFailed": lambda pid, when: PaymentFailed(
        payment_id=pid, occurred_at=when, reason="card_declined"
    ),
    "GatewayOutcomeUnknown": lambda pid, when: GatewayOutcomeUnknown(
        payment_id=pid, occurred_at=when, reason="timeout after send"
    ),
    "ChargeConfirmed": lambda pid, when: ChargeConfirmed(
        payment_id=pid, occurred_at=when, transaction_id="txn_1"
    ),
    "DeclineConfirmed": lambda pid, when: DeclineConfirmed(
        payment_id=pid, occurred_at=when, reason="card_declined"
    ),
    "ChargeNotFound": lambda pid, when: ChargeNotFound(payment_id=pid, occurred_at=when),
    "CancelRequested": lambda pid, when: CancelRequested(
        payment_id=pid, occurred_at=when, gateway="sim", reason="gateway_unavailable: network"
    ),
    "CancelConfirmed": lambda pid, when: CancelConfirmed(
        payment_id=pid, occurred_at=when, reason="gateway_unavailable: network"
    ),
}

EVENT_TYPES: tuple[str, ...] = tuple(_BUILDERS)


def event_of_type(
    event_type: str, payment_id: str = PAYMENT_ID, when: datetime = T0
) -> PaymentEvent:
    """Build an event of the named type with fixed, plausible field values."""
    return _BUILDERS[event_type](payment_id, when)


def events_of_types(event_types: list[str], payment_id: str = PAYMENT_ID) -> list[PaymentEvent]:
    """Build one event per type, one second apart, all for the same payment."""
    return [event_of_type(t, payment_id, at(i)) for i, t in enumerate(event_types)]


HAPPY_PATH = ["PaymentInitiated", "PaymentAuthenticated", "ProcessingStarted", "PaymentSucceeded"]
