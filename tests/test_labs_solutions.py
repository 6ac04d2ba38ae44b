"""Each lab grades solutions it has never seen: right ones hold, each wrong one breaks, always
with the same counterexample, the subtle ones included."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from aegispay import ConcurrencyError, IdempotencyKeyConflict, InvalidRequest, LockNotHeld
from aegispay.domain.commands import CreatePayment
from aegispay.domain.decisions import Seen
from aegispay.domain.payment import Payment
from aegispay.infra.locks.memory import InMemoryLockManager
from aegispay.labs import check, retry
from aegispay.labs.create_once import Log
from aegispay.labs.runner import World, run
from aegispay.labs.schedules import schedules
from aegispay.resilience.breaker import (
    Breaker,
    BreakerConfig,
    BreakerEvent,
    BreakerState,
    Decision,
)
from aegispay.resilience.breaker import step as engine_step
from aegispay.resilience.retry import RetryPolicy

# The recovery lab


def table(**answers: str) -> Callable[[Seen], str]:
    """A decision as a table from the gateway's answer to an action."""
    rows = {"charged": "succeed", "declined": "fail", "cancelled": "fail",
            "not_found": "redrive", "unreachable": "wait", **answers}  # fmt: skip
    return lambda seen: rows[seen.answer.value]


RIGHT_RECOVERY = {
    "redrive what the gateway never saw": table(),
    "cancel what the gateway never saw": table(not_found="cancel"),
    "cancel when the gateway cannot be reached": table(unreachable="cancel"),
}
WRONG_RECOVERY = {
    # Wrong only while another process's charge is on the wire: with nobody else charging,
    # a payment the gateway never saw is indeed not charged.
    "fail what the gateway never saw": (table(not_found="fail"), "charged but recorded as failed"),
    "fail when the gateway cannot be reached": (
        table(unreachable="fail"), "charged but recorded as failed",
    ),
    "succeed when the gateway cannot be reached": (
        table(unreachable="succeed"), "recorded as paid but never charged",
    ),
    "wait for ever on what the gateway never saw": (
        table(not_found="wait"), "left unsettled after recovery",
    ),
}  # fmt: skip


@pytest.mark.parametrize("decide", RIGHT_RECOVERY.values(), ids=RIGHT_RECOVERY)
def test_a_right_recovery_decision_holds_over_every_schedule(decide: Callable[[Seen], str]) -> None:
    verdict = check("recovery", decide, depth=1)
    assert verdict.holds
    assert verdict.tried > 200


@pytest.mark.parametrize("decide, promise", WRONG_RECOVERY.values(), ids=WRONG_RECOVERY)
def test_a_wrong_recovery_decision_breaks_the_promise_it_endangers(
    decide: Callable[[Seen], str], promise: str
) -> None:
    verdict = check("recovery", decide)
    assert (verdict.holds, verdict.promise) == (False, promise)
    assert check("recovery", decide) == verdict


def test_failing_what_the_gateway_never_saw_breaks_only_with_a_charge_still_on_the_wire() -> None:
    verdict = check("recovery", table(not_found="fail"))
    charges = [i for i, s in enumerate(verdict.steps) if s.startswith("the gateway charges")]
    failed = [i for i, s in enumerate(verdict.steps) if s.endswith("→ FAILURE")]
    assert failed[0] < charges[0]  # the charge was still travelling when recovery gave up
    assert any("pauses" in step for step in verdict.steps)


def test_a_recovery_decision_that_answers_nonsense_is_a_clear_error() -> None:
    with pytest.raises(InvalidRequest, match="must answer one of succeed, fail, redrive"):
        check("recovery", lambda seen: "retry")


# The retry lab


def right_retry(failure: retry.Failure) -> str:
    return "stop" if failure.sent else "same_key"


