"""Pure decisions: given a payment and what we learnt, which event happens next."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from aegispay.domain.charges import ChargeRecord, ChargeRequest
from aegispay.domain.commands import CreatePayment
from aegispay.domain.errors import IdempotencyKeyConflict
from aegispay.domain.events import (
    CancelConfirmed,
    CancelRequested,
    ChargeConfirmed,
    ChargeNotFound,
    DeclineConfirmed,
    GatewayOutcomeUnknown,
    PaymentAuthenticated,
    PaymentFailed,
    PaymentInitiated,
    PaymentRerouted,
    PaymentSucceeded,
    ProcessingStarted,
)
from aegispay.domain.failures import FailureRule
from aegispay.domain.payment import Payment

# Documented test payment method that fails authentication (no charge is ever sent).
FAILS_AUTHENTICATION = "tok_authentication_failed"


def initiate(command: CreatePayment, at: datetime) -> PaymentInitiated:
    """Record a new payment request under its idempotency key."""
    return PaymentInitiated(
        payment_id=command.payment_id,
        occurred_at=at,
        idempotency_key=command.idempotency_key,
        amount=command.amount,
        customer_id=command.customer_id,
        payment_method=command.payment_method,
    )


def same_request(existing: Payment, command: CreatePayment) -> Payment:
    """Return the existing payment if the command repeats it, else raise IdempotencyKeyConflict."""
    if (existing.amount, existing.customer_id, existing.payment_method) == (
        command.amount,
        command.customer_id,
        command.payment_method,
    ):
        return existing  # a repeat, as nearly every reuse of a key is: nothing to list
    differences = {
        field: (stored, requested)
        for field, stored, requested in (
            ("amount", existing.amount, command.amount),
            ("customer_id", existing.customer_id, command.customer_id),
            ("payment_method", existing.payment_method, command.payment_method),
        )
        if stored != requested
    }
    if differences:
        raise IdempotencyKeyConflict(command.idempotency_key, differences)
    return existing


def authenticate(payment: Payment, at: datetime) -> PaymentAuthenticated | PaymentFailed:
    """Authenticate the payment method (the simulated rule: one test token always fails)."""
    if payment.payment_method == FAILS_AUTHENTICATION:
        return PaymentFailed(payment_id=payment.id, occurred_at=at, reason="authentication_failed")
    return PaymentAuthenticated(payment_id=payment.id, occurred_at=at)


def start_processing(payment: Payment, gateway: str, at: datetime) -> ProcessingStarted:
    """Record the intent to charge before the charge is sent, so a crash leaves a trace."""
    return ProcessingStarted(
        payment_id=payment.id,
        occurred_at=at,
        gateway=gateway,
        gateway_idempotency_key=payment.gateway_idempotency_key,
    )


def reroute(payment: Payment, gateway: str, reason: str, at: datetime) -> PaymentRerouted:
    """Move a charge whose first gateway confirmed the cancel to another gateway."""
    return PaymentRerouted(payment_id=payment.id, occurred_at=at, gateway=gateway, reason=reason)


def gateway_unavailable(payment: Payment, reason: str, at: datetime) -> PaymentFailed:
    """Fail a payment before ProcessingStarted: no charge was ever sent, by anyone."""
    return PaymentFailed(
        payment_id=payment.id, occurred_at=at, reason=f"gateway_unavailable: {reason}"
    )


def request_cancel(payment: Payment, reason: str, at: datetime) -> CancelRequested:
    """Give up on the charge: record that we ask the gateway to cancel our reference."""
    assert payment.gateway is not None, "only a payment whose processing started is cancelled"
    return CancelRequested(
        payment_id=payment.id,
        occurred_at=at,
        gateway=payment.gateway,
        reason=f"gateway_unavailable: {reason}",
    )


def outcome_unknown(payment: Payment, reason: str, at: datetime) -> GatewayOutcomeUnknown:
    """Record that the gateway may or may not have charged."""
    return GatewayOutcomeUnknown(payment_id=payment.id, occurred_at=at, reason=reason)


def charge_request(payment: Payment) -> ChargeRequest:
    """The request every attempt for this payment sends: same key, same parameters."""
    return ChargeRequest(
        merchant_reference=payment.id,
        idempotency_key=payment.gateway_idempotency_key,
        amount=payment.amount,
        payment_method=payment.payment_method,
    )


def charge_outcome(
    payment: Payment, record: ChargeRecord, at: datetime
) -> PaymentSucceeded | PaymentFailed | CancelConfirmed:
    """The gateway answered a charge: succeeded, declined, or refused as cancelled."""
    if record.charged:
        return PaymentSucceeded(
            payment_id=payment.id, occurred_at=at, transaction_id=record.transaction_id
        )
    if record.cancelled:
        return cancel_confirmed(payment, at)
    return PaymentFailed(
        payment_id=payment.id, occurred_at=at, reason=record.decline_reason or "declined"
    )


def verification_outcome(
    payment: Payment, record: ChargeRecord | None, at: datetime
) -> ChargeConfirmed | DeclineConfirmed | CancelConfirmed | ChargeNotFound:
    """The gateway answered a status lookup or a cancel: charged, declined, cancelled, unseen."""
    if record is None:
        return ChargeNotFound(payment_id=payment.id, occurred_at=at)
    if record.charged:
        return ChargeConfirmed(
            payment_id=payment.id, occurred_at=at, transaction_id=record.transaction_id
        )
    if record.cancelled:
        return cancel_confirmed(payment, at)
    return DeclineConfirmed(
        payment_id=payment.id, occurred_at=at, reason=record.decline_reason or "declined"
    )


def cancel_confirmed(payment: Payment, at: datetime) -> CancelConfirmed:
    """The gateway cancelled our reference: nothing was charged and nothing can be any more."""
    reason = payment.last_error or "cancelled"
    return CancelConfirmed(payment_id=payment.id, occurred_at=at, reason=reason)


class Answer(StrEnum):
    """What the gateway answered when asked about our reference."""

    CHARGED = "charged"
    DECLINED = "declined"
    CANCELLED = "cancelled"
    NOT_FOUND = "not_found"
    UNREACHABLE = "unreachable"


class Action(StrEnum):
    """What to do with a payment in flight once the gateway has answered."""

    SUCCEED = "succeed"  # settle it as paid
    FAIL = "fail"  # settle it as failed
    REDRIVE = "redrive"  # charge again with the same idempotency key
    CANCEL = "cancel"  # cancel our reference at the gateway, then settle on its answer
    WAIT = "wait"  # leave it for a later run


class AfterFailedCharge(StrEnum):
    """What to do when a charge call failed without an answer."""

    VERIFY = "verify"  # record UNKNOWN, then ask the gateway
    CANCEL = "cancel"  # cancel our reference, then settle on the gateway's answer
    FAIL = "fail"  # write FAILURE at once, asking nobody


@dataclass(frozen=True)
class Seen:
    """What a recovery decision is given: the gateway's answer, our payment, the record held."""

    answer: Answer
    payment: Payment
    record: ChargeRecord | None = None


