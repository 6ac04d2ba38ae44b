"""Seeded fault injection: the config and its seed names, the draws, and each fault's effect."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest

from aegispay.domain.charges import ChargeRequest, ChargeStatus
from aegispay.domain.errors import InvalidRequest
from aegispay.domain.failures import (
    Fault,
    GatewayError,
    GatewayNetworkError,
    GatewayResponseLost,
    GatewayTimeoutAfterSend,
    GatewayTimeoutBeforeSend,
)
from aegispay.domain.money import Money
from aegispay.infra.clock import EPOCH, VirtualClock
from aegispay.infra.gateway.ledger import InMemoryLedger
from aegispay.infra.gateway.simulated import SimulatedGateway
from aegispay.infra.telemetry import MemoryMetrics
from aegispay.sim.faults import (
    FAULT_KINDS,
    GATEWAY_FAULT_KINDS,
    FailureConfig,
    FaultInjector,
    FaultyGateway,
    PlannedFault,
    ProcessCrash,
    ScheduledFault,
)

# The config


def test_a_default_config_has_every_rate_at_zero_and_no_schedule() -> None:
    config = FailureConfig()
    assert [config.rate(kind) for kind in FAULT_KINDS] == [0.0] * len(FAULT_KINDS)
    assert config.schedule == ()


def test_a_default_config_heals_every_call() -> None:
    faults = FaultInjector(FailureConfig(), VirtualClock(), MemoryMetrics(), seed=1)
    assert {faults.draw("primary", "charge") for _ in range(1000)} == {PlannedFault()}


def test_the_seeds_partial_failure_switch_and_rate_set_the_partial_rate() -> None:
    config = FailureConfig.model_validate(
        {"simulate_partial_failure": True, "partial_failure_rate": 0.3}
    )
    assert config.partial_rate == 0.3


def test_the_seeds_network_switch_without_a_rate_turns_on_a_positive_default() -> None:
    assert FailureConfig.model_validate({"simulate_network_error": True}).network_rate > 0


@pytest.mark.parametrize("crash_rate", [None, 0.2], ids=["alone", "beside a crash rate"])
def test_the_seeds_crash_switch_off_leaves_crashes_off(crash_rate: float | None) -> None:
    fields = {"simulate_crash": False} | ({} if crash_rate is None else {"crash_rate": crash_rate})
    assert FailureConfig.model_validate(fields).crash_rate == 0.0


def test_the_seeds_timeout_switch_turns_on_timeouts_after_send_and_keeps_the_delay() -> None:
    config = FailureConfig.model_validate({"simulate_timeout": True, "timeout_delay_ms": 2_000})
    assert config.timeout_after_rate > 0
    assert config.timeout_delay_ms == 2_000


@pytest.mark.parametrize(
    ("switch", "rate_field"),
    [("simulate_timeout", "timeout_after_rate"), ("simulate_partial_failure", "partial_rate"),
     ("simulate_network_error", "network_rate"), ("simulate_crash", "crash_rate")],
)  # fmt: skip
def test_a_seed_switch_without_a_rate_means_a_rate_of_one_in_ten(
    switch: str, rate_field: str
) -> None:
    assert getattr(FailureConfig.model_validate({switch: True}), rate_field) == 0.1


@pytest.mark.parametrize(
    ("seed_name", "canonical"),
    [("partial_failure_rate", "partial_rate"), ("timeout_rate", "timeout_after_rate"),
     ("network_error_rate", "network_rate")],
)  # fmt: skip
def test_a_seed_name_and_its_canonical_name_with_different_values_are_refused_naming_both(
    seed_name: str, canonical: str
) -> None:
    with pytest.raises(ValueError, match=f"{canonical} and {seed_name} name the same rate"):
        FailureConfig.model_validate({canonical: 0.5, seed_name: 0.2})


def test_a_seed_name_and_its_canonical_name_with_the_same_value_are_accepted() -> None:
    config = FailureConfig.model_validate({"partial_rate": 0.2, "partial_failure_rate": 0.2})
    assert config.partial_rate == 0.2


@pytest.mark.parametrize(
    "fields",
    [
        {"network_rate": True},
        {"crash_rate": False},
        {"simulate_timeout": True, "timeout_rate": True},
    ],
)
def test_a_bool_given_as_a_rate_is_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must be a number between 0 and 1, not a bool"):
        FailureConfig.model_validate(fields)


def test_exclusive_rates_adding_up_to_more_than_one_are_rejected_naming_the_kinds() -> None:
    with pytest.raises(ValueError, match="timeout_before, network, timeout_after, partial"):
        FailureConfig(partial_rate=0.7, network_rate=0.5)


def test_slowness_is_not_counted_against_the_exclusive_rates() -> None:
    """A call can be both slow and failed: slowness adds to the other kinds, never replaces them."""
    assert FailureConfig(partial_rate=1.0, slow_rate=1.0).slow_rate == 1.0


def test_rates_adding_up_to_exactly_one_are_accepted() -> None:
    FailureConfig(timeout_before_rate=0.33, network_rate=0.56, timeout_after_rate=0.11)


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValueError, match="chaos_rate"):
        FailureConfig.model_validate({"chaos_rate": 0.5})


def test_from_pairs_reads_repeatable_kind_equals_rate_strings() -> None:
    config = FailureConfig.from_pairs(["partial=0.1", "network=0.05", "slow=0.5"])
    assert (config.partial_rate, config.network_rate, config.slow_rate) == (0.1, 0.05, 0.5)


@pytest.mark.parametrize("pair", ["gremlins=0.1", "partial"], ids=["unknown kind", "no rate"])
def test_from_pairs_rejects_a_bad_pair_naming_the_valid_kinds(pair: str) -> None:
    valid = ", ".join(FAULT_KINDS)
    with pytest.raises(ValueError, match=f"kind one of {valid}"):
        FailureConfig.from_pairs([pair])


def test_from_pairs_refuses_a_kind_given_twice() -> None:
    with pytest.raises(InvalidRequest) as caught:
        FailureConfig.from_pairs(["partial=0.1", "network=0.2", "partial=0.1"])
    assert caught.value.field == "fault"
    assert caught.value.rule == "fault 'partial' given twice"


def test_from_pairs_states_a_broken_rule_without_pydantic_wording() -> None:
    with pytest.raises(InvalidRequest) as caught:
        FailureConfig.from_pairs(["partial=0.7", "network=0.5"])
    assert caught.value.rule.startswith("the rates of timeout_before, network")


# The draws

MIXED = FailureConfig(
    timeout_before_rate=0.1, network_rate=0.1, partial_rate=0.1, decline_rate=0.1, slow_rate=0.1
)


def planned(config: FailureConfig, seed: int, draws: int) -> list[PlannedFault]:
    faults = FaultInjector(config, VirtualClock(), MemoryMetrics(), seed)
    return [faults.draw("primary", "charge") for _ in range(draws)]


def test_the_same_seed_plans_the_same_faults_and_another_seed_does_not() -> None:
    assert planned(MIXED, seed=1, draws=1000) == planned(MIXED, seed=1, draws=1000)
    assert planned(MIXED, seed=1, draws=1000) != planned(MIXED, seed=2, draws=1000)


def test_rates_are_honoured_over_many_draws() -> None:
    plans = planned(FailureConfig(partial_rate=0.2), seed=3, draws=5000)
    share = sum(plan.kind == "partial" for plan in plans) / len(plans)
    assert 0.17 <= share <= 0.23


def test_the_schedule_comes_first_and_is_consumed_before_the_rates_resume() -> None:
    config = FailureConfig(
        decline_rate=1.0, schedule=(ScheduledFault(kind="timeout_after", calls=3),)
    )
    kinds = [plan.kind for plan in planned(config, seed=1, draws=5)]
    assert kinds == ["timeout_after"] * 3 + ["decline"] * 2


def test_a_schedule_for_status_lookups_is_left_alone_by_charges() -> None:
    faults = FaultInjector(
        FailureConfig(schedule=(ScheduledFault(kind="network", operation="status"),)),
        VirtualClock(),
        MemoryMetrics(),
        seed=1,
    )
    assert faults.draw("primary", "charge") == PlannedFault()
    assert faults.draw("primary", "status") == PlannedFault("network")


# Each fault's effect through a simulated gateway


class Rig:
    """A simulated gateway whose next charge meets one scheduled fault."""

    def __init__(self, *kinds: str, config: FailureConfig | None = None) -> None:
        config = config or FailureConfig(timeout_delay_ms=2_000, slow_delay_ms=1_500)
        if kinds:
            schedule = tuple(ScheduledFault(kind=kind) for kind in kinds)
            config = config.model_copy(update={"schedule": schedule})
        self.clock = VirtualClock()
        self.metrics = MemoryMetrics()
        self.faults = FaultInjector(config, self.clock, self.metrics, seed=1)
        inner = SimulatedGateway("primary", InMemoryLedger(), self.clock)
        self.gateway = FaultyGateway(inner, self.faults)

    def elapsed(self) -> timedelta:
        return self.clock.now() - EPOCH


def request(reference: str = "pay_1") -> ChargeRequest:
    return ChargeRequest(
        merchant_reference=reference,
        idempotency_key=f"aegispay-{reference}",
        amount=Money(minor=1250, currency="USD"),
        payment_method="tok_visa",
    )


def test_a_timeout_before_sending_charges_nothing_and_takes_the_timeout_delay() -> None:
    rig = Rig("timeout_before")
    with pytest.raises(GatewayTimeoutBeforeSend):
        rig.gateway.charge(request())
    assert rig.gateway.charges() == []
    assert rig.elapsed() == timedelta(seconds=2)


def test_a_network_error_charges_nothing() -> None:
    rig = Rig("network")
    with pytest.raises(GatewayNetworkError):
        rig.gateway.charge(request())
    assert rig.gateway.charges() == []


@pytest.mark.parametrize(
    ("kind", "error"),
    [("timeout_after", GatewayTimeoutAfterSend), ("partial", GatewayResponseLost)],
)
def test_a_lost_answer_is_raised_after_the_gateway_charged(
    kind: str, error: type[GatewayError]
) -> None:
    rig = Rig(kind)
    with pytest.raises(error):
        rig.gateway.charge(request())
    assert [charge.charged for charge in rig.gateway.charges()] == [True]


def test_an_injected_decline_is_recorded_as_declined_with_do_not_honor() -> None:
    record = Rig("decline").gateway.charge(request())
    assert record.status is ChargeStatus.DECLINED
    assert record.decline_reason == "do_not_honor"


def test_a_slow_call_succeeds_after_the_slow_delay() -> None:
    rig = Rig("slow")
    assert rig.gateway.charge(request()).charged
    assert rig.elapsed() == timedelta(seconds=1.5)


def test_a_crash_strikes_after_the_charge_is_recorded_and_escapes_except_exception() -> None:
    rig = Rig("crash")
    with pytest.raises(ProcessCrash), contextlib.suppress(Exception):
        rig.gateway.charge(request())
    assert [charge.charged for charge in rig.gateway.charges()] == [True]


def test_configuring_an_empty_config_heals_the_gateway() -> None:
    rig = Rig(config=FailureConfig(network_rate=1.0))
    with pytest.raises(GatewayNetworkError):
        rig.gateway.charge(request())
    rig.faults.configure(FailureConfig())
    assert rig.gateway.charge(request()).charged


def test_metrics_count_each_injected_fault_by_kind() -> None:
    rig = Rig(*GATEWAY_FAULT_KINDS)
    for number, _ in enumerate(GATEWAY_FAULT_KINDS):
        with contextlib.suppress(GatewayError, ProcessCrash):
            rig.gateway.charge(request(f"pay_{number}"))
    assert rig.metrics.snapshot() == {f"faults.{kind}": 1 for kind in GATEWAY_FAULT_KINDS}


def test_the_gateway_counts_every_call_made_to_it_faulted_or_not() -> None:
    rig = Rig(config=FailureConfig(schedule=(ScheduledFault(kind="network", operation="status"),)))
    rig.gateway.charge(request())
    with pytest.raises(GatewayNetworkError):
        rig.gateway.status("pay_1")
    rig.gateway.status("pay_1")
    assert rig.gateway.calls == 3


def test_every_injected_fault_kind_has_exactly_one_rate_field_and_nothing_else_does() -> None:
    """The Fault enum is the one list: FailureConfig's rates are derived from it, not beside it."""
    rates = {name for name in FailureConfig.model_fields if name.endswith("_rate")}
    assert rates == {f"{kind}_rate" for kind in FAULT_KINDS}
    assert set(FAULT_KINDS) == {kind.value for kind in Fault} - {"circuit_open", "unexpected"}
