"""Crash recovery: crash points, restarts, the coordinator, projection repair, halted streams."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aegispay import AegisPay, InvalidRequest, Payment, PaymentState, replay
from aegispay.cli import main
from aegispay.domain.charges import ChargeRecord, ChargeRequest, ChargeStatus
from aegispay.domain.commands import payment_id_for
from aegispay.domain.failures import GatewayError, classify
from aegispay.ports import PaymentGateway
from aegispay.sim import BOUNDARIES, FailureConfig, ProcessCrash, enumeration
from aegispay.sim.chaos import run_chaos
from aegispay.sim.invariants import check_invariants
from tests.factories import ForgetfulAegisPay

REQUEST = {
    "amount": "9.99",
    "currency": "GBP",
    "customer_id": "cus_r",
    "payment_method": "tok_visa",
}


def create(pay: AegisPay, key: str) -> Payment:
    return pay.create_payment(idempotency_key=key, **REQUEST)


def crash_while_processing(pay: AegisPay, key: str, boundary: str, side: str) -> AegisPay:
    """Create a payment, crash while processing it, and return the restarted engine."""
    payment = create(pay, key)
    pay.crash_at(boundary, side)  # type: ignore[arg-type]
    with pytest.raises(ProcessCrash):
        pay.process_payment(payment.id)
    return pay.restart()


def violations(pay: AegisPay) -> list[str]:
    return check_invariants(pay.event_store, pay.projections, pay.charges()).details


def test_the_boundaries_name_every_port_operation_the_issue_lists() -> None:
    for boundary in ("events.append", "projection.save", "locks.acquire", "locks.release",
                     "gateway.charge", "gateway.status"):  # fmt: skip
        assert boundary in BOUNDARIES


@pytest.mark.parametrize(
    ("boundary", "side", "nth", "field"),
    [("events.explode", "before", 1, "boundary"), ("events.append", "during", 1, "side"),
     ("events.append", "before", 0, "nth")],
)  # fmt: skip
def test_crash_at_rejects_what_it_cannot_arm(
    boundary: str, side: str, nth: int, field: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        AegisPay.in_memory().crash_at(boundary, side, nth)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_a_crash_fires_once_at_the_armed_crossing_and_not_before() -> None:
    pay = AegisPay.in_memory()
    pay.crash_at("events.append", "after", nth=2)
    create(pay, "a")  # first append: no crash
    with pytest.raises(ProcessCrash, match=r"after events\.append #2"):
        create(pay, "b")
    assert pay.crashpoints.armed == 0


@pytest.mark.parametrize(
    ("armed_from", "side"), [("gateway.charge", "inside"), ("projection.save", "before")]
)
def test_a_crash_armed_during_a_call_for_its_own_after_fires_at_that_call(
    armed_from: str, side: str
) -> None:
    """Arming counts from the moment of arming: a call that arms its own `after` (from its
    `inside`, or from a boundary it crosses on the way) dies there, not at the next call."""
    pay = AegisPay.in_memory()
    payment = create(pay, "k")
    target = "gateway.charge" if armed_from == "gateway.charge" else "events.append"
    armed: list[bool] = []

    def arm_once() -> None:
        if not armed:
            armed.append(True)
            pay.crashpoints.crash_at(target, "after", 1)

    pay.crashpoints.hook(armed_from, side, arm_once)  # type: ignore[arg-type]
    with pytest.raises(ProcessCrash, match=rf"after {target.replace('.', '[.]')} #"):
        pay.process_payment(payment.id)
    assert pay.crashpoints.armed == 0
    # Where it died: after the charge (charged, not yet recorded), or after the first append
    # of processing (started, nothing sent): one call later it would be after the outcome.
    stored = pay.restart().get_payment(payment.id)
    assert stored.state is PaymentState.PROCESSING
    assert len(pay.charges()) == (1 if target == "gateway.charge" else 0)


@pytest.mark.parametrize(("side", "charged"), [("before", False), ("after", True)])
def test_recovery_settles_a_payment_that_crashed_around_the_charge(
    side: str, charged: bool
) -> None:
    pay = crash_while_processing(AegisPay.in_memory(seed=3), "k", "gateway.charge", side)
    payment_id = payment_id_for("k")
    assert pay.get_payment(payment_id).state is PaymentState.PROCESSING
    assert len(pay.charges()) == int(charged)
    report = pay.recover()
    assert (report.found, report.succeeded, report.unresolved) == (1, 1, 0)
    assert report.redriven == int(not charged)
    assert pay.get_payment(payment_id).state is PaymentState.SUCCESS
    assert len(pay.charges()) == 1
    assert violations(pay) == []


def test_a_restarted_process_is_not_blocked_by_the_dead_ones_locks() -> None:
    pay = AegisPay.in_memory()
    payment = create(pay, "k")
    assert pay.locks.acquire(f"payment:{payment.id}", "dead-owner", ttl=30)
    restarted = pay.restart()
    assert restarted.process_payment(payment.id).state is PaymentState.SUCCESS
    assert restarted.clock is pay.clock


def test_a_payment_created_but_never_processed_is_not_charged_by_recovery() -> None:
    pay = AegisPay.in_memory()
    payment = create(pay, "k")
    pay = pay.restart()
    assert pay.recover().found == 0
    assert pay.charges() == []
    assert pay.get_payment(payment.id).state is PaymentState.INITIATED


def test_recovering_twice_finds_nothing_the_second_time() -> None:
    pay = crash_while_processing(AegisPay.in_memory(), "k", "gateway.charge", "after")
    assert pay.recover().found == 1
    second = pay.recover()
    assert (second.found, second.projections_repaired) == (0, 0)
    assert len(pay.charges()) == 1


def test_two_processes_recovering_the_same_payments_charge_each_once() -> None:
    pay = AegisPay.in_memory(seed=4)
    for n in range(5):
        pay = crash_while_processing(pay, f"k{n}", "gateway.charge", "before" if n % 2 else "after")
    other = pay.restart()
    # Each recovers while the other is half-way: the second runs inside the first's first append.
    pay.crashpoints.arm("events.append", "before", 1, other.recover)
    pay.recover()
    assert len({c.merchant_reference for c in pay.charges()}) == 5
    assert len(pay.charges()) == 5
    assert violations(pay) == []


def test_a_crash_inside_recovery_is_recovered_by_the_next_run() -> None:
    pay = crash_while_processing(AegisPay.in_memory(), "k", "gateway.charge", "after")
    pay.crash_at("events.append", "after")
    with pytest.raises(ProcessCrash):
        pay.recover()
    pay = pay.restart()
    assert pay.recover().unresolved == 0
    assert violations(pay) == []


def test_failed_projection_writes_drift_and_recovery_repairs_them() -> None:
    pay = AegisPay.in_memory(seed=6, faults=FailureConfig(projection_rate=0.5))
    for n in range(30):
        pay.process_payment(create(pay, f"k{n}").id)
    drifted = check_invariants(pay.event_store, pay.projections, pay.charges())
    assert drifted.counts["projection_matches_events"] > 0
    assert pay.metrics.get("projection.write_failed") > 0
    pay.set_faults(FailureConfig())
    report = pay.recover()
    assert report.projections_repaired == drifted.counts["projection_matches_events"]
    assert violations(pay) == []


def test_a_crash_before_a_projection_write_leaves_an_in_flight_payment_recovery_still_finds() -> (
    None
):
    pay = AegisPay.in_memory()
    payment = create(pay, "k")
    # Authenticated and ProcessingStarted are one append: the row of both never lands.
    pay.crash_at("projection.save", "before")
    with pytest.raises(ProcessCrash):
        pay.process_payment(payment.id)
    pay = pay.restart()
    assert pay.projections.get(payment.id).state is PaymentState.INITIATED  # type: ignore[union-attr]
    report = pay.recover()
    assert (report.projections_repaired, report.found, report.succeeded) == (1, 1, 1)
    assert violations(pay) == []


def test_rebuild_projections_restores_every_row_from_events() -> None:
    pay = AegisPay.in_memory()
    ids = [pay.process_payment(create(pay, f"k{n}").id).id for n in range(4)]
    for payment_id in ids[:3]:
        pay.projections.delete(payment_id)
    report = pay.rebuild_projections()
    assert report.projections_repaired == 3
    assert sorted(p.id for p in pay.list_payments()) == sorted(ids)
    assert violations(pay) == []


def durable(tmp_path: Path) -> dict[str, str]:
    return {"store": f"sqlite:///{tmp_path}/s.db", "gateway": f"sqlite:///{tmp_path}/g.db"}


@pytest.mark.parametrize(
    "damage",
    ["DELETE FROM events WHERE stream_id = ? AND version = 2",
     "UPDATE events SET data = '{not json' WHERE stream_id = ? AND version = 3"],
)  # fmt: skip
def test_a_damaged_stream_halts_alone_is_reported_and_the_others_still_recover(
    tmp_path: Path, damage: str
) -> None:
    pay = AegisPay.open(**durable(tmp_path))
    for key in ("damaged", "healthy"):
        pay = crash_while_processing(pay, key, "gateway.charge", "after")
    damaged = payment_id_for("damaged")
    with sqlite3.connect(tmp_path / "s.db") as conn:
        conn.execute(damage, (damaged,))
    first = pay.recover()
    assert first.streams_halted == 1
    assert damaged in first.halted
    assert first.succeeded == 1
    assert pay.get_payment(payment_id_for("healthy")).state is PaymentState.SUCCESS
    assert pay.metrics.get("alerts.stream_halted") == 1
    # Never silently skipped: the next run reports it again.
    assert damaged in pay.recover().halted
    pay.close()


def test_open_with_recover_on_start_settles_what_a_crash_left(tmp_path: Path) -> None:
    pay = crash_while_processing(AegisPay.open(**durable(tmp_path)), "k", "gateway.charge", "after")
    pay.close()
    with AegisPay.open(**durable(tmp_path), recover_on_start=True) as reopened:
        assert reopened.get_payment(payment_id_for("k")).state is PaymentState.SUCCESS
        assert violations(reopened) == []


def test_every_crash_point_of_every_scenario_recovers_without_violations() -> None:
    report = enumeration.enumerate_crashes()
    summary = report.as_dict()
    assert set(report.scenarios) == {s.name for s in enumeration.SCENARIOS}
    assert all(count > 0 for count in report.scenarios.values())
    assert summary["cases"] == len(report.scenarios) + sum(report.scenarios.values())
    assert summary["violations"] == 0, summary["failures"]
    crash_cases = [c for c in report.cases if c.crossing is not None and c.interruption == "crash"]
    assert all(case.crashed for case in crash_cases)
    assert len(crash_cases) < summary["cases"] - len(report.scenarios)  # second actors ran too


class GuessingGateway:
    """Reads an answer that never came (timeout after sending, lost response) as a decline."""

    def __init__(self, inner: PaymentGateway) -> None:
        self.inner = inner
        self.name = inner.name

    def charge(self, request: ChargeRequest) -> ChargeRecord:
        try:
            return self.inner.charge(request)
        except GatewayError as error:
            if not classify(error).may_have_charged:
                raise
            return ChargeRecord(
                transaction_id="guessed",
                merchant_reference=request.merchant_reference,
                idempotency_key=request.idempotency_key,
                amount=request.amount,
                payment_method=request.payment_method,
                status=ChargeStatus.DECLINED,
                decline_reason="guessed",
                created_at=request_time(),
            )

    def status(self, merchant_reference: str) -> ChargeRecord | None:
        return self.inner.status(merchant_reference)

    def cancel(self, merchant_reference: str) -> ChargeRecord:
        return self.inner.cancel(merchant_reference)


def request_time() -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC)


class GuessingAegisPay(AegisPay):
    """An engine that guesses FAILURE where the gateway may have charged, instead of asking."""

    def wrap_gateway(self, gateway: PaymentGateway) -> PaymentGateway:
        return GuessingGateway(super().wrap_gateway(gateway))


def test_the_crash_enumeration_catches_a_recovery_that_forgets_in_flight_payments() -> None:
    report = enumeration.enumerate_crashes(enumeration.SCENARIOS[1:2], engine=ForgetfulAegisPay)
    assert report.as_dict()["violations"] > 0


def test_every_scenario_replays_identically_from_its_seed() -> None:
    assert all(enumeration.replays_identically(scenario) for scenario in enumeration.SCENARIOS)


def test_a_small_chaos_soak_ends_clean_and_replays_from_its_seed() -> None:
    first, again, other = run_chaos(300, 5), run_chaos(300, 5), run_chaos(300, 6)
    assert first.violations == 0, first.details
    assert first.digest == again.digest
    assert first.digest != other.digest
    for kind in ("partial", "network", "timeout_after", "projection", "duplicate_request"):
        assert first.faults[kind] > 0


def test_the_chaos_soak_catches_an_engine_that_guesses_failure_on_an_unknown_outcome() -> None:
    report = run_chaos(300, 5, engine=GuessingAegisPay)
    assert report.invariants["settled_matches_gateway"] > 0
    assert report.invariants["failure_is_definitive"] > 0


def test_the_cli_commands_print_the_promised_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["crashpoints", "--json"]) == 0
    crash = json.loads(capsys.readouterr().out)
    assert {"scenarios", "boundaries", "cases", "violations", "failures"} <= set(crash)
    assert main(["chaos", "--payments", "50", "--seed", "2", "--json"]) == 0
    chaos = json.loads(capsys.readouterr().out)
    assert {"payments", "seed", "faults", "recovery", "invariants", "violations", "digest"} <= set(
        chaos
    )
    u = durable(tmp_path)
    crash_while_processing(AegisPay.open(**u), "k", "gateway.charge", "after").close()
    assert main(["recover", "--store", u["store"], "--gateway", u["gateway"], "--json"]) == 0
    recovered = json.loads(capsys.readouterr().out)
    assert (recovered["found"], recovered["succeeded"]) == (1, 1)


def test_an_armed_crash_fires_even_where_a_projection_fault_strikes() -> None:
    pay = AegisPay.in_memory(faults=FailureConfig(projection_rate=1.0))
    pay.crash_at("projection.save", "before")
    with pytest.raises(ProcessCrash):
        create(pay, "k")


def test_an_unreadable_projection_row_is_rebuilt_and_the_others_still_recover(
    tmp_path: Path,
) -> None:
    pay = AegisPay.open(**durable(tmp_path))
    settled = pay.process_payment(create(pay, "settled").id)
    pay = crash_while_processing(pay, "in-flight", "gateway.charge", "after")
    with sqlite3.connect(tmp_path / "s.db") as conn:
        conn.execute("UPDATE payments SET data = 'garbage' WHERE id = ?", (settled.id,))
    report = pay.recover()
    assert report.succeeded == 1
    assert report.projections_repaired >= 1
    assert pay.projections.get(settled.id) == settled
    assert violations(pay) == []
    pay.close()


def test_drift_older_than_the_checkpoint_is_repaired_not_counted_as_a_settlement() -> None:
    pay = AegisPay.in_memory()
    payment = pay.process_payment(create(pay, "k").id)
    pay.recover()  # the checkpoint moves past every event
    stale = replay(r.event for r in pay.events(payment.id)[:3])
    assert stale is not None
    pay.projections.delete(payment.id)
    pay.projections.save(stale)  # the row lags behind, as a lost write long ago would leave it
    report = pay.recover()
    assert (report.found, report.succeeded, report.projections_repaired) == (0, 0, 1)
    assert pay.projections.get(payment.id) == payment
    assert pay.recover().projections_repaired == 0


def test_rebuilding_projections_while_writes_fail_loses_no_row() -> None:
    pay = AegisPay.in_memory()
    ids = [pay.process_payment(create(pay, f"k{n}").id).id for n in range(3)]
    pay.projections.delete(ids[0])
    pay.set_faults(FailureConfig(projection_rate=1.0))
    failed = pay.rebuild_projections()
    assert failed.repairs_failed == 1
    assert {p.id for p in pay.list_payments()} == set(ids[1:])
    pay.set_faults(FailureConfig())
    assert pay.rebuild_projections().projections_repaired == 1
    assert violations(pay) == []


def test_a_halted_stream_is_remembered_without_holding_the_checkpoint_back(
    tmp_path: Path,
) -> None:
    pay = crash_while_processing(
        AegisPay.open(**durable(tmp_path)), "damaged", "gateway.charge", "after"
    )
    damaged = payment_id_for("damaged")
    with sqlite3.connect(tmp_path / "s.db") as conn:
        good = conn.execute(
            "SELECT data FROM events WHERE stream_id = ? AND version = 3", (damaged,)
        ).fetchone()[0]
        conn.execute("UPDATE events SET data = '{' WHERE stream_id = ? AND version = 3", (damaged,))
    assert damaged in pay.recover().halted
    for n in range(5):
        pay.process_payment(create(pay, f"later-{n}").id)
    assert pay.recover().halted.keys() == {damaged}
    assert pay.projections.checkpoint() == pay.event_store.last_position()
    with sqlite3.connect(tmp_path / "s.db") as conn:  # an operator restores the row
        conn.execute(
            "UPDATE events SET data = ? WHERE stream_id = ? AND version = 3", (good, damaged)
        )
    repaired = pay.recover()
    assert repaired.halted == {}
    assert repaired.succeeded == 1
    assert violations(pay) == []
    pay.close()


@pytest.mark.parametrize("nth", [True, 1.5, "1"])
def test_crash_at_wants_a_whole_number_of_crossings(nth: object) -> None:
    with pytest.raises(InvalidRequest) as caught:
        AegisPay.in_memory().crash_at("events.append", "before", nth)  # type: ignore[arg-type]
    assert caught.value.field == "nth"


def test_a_run_with_failing_projection_writes_ends_with_no_drift(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    u = durable(tmp_path)
    args = ["--store", u["store"], "--gateway", u["gateway"]]
    assert main(["run", *args, "--payments", "40", "--fault", "projection=0.5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["faults"]["projection"] > 0
    assert main(["audit", *args, "--json"]) == 0


def test_authentication_and_processing_started_are_recorded_in_one_append() -> None:
    pay = AegisPay.in_memory()
    payment = create(pay, "k")
    pay.crashpoints.reset()
    pay.crashpoints.recording = True
    pay.process_payment(payment.id)
    appends = [
        c for c in pay.crashpoints.trace if c.boundary == "events.append" and c.side == "after"
    ]
    types = [recorded.event.type for recorded in pay.events(payment.id)]
    assert (len(appends), types) == (
        2,
        ["PaymentInitiated", "PaymentAuthenticated", "ProcessingStarted", "PaymentSucceeded"],
    )