def answer_of(record: ChargeRecord | None) -> Answer:
    """The answer a record held by the gateway (or none) gives about our reference."""
    if record is None:
        return Answer.NOT_FOUND
    if record.cancelled:
        return Answer.CANCELLED
    return Answer.CHARGED if record.charged else Answer.DECLINED


def decide_recovery(seen: Seen) -> Action:
    """Settle on a definitive answer; re-drive a charge never seen (the gateway dedups by key);
    wait for a gateway that cannot be asked."""
    match seen.answer:
        case Answer.CHARGED:
            return Action.SUCCEED
        case Answer.DECLINED | Answer.CANCELLED:
            return Action.FAIL
        case Answer.NOT_FOUND:
            return Action.REDRIVE
    return Action.WAIT


def verify_once(seen: Seen) -> Action:
    """Right after our own charge failed unknown: settle on a definitive answer, else wait
    (re-driving here would loop on a charge that keeps failing)."""
    action = decide_recovery(seen)
    return Action.WAIT if action is Action.REDRIVE else action


def after_failed_charge(rule: FailureRule) -> AfterFailedCharge:
    """A charge that may have gone through is verified; one certainly not sent is cancelled,
    since another actor's charge may still be on the wire."""
    return AfterFailedCharge.VERIFY if rule.may_have_charged else AfterFailedCharge.CANCEL


def settlement(
    payment: Payment, action: Action, seen: Seen, at: datetime
) -> ChargeConfirmed | DeclineConfirmed | CancelConfirmed:
    """The event that settles a payment as an action decided: paid, or failed."""
    record = seen.record
    if action is Action.SUCCEED:
        transaction = record.transaction_id if record is not None else f"unverified:{payment.id}"
        return ChargeConfirmed(payment_id=payment.id, occurred_at=at, transaction_id=transaction)
    if record is not None and record.cancelled:
        return cancel_confirmed(payment, at)
    reason = (record.decline_reason if record is not None else None) or (
        "declined" if seen.answer is Answer.DECLINED else f"decided on {seen.answer}"
    )
    return DeclineConfirmed(payment_id=payment.id, occurred_at=at, reason=reason)


def charge_failed(payment: Payment, reason: str, at: datetime) -> PaymentFailed:
    """Fail a payment on a failed charge call without asking the gateway."""
    return PaymentFailed(payment_id=payment.id, occurred_at=at, reason=f"charge failed: {reason}")
