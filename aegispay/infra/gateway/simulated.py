"""A simulated payment provider: a deduplicating ledger, status lookups, deterministic declines."""

from __future__ import annotations

import hashlib
import threading

from aegispay.domain.charges import ChargeRecord, ChargeRequest, ChargeStatus
from aegispay.infra.gateway.ledger import Ledger
from aegispay.orchestration.ports import Clock

# Documented test payment methods: the simulated gateway declines these, always.
DECLINING_METHODS: dict[str, str] = {
    "tok_decline": "card_declined",
    "tok_insufficient_funds": "insufficient_funds",
    "tok_expired_card": "expired_card",
}


def transaction_id_for(idempotency_key: str) -> str:
    """Derive the gateway's transaction id from the idempotency key: one key, one transaction."""
    return "txn_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]


class SimulatedGateway:
    """Charges once per idempotency key and answers status by merchant reference."""

    def __init__(self, name: str, ledger: Ledger, clock: Clock) -> None:
        self._name = name
        self.ledger = ledger
        self._clock = clock
        self._calls = 0
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """The routing name, such as 'primary'."""
        return self._name

    @property
    def calls(self) -> int:
        """How many requests reached this gateway (charges, status lookups and cancels)."""
        return self._calls

    def charge(self, request: ChargeRequest, decline: str | None = None) -> ChargeRecord:
        """Charge once per idempotency key; repeats return the first record, and a charge with
        a cancelled reference returns the cancellation (no money moves).

        `decline` makes the provider refuse this charge with that reason (a test harness's
        lever; the documented test cards decline without it).
        """
        self._count_call()
        reason = decline or DECLINING_METHODS.get(request.payment_method)
        return self.ledger.record(
            ChargeRecord(
                transaction_id=transaction_id_for(request.idempotency_key),
                merchant_reference=request.merchant_reference,
                idempotency_key=request.idempotency_key,
                amount=request.amount,
                payment_method=request.payment_method,
                status=ChargeStatus.DECLINED if reason else ChargeStatus.SUCCEEDED,
                decline_reason=reason,
                created_at=self._clock.now(),
            )
        )

    def cancel(self, merchant_reference: str) -> ChargeRecord:
        """Cancel our reference unless charged or declined: later charges with it are refused."""
        self._count_call()
        return self.ledger.cancel(merchant_reference, self._clock.now())

    def status(self, merchant_reference: str) -> ChargeRecord | None:
        """Look a charge up by our payment id."""
        self._count_call()
        return self.ledger.by_reference(merchant_reference)

    def status_by_transaction(self, transaction_id: str) -> ChargeRecord | None:
        """Look a charge up by the gateway's transaction id."""
        self._count_call()
        return self.ledger.by_transaction(transaction_id)

    def charges(self) -> list[ChargeRecord]:
        """Every record in the ledger (charged, declined, cancelled) in order; no call counted."""
        return self.ledger.all()

    def _count_call(self) -> None:
        with self._lock:
            self._calls += 1
