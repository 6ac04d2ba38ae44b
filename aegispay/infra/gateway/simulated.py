"""A simulated payment provider: a deduplicating ledger, status lookups, deterministic declines."""

from __future__ import annotations

import hashlib
import threading
from typing import Protocol

from aegispay.domain.charges import ChargeRecord, ChargeRequest, ChargeStatus
from aegispay.infra.gateway.ledger import Ledger
from aegispay.orchestration.ports import Clock

# Documented test payment methods: the simulated gateway declines these, always.
DECLINING_METHODS: dict[str, str] = {
    "tok_decline": "card_declined",
    "tok_insufficient_funds": "insufficient_funds",
    "tok_expired_card": "expired_card",
}


class FaultSource(Protocol):
    """The seam for fault injection: asked once per gateway call what should go wrong."""

    def before_call(self, gateway: str, operation: str, request: ChargeRequest | None) -> None:
        """Raise to fail the call before it reaches the ledger (or sleep to slow it)."""
        ...

    def after_call(self, gateway: str, operation: str, request: ChargeRequest | None) -> None:
        """Raise to lose the response after the ledger has acted."""
        ...


class NoFaults:
    """A gateway that always answers."""

    def before_call(self, gateway: str, operation: str, request: ChargeRequest | None) -> None:
        """Let the call through."""

    def after_call(self, gateway: str, operation: str, request: ChargeRequest | None) -> None:
        """Deliver the response."""


def transaction_id_for(idempotency_key: str) -> str:
    """Derive the gateway's transaction id from the idempotency key: one key, one transaction."""
    return "txn_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]


class SimulatedGateway:
    """Charges once per idempotency key and answers status by merchant reference."""

    def __init__(
        self, name: str, ledger: Ledger, clock: Clock, faults: FaultSource | None = None
    ) -> None:
        self._name = name
        self.ledger = ledger
        self._clock = clock
        self.faults: FaultSource = faults or NoFaults()
        self._calls = 0
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """The routing name, such as 'primary'."""
        return self._name

    @property
    def calls(self) -> int:
        """How many requests reached this gateway (charges and status lookups)."""
        return self._calls

    def charge(self, request: ChargeRequest) -> ChargeRecord:
        """Charge the payment method once per idempotency key; repeats return the first record."""
        self._count_call()
        self.faults.before_call(self._name, "charge", request)
        decline = DECLINING_METHODS.get(request.payment_method)
        record = self.ledger.record(
            ChargeRecord(
                transaction_id=transaction_id_for(request.idempotency_key),
                merchant_reference=request.merchant_reference,
                idempotency_key=request.idempotency_key,
                amount=request.amount,
                payment_method=request.payment_method,
                status=ChargeStatus.DECLINED if decline else ChargeStatus.SUCCEEDED,
                decline_reason=decline,
                created_at=self._clock.now(),
            )
        )
        self.faults.after_call(self._name, "charge", request)
        return record

    def status(self, merchant_reference: str) -> ChargeRecord | None:
        """Look a charge up by our payment id."""
        self._count_call()
        self.faults.before_call(self._name, "status", None)
        record = self.ledger.by_reference(merchant_reference)
        self.faults.after_call(self._name, "status", None)
        return record

    def status_by_transaction(self, transaction_id: str) -> ChargeRecord | None:
        """Look a charge up by the gateway's transaction id."""
        self._count_call()
        self.faults.before_call(self._name, "status", None)
        return self.ledger.by_transaction(transaction_id)

    def charges(self) -> list[ChargeRecord]:
        """Every record in the ledger, charged or declined, in order (no call is counted)."""
        return self.ledger.all()

    def _count_call(self) -> None:
        with self._lock:
            self._calls += 1
