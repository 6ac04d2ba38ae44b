"""What passes between AegisPay and a payment gateway: a charge request and the gateway's record."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, model_validator

from aegispay.domain.money import Money


class ChargeStatus(StrEnum):
    """The gateway's verdict on a merchant reference."""

    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    # Cancelled before any charge: the gateway refuses every later charge with the reference.
    CANCELLED = "cancelled"


class ChargeRequest(BaseModel):
    """Ask a gateway to charge: the idempotency key makes every retry the same request."""

    model_config = ConfigDict(frozen=True)

    merchant_reference: str
    idempotency_key: str
    amount: Money
    payment_method: str


class ChargeRecord(BaseModel):
    """What the gateway's ledger holds for a merchant reference: a charge or a cancellation.

    A cancellation asked for no money, so it has no amount, payment method or idempotency key.
    """

    model_config = ConfigDict(frozen=True)

    transaction_id: str
    merchant_reference: str
    idempotency_key: str | None = None
    amount: Money | None = None
    payment_method: str | None = None
    status: ChargeStatus
    decline_reason: str | None = None
    created_at: datetime

    @model_validator(mode="after")
    def _charges_name_their_money(self) -> ChargeRecord:
        has_request = None not in (self.idempotency_key, self.amount, self.payment_method)
        if has_request == (self.status is ChargeStatus.CANCELLED):
            raise ValueError("a charge carries its key, amount and method; a cancellation none")
        return self

    @property
    def charged(self) -> bool:
        """True when the customer's money moved."""
        return self.status is ChargeStatus.SUCCEEDED

    @property
    def cancelled(self) -> bool:
        """True when the gateway cancelled the reference before any charge."""
        return self.status is ChargeStatus.CANCELLED
