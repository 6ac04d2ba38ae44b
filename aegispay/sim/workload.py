"""Seeded workloads: the payments of a run, created and processed as customers would send them."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from aegispay.domain.commands import payment_id_for
from aegispay.domain.payment import Payment
from aegispay.engine import Engine
from aegispay.infra.clock import VirtualClock
from aegispay.sim.harness import AegisPay

CURRENCIES = ("USD", "EUR", "GBP", "JPY", "BHD")
# Simulated customers arrive one per second: time passes between payments, as it would.
ARRIVAL_INTERVAL = 1.0


def seeded_request(seed: int, index: int) -> dict[str, str]:
    """The index-th payment request of a seeded run: the same seed gives the same requests."""
    rng = random.Random(f"{seed}:{index}")
    currency = rng.choice(CURRENCIES)
    cents = "" if currency == "JPY" else f".{rng.randint(0, 99):02d}"
    return {
        "idempotency_key": f"run-{seed}-{index}",
        "amount": f"{rng.randint(1, 50_000)}{cents}",
        "currency": currency,
        "customer_id": f"cus_{rng.randrange(1000):03d}",
        "payment_method": "tok_decline" if rng.random() < 0.05 else "tok_visa",
    }


@dataclass
class WorkloadResult:
    """How a run ended: payments created by this run, final states, and the settling passes."""

    payments: int
    created: int = 0
    states: Counter[str] = field(default_factory=Counter)
    settle_passes: int = 0
    unresolved: int = 0

    def as_dict(self) -> dict[str, object]:
        """The figures, for JSON."""
        return {
            "payments": self.payments,
            "created": self.created,
            "states": dict(sorted(self.states.items())),
            "settle_passes": self.settle_passes,
            "unresolved": self.unresolved,
        }


def run_workload(
    pay: AegisPay,
    payments: int,
    seed: int,
    on_payment: Callable[[int, Payment], None] | None = None,
) -> WorkloadResult:
    """Create and process the seeded payments in order, then settle what was left in flight."""
    result = WorkloadResult(payments)
    created_before = pay.metrics.get("payments.created")
    for index in range(payments):
        payment = pay.create_payment(**seeded_request(seed, index))
        settled = pay.process_payment(payment.id)
        if on_payment is not None:
            on_payment(index, settled)
        if isinstance(pay.clock, VirtualClock):
            pay.clock.advance(ARRIVAL_INTERVAL)
    result.created = pay.metrics.get("payments.created") - created_before
    report = pay.recover(until_quiet=True)
    result.settle_passes, result.unresolved = report.passes, report.unresolved
    for index in range(payments):
        key = seeded_request(seed, index)["idempotency_key"]
        result.states[pay.get_payment(payment_id_for(key)).state.value] += 1
    return result


def resume_clock(pay: Engine) -> None:
    """Move a virtual clock up to the newest stored event, so a resumed run never goes back."""
    if not isinstance(pay.clock, VirtualClock):
        return
    newest_streams = pay.event_store.streams_since(pay.event_store.last_position() - 1)
    # Only times are wanted, so the chain is not checked: a damaged stream must not stop a
    # resumed run; recovery reports it.
    times = [
        recorded.recorded_at
        for stream_id in newest_streams
        for recorded in pay.event_store.read_unverified(stream_id)
    ]
    if times:
        behind = (max(times) - pay.clock.now()).total_seconds()
        pay.clock.advance(max(behind, 0.0))
