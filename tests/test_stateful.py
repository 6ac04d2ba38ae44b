"""A stateful model of the engine: create, repeat, process, crash, restart and recover in any order.

Hypothesis drives random sequences of these steps against one in-memory engine (seeded from a
drawn integer, on a virtual clock) and checks the invariants of docs/architecture.md after every
step; a failing run shrinks to a minimal sequence of steps.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from aegispay import AegisPay, IdempotencyKeyConflict, Payment, PaymentState
from aegispay.domain.payment import replay
from aegispay.sim import FailureConfig, ProcessCrash
from aegispay.sim.crashpoints import Side, sides_of
from aegispay.sim.invariants import check_invariants
from tests.factories import ForgetfulAegisPay

# (amount as sent, currency, amount in minor units): one of each currency exponent.
AMOUNTS = (("19.99", "USD", 1999), ("250.00", "EUR", 25000), ("500", "JPY", 500))
CUSTOMERS = ("cus_1", "cus_2")
# A card that charges, one the gateway declines, one that fails authentication (never sent).
METHODS = ("tok_visa", "tok_decline", "tok_authentication_failed")
# Invariants that hold after every step, even with a crash not yet recovered from.
AT_EVERY_STEP = ("at_most_one_charge", "one_payment_per_key", "stream_continuity")


@dataclass(frozen=True)
class Request:
    """The parameters of one create request, and the minor units the payment must record."""

    amount: str
    currency: str
    minor: int
    customer_id: str
    payment_method: str

    def fields(self, key: str) -> dict[str, str]:
        """The keyword arguments of `create_payment` for this request under a key."""
        return {
            "idempotency_key": key,
            "amount": self.amount,
            "currency": self.currency,
            "customer_id": self.customer_id,
            "payment_method": self.payment_method,
        }

    def matches(self, payment: Payment, key: str) -> bool:
        """True when the payment records exactly this request under this key."""
        return (
            payment.idempotency_key,
            payment.amount.minor,
            payment.currency,
            payment.customer_id,
            payment.payment_method,
        ) == (key, self.minor, self.currency, self.customer_id, self.payment_method)


def request(amount: tuple[str, str, int], customer_id: str, payment_method: str) -> Request:
    """A request for one of AMOUNTS."""
    sent, currency, minor = amount
    return Request(sent, currency, minor, customer_id, payment_method)


requests = st.builds(
    request,
    st.sampled_from(AMOUNTS),
    st.sampled_from(CUSTOMERS),
    st.sampled_from(METHODS),
)
# The boundaries each action crosses (the others would never fire). A process call appends
# several events, so the third crossing reaches the write after the gateway answered.
CREATE_BOUNDARIES = (
    "events.read",
    "events.append",
    "projection.save",
    "locks.acquire",
    "locks.release",
)
PROCESS_BOUNDARIES = (*CREATE_BOUNDARIES, "gateway.charge", "gateway.status")
RECOVERY_BOUNDARIES = (
    *PROCESS_BOUNDARIES,
    "events.last_position",
    "events.streams_since",
    "projection.get",
    "projection.ids_in_states",
    "projection.checkpoint",
    "projection.set_checkpoint",
)
Crash = tuple[str, Side, int]


def crashes(boundaries: tuple[str, ...]) -> st.SearchStrategy[Crash]:
    """A crash point: a boundary the action crosses, a side, and which crossing (1 to 3)."""
    return st.sampled_from(boundaries).flatmap(
        lambda boundary: st.tuples(
            st.just(boundary), st.sampled_from(sides_of(boundary)), st.integers(1, 3)
        )
    )


# The crash points of a first process call that fall in the charge window: ProcessingStarted
# is durable, the gateway's answer is not. Where money is lost or doubled, so drawn more often.
CHARGE_WINDOW: tuple[Crash, ...] = (
    ("events.append", "after", 2),
    ("projection.save", "before", 2),
    ("projection.save", "after", 2),
    ("gateway.charge", "before", 1),
    ("gateway.charge", "after", 1),
    ("events.append", "before", 3),
)
rate = st.sampled_from((0.0, 0.1, 0.2))
# Five exclusive kinds at most 0.2 each: their rates never add up to more than 1.
fault_configs = st.builds(
    FailureConfig,
    partial_rate=rate,
    network_rate=rate,
    timeout_after_rate=rate,
    timeout_before_rate=rate,
    decline_rate=rate,
    slow_rate=rate,
    projection_rate=rate,
)


class PaymentEngineMachine(RuleBasedStateMachine):
    """One engine over one storage, driven through creates, crashes, restarts and recoveries."""

    keys = Bundle("keys")
    # The engine under test; a subclass hands in a broken one to show the machine notices.
    engine: type[AegisPay] = AegisPay

    def __init__(self) -> None:
        super().__init__()
        self.pay: AegisPay
        # What callers were told: key -> (payment id returned, the request that created it).
        self.acknowledged: dict[str, tuple[str, Request]] = {}
        # Creates that crashed: the payment may or may not have been written.
        self.unanswered: dict[str, Request] = {}
        self.created = 0

    @initialize(seed=st.integers(0, 2**32 - 1))
    def start_engine(self, seed: int) -> None:
        self.pay = self.engine.in_memory(seed=seed)

    # --- steps -------------------------------------------------------------------------------

    @rule(target=keys, request=requests)
    def create(self, request: Request) -> str:
        key = self._new_key()
        self._acknowledge(key, request, self._create(key, request))
        return key

    @rule(key=keys)
    def duplicate_create_returns_the_same_payment(self, key: str) -> None:
        payment_id, request = self.acknowledged[key]
        before = len(self.pay.events(payment_id))
        again = self._create(key, request)
        assert again.id == payment_id
        assert again == self.pay.get_payment(payment_id)
        assert len(self.pay.events(payment_id)) == before

    @rule(key=keys, data=st.data())
    def conflicting_create_is_refused_and_writes_nothing(
        self, key: str, data: st.DataObject
    ) -> None:
        payment_id, request = self.acknowledged[key]
        amount, currency, _ = data.draw(
            st.sampled_from([a for a in AMOUNTS if a[0] != request.amount]), label="other amount"
        )
        before = self.pay.event_store.read(payment_id)
        with pytest.raises(IdempotencyKeyConflict):
            self.pay.create_payment(
                **{**request.fields(key), "amount": amount, "currency": currency}
            )
        assert self.pay.event_store.read(payment_id) == before

    @precondition(lambda self: self.unanswered)
    @rule(target=keys, data=st.data())
    def retry_a_crashed_create(self, data: st.DataObject) -> str:
        key = data.draw(st.sampled_from(sorted(self.unanswered)), label="crashed key")
        request = self.unanswered.pop(key)
        self._acknowledge(key, request, self._create(key, request))
        return key

    @rule(key=keys)
    def process(self, key: str) -> None:
        payment_id, _ = self.acknowledged[key]
        processed = self.pay.process_payment(payment_id)
        assert processed == self.pay.get_payment(payment_id)

    @rule(target=keys, request=requests, crash=crashes(CREATE_BOUNDARIES))
    def crash_during_create(self, request: Request, crash: Crash) -> object:
        key = self._new_key()
        created: list[Payment] = []
        if self._crash_during(crash, lambda: created.append(self._create(key, request))):
            self.unanswered[key] = request
            return multiple()
        self._acknowledge(key, request, created[0])
        return key

    @rule(key=keys, crash=st.sampled_from(CHARGE_WINDOW) | crashes(PROCESS_BOUNDARIES))
    def crash_during_process(self, key: str, crash: Crash) -> None:
        payment_id, _ = self.acknowledged[key]
        self._crash_during(crash, lambda: self.pay.process_payment(payment_id))

    @rule(crash=crashes(RECOVERY_BOUNDARIES))
    def crash_during_recovery(self, crash: Crash) -> None:
        self._crash_during(crash, self.pay.recover)

    @rule()
    def restart(self) -> None:
        self.pay = self.pay.restart()

    @rule(faults=fault_configs)
    def faults_on(self, faults: FailureConfig) -> None:
        self.pay.set_faults(faults)

    @rule()
    def faults_off(self) -> None:
        self.pay.set_faults(FailureConfig())

    @rule()
    def recover_under_current_faults(self) -> None:
        report = self.pay.recover()
        assert report.streams_halted == 0, report.halted
        assert report.unresolved == len(report.unresolved_ids)

    @rule()
    def heal_and_settle_everything(self) -> None:
        self.pay.set_faults(FailureConfig())
        report = self.pay.recover(until_quiet=True)
        assert report.unresolved == 0, report.unresolved_ids
        assert report.streams_halted == 0, report.halted
        full = check_invariants(self.pay.event_store, self.pay.projections, self.pay.charges())
        assert full.violations == 0, full.details

    # --- invariants, checked after every step ------------------------------------------------

    @invariant()
    def stored_state_keeps_the_invariants_that_hold_at_every_step(self) -> None:
        report = check_invariants(self.pay.event_store, self.pay.projections, self.pay.charges())
        assert all(report.counts[name] == 0 for name in AT_EVERY_STEP), report.details

    @invariant()
    def every_acknowledged_payment_is_stored_with_its_parameters(self) -> None:
        for key, (payment_id, request) in self.acknowledged.items():
            assert request.matches(self.pay.get_payment(payment_id), key), key

    @invariant()
    def success_and_failure_always_agree_with_the_gateway(self) -> None:
        """SUCCESS has its charge at its gateway, FAILURE none anywhere: even before recovery."""
        charged = {
            (name, charge.merchant_reference): charge
            for name, gateway in self.pay.gateways.items()
            for charge in gateway.charges()
            if charge.charged
        }
        charged_ids = {payment_id for _, payment_id in charged}
        for payment in self._stored_payments():
            if payment.state is PaymentState.SUCCESS:
                charge = charged.get((str(payment.gateway), payment.id))
                assert charge is not None, f"{payment.id} SUCCESS without a charge"
                assert charge.transaction_id == payment.transaction_id
            if payment.state is PaymentState.FAILURE:
                assert payment.id not in charged_ids, f"{payment.id} FAILURE but charged"

    @invariant()
    def a_projection_row_is_never_ahead_of_its_events(self) -> None:
        """A row is the replay of a prefix of its events: written after them, maybe not yet."""
        for row in self.pay.projections.list():
            events = [r.event for r in self.pay.event_store.read(row.id)]
            assert row.version <= len(events), row.id
            assert row == replay(events[: row.version]), row.id

    def teardown(self) -> None:
        """Every run ends settled: heal the faults, recover, and every invariant holds in full."""
        # Teardown also runs while a failed step's error propagates: let that error be reported.
        if sys.exc_info()[1] is None:
            self.heal_and_settle_everything()

    # --- helpers -----------------------------------------------------------------------------

    def _new_key(self) -> str:
        self.created += 1
        return f"order-{self.created}"

    def _create(self, key: str, request: Request) -> Payment:
        return self.pay.create_payment(**request.fields(key))

    def _acknowledge(self, key: str, request: Request, payment: Payment) -> None:
        assert request.matches(payment, key)
        self.acknowledged[key] = (payment.id, request)

    def _crash_during(self, crash: Crash, action: Callable[[], object]) -> bool:
        """Run the action with a one-shot crash armed; restart if it fired. True if it did."""
        self.pay.crash_at(*crash)
        try:
            action()
        except ProcessCrash:
            self.pay = self.pay.restart()
            return True
        self.pay.crashpoints.disarm()
        return False

    def _stored_payments(self) -> list[Payment]:
        stored = (
            replay(r.event for r in self.pay.event_store.read(stream_id))
            for stream_id in self.pay.event_store.stream_ids()
        )
        return [payment for payment in stored if payment is not None]


PaymentEngineMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=30, deadline=None
)
TestPaymentEngine = PaymentEngineMachine.TestCase


class ForgetfulEngineMachine(PaymentEngineMachine):
    engine = ForgetfulAegisPay


def test_the_machine_catches_a_recovery_that_settles_nothing() -> None:
    """With recovery planning no work, a payment left in flight breaks an invariant: we see it."""
    with pytest.raises(AssertionError, match="settled_matches_gateway"):
        run_state_machine_as_test(
            ForgetfulEngineMachine,
            settings=settings(
                max_examples=300,
                stateful_step_count=30,
                deadline=None,
                derandomize=True,
                database=None,
                phases=[Phase.generate],
                report_multiple_bugs=False,
            ),
        )
