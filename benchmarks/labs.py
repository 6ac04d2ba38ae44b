"""How long every attack and every lab check takes: each must answer in under 10 s for a notebook.

Each attack (the whole engine, then each defense switched off alone) and each lab's check of a
right and a wrong solution runs at the default depth, and the attack on the whole engine once
more at depth 3 (the deeper attack is a parameter). The table gives the seconds, the schedules
tried and what was found; `python -m benchmarks.labs` runs this one alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from aegispay import ConcurrencyError, IdempotencyKeyConflict, LockNotHeld
from aegispay.domain.commands import CreatePayment
from aegispay.domain.decisions import Seen
from aegispay.domain.payment import Payment
from aegispay.labs import DEFENSES, Verdict, attack, check
from aegispay.labs.create_once import Log
from aegispay.resilience.breaker import Breaker, BreakerConfig, BreakerEvent, Decision
from aegispay.resilience.breaker import step as engine_step

INTERACTIVE = 10.0  # seconds: the most a notebook cell may take


def decide(seen: Seen) -> str:
    """The recovery lab's right answer."""
    return {"charged": "succeed", "declined": "fail", "cancelled": "fail",
            "not_found": "redrive", "unreachable": "wait"}[seen.answer.value]  # fmt: skip


def decide_naively(seen: Seen) -> str:
    """The recovery lab's starter: 'not found' taken to mean 'never charged'."""
    return {"charged": "succeed", "unreachable": "wait"}.get(seen.answer.value, "fail")


def create(log: Log, request: CreatePayment) -> Payment:
    """The create_once lab's right answer."""
    existing = log.load(request.payment_id)
    if existing is None:
        try:
            return log.append(log.initiated(request), expected_version=0)
        except ConcurrencyError:
            existing = log.load(request.payment_id)
            assert existing is not None
    if (existing.amount, existing.customer_id) != (request.amount, request.customer_id):
        raise IdempotencyKeyConflict(request.idempotency_key, {})
    return existing


def create_naively(log: Log, request: CreatePayment) -> Payment:
    """The create_once lab's starter: check, then write."""
    return log.load(request.payment_id) or log.append(log.initiated(request))


def step_never_half_opens(
    breaker: Breaker, event: BreakerEvent, now: datetime, config: BreakerConfig
) -> Decision:
    """The breaker lab's starter."""
    if breaker.state == "OPEN":
        return Decision(breaker, event != "request", "")
    failures = {"failure": breaker.failures + 1, "success": 0}.get(event, breaker.failures)
    if failures >= config.failure_threshold:
        return Decision(Breaker("OPEN", failures, now), True, "opened")  # type: ignore[arg-type]
    return Decision(Breaker("CLOSED", failures), True, "")  # type: ignore[arg-type]


class Leases:
    """The lock lab's right answer."""

    def __init__(self, clock: Any) -> None:
        self.clock, self.leases = clock, {}

    def live(self, resource: str) -> tuple[str, datetime] | None:
        lease = self.leases.get(resource)
        return lease if lease is not None and lease[1] > self.clock.now() else None

    def acquire(self, resource: str, owner: str, ttl: float, wait: float = 0.0) -> bool:
        if self.live(resource):
            return False
        self.leases[resource] = (owner, self.clock.now() + timedelta(seconds=ttl))
        return True

    def release(self, resource: str, owner: str) -> None:
        lease = self.live(resource)
        if lease is None or lease[0] != owner:
            raise LockNotHeld(resource)
        del self.leases[resource]

    def extend(self, resource: str, owner: str, ttl: float) -> None:
        lease = self.live(resource)
        if lease is None or lease[0] != owner:
            raise LockNotHeld(resource)
        self.leases[resource] = (owner, self.clock.now() + timedelta(seconds=ttl))

    def holder(self, resource: str) -> str | None:
        lease = self.live(resource)
        return lease[0] if lease else None


class LeasesForAnyone(Leases):
    """The lock lab's starter: anyone may release a lease."""

    def release(self, resource: str, owner: str) -> None:
        self.leases.pop(resource, None)


RUNS: tuple[tuple[str, Callable[[], Verdict]], ...] = (
    ("attack, every defense on", attack),
    *((f"attack without {name}", lambda name=name: attack(without=name)) for name in DEFENSES),  # type: ignore[misc]
    ("attack, every defense on, depth 3", lambda: attack(depth=3)),
    ("recovery lab, right", lambda: check("recovery", decide)),
    ("recovery lab, starter", lambda: check("recovery", decide_naively)),
    ("create_once lab, right", lambda: check("create_once", create)),
    ("create_once lab, starter", lambda: check("create_once", create_naively)),
    ("retry lab, right", lambda: check("retry", lambda f: "stop" if f.sent else "same_key")),
    ("retry lab, starter", lambda: check("retry", lambda failure: "new_key")),
    ("breaker lab, right", lambda: check("breaker", engine_step)),
    ("breaker lab, starter", lambda: check("breaker", step_never_half_opens)),
    ("lock lab, right", lambda: check("lock", Leases)),
    ("lock lab, starter", lambda: check("lock", LeasesForAnyone)),
)


def run() -> None:
    """Time every attack and check once and print the table."""
    print("Labs: seconds per attack and per check (interactive means under 10 s)")
    print(f"{'run':<42} {'seconds':>8} {'tried':>7}  found")
    for name, attempt in RUNS:
        started = time.perf_counter()
        verdict = attempt()
        seconds = time.perf_counter() - started
        found = "holds" if verdict.holds else f"{verdict.promise} ({len(verdict.trace)} steps)"
        slow = "" if seconds < INTERACTIVE or "depth 3" in name else "  SLOWER THAN 10 s"
        print(f"{name:<42} {seconds:>8.2f} {verdict.tried:>7}  {found}{slow}")


if __name__ == "__main__":
    run()
