"""The gateway's cancel fence: a payment another actor may still charge never becomes FAILURE
on a guess, in one process, under the crash harness, and across real processes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from aegispay import AegisPay, ChargeStatus, Payment, PaymentState
from aegispay.domain.charges import ChargeRecord
from aegispay.domain.events import PaymentFailed
from aegispay.infra.gateway.ledger import InMemoryLedger
from aegispay.orchestration import workflows
from aegispay.sim import FailureConfig, ScheduledFault, enumeration
from aegispay.sim.enumeration import Scenario

REQUEST = {
    "amount": "12.50",
    "currency": "USD",
    "customer_id": "cus_1",
    "payment_method": "tok_visa",
}
UNREACHABLE = FailureConfig(schedule=(ScheduledFault(kind="network", calls=10),))
TIMEOUT = 120


def create(pay: AegisPay, key: str) -> Payment:
    return pay.create_payment(idempotency_key=key, **REQUEST)


def other_process(pay: AegisPay, faults: FailureConfig) -> AegisPay:
    """A second engine over the same storage, with its own locks and network."""
    return pay.sibling(faults=faults, offset=1)


def test_a_cancelled_reference_refuses_every_later_charge_and_takes_no_money() -> None:
    pay = AegisPay.in_memory(seed=1)
    payment = create(pay, "k")
    cancelled = pay.gateway.cancel(payment.id)
    assert cancelled.status is ChargeStatus.CANCELLED
    assert cancelled.amount is None
    pay.process_payment(payment.id)
    assert [c.status for c in pay.gateway.charges()] == [ChargeStatus.CANCELLED]
    assert pay.gateway.cancel(payment.id) == cancelled  # asking again gives the same answer


def test_a_cancel_after_the_charge_answers_charged_and_changes_nothing() -> None:
    pay = AegisPay.in_memory(seed=1)
    payment = pay.process_payment(create(pay, "k").id)
    held = pay.gateway.cancel(payment.id)
    assert held.charged
    assert held.transaction_id == payment.transaction_id
    assert [c.status for c in pay.gateway.charges()] == [ChargeStatus.SUCCEEDED]


def test_a_recovery_elsewhere_that_cannot_charge_cancels_and_the_late_charge_is_refused() -> None:
    """The race: our charge is on the wire while another process gives up on the payment."""
    pay = AegisPay.in_memory(seed=2)
    payment = create(pay, "k")
    elsewhere = other_process(pay, UNREACHABLE)
    reports = []
    pay.crashpoints.arm("gateway.charge", "inside", 1, lambda: reports.append(elsewhere.recover()))
    settled = pay.process_payment(payment.id)
    (report,) = reports
    assert (report.found, report.failed, report.unresolved) == (1, 1, 0)
    assert settled.state is PaymentState.FAILURE
    assert [e.event.type for e in pay.events(payment.id)][-3:] == [
        "ChargeNotFound",
        "CancelRequested",
        "CancelConfirmed",
    ]
    assert not [c for c in pay.charges() if c.charged]
    assert pay.check_invariants().violations == 0


def test_a_charge_that_landed_before_the_cancel_settles_the_payment_as_success() -> None:
    pay = AegisPay.in_memory(seed=3)
    payment = create(pay, "k")
    elsewhere = other_process(pay, UNREACHABLE)
    # Our charge lands; the other process asks too early, fails to charge, then cancels late.
    pay.crashpoints.arm("gateway.charge", "after", 1, elsewhere.recover)
    pay.process_payment(payment.id)
    assert pay.get_payment(payment.id).state is PaymentState.SUCCESS
    assert pay.check_invariants().violations == 0


def test_when_the_cancel_cannot_be_sent_the_payment_stays_cancelling_until_a_later_recovery() -> (
    None
):
    pay = AegisPay.in_memory(seed=4, faults=FailureConfig(network_rate=1.0))
    payment = pay.process_payment(create(pay, "k").id)
    assert payment.state is PaymentState.CANCELLING
    report = pay.recover()
    assert (report.unresolved, report.unresolved_ids) == (1, [payment.id])
    pay.set_faults(FailureConfig())
    pay.clock.advance(pay.circuit_breaker().config.timeout)
    assert pay.recover().failed == 1
    assert pay.get_payment(payment.id).state is PaymentState.FAILURE
    assert pay.check_invariants().violations == 0


def test_a_payment_never_started_still_fails_at_once_when_no_gateway_takes_calls() -> None:
    pay = AegisPay.in_memory(seed=5, faults=FailureConfig(network_rate=1.0))
    while pay.routes.route() is not None:  # open both breakers
        pay.process_payment(create(pay, f"warmup-{pay.gateways['primary'].calls}").id)
    failed = pay.process_payment(create(pay, "k").id)
    assert failed.state is PaymentState.FAILURE
    assert [e.event.type for e in pay.events(failed.id)][-1] == "PaymentFailed"
    assert "ProcessingStarted" not in [e.event.type for e in pay.events(failed.id)]


def _guessing_recovery(pay: AegisPay) -> None:
    """Another process that hears "not found" and writes FAILURE: the mistake the fence forbids."""
    elsewhere = other_process(pay, UNREACHABLE)
    payment = elsewhere.get_payment(enumeration.payment_id_for(enumeration.KEY))
    if payment.state.is_terminal:
        return

    def guess(at: object) -> PaymentFailed:
        return PaymentFailed(payment_id=payment.id, occurred_at=at, reason="guessed")  # type: ignore[arg-type]

    workflows.record(elsewhere.ports, payment, guess).unsafe_run()


def test_the_crash_harness_catches_a_second_actor_that_fails_a_payment_on_a_guess() -> None:
    guessing = Scenario(
        "process_vs_guessing_recovery",
        enumeration.SCENARIOS[1].act,
        setup=enumeration.SCENARIOS[1].setup,
        second_actor=_guessing_recovery,
    )
    report = enumeration.enumerate_crashes((guessing,))
    failures = report.as_dict()["failures"]
    assert any("inside gateway.charge" in name for name in failures), failures
    found = [v for vs in failures.values() for v in vs]
    assert any("charged, but our payment is FAILURE" in v for v in found)
    assert any("failure_is_definitive" in v for v in found)


# The two-process reproduction: process A's charge is slow on the wire; process B recovers
# meanwhile with no route to the gateway for its own charges. Each runs this script.
WORKER = textwrap.dedent(
    """
    import json, sys
    from aegispay import AegisPay, VirtualClock
    from aegispay.sim import FailureConfig, ScheduledFault
    role, store, gateway, payment_id = sys.argv[1:]
    if role == "slow":
        faults = FailureConfig(slow_rate=1.0, slow_delay_ms=SLOW_MS)
        with AegisPay.open(store, gateway, faults=faults) as pay:
            print(json.dumps({"state": pay.process_payment(payment_id).state.value}))
    else:
        faults = FailureConfig(schedule=[ScheduledFault(kind="network", calls=10)])
        with AegisPay.open(store, gateway, clock=VirtualClock(), faults=faults) as pay:
            print(json.dumps(pay.recover().as_dict()))
    """
)
SLOW_MS = 5000


def _spawn(role: str, urls: dict[str, str], payment_id: str, cwd: Path) -> subprocess.Popen[str]:
    script = WORKER.replace("SLOW_MS", str(SLOW_MS))
    command = [sys.executable, "-c", script, role, urls["store"], urls["gateway"], payment_id]
    return subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for_event(
    urls: dict[str, str], payment_id: str, event_type: str, writer: subprocess.Popen[str]
) -> None:
    """Poll the store until another process has recorded an event (synchronisation only)."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        assert writer.poll() is None, writer.communicate()
        with AegisPay.open(**urls) as reader:
            if event_type in [e.event.type for e in reader.events(payment_id)]:
                return
        time.sleep(0.05)
    raise AssertionError(f"{event_type} never recorded for {payment_id}")


