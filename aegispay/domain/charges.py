"""What passes between AegisPay and a payment gateway: a charge request and the gateway's record."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from aegispay.domain.money import Money


class ChargeStatus(StrEnum):
    """The gateway's verdict on a charge."""

    SUCCEEDED = "succeeded"
    DECLINED = "declined"


class ChargeRequest(BaseModel):
    """Ask a gateway to charge: the idempotency key makes every retry the same request."""

    model_config = ConfigDict(frozen=True)

    merchant_reference: str
    idempotency_key: str
    amount: Money
    payment_method: str


class ChargeRecord(BaseModel):
    """A charge as the gateway's ledger holds it."""

    model_config = ConfigDict(frozen=True)

    transaction_id: str
    merchant_reference: str
    idempotency_key: str
    amount: Money
    payment_method: str
    status: ChargeStatus
    decline_reason: str | None = None
    created_at: datetime

    @property
    def charged(self) -> bool:
        """True when the customer's money moved."""
        return self.status is ChargeStatus.SUCCEEDED
