"""Resilience through the public surface: breakers, routing, verification, seeded runs."""

from __future__ import annotations

from datetime import timedelta

import pytest

from aegispay import (
    AegisPay,
    BreakerConfig,
    ChargeStatus,
    InvalidRequest,
    Payment,
    PaymentState,
    RetryPolicy,
)
from aegispay.domain import decisions
from aegispay.orchestration import workflows
from aegispay.resilience.breaker import BreakerState
from aegispay.sim import FailureConfig, ProcessCrash
from aegispay.sim.faults import ScheduledFault
from aegispay.sim.invariants import check_invariants, event_log_digest
from aegispay.sim.workload import run_workload

REQUEST = {
    "amount": "12.50",
    "currency": "USD",
    "customer_id": "cus_1",
    "payment_method": "tok_visa",
}
HEAVY = FailureConfig(
    partial_rate=0.1, network_rate=0.05, timeout_before_rate=0.05, timeout_after_rate=0.05,
    slow_rate=0.02,
)  # fmt: skip


def create(pay: AegisPay, key: str) -> Payment:
    return pay.create_payment(idempotency_key=key, **REQUEST)


def schedule(*entries: tuple[str, int, str]) -> FailureConfig:
    return FailureConfig(
        schedule=tuple(
            ScheduledFault(kind=kind, calls=calls, operation=operation)  # type: ignore[arg-type]
            for kind, calls, operation in entries
        )
    )


def started_but_never_sent(pay: AegisPay, key: str) -> Payment:
    """A payment whose ProcessingStarted is durable but whose charge never left: a crash between."""
    payment = create(pay, key)
    authenticated = workflows.authenticate(pay.ports, payment).unsafe_run()
    return workflows.record(
        pay.ports,
        authenticated,
        lambda at: decisions.start_processing(authenticated, "primary", at),
    ).unsafe_run()


def test_under_total_network_failure_the_breaker_opens_fails_fast_and_one_probe_closes_it() -> None:
    pay = AegisPay.in_memory(seed=5, faults=FailureConfig(network_rate=1.0))
    breaker = pay.circuit_breaker("primary")
    first = pay.process_payment(create(pay, "k1").id)
    # Started, never charged by us, but the cancel that would make FAILURE safe cannot be sent.
    assert first.state is PaymentState.CANCELLING
    assert first.last_error is not None
    assert first.last_error.startswith("gateway_unavailable")
    assert breaker.state is BreakerState.OPEN
    calls_when_opened = pay.gateways["primary"].calls
    assert calls_when_opened == breaker.config.failure_threshold

    n = 1
    while pay.circuit_breaker("fallback").state is not BreakerState.OPEN:
        n += 1
        assert pay.process_payment(create(pay, f"k{n}").id).state is PaymentState.CANCELLING
    cancelling = n
    for n in range(10, 14):  # both OPEN: nothing is started or sent, the payment fails fast
        failed = pay.process_payment(create(pay, f"k{n}").id)
        assert failed.state is PaymentState.FAILURE
        assert failed.failure_reason is not None
        assert failed.failure_reason.startswith("gateway_unavailable")
        assert failed.gateway is None
    assert pay.gateways["primary"].calls == calls_when_opened
    assert not [c for c in pay.charges() if c.charged]

    pay.set_faults(FailureConfig())
    pay.clock.advance(breaker.config.timeout)
    healed = pay.process_payment(create(pay, "k9").id)
    assert healed.state is PaymentState.SUCCESS
    assert healed.gateway == "primary"
    assert pay.gateways["primary"].calls == calls_when_opened + 1
    assert [(t.source, t.target) for t in breaker.transitions] == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]
    opened, probing, closed = breaker.transitions
    assert "5 consecutive failures" in opened.cause
    assert probing.at - opened.at >= timedelta(seconds=60)
    assert closed.cause == "probe succeeded"

    report = pay.recover()  # the gateways answer again: every asked-for cancel is confirmed
    assert (report.found, report.failed, report.unresolved) == (cancelling, cancelling, 0)
    assert pay.list_payments("CANCELLING") == []
    assert pay.get_payment(first.id).failure_reason == first.last_error
    assert pay.events(first.id)[-1].event.type == "CancelConfirmed"


