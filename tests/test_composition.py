"""One composition root: every port can be handed in, and the harness wraps only when asked."""

from __future__ import annotations

import inspect
from pathlib import Path

from aegispay import AegisPay, Engine, PaymentState
from aegispay.adapters import InMemoryLedger, InMemoryLockManager, SimulatedGateway, VirtualClock
from aegispay.domain.charges import ChargeRecord, ChargeRequest, ChargeStatus
from aegispay.sim import FailureConfig, FaultyGateway, ScheduledFault

SIM_DIR = str(Path(__file__).resolve().parent.parent / "aegispay" / "sim")
REQUEST = {
    "amount": "9.99",
    "currency": "EUR",
    "customer_id": "cus_1",
    "payment_method": "tok_visa",
}


class HomeGateway:
    """A provider of the user's own: implements the gateway port, shares no code with ours."""

    def __init__(self, name: str = "primary") -> None:
        self.name = name
        self.ledger: dict[str, ChargeRecord] = {}
        self.stacks: list[list[str]] = []

    def charge(self, request: ChargeRequest) -> ChargeRecord:
        self.stacks.append([frame.filename for frame in inspect.stack()])
        return self.ledger.setdefault(
            request.merchant_reference,
            ChargeRecord(
                transaction_id=f"home_{request.merchant_reference}",
                merchant_reference=request.merchant_reference,
                idempotency_key=request.idempotency_key,
                amount=request.amount,
                payment_method=request.payment_method,
                status=ChargeStatus.SUCCEEDED,
                created_at=VirtualClock().now(),
            ),
        )

    def status(self, merchant_reference: str) -> ChargeRecord | None:
        return self.ledger.get(merchant_reference)

    def cancel(self, merchant_reference: str) -> ChargeRecord:
        raise NotImplementedError("this provider cannot cancel")

    def charges(self) -> list[ChargeRecord]:
        return list(self.ledger.values())


class CountingLocks(InMemoryLockManager):
    """The in-memory lock manager, counting what it was asked for."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__(clock)
        self.acquired: list[str] = []

    def acquire(self, resource: str, owner: str, ttl: float, wait: float = 0.0) -> bool:
        self.acquired.append(resource)
        return super().acquire(resource, owner, ttl, wait)


def pay_with(engine: Engine, key: str = "k") -> PaymentState:
    return engine.process_payment(engine.create_payment(idempotency_key=key, **REQUEST).id).state


def test_an_engine_without_faults_or_crash_points_has_no_simulator_frame_on_its_hot_path() -> None:
    home = HomeGateway()
    pay = AegisPay.in_memory(gateways=[home])
    assert pay_with(pay) is PaymentState.SUCCESS
    assert not pay.harnessed
    assert pay.ports.events is pay.event_store
    assert all(SIM_DIR not in filename for filename in home.stacks[0])


def test_a_users_own_gateway_and_lock_manager_are_used_as_given() -> None:
    clock = VirtualClock()
    locks, home = CountingLocks(clock), HomeGateway()
    engine = Engine.in_memory(clock=clock, locks=locks, gateways=[home])
    assert pay_with(engine) is PaymentState.SUCCESS
    assert list(home.ledger) == [engine.list_payments()[0].id]
    assert any(resource.startswith("payment:") for resource in locks.acquired)
    assert engine.charges() == list(home.ledger.values())


def test_a_users_own_gateway_can_be_wrapped_with_faults_and_its_charge_is_retried() -> None:
    home = HomeGateway()
    faults = FailureConfig(schedule=(ScheduledFault(kind="network", calls=2),))
    pay = AegisPay.in_memory(faults=faults, gateways=[home])
    assert pay_with(pay) is PaymentState.SUCCESS
    assert isinstance(pay.gateways["primary"], FaultyGateway)
    assert pay.gateways["primary"].calls == 3  # two refused connections, then the charge
    assert len(home.stacks) == 1
    assert any(SIM_DIR in filename for filename in home.stacks[0])  # the faults stand between
    assert pay.metrics.get("faults.network") == 2


def test_asking_for_crash_points_wraps_the_ports_from_then_on() -> None:
    pay = AegisPay.in_memory()
    assert pay.ports.events is pay.event_store
    pay.crashpoints.recording = True
    assert pay.harnessed
    assert pay.ports.events is not pay.event_store
    pay_with(pay)
    assert "events.append" in {crossing.boundary for crossing in pay.crashpoints.trace}


def test_stores_of_your_own_are_used_and_handed_to_the_next_process() -> None:
    ledger = InMemoryLedger()
    clock = VirtualClock()
    engine = Engine(clock=clock, gateways=[SimulatedGateway("primary", ledger, clock)])
    pay_with(engine)
    restarted = engine.restart()
    assert restarted.event_store is engine.event_store
    assert restarted.list_payments()[0].state is PaymentState.SUCCESS
    assert restarted.gateway.ledger is ledger  # type: ignore[attr-defined]
