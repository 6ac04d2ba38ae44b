"""Past-tense facts about a payment; the event log made of them is the source of truth."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from aegispay.domain.money import Money


class Event(BaseModel):
    """Common fields: which payment, and when it happened on the injected clock."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    payment_id: str
    occurred_at: datetime


class PaymentInitiated(Event):
    """A customer asked to pay; the request's parameters are recorded once, under its key."""

    type: Literal["PaymentInitiated"] = "PaymentInitiated"
    idempotency_key: str
    amount: Money
    customer_id: str
    payment_method: str


class PaymentAuthenticated(Event):
    """The payment method passed authentication."""

    type: Literal["PaymentAuthenticated"] = "PaymentAuthenticated"


class ProcessingStarted(Event):
    """We are about to send the charge: recorded before the call so recovery knows to verify."""

    type: Literal["ProcessingStarted"] = "ProcessingStarted"
    gateway: str
    gateway_idempotency_key: str


class PaymentRerouted(Event):
    """The first gateway confirmed it cancelled our reference, so another may take the charge."""

    type: Literal["PaymentRerouted"] = "PaymentRerouted"
    gateway: str
    reason: str


class PaymentSucceeded(Event):
    """The gateway answered that it charged the customer."""

    type: Literal["PaymentSucceeded"] = "PaymentSucceeded"
    transaction_id: str


class PaymentFailed(Event):
    """The payment failed definitively: declined, or refused before ProcessingStarted."""

    type: Literal["PaymentFailed"] = "PaymentFailed"
    reason: str


class GatewayOutcomeUnknown(Event):
    """The charge may or may not have happened (timeout after send, lost response)."""

    type: Literal["GatewayOutcomeUnknown"] = "GatewayOutcomeUnknown"
    reason: str


class ChargeConfirmed(Event):
    """Verification: the gateway holds a successful charge for this payment."""

    type: Literal["ChargeConfirmed"] = "ChargeConfirmed"
    transaction_id: str


class DeclineConfirmed(Event):
    """Verification: the gateway holds a declined charge for this payment."""

    type: Literal["DeclineConfirmed"] = "DeclineConfirmed"
    reason: str


class ChargeNotFound(Event):
    """Verification: the gateway never saw this charge, so it may be sent again safely."""

    type: Literal["ChargeNotFound"] = "ChargeNotFound"


class CancelRequested(Event):
    """We give up on the charge and ask the gateway to cancel our reference: recorded first."""

    type: Literal["CancelRequested"] = "CancelRequested"
    gateway: str
    reason: str


class CancelConfirmed(Event):
    """The gateway cancelled our reference: it never charged it and will refuse it from now on."""

    type: Literal["CancelConfirmed"] = "CancelConfirmed"
    reason: str


PaymentEvent = Annotated[
    PaymentInitiated
    | PaymentAuthenticated
    | ProcessingStarted
    | PaymentRerouted
    | PaymentSucceeded
    | PaymentFailed
    | GatewayOutcomeUnknown
    | ChargeConfirmed
    | DeclineConfirmed
    | ChargeNotFound
    | CancelRequested
    | CancelConfirmed,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[PaymentEvent] = TypeAdapter(PaymentEvent)


def event_to_json(event: PaymentEvent) -> str:
    """Serialise an event for storage."""
    return event.model_dump_json()


def event_from_json(data: str | bytes) -> PaymentEvent:
    """Parse a stored event; raises pydantic.ValidationError on an unreadable row."""
    return EVENT_ADAPTER.validate_json(data)