@pytest.mark.slow
def test_two_real_processes_a_slow_charge_and_a_recovery_never_end_failed_but_charged(
    tmp_path: Path,
) -> None:
    urls = {"store": f"sqlite:///{tmp_path}/store.db", "gateway": f"sqlite:///{tmp_path}/gw.db"}
    with AegisPay.open(**urls) as pay:
        payment_id = create(pay, "order-race").id
    slow = _spawn("slow", urls, payment_id, tmp_path)
    _wait_for_event(urls, payment_id, "ProcessingStarted", slow)
    recovery = _spawn("recovery", urls, payment_id, tmp_path)
    recovered, recovery_errors = recovery.communicate(timeout=TIMEOUT)
    assert recovery.returncode == 0, recovery_errors
    assert slow.poll() is None, "the slow charge must still be on the wire when B gives up"
    slow_out, slow_errors = slow.communicate(timeout=TIMEOUT)
    assert slow.returncode == 0, slow_errors

    assert json.loads(recovered)["failed"] == 1  # B gave up, through a confirmed cancel
    assert json.loads(slow_out) == {"state": "FAILURE"}  # A's late write was fenced
    with AegisPay.open(**urls) as pay:
        assert pay.recover().found == 0
        assert pay.get_payment(payment_id).state is PaymentState.FAILURE
        assert [c.status for c in pay.charges()] == [ChargeStatus.CANCELLED]
        report = pay.check_invariants()
        assert report.violations == 0, report.details


@pytest.mark.slow
def test_four_processes_paying_the_same_orders_through_a_flaky_network_agree_with_the_gateway(
    tmp_path: Path,
) -> None:
    urls = {"store": f"sqlite:///{tmp_path}/store.db", "gateway": f"sqlite:///{tmp_path}/gw.db"}
    run = [sys.executable, "-m", "aegispay.cli", "run", "--store", urls["store"]]
    run += ["--gateway", urls["gateway"], "--payments", "40", "--fault", "network=0.6", "--json"]
    workers = [
        subprocess.Popen(
            run, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    for worker in workers:
        _, errors = worker.communicate(timeout=TIMEOUT)
        assert worker.returncode in (0, 1), errors  # 1: some payments left unresolved
    with AegisPay.open(**urls) as pay:
        pay.recover()
        report = pay.check_invariants()
        assert report.violations == 0, report.details
        states = {p.state for p in pay.list_payments()}
        assert states <= {PaymentState.SUCCESS, PaymentState.FAILURE}
        assert len(pay.list_payments()) == 40


class LedgerThatFailsEveryWrite(InMemoryLedger):
    """A provider whose charges fail in a way nobody classified (its own database is broken)."""

    def record(self, charge: ChargeRecord) -> ChargeRecord:
        raise OSError("the provider's database refused the write")


def test_a_charge_that_keeps_failing_in_an_unknown_way_ends_the_call_unknown_not_looping() -> None:
    first = AegisPay.in_memory(seed=1)
    first.storage.ledgers["primary"] = LedgerThatFailsEveryWrite()
    pay = first.restart()  # the next process finds the provider in this state
    payment = pay.process_payment(create(pay, "k").id)
    assert payment.state is PaymentState.UNKNOWN
    assert len(pay.events(payment.id)) == 4  # initiated, authenticated, started, unknown
    report = pay.recover()  # each run re-drives once and stops again: bounded work
    assert (report.found, report.unresolved) == (1, 1)
    assert len(pay.events(payment.id)) == 6  # + not found, + unknown
    assert not pay.charges()