WRONG_RETRY: dict[str, tuple[Callable[[retry.Failure], str], str]] = {
    "a fresh key for everything": (lambda failure: "new_key", "charged twice"),
    # The subtle one: a request that never left cannot charge, but a fresh key lets a second
    # process's charge with the payment's key through as well.
    "a fresh key only for requests never sent": (
        lambda failure: "stop" if failure.sent else "new_key", "charged twice",
    ),
    "never retry": (
        lambda failure: "stop", "gave up on one refused connection that a retry would have cured",
    ),
}  # fmt: skip


@pytest.mark.parametrize(
    "solution",
    [
        right_retry,
        lambda failure: "same_key",
        lambda failure: "same_key" if failure.attempt < 2 else "stop",
    ],
    ids=["stop once sent", "always the same key", "the same key once"],
)
def test_a_right_retry_rule_holds(solution: Callable[[retry.Failure], str]) -> None:
    assert check("retry", solution, depth=1).holds


@pytest.mark.parametrize("solution, promise", WRONG_RETRY.values(), ids=WRONG_RETRY)
def test_a_wrong_retry_rule_breaks_the_promise_it_endangers(
    solution: Callable[[retry.Failure], str], promise: str
) -> None:
    verdict = check("retry", solution)
    assert (verdict.holds, verdict.promise) == (False, promise)
    assert check("retry", solution).steps == verdict.steps


def test_the_subtle_retry_counterexample_is_shortest_no_schedule_of_fewer_moves_breaks() -> None:
    def fresh_before_sending(failure: retry.Failure) -> str:
        return "stop" if failure.sent else "new_key"

    verdict = check("retry", fresh_before_sending)
    assert len(verdict.schedule) == 2
    engine = type("RetryLab", (retry.RetryLab,), {"solution": (fresh_before_sending,)})
    world = replace(World(), engine=engine, retry=RetryPolicy(retries=0, jitter=0))
    shorter = schedules(lambda faults: run(world, faults).trace, depth=1)
    assert all(run(world, schedule).promise is None for schedule in shorter)


# The create_once lab


def same_request(payment: Payment, request: CreatePayment) -> bool:
    return (payment.amount, payment.customer_id, payment.payment_method) == (
        request.amount, request.customer_id, request.payment_method,
    )  # fmt: skip


def create_right(log: Log, request: CreatePayment) -> Payment:
    existing = log.load(request.payment_id)
    if existing is None:
        try:
            return log.append(log.initiated(request), expected_version=0)
        except ConcurrencyError:
            existing = log.load(request.payment_id)
            assert existing is not None
    if not same_request(existing, request):
        raise IdempotencyKeyConflict(request.idempotency_key, {})
    return existing


def create_ignoring_conflicts(log: Log, request: CreatePayment) -> Payment:
    existing = log.load(request.payment_id)
    return existing or log.append(log.initiated(request), expected_version=0)


def create_check_then_write(log: Log, request: CreatePayment) -> Payment:
    existing = log.load(request.payment_id)
    if existing is not None:
        if not same_request(existing, request):
            raise IdempotencyKeyConflict(request.idempotency_key, {})
        return existing
    return log.append(log.initiated(request))  # no expected version: the race is open


def create_raising_on_a_lost_race(log: Log, request: CreatePayment) -> Payment:
    existing = log.load(request.payment_id)
    if existing is None:
        return log.append(log.initiated(request), expected_version=0)
    if not same_request(existing, request):
        raise IdempotencyKeyConflict(request.idempotency_key, {})
    return existing


def create_comparing_minor_units_only(log: Log, request: CreatePayment) -> Payment:
    existing = create_ignoring_conflicts(log, request)
    if existing.amount.minor != request.amount.minor:
        raise IdempotencyKeyConflict(request.idempotency_key, {})
    return existing


def create_reloading_after_any_error(log: Log, request: CreatePayment) -> Payment:
    try:
        return create_right(log, request)
    except IdempotencyKeyConflict:
        raise
    except Exception:  # the same as create_right under this attack: a store never fails here
        return create_right(log, request)


