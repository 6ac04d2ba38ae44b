"""The payment service: runs workflows under locks. One of the few places `unsafe_run` is called."""

from __future__ import annotations

from aegispay.domain.commands import CreatePayment
from aegispay.domain.errors import ConcurrencyError
from aegispay.domain.payment import Payment
from aegispay.infra.locks import with_lock
from aegispay.orchestration import workflows
from aegispay.orchestration.ports import LockManager, Ports

# A lease long enough for one payment's work; waiters wait a little longer than that, so a
# holder that died is outlived rather than reported as a conflict.
LOCK_TTL = 30.0
LOCK_WAIT = 35.0
# Each refused write means another writer appended to the stream, and a stream has at most a
# handful of events: after this many, something else is wrong and the error is raised.
MAX_STALE_WRITES = 10


class PaymentService:
    """Create and process payments: lock, run the pure workflow, release."""

    def __init__(self, ports: Ports, locks: LockManager, lock_ttl: float = LOCK_TTL) -> None:
        self.ports = ports
        self.locks = locks
        self.lock_ttl = lock_ttl
        self.lock_wait = lock_ttl + LOCK_WAIT - LOCK_TTL

    def create(self, command: CreatePayment) -> workflows.Created:
        """Create the key's payment once; a repeat returns it, a conflict raises."""
        # The lock spares duplicate requests a wasted race; the store's version check is the fence.
        with with_lock(
            self.locks,
            f"idempotency:{command.idempotency_key}",
            self._owner(),
            self.lock_ttl,
            self.lock_wait,
        ):
            outcome = workflows.create_payment(self.ports, command).unsafe_run()
        self.ports.metrics.increment("payments.created" if outcome.created else "payments.replayed")
        self.ports.logger.log(
            "info", "payment created" if outcome.created else "duplicate request answered",
            payment=outcome.payment.id, key=command.idempotency_key,
        )  # fmt: skip
        return outcome

    def process(self, payment_id: str, wait: float | None = None) -> Payment:
        """Drive a payment to a terminal state under its lock, waiting for it `wait` seconds
        (by default a little longer than a lease, so a dead holder is outlived); LockTimeout
        once they pass."""
        wait = self.lock_wait if wait is None else wait
        with with_lock(self.locks, f"payment:{payment_id}", self._owner(), self.lock_ttl, wait):
            for _ in range(MAX_STALE_WRITES):
                try:
                    payment = workflows.process_payment(self.ports, payment_id).unsafe_run()
                    self.ports.logger.log("info", "payment processed", payment=payment_id,
                                          state=payment.state.value)  # fmt: skip
                    return payment
                except ConcurrencyError:
                    # Another process moved the payment on (our lease ran out while we were
                    # paused, or it never saw our lock): the fence refused our stale write.
                    # Start again from what is stored now.
                    self.ports.metrics.increment("fence.stale_writes_refused")
            return workflows.process_payment(self.ports, payment_id).unsafe_run()

    def _owner(self) -> str:
        return self.ports.ids.new_id("owner")
