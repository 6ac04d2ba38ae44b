"""Small builders of events and payments for adapter tests, at fixed times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aegispay import AegisPay, RecoveryReport
from aegispay.domain.events import (
    PaymentAuthenticated,
    PaymentEvent,
    PaymentInitiated,
    ProcessingStarted,
)
from aegispay.domain.money import Money
from aegispay.domain.payment import Payment
from aegispay.domain.states import PaymentState
from aegispay.recovery.coordinator import repair_projections

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def initiated(payment_id: str, minor: int = 1999, second: int = 0) -> PaymentInitiated:
    """A PaymentInitiated for `minor` cents in USD, `second` seconds after T0."""
    return PaymentInitiated(
        payment_id=payment_id,
        occurred_at=T0 + timedelta(seconds=second),
        idempotency_key=f"key-{payment_id}",
        amount=Money(minor=minor, currency="USD"),
        customer_id="cus_1",
        payment_method="card",
    )


def authenticated(payment_id: str, second: int = 1) -> PaymentAuthenticated:
    """A PaymentAuthenticated `second` seconds after T0."""
    return PaymentAuthenticated(payment_id=payment_id, occurred_at=T0 + timedelta(seconds=second))


def processing_started(payment_id: str, second: int = 2) -> ProcessingStarted:
    """A ProcessingStarted on the simulated gateway `second` seconds after T0."""
    return ProcessingStarted(
        payment_id=payment_id,
        occurred_at=T0 + timedelta(seconds=second),
        gateway="sim",
        gateway_idempotency_key=f"aegispay-{payment_id}",
    )


def opening(payment_id: str) -> list[PaymentEvent]:
    """The first three events of a payment: initiated, authenticated, processing started."""
    return [initiated(payment_id), authenticated(payment_id), processing_started(payment_id)]


def payment(
    payment_id: str, state: PaymentState = PaymentState.INITIATED, version: int = 1
) -> Payment:
    """A Payment snapshot in the given state, for projection rows."""
    return Payment(
        id=payment_id,
        idempotency_key=f"key-{payment_id}",
        amount=Money(minor=1999, currency="USD"),
        customer_id="cus_1",
        payment_method="card",
        state=state,
        version=version,
        created_at=T0,
        updated_at=T0 + timedelta(seconds=version - 1),
    )


class ForgetfulAegisPay(AegisPay):
    """An engine whose recovery repairs every row but plans no payment to settle."""

    def recover(self, until_quiet: bool = False) -> RecoveryReport:
        report = RecoveryReport()
        repair_projections(self.ports, 0, report)
        return report