WRONG_CREATE = {
    "ignores other parameters": (
        create_ignoring_conflicts, "the same key with other parameters is refused",
    ),
    "checks, then writes without a version": (create_check_then_write, "history is broken"),
    "raises when it loses the race": (create_raising_on_a_lost_race, "every repeat"),
    "compares the amount, not the currency": (
        create_comparing_minor_units_only, "the same key with other parameters is refused",
    ),
}  # fmt: skip


@pytest.mark.parametrize("create", [create_right, create_reloading_after_any_error])
def test_a_right_create_once_holds(create: Callable[[Log, CreatePayment], Payment]) -> None:
    verdict = check("create_once", create)
    assert verdict.holds
    assert verdict.tried > 20


@pytest.mark.parametrize("create, promise", WRONG_CREATE.values(), ids=WRONG_CREATE)
def test_a_wrong_create_once_breaks_the_promise_it_endangers(
    create: Callable[[Log, CreatePayment], Payment], promise: str
) -> None:
    verdict = check("create_once", create)
    assert not verdict.holds
    assert verdict.promise is not None and promise in verdict.promise
    assert check("create_once", create) == verdict


def test_the_currency_blind_create_is_caught_by_the_request_in_another_currency() -> None:
    verdict = check("create_once", create_comparing_minor_units_only)
    assert "the client sends the same key in another currency" in verdict.steps


# The breaker lab


def step_never_half_opens(
    breaker: Breaker, event: BreakerEvent, now: datetime, config: BreakerConfig
) -> Decision:
    if breaker.state == "OPEN":
        return Decision(breaker, event != "request", "")
    failures = {"failure": breaker.failures + 1, "success": 0}.get(event, breaker.failures)
    if failures >= config.failure_threshold:
        return Decision(Breaker(BreakerState.OPEN, failures, now), True, "opened")
    return Decision(Breaker(BreakerState.CLOSED, failures), True, "")


def step_with_many_probes(
    breaker: Breaker, event: BreakerEvent, now: datetime, config: BreakerConfig
) -> Decision:
    decision = engine_step(breaker, event, now, config)
    if breaker.state is BreakerState.HALF_OPEN and event is BreakerEvent.REQUEST:
        return Decision(decision.breaker, True, "")
    return decision


def step_counting_every_failure(
    breaker: Breaker, event: BreakerEvent, now: datetime, config: BreakerConfig
) -> Decision:
    if breaker.state is BreakerState.CLOSED and event is BreakerEvent.SUCCESS:
        return Decision(breaker, True, "")  # never resets: failures need not be consecutive
    return engine_step(breaker, event, now, config)


def step_closing_on_a_failed_probe(
    breaker: Breaker, event: BreakerEvent, now: datetime, config: BreakerConfig
) -> Decision:
    if breaker.state is BreakerState.HALF_OPEN and event is BreakerEvent.FAILURE:
        return Decision(Breaker(), True, "")
    return engine_step(breaker, event, now, config)


def step_rewritten_with_ifs(  # noqa: PLR0911 - one return per row, as the engine's step has
    breaker: Breaker, event: BreakerEvent, now: datetime, config: BreakerConfig
) -> Decision:
    """The same table written as plain ifs, keeping failures counted in its own way."""
    cooled = breaker.opened_at is not None and now >= breaker.opened_at + timedelta(
        seconds=config.timeout
    )
    if breaker.state is BreakerState.OPEN:
        if event is BreakerEvent.REQUEST and cooled:
            return Decision(Breaker(BreakerState.HALF_OPEN, 0, breaker.opened_at, True), True, "")
        return Decision(breaker, event is not BreakerEvent.REQUEST, "")
    if breaker.state is BreakerState.HALF_OPEN:
        if event is BreakerEvent.REQUEST:
            return Decision(replace(breaker, probing=True), not breaker.probing, "")
        if event is BreakerEvent.SUCCESS:
            return Decision(Breaker(), True, "")
        return Decision(Breaker(BreakerState.OPEN, 0, now), True, "")
    if event is BreakerEvent.FAILURE:
        if breaker.failures + 1 >= config.failure_threshold:
            return Decision(Breaker(BreakerState.OPEN, 0, now), True, "")
        return Decision(Breaker(failures=breaker.failures + 1), True, "")
    return Decision(Breaker() if event is BreakerEvent.SUCCESS else breaker, True, "")