def test_a_payment_never_sent_to_an_open_primary_goes_to_the_fallback() -> None:
    pay = AegisPay.in_memory(seed=2)
    pay.set_faults(FailureConfig(network_rate=1.0), gateway="primary")
    for n in range(2):  # two payments exhaust the primary's retries: its breaker opens
        pay.process_payment(create(pay, f"warmup-{n}").id)
    assert pay.circuit_breaker("primary").state is BreakerState.OPEN
    payment = pay.process_payment(create(pay, "routed").id)
    assert payment.state is PaymentState.SUCCESS
    assert payment.gateway == "fallback"
    assert [c.merchant_reference for c in pay.gateways["primary"].charges()] == []
    assert payment.id in {c.merchant_reference for c in pay.gateways["fallback"].charges()}


def test_a_charge_refused_by_retries_is_rerouted_only_because_it_was_never_sent() -> None:
    pay = AegisPay.in_memory(seed=3)
    pay.set_faults(schedule(("network", 4, "charge")), gateway="primary")
    payment = pay.process_payment(create(pay, "k").id)
    assert payment.state is PaymentState.SUCCESS
    assert payment.gateway == "fallback"
    assert "PaymentRerouted" in [r.event.type for r in pay.events(payment.id)]


def test_a_payment_whose_outcome_is_unknown_at_the_primary_is_never_sent_elsewhere() -> None:
    pay = AegisPay.in_memory(seed=4)
    # The charge lands but the answer is lost, and the primary then stops answering at all.
    pay.set_faults(
        FailureConfig(
            network_rate=1.0, schedule=(ScheduledFault(kind="partial", operation="charge"),)
        ),
        gateway="primary",
    )
    payment = pay.process_payment(create(pay, "k").id)
    assert payment.state is PaymentState.UNKNOWN
    assert pay.circuit_breaker("primary").state is BreakerState.OPEN
    assert pay.gateways["fallback"].calls == 0
    assert pay.recover().unresolved == 1
    assert pay.gateways["fallback"].calls == 0

    pay.set_faults(FailureConfig())
    pay.clock.advance(60)
    report = pay.recover()
    assert (report.found, report.succeeded, report.unresolved) == (1, 1, 0)
    settled = pay.get_payment(payment.id)
    assert settled.state is PaymentState.SUCCESS
    assert settled.gateway == "primary"
    assert pay.gateways["fallback"].charges() == []


def test_a_lost_response_is_verified_and_settles_as_success_with_the_transaction_id() -> None:
    pay = AegisPay.in_memory(seed=1, faults=schedule(("partial", 1, "charge")))
    payment = pay.process_payment(create(pay, "k").id)
    assert payment.state is PaymentState.SUCCESS
    assert payment.transaction_id == pay.gateway.charges()[0].transaction_id
    assert [r.event.type for r in pay.events(payment.id)][-2:] == [
        "GatewayOutcomeUnknown",
        "ChargeConfirmed",
    ]
    assert pay.metrics.get("verification.confirmed") == 1
    assert len(pay.gateway.charges()) == 1


def test_a_timeout_after_a_decline_is_verified_as_a_failure() -> None:
    pay = AegisPay.in_memory(seed=1, faults=schedule(("timeout_after", 1, "charge")))
    payment = pay.create_payment(
        idempotency_key="declined", **{**REQUEST, "payment_method": "tok_decline"}
    )
    settled = pay.process_payment(payment.id)
    assert settled.state is PaymentState.FAILURE
    assert settled.failure_reason == "card_declined"
    assert [r.event.type for r in pay.events(payment.id)][-1] == "DeclineConfirmed"
    assert pay.metrics.get("verification.declined") == 1


def test_a_charge_the_gateway_never_saw_is_redriven_with_the_same_key() -> None:
    pay = AegisPay.in_memory(seed=1)
    payment = started_but_never_sent(pay, "k")
    assert payment.state is PaymentState.PROCESSING
    report = pay.recover()
    assert (report.found, report.succeeded, report.redriven) == (1, 1, 1)
    settled = pay.get_payment(payment.id)
    assert [r.event.type for r in pay.events(payment.id)][-2:] == [
        "ChargeNotFound",
        "PaymentSucceeded",
    ]
    assert [c.idempotency_key for c in pay.gateway.charges()] == [settled.gateway_idempotency_key]


def test_an_unreachable_gateway_leaves_the_payment_unknown_and_reported_unresolved() -> None:
    pay = AegisPay.in_memory(seed=1)
    payment = started_but_never_sent(pay, "k")
    pay.set_faults(FailureConfig(network_rate=1.0))
    after = pay.process_payment(payment.id)
    assert after.state is PaymentState.UNKNOWN
    assert pay.metrics.get("verification.unresolved") == 1
    assert pay.gateway.charges() == []
    assert pay.recover().unresolved_ids == [payment.id]


