"""The Payment value and the pure fold that rebuilds it from its events."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from aegispay.domain.errors import InvalidTransition
from aegispay.domain.events import (
    CancelConfirmed,
    CancelRequested,
    ChargeConfirmed,
    DeclineConfirmed,
    GatewayOutcomeUnknown,
    PaymentEvent,
    PaymentFailed,
    PaymentInitiated,
    PaymentRerouted,
    PaymentSucceeded,
    ProcessingStarted,
)
from aegispay.domain.money import Money
from aegispay.domain.states import PaymentState, next_state


class Payment(BaseModel):
    """An immutable snapshot of a payment; a state change returns a new Payment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    idempotency_key: str
    amount: Money
    customer_id: str
    payment_method: str
    state: PaymentState
    version: int
    created_at: datetime
    updated_at: datetime
    gateway: str | None = None
    transaction_id: str | None = None
    failure_reason: str | None = None
    last_error: str | None = None

    @property
    def currency(self) -> str:
        """The ISO 4217 currency of the amount."""
        return self.amount.currency

    @property
    def gateway_idempotency_key(self) -> str:
        """The key the gateway deduplicates by: one per payment, shared by every attempt."""
        return f"aegispay-{self.id}"


def initial(event: PaymentInitiated) -> Payment:
    """Create the first snapshot of a payment from its initiating event."""
    return Payment(
        id=event.payment_id,
        idempotency_key=event.idempotency_key,
        amount=event.amount,
        customer_id=event.customer_id,
        payment_method=event.payment_method,
        state=PaymentState.INITIATED,
        version=1,
        created_at=event.occurred_at,
        updated_at=event.occurred_at,
    )


def evolve(payment: Payment, event: PaymentEvent) -> Payment:
    """Apply one event to a payment, as the transition table allows, and return the new one."""
    return payment.model_copy(update=_changes(payment, payment.state, payment.version, event))


def _changes(
    payment: Payment, state: PaymentState, version: int, event: PaymentEvent
) -> dict[str, object]:
    """The fields one event changes in a payment that is at `state` and `version`."""
    target = next_state(state, event.type)
    if target is None or event.payment_id != payment.id:
        raise InvalidTransition(state, event.type, payment.id)
    changes: dict[str, object] = {
        "state": target,
        "version": version + 1,
        "updated_at": event.occurred_at,
    }
    match event:
        case ProcessingStarted(gateway=gateway) | PaymentRerouted(gateway=gateway):
            changes["gateway"] = gateway
        case PaymentSucceeded(transaction_id=txn) | ChargeConfirmed(transaction_id=txn):
            changes |= {"transaction_id": txn, "last_error": None}
        case (
            PaymentFailed(reason=reason)
            | DeclineConfirmed(reason=reason)
            | CancelConfirmed(reason=reason)
        ):
            changes["failure_reason"] = reason
        case GatewayOutcomeUnknown(reason=reason) | CancelRequested(reason=reason):
            changes["last_error"] = reason
    return changes


def replay(events: Iterable[PaymentEvent], start: Payment | None = None) -> Payment | None:
    """Fold events into a payment, from `start` (or an empty stream); None if nothing at all.

    The same as `evolve` event by event, but the changes are gathered and the snapshot copied
    once at the end, not once per event.
    """
    payment = start
    changed: dict[str, object] = {}
    for event in events:
        if payment is None:
            if not isinstance(event, PaymentInitiated):
                raise InvalidTransition("(empty)", event.type, event.payment_id)
            payment = initial(event)
            continue
        state = changed.get("state", payment.state)
        version = changed.get("version", payment.version)
        changed |= _changes(payment, state, version, event)  # type: ignore[arg-type]
    return payment.model_copy(update=changed) if changed and payment is not None else payment