WRONG_BREAKER = {
    "never half-opens": (step_never_half_opens, "after the timeout, one probe goes through"),
    "lets every half-open call through": (
        step_with_many_probes, "a half-open breaker lets one probe through, no more",
    ),
    "counts failures that are not consecutive": (
        step_counting_every_failure, "it stays closed until 3 consecutive failures",
    ),
    "closes on a failed probe": (step_closing_on_a_failed_probe, "a failed probe opens it again"),
}  # fmt: skip


@pytest.mark.parametrize("step", [engine_step, step_rewritten_with_ifs], ids=["engine", "ifs"])
def test_a_right_breaker_step_holds_over_every_short_sequence(step: Any) -> None:
    verdict = check("breaker", step)
    assert verdict.holds
    assert verdict.tried == sum(4**n for n in range(1, 8))


@pytest.mark.parametrize("step, promise", WRONG_BREAKER.values(), ids=WRONG_BREAKER)
def test_a_wrong_breaker_step_breaks_the_promise_of_its_row(step: Any, promise: str) -> None:
    verdict = check("breaker", step)
    assert (verdict.holds, verdict.promise) == (False, promise)
    assert verdict.trace[-1].breaking


# The lock lab


class LeasesInADict:
    """A plausible lease manager; the wrong ones below each change one method."""

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


class ReleasingAnyonesLease(LeasesInADict):
    def release(self, resource: str, owner: str) -> None:
        self.leases.pop(resource, None)


class ExtendingAnExpiredLease(LeasesInADict):
    def extend(self, resource: str, owner: str, ttl: float) -> None:
        lease = self.leases.get(resource)
        if lease is None or lease[0] != owner:
            raise LockNotHeld(resource)
        self.leases[resource] = (owner, self.clock.now() + timedelta(seconds=ttl))


class NeverExpiring(LeasesInADict):
    def live(self, resource: str) -> tuple[str, datetime] | None:
        return self.leases.get(resource)


class IgnoringReleasesOfNothing(LeasesInADict):
    def release(self, resource: str, owner: str) -> None:
        lease = self.live(resource)
        if lease is not None and lease[0] == owner:
            del self.leases[resource]


WRONG_LOCKS = {
    "releases anyone's lease": (ReleasingAnyonesLease, "only the live owner releases a lease"),
    "extends a lease that expired": (ExtendingAnExpiredLease, "only the live owner extends"),
    "never expires": (NeverExpiring, "a lease ends when its TTL has passed"),
}


@pytest.mark.parametrize("locks", [LeasesInADict, IgnoringReleasesOfNothing, InMemoryLockManager])
def test_a_right_lease_manager_holds_and_so_does_the_payment_on_it(locks: type) -> None:
    verdict = check("lock", locks)
    assert verdict.holds
    assert verdict.tried > sum(8**n for n in range(1, 6))


@pytest.mark.parametrize("locks, promise", WRONG_LOCKS.values(), ids=WRONG_LOCKS)
def test_a_wrong_lease_manager_breaks_the_promise_of_its_method(locks: type, promise: str) -> None:
    verdict = check("lock", locks)
    assert not verdict.holds
    assert verdict.promise is not None and verdict.promise.startswith(promise)


def test_a_lease_manager_that_releases_anyones_lease_is_caught_releasing_a_live_one() -> None:
    verdict = check("lock", ReleasingAnyonesLease)
    assert verdict.schedule == ("A takes", "B releases")
    assert verdict.promise == "only the live owner releases a lease (B released A's)"
    assert verdict.steps[-1] == "it names nobody as the holder, where it must be A"


def test_an_unknown_lab_is_refused_naming_every_known_one() -> None:
    with pytest.raises(InvalidRequest, match="recovery, create_once, retry, breaker, lock"):
        check("raft", table())