def test_a_crash_while_waiting_for_the_gateway_escapes_every_handler() -> None:
    pay = AegisPay.in_memory(seed=1, faults=schedule(("crash", 1, "charge")))
    payment = create(pay, "k")
    with pytest.raises(ProcessCrash):
        pay.process_payment(payment.id)
    assert pay.get_payment(payment.id).state is PaymentState.PROCESSING
    assert len(pay.gateway.charges()) == 1
    assert pay.recover().succeeded == 1
    assert len(pay.gateway.charges()) == 1


def test_heavy_faults_never_double_charge_and_settle_to_the_gateways_truth() -> None:
    pay = AegisPay.in_memory(seed=11, faults=HEAVY)
    result = run_workload(pay, 1500, seed=11)
    report = check_invariants(pay.event_store, pay.projections, pay.charges())
    assert report.violations == 0, report.details
    assert result.unresolved == 0
    assert sum(result.states.values()) == 1500
    assert set(result.states) <= {"SUCCESS", "FAILURE"}
    counters = pay.metrics.snapshot()
    for kind in ("partial", "network", "timeout_before", "timeout_after", "slow"):
        assert counters[f"faults.{kind}"] > 0
    assert counters["gateway.primary.charge.retries"] > 0
    assert counters["verification.confirmed"] > 0


def test_the_same_seed_gives_the_same_event_log_and_another_seed_does_not() -> None:
    def digest(seed: int) -> str:
        pay = AegisPay.in_memory(seed=seed, faults=HEAVY)
        run_workload(pay, 300, seed=seed)
        return event_log_digest(pay.event_store)

    assert digest(8) == digest(8)
    assert digest(8) != digest(9)


def test_set_faults_and_circuit_breaker_validate_their_arguments() -> None:
    pay = AegisPay.in_memory()
    with pytest.raises(InvalidRequest, match="gateway: must be one of primary, fallback"):
        pay.set_faults(FailureConfig(), gateway="tertiary")
    with pytest.raises(InvalidRequest, match="faults: must be a FailureConfig"):
        pay.set_faults({"network_rate": 1.0})  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="name: must be one of"):
        pay.circuit_breaker("nope")
    with pytest.raises(InvalidRequest, match="faults: must be a FailureConfig"):
        AegisPay.in_memory(faults="network=1")  # type: ignore[arg-type]


def test_retry_and_breaker_can_be_configured_per_gateway() -> None:
    pay = AegisPay.in_memory(
        seed=1,
        retry={"primary": RetryPolicy(retries=0)},
        breaker={"fallback": BreakerConfig(failure_threshold=2)},
    )
    assert pay.routes.get("primary").policy.retries == 0
    assert pay.routes.get("fallback").policy == RetryPolicy()
    assert pay.circuit_breaker("fallback").config.failure_threshold == 2
    assert pay.circuit_breaker("primary").config == BreakerConfig()
    pay.set_faults(schedule(("network", 1, "charge")), gateway="primary")
    payment = pay.process_payment(create(pay, "k").id)
    assert payment.gateway == "fallback"  # no retry at the primary: a cancel, then the fallback
    assert pay.gateways["primary"].calls == 2
    assert [c.status for c in pay.gateways["primary"].charges()] == [ChargeStatus.CANCELLED]


@pytest.mark.parametrize(
    ("retry", "rule"),
    [({"tertiary": RetryPolicy()}, "gateways are primary, fallback"), (3, "must be a RetryPolicy")],
)
def test_a_per_gateway_setting_names_a_known_gateway(retry: object, rule: str) -> None:
    with pytest.raises(InvalidRequest, match=rule) as caught:
        AegisPay.in_memory(retry=retry)  # type: ignore[arg-type]
    assert caught.value.field == "retry"


def test_a_timeout_after_a_successful_charge_is_verified_as_a_success() -> None:
    pay = AegisPay.in_memory(seed=1, faults=schedule(("timeout_after", 1, "charge")))
    payment = pay.process_payment(create(pay, "k").id)
    assert payment.state is PaymentState.SUCCESS
    assert [r.event.type for r in pay.events(payment.id)][-2:] == [
        "GatewayOutcomeUnknown",
        "ChargeConfirmed",
    ]
    assert len(pay.charges()) == 1
