"""Failure classification, the retry schedule on a virtual clock, and the resilient gateway."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aegispay.domain.charges import ChargeRecord, ChargeRequest
from aegispay.domain.failures import (
    ERROR_CLASSES,
    CircuitOpenError,
    ErrorClass,
    GatewayError,
    GatewayNetworkError,
    GatewayResponseLost,
    GatewayTimeoutAfterSend,
    GatewayTimeoutBeforeSend,
    classify,
    kind_of,
)
from aegispay.domain.money import Money
from aegispay.infra.clock import EPOCH, VirtualClock
from aegispay.infra.gateway.ledger import InMemoryLedger
from aegispay.infra.gateway.simulated import SimulatedGateway
from aegispay.infra.telemetry import MemoryMetrics
from aegispay.resilience.breaker import BreakerState, CircuitBreaker
from aegispay.resilience.gateway import ResilientGateway, charge_is_retryable, lookup_is_retryable
from aegispay.resilience.retry import RetryPolicy, call_with_retry
from aegispay.sim.faults import (
    FailureConfig,
    FaultInjector,
    FaultyGateway,
    ProcessCrash,
    ScheduledFault,
)

NO_JITTER = RetryPolicy(jitter=0)

# The classification table


@pytest.mark.parametrize(
    ("kind", "error_class", "may_have_charged"),
    [
        ("timeout_before", ErrorClass.RETRYABLE, False),
        ("network", ErrorClass.RETRYABLE, False),
        ("timeout_after", ErrorClass.OUTCOME_UNKNOWN, True),
        ("partial", ErrorClass.OUTCOME_UNKNOWN, True),
        ("decline", ErrorClass.DEFINITIVE, False),
        ("circuit_open", ErrorClass.DEFINITIVE, False),
        ("unexpected", ErrorClass.OUTCOME_UNKNOWN, True),
    ],
)
def test_each_kind_of_failure_has_its_class_in_the_table(
    kind: str, error_class: ErrorClass, may_have_charged: bool
) -> None:
    rule = ERROR_CLASSES[kind]
    assert (rule.error_class, rule.may_have_charged) == (error_class, may_have_charged)


@pytest.mark.parametrize(
    ("error_type", "kind"),
    [
        (GatewayTimeoutBeforeSend, "timeout_before"),
        (GatewayNetworkError, "network"),
        (GatewayTimeoutAfterSend, "timeout_after"),
        (GatewayResponseLost, "partial"),
        (CircuitOpenError, "circuit_open"),
    ],
)
def test_each_gateway_error_is_classified_by_its_kind(
    error_type: type[GatewayError], kind: str
) -> None:
    error = error_type("primary")
    assert kind_of(error) == kind
    assert classify(error) == ERROR_CLASSES[kind]


@pytest.mark.parametrize(
    "error",
    [RuntimeError("boom"), GatewayError("primary"), ProcessCrash("died")],
    ids=["a foreign exception", "a bare gateway error", "a crash"],
)
def test_an_error_nobody_classified_is_unexpected_and_its_outcome_unknown(
    error: BaseException,
) -> None:
    """Never guess: an unclassified error may have charged, so it must be verified."""
    assert kind_of(error) == "unexpected"
    assert classify(error).error_class is ErrorClass.OUTCOME_UNKNOWN
    assert classify(error).may_have_charged


def test_an_error_whose_kind_is_not_in_the_table_is_unexpected() -> None:
    error = RuntimeError("odd")
    error.kind = "cosmic_ray"  # type: ignore[attr-defined]
    assert kind_of(error) == "unexpected"


# The retry schedule


class Flaky:
    """Fails with fresh errors for its first `failures` calls, then answers."""

    def __init__(self, failures: int, error: Callable[[], BaseException] = RuntimeError) -> None:
        self.failures = failures
        self.make_error = error
        self.attempts = 0
        self.raised: list[BaseException] = []

    def __call__(self) -> str:
        self.attempts += 1
        if self.attempts <= self.failures:
            self.raised.append(self.make_error())
            raise self.raised[-1]
        return "ok"


def retry(
    fn: Flaky,
    clock: VirtualClock,
    policy: RetryPolicy = NO_JITTER,
    seed: int = 0,
    retryable: Callable[[BaseException], bool] = lambda _: True,
) -> str:
    return call_with_retry(
        fn, policy=policy, retryable=retryable, sleep=clock.sleep, rng=random.Random(seed)
    )


def jittered_sleeps(seed: int) -> list[float]:
    clock = VirtualClock()
    retry(Flaky(3), clock, RetryPolicy(), seed=seed)
    return clock.slept


def test_without_jitter_three_failures_then_success_sleep_one_two_four_seconds() -> None:
    clock = VirtualClock()
    assert retry(Flaky(3), clock) == "ok"
    assert clock.slept == [1.0, 2.0, 4.0]
    assert clock.now() == EPOCH + timedelta(seconds=7)


def test_the_backoff_is_capped_at_max() -> None:
    clock = VirtualClock()
    retry(Flaky(6), clock, RetryPolicy(retries=6, jitter=0))
    assert clock.slept == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


@pytest.mark.parametrize("retry_number", [1_100, 10_000, 10**100])
def test_a_very_late_retry_waits_the_max_instead_of_overflowing(retry_number: int) -> None:
    """2.0 ** 10_000 overflows a float; growth that far past max is simply max."""
    assert NO_JITTER.backoff(retry_number, random.Random(0)) == NO_JITTER.max


def test_a_zero_initial_backoff_stays_zero_however_late_the_retry() -> None:
    policy = RetryPolicy(initial=0, jitter=0)
    assert policy.backoff(10_000, random.Random(0)) == 0.0


seconds = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
policies = st.builds(
    RetryPolicy,
    initial=seconds,
    max=seconds,
    multiplier=st.floats(min_value=1, max_value=1e6, allow_nan=False, allow_infinity=False),
    jitter=seconds,
)


@given(policy=policies, retry_number=st.integers(min_value=1, max_value=10**30), seed=st.integers())
def test_every_backoff_is_between_zero_and_max_for_any_retry_number(
    policy: RetryPolicy, retry_number: int, seed: int
) -> None:
    """However late the retry, the backoff is a wait from 0 to max seconds, never an error."""
    assert 0 <= policy.backoff(retry_number, random.Random(seed)) <= policy.max


@given(policy=policies, retry_number=st.integers(min_value=1, max_value=10**30))
def test_without_jitter_a_later_retry_never_waits_less(
    policy: RetryPolicy, retry_number: int
) -> None:
    """Backoff without jitter never decreases from one retry to the next, up to the cap."""
    steady = policy.model_copy(update={"jitter": 0.0})
    rng = random.Random(0)
    assert steady.backoff(retry_number, rng) <= steady.backoff(retry_number + 1, rng)


def test_jittered_sleeps_stay_between_the_base_and_the_base_plus_jitter() -> None:
    for base, slept in zip([1.0, 2.0, 4.0], jittered_sleeps(seed=7), strict=True):
        assert base <= slept <= base + 0.5


def test_the_same_seed_jitters_the_same_and_another_seed_does_not() -> None:
    assert jittered_sleeps(seed=1) == jittered_sleeps(seed=1)
    assert jittered_sleeps(seed=1) != jittered_sleeps(seed=2)


def test_retries_stop_after_the_policy_and_the_last_error_is_reraised_unchanged() -> None:
    clock, flaky = VirtualClock(), Flaky(failures=100)
    with pytest.raises(RuntimeError) as raised:
        retry(flaky, clock)
    assert flaky.attempts == 4
    assert raised.value is flaky.raised[-1]
    assert clock.slept == [1.0, 2.0, 4.0]


def test_a_non_retryable_error_is_raised_after_one_attempt_without_sleeping() -> None:
    clock, flaky = VirtualClock(), Flaky(failures=1)
    with pytest.raises(RuntimeError):
        retry(flaky, clock, retryable=lambda _: False)
    assert flaky.attempts == 1
    assert clock.slept == []


@pytest.mark.parametrize(
    "retryable",
    [charge_is_retryable, lookup_is_retryable, lambda _: True],
    ids=["a charge", "a lookup", "a predicate that retries anything"],
)
def test_a_process_crash_is_never_retried_and_passes_through(
    retryable: Callable[[BaseException], bool],
) -> None:
    clock, flaky = VirtualClock(), Flaky(failures=1, error=ProcessCrash)
    with pytest.raises(ProcessCrash):
        retry(flaky, clock, retryable=retryable)
    assert flaky.attempts == 1
    assert clock.slept == []


def test_each_retry_is_reported_before_its_sleep() -> None:
    clock, reported = VirtualClock(), []
    call_with_retry(
        Flaky(2),
        policy=NO_JITTER,
        retryable=lambda _: True,
        sleep=clock.sleep,
        rng=random.Random(0),
        on_retry=lambda state: reported.append((state.attempt_number, len(clock.slept))),
    )
    assert reported == [(1, 0), (2, 1)]


# The resilient gateway over a simulated gateway with scheduled faults


class RecordingGateway(FaultyGateway):
    """A simulated gateway behind faults that remembers the key of every charge sent to it."""

    def __init__(self, clock: VirtualClock, faults: FaultInjector) -> None:
        super().__init__(SimulatedGateway("primary", InMemoryLedger(), clock), faults)
        self.keys: list[str] = []

    def charge(self, request: ChargeRequest) -> ChargeRecord:
        self.keys.append(request.idempotency_key)
        return super().charge(request)


class Rig:
    """A resilient gateway over a recording gateway whose faults follow a schedule."""

    def __init__(self, *schedule: ScheduledFault) -> None:
        self.clock = VirtualClock()
        self.metrics = MemoryMetrics()
        faults = FaultInjector(FailureConfig(schedule=schedule), self.clock, self.metrics, seed=1)
        self.gateway = RecordingGateway(self.clock, faults)
        self.breaker = CircuitBreaker("primary", self.clock, self.metrics)
        self.resilient = ResilientGateway(
            self.gateway,
            breaker=self.breaker,
            policy=RetryPolicy(),
            clock=self.clock,
            metrics=self.metrics,
            rng=random.Random(1),
        )

    def count(self, name: str) -> int:
        return self.metrics.get(f"gateway.primary.{name}")


REQUEST = ChargeRequest(
    merchant_reference="pay_1",
    idempotency_key="aegispay-pay_1",
    amount=Money(minor=1250, currency="USD"),
    payment_method="tok_visa",
)


def test_a_charge_retried_through_two_connect_timeouts_charges_once_with_one_key() -> None:
    rig = Rig(ScheduledFault(kind="timeout_before", calls=2))
    record = rig.resilient.charge(REQUEST)
    assert record.charged
    assert rig.gateway.charges() == [record]
    assert rig.gateway.keys == [REQUEST.idempotency_key] * 3
    assert (rig.count("charge.attempts"), rig.count("charge.retries")) == (3, 2)


@pytest.mark.parametrize(
    ("kind", "error"),
    [("timeout_after", GatewayTimeoutAfterSend), ("partial", GatewayResponseLost)],
)
def test_a_charge_that_may_have_gone_through_is_raised_after_one_attempt_never_retried(
    kind: str, error: type[GatewayError]
) -> None:
    """The gateway may have charged (and here did): the outcome is verified later, never retried."""
    rig = Rig(ScheduledFault(kind=kind))
    with pytest.raises(error):
        rig.resilient.charge(REQUEST)
    assert (rig.count("charge.attempts"), rig.count("charge.retries")) == (1, 0)
    assert [c.merchant_reference for c in rig.gateway.charges()] == ["pay_1"]
    assert rig.gateway.charges()[0].charged


def test_status_lookups_are_retried_through_faults_that_lose_the_answer() -> None:
    rig = Rig(
        ScheduledFault(kind="timeout_after", operation="status"),
        ScheduledFault(kind="partial", operation="status"),
    )
    record = rig.resilient.charge(REQUEST)
    assert rig.resilient.status("pay_1") == record
    assert (rig.count("status.attempts"), rig.count("status.retries")) == (3, 2)


def test_network_failures_on_every_attempt_exhaust_the_retries_and_charge_nothing() -> None:
    rig = Rig(ScheduledFault(kind="network", calls=4))
    with pytest.raises(GatewayNetworkError):
        rig.resilient.charge(REQUEST)
    assert rig.gateway.charges() == []
    assert (rig.count("charge.attempts"), rig.count("charge.retries")) == (4, 3)
    assert len(rig.clock.slept) == 3
    assert rig.breaker.state is BreakerState.CLOSED


def test_a_crash_at_the_gateway_passes_through_the_resilient_gateway_unretried() -> None:
    rig = Rig(ScheduledFault(kind="crash"))
    with pytest.raises(ProcessCrash):
        rig.resilient.charge(REQUEST)
    assert rig.count("charge.attempts") == 1
    assert len(rig.gateway.charges()) == 1
