"""The circuit breaker: the pure transition function, then the stateful wrapper on virtual time."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from aegispay.domain.charges import ChargeRecord, ChargeStatus
from aegispay.domain.failures import CircuitOpenError, GatewayNetworkError
from aegispay.domain.money import Money
from aegispay.infra.clock import EPOCH, VirtualClock
from aegispay.infra.telemetry import MemoryMetrics
from aegispay.resilience.breaker import (
    Breaker,
    BreakerConfig,
    BreakerEvent,
    BreakerState,
    CircuitBreaker,
    Decision,
    Transition,
    step,
)

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
REQUEST, SUCCESS, FAILURE = BreakerEvent.REQUEST, BreakerEvent.SUCCESS, BreakerEvent.FAILURE
CONFIG = BreakerConfig(failure_threshold=3, timeout=30.0)
T0 = EPOCH
FRESH = Breaker()


def later(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def fold(events: list[BreakerEvent], breaker: Breaker = FRESH, now: datetime = T0) -> Decision:
    """Apply the events in order at one instant; return the last decision."""
    decision = Decision(breaker, True, "")
    for event in events:
        decision = step(decision.breaker, event, now, CONFIG)
    return decision


OPENED = fold([FAILURE] * 3).breaker
PROBING = step(OPENED, REQUEST, later(30), CONFIG).breaker


# The pure transition function


def test_a_closed_breaker_lets_requests_through_unchanged() -> None:
    decision = step(Breaker(), REQUEST, T0, CONFIG)
    assert decision == Decision(Breaker(), True, "")


def test_failures_below_the_threshold_are_counted_and_keep_the_breaker_closed() -> None:
    decision = fold([FAILURE, FAILURE])
    assert decision.breaker == Breaker(CLOSED, failures=2)
    assert step(decision.breaker, REQUEST, T0, CONFIG).allowed


def test_a_success_resets_the_failure_count() -> None:
    assert fold([FAILURE, FAILURE, SUCCESS]).breaker == Breaker()


def test_failures_interrupted_by_a_success_never_open_the_breaker() -> None:
    assert fold([FAILURE, FAILURE, SUCCESS, FAILURE, FAILURE]).breaker.state is CLOSED


def test_the_threshold_th_consecutive_failure_opens_the_breaker_naming_the_count() -> None:
    decision = fold([FAILURE, FAILURE, FAILURE], now=later(7))
    assert decision.breaker == Breaker(OPEN, failures=3, opened_at=later(7))
    assert decision.cause == "3 consecutive failures"


def test_an_open_breaker_refuses_requests_before_the_timeout_and_stays_as_it_is() -> None:
    decision = step(OPENED, REQUEST, later(29.999), CONFIG)
    assert decision == Decision(OPENED, False, "")


@pytest.mark.parametrize("elapsed", [30.0, 45.0], ids=["at the timeout", "after it"])
def test_at_or_after_the_timeout_one_request_goes_through_as_the_half_open_probe(
    elapsed: float,
) -> None:
    decision = step(OPENED, REQUEST, later(elapsed), CONFIG)
    assert decision.allowed
    assert decision.breaker == Breaker(HALF_OPEN, failures=3, opened_at=T0, probing=True)
    assert decision.cause == "30s open elapsed: one probe"


def test_a_second_request_while_the_probe_is_out_is_refused() -> None:
    decision = step(PROBING, REQUEST, later(31), CONFIG)
    assert decision == Decision(PROBING, False, "")


def test_a_successful_probe_closes_the_breaker_and_resets_the_failures() -> None:
    decision = step(PROBING, SUCCESS, later(31), CONFIG)
    assert decision.breaker == Breaker()
    assert decision.cause == "probe succeeded"


def test_a_failed_probe_reopens_the_breaker_from_the_time_it_failed() -> None:
    decision = step(PROBING, FAILURE, later(31), CONFIG)
    assert decision.breaker == Breaker(OPEN, failures=4, opened_at=later(31))
    assert decision.cause == "probe failed"
    assert not step(decision.breaker, REQUEST, later(60), CONFIG).allowed
    assert step(decision.breaker, REQUEST, later(61), CONFIG).allowed


@pytest.mark.parametrize("event", [SUCCESS, FAILURE])
def test_a_late_answer_to_an_open_breaker_changes_nothing(event: BreakerEvent) -> None:
    assert step(OPENED, event, later(1), CONFIG).breaker == OPENED


def test_step_returns_a_new_breaker_and_leaves_the_one_it_was_given_untouched() -> None:
    before = Breaker(CLOSED, failures=2)
    copy = dataclasses.replace(before)
    after = step(before, FAILURE, T0, CONFIG).breaker
    assert before == copy
    assert after is not before


def test_breakers_and_their_config_are_frozen_values() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Breaker().failures = 1  # type: ignore[misc]
    with pytest.raises(ValidationError):
        CONFIG.timeout = 1.0  # type: ignore[misc]


moves = st.lists(
    st.tuples(st.sampled_from(BreakerEvent), st.floats(min_value=0, max_value=20)), max_size=40
)
thresholds = st.integers(min_value=1, max_value=4)


def replay(
    threshold: int,
    history: list[tuple[BreakerEvent, float]],
    check: Callable[[Breaker, Decision], None],
) -> None:
    """Step through the history, advancing the time before each event, and check every step."""
    config = BreakerConfig(failure_threshold=threshold, timeout=10.0)
    breaker, now = Breaker(), T0
    for event, seconds in history:
        now += timedelta(seconds=seconds)
        decision = step(breaker, event, now, config)
        check(breaker, decision)
        breaker = decision.breaker


@given(thresholds, moves)
def test_an_open_breaker_always_holds_at_least_threshold_failures(
    threshold: int, history: list[tuple[BreakerEvent, float]]
) -> None:
    """Whatever happens, the breaker is never OPEN with fewer failures than the threshold."""

    def check(_: Breaker, decision: Decision) -> None:
        after = decision.breaker
        assert after.state is not OPEN or after.failures >= threshold

    replay(threshold, history, check)


@given(thresholds, moves)
def test_a_refused_request_never_changes_the_breaker(
    threshold: int, history: list[tuple[BreakerEvent, float]]
) -> None:
    """Whatever happened before, a request the breaker refuses leaves it exactly as it was."""

    def check(before: Breaker, decision: Decision) -> None:
        if not decision.allowed:
            assert decision.breaker == before

    replay(threshold, history, check)


# The stateful wrapper


class Gateway:
    """Stands in for a gateway call: answers, or raises the error it is given, and counts calls."""

    def __init__(self) -> None:
        self.calls = 0

    def fail(self, error: Exception) -> Callable[[], object]:
        def call() -> object:
            self.calls += 1
            raise error

        return call

    def answer(self, value: object = "ok") -> Callable[[], object]:
        def call() -> object:
            self.calls += 1
            return value

        return call


def network_down(breaker: CircuitBreaker, gateway: Gateway, times: int) -> None:
    for _ in range(times):
        with pytest.raises(GatewayNetworkError):
            breaker.call(gateway.fail(GatewayNetworkError("primary")))


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def metrics() -> MemoryMetrics:
    return MemoryMetrics()


@pytest.fixture
def breaker(clock: VirtualClock, metrics: MemoryMetrics) -> CircuitBreaker:
    return CircuitBreaker("primary", clock, metrics)


def test_four_network_failures_leave_the_breaker_closed(breaker: CircuitBreaker) -> None:
    network_down(breaker, Gateway(), 4)
    assert breaker.state is CLOSED


def test_five_network_failures_in_a_row_open_the_breaker(breaker: CircuitBreaker) -> None:
    network_down(breaker, Gateway(), 5)
    assert breaker.state is OPEN


def test_an_open_breaker_raises_circuit_open_without_calling_the_gateway(
    breaker: CircuitBreaker,
) -> None:
    gateway = Gateway()
    network_down(breaker, gateway, 5)
    with pytest.raises(CircuitOpenError):
        breaker.call(gateway.answer())
    assert gateway.calls == 5


def test_after_the_timeout_one_probe_goes_through_and_closes_the_breaker(
    breaker: CircuitBreaker, clock: VirtualClock
) -> None:
    gateway = Gateway()
    network_down(breaker, gateway, 5)
    clock.advance(60)
    assert breaker.call(gateway.answer("probed")) == "probed"
    assert breaker.state is CLOSED
    assert gateway.calls == 6


def test_the_breaker_records_open_probe_and_close_with_their_causes_and_virtual_times(
    breaker: CircuitBreaker, clock: VirtualClock
) -> None:
    gateway = Gateway()
    for _ in range(5):
        clock.advance(1)
        network_down(breaker, gateway, 1)
    clock.advance(60)
    breaker.call(gateway.answer())
    assert breaker.transitions == [
        Transition(CLOSED, OPEN, "5 consecutive failures", later(5)),
        Transition(OPEN, HALF_OPEN, "60s open elapsed: one probe", later(65)),
        Transition(HALF_OPEN, CLOSED, "probe succeeded", later(65)),
    ]


def test_asking_whether_a_request_would_pass_does_not_take_the_probe(
    breaker: CircuitBreaker, clock: VirtualClock
) -> None:
    network_down(breaker, Gateway(), 5)
    assert not breaker.allows_request()
    clock.advance(60)
    assert breaker.allows_request()
    assert breaker.allows_request()
    assert breaker.state is OPEN


def test_a_declined_charge_is_an_answer_not_a_failure(breaker: CircuitBreaker) -> None:
    declined = ChargeRecord(
        transaction_id="txn_1",
        merchant_reference="pay_1",
        idempotency_key="aegispay-pay_1",
        amount=Money(minor=1000, currency="USD"),
        payment_method="tok_decline",
        status=ChargeStatus.DECLINED,
        decline_reason="card_declined",
        created_at=T0,
    )
    gateway = Gateway()
    for _ in range(10):
        assert breaker.call(gateway.answer(declined)) == declined
    assert breaker.state is CLOSED
    assert breaker.transitions == []


def test_a_definitive_error_raised_by_the_call_is_not_counted_as_a_failure(
    breaker: CircuitBreaker,
) -> None:
    gateway = Gateway()
    for _ in range(10):
        with pytest.raises(CircuitOpenError):
            breaker.call(gateway.fail(CircuitOpenError("fallback")))
    assert breaker.state is CLOSED


def test_an_unclassified_error_counts_as_a_failure(breaker: CircuitBreaker) -> None:
    """An error nobody classified may be the transport's: the breaker counts it, never guesses."""
    gateway = Gateway()
    for _ in range(5):
        with pytest.raises(RuntimeError):
            breaker.call(gateway.fail(RuntimeError("socket closed")))
    assert breaker.state is OPEN


def test_metrics_count_each_opening_and_each_refused_call(
    breaker: CircuitBreaker, clock: VirtualClock, metrics: MemoryMetrics
) -> None:
    gateway = Gateway()
    network_down(breaker, gateway, 5)
    for _ in range(3):
        with pytest.raises(CircuitOpenError):
            breaker.call(gateway.answer())
    clock.advance(60)
    breaker.call(gateway.answer())
    assert metrics.snapshot() == {
        "breaker.primary.closed": 1,
        "breaker.primary.half_open": 1,
        "breaker.primary.open": 1,
        "breaker.primary.rejected": 3,
    }


def test_a_probe_ending_in_a_definitive_error_does_not_leave_the_breaker_stuck(
    breaker: CircuitBreaker, clock: VirtualClock
) -> None:
    gateway = Gateway()
    network_down(breaker, gateway, 5)
    clock.advance(60)
    with pytest.raises(CircuitOpenError):
        breaker.call(gateway.fail(CircuitOpenError("fallback")))
    clock.advance(60)
    assert breaker.call(gateway.answer()) == "ok"
