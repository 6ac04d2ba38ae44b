"""A simulated payment provider: a deduplicating ledger, status lookups, deterministic declines."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
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
# The reason a decline injected as a fault carries.
DECLINED_BY_FAULT = "do_not_honor"


@dataclass(frozen=True)
class PlannedFault:
    """What will go wrong with one gateway call: an exclusive kind (or None), and slowness."""

    kind: str | None = None
    slow: bool = False


class FaultSource(Protocol):
    """The seam for fault injection: plans each call's fault, strikes before and after it acts."""

    def draw(self, gateway: str, operation: str) -> PlannedFault:
        """Plan what goes wrong with this call."""
        ...

    def before(self, gateway: str, operation: str, fault: PlannedFault) -> None:
        """Raise (or sleep) before the gateway acts."""
        ...

    def after(self, gateway: str, operation: str, fault: PlannedFault) -> None:
        """Raise after the gateway acted: the response is lost."""
        ...


class NoFaults:
    """A gateway that always answers."""

    def draw(self, gateway: str, operation: str) -> PlannedFault:
        """Plan nothing."""
        return PlannedFault()

    def before(self, gateway: str, operation: str, fault: PlannedFault) -> None:
        """Let the call through."""

    def after(self, gateway: str, operation: str, fault: PlannedFault) -> None:
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
        """How many requests reached this gateway (charges, status lookups and cancels)."""
        return self._calls

    def charge(self, request: ChargeRequest) -> ChargeRecord:
        """Charge once per idempotency key; repeats return the first record, and a charge with
        a cancelled reference returns the cancellation (no money moves)."""
        self._count_call()
        fault = self.faults.draw(self._name, "charge")
        self.faults.before(self._name, "charge", fault)
        decline = DECLINING_METHODS.get(request.payment_method)
        if fault.kind == "decline":
            decline = DECLINED_BY_FAULT
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
        self.faults.after(self._name, "charge", fault)
        return record

    def cancel(self, merchant_reference: str) -> ChargeRecord:
        """Cancel our reference unless charged or declined: later charges with it are refused."""
        self._count_call()
        fault = self.faults.draw(self._name, "cancel")
        self.faults.before(self._name, "cancel", fault)
        record = self.ledger.cancel(merchant_reference, self._clock.now())
        self.faults.after(self._name, "cancel", fault)
        return record

    def status(self, merchant_reference: str) -> ChargeRecord | None:
        """Look a charge up by our payment id."""
        return self._lookup(lambda: self.ledger.by_reference(merchant_reference))

    def status_by_transaction(self, transaction_id: str) -> ChargeRecord | None:
        """Look a charge up by the gateway's transaction id."""
        return self._lookup(lambda: self.ledger.by_transaction(transaction_id))

    def _lookup(self, find: Callable[[], ChargeRecord | None]) -> ChargeRecord | None:
        self._count_call()
        fault = self.faults.draw(self._name, "status")
        self.faults.before(self._name, "status", fault)
        record = find()
        self.faults.after(self._name, "status", fault)
        return record

    def charges(self) -> list[ChargeRecord]:
        """Every record in the ledger (charged, declined, cancelled) in order; no call counted."""
        return self.ledger.all()

    def _count_call(self) -> None:
        with self._lock:
            self._calls += 1
