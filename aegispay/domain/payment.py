"""The Payment value and the pure fold that rebuilds it from its events."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from aegispay.domain.errors import InvalidTransition
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
    return Payment(**_initial_fields(event))


def _initial_fields(event: PaymentInitiated) -> dict[str, object]:
    """The fields of a payment's first snapshot, as its initiating event gives them."""
    return {
        "id": event.payment_id,
        "idempotency_key": event.idempotency_key,
        "amount": event.amount,
        "customer_id": event.customer_id,
        "payment_method": event.payment_method,
        "state": PaymentState.INITIATED,
        "version": 1,
        "created_at": event.occurred_at,
        "updated_at": event.occurred_at,
    }


def evolve(payment: Payment, event: PaymentEvent) -> Payment:
    """Apply one event to a payment, as the transition table allows, and return the new one."""
    return payment.model_copy(update=_changes(payment.id, payment.state, payment.version, event))


# Events that change nothing but the state, version and time (no case of `_changes` matches).
_MOVE_STATE_ONLY = frozenset({PaymentAuthenticated, ChargeNotFound})


def _changes(
    payment_id: str, state: PaymentState, version: int, event: PaymentEvent
) -> dict[str, object]:
    """The fields one event changes in a payment that is at `state` and `version`."""
    target = next_state(state, event.type)
    if target is None or event.payment_id != payment_id:
        raise InvalidTransition(state, event.type, payment_id)
    changes: dict[str, object] = {
        "state": target,
        "version": version + 1,
        "updated_at": event.occurred_at,
    }
    if type(event) in _MOVE_STATE_ONLY:
        return changes  # what the match below would find, without trying each of its cases
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

    The same as `evolve` event by event, but the changes are gathered and the snapshot made
    once at the end, not once per event: from an empty stream, the fields of the initiating
    event and every change after it make one Payment.
    """
    if start is None:
        return _replay_new(iter(events))
    changed: dict[str, object] = {}
    for event in events:
        state = changed.get("state", start.state)
        version = changed.get("version", start.version)
        changed |= _changes(start.id, state, version, event)  # type: ignore[arg-type]
    return start.model_copy(update=changed) if changed else start


def _replay_new(events: Iterator[PaymentEvent]) -> Payment | None:
    """Fold a stream from its first event: None if there is none."""
    first = next(events, None)
    if first is None:
        return None
    if not isinstance(first, PaymentInitiated):
        raise InvalidTransition("(empty)", first.type, first.payment_id)
    fields = _initial_fields(first)
    payment_id = first.payment_id
    for event in events:
        fields |= _changes(payment_id, fields["state"], fields["version"], event)  # type: ignore[arg-type]
    return Payment(**fields)
