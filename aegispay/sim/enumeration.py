"""Crash enumeration: for each scenario, crash at every boundary crossing, restart, recover, check.

Each scenario runs once to record the boundaries its client actions cross. Then, for every
crossing (boundary, side, nth), a fresh engine replays the scenario with a crash armed there,
restarts, recovers to quiescence, lets the client retry what it never heard back about,
recovers again, and checks every invariant. Everything is seeded: a case replays exactly.

Second-actor scenarios cut in instead of crashing: at every crossing of the first actor's
processing (inside its gateway call too, while its charge is on the wire) another process,
which cannot reach the gateway for its own charges, runs a recovery or the client's retry.
The first actor then carries on, and its charge may land after the other one gave up.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field

from aegispay.domain.commands import payment_id_for
from aegispay.domain.errors import AegisPayError, PaymentNotFound
from aegispay.sim.crashpoints import Crossing, ProcessCrash
from aegispay.sim.faults import FailureConfig, ScheduledFault
from aegispay.sim.harness import AegisPay
from aegispay.sim.invariants import event_log_digest

KEY = "order-1"
REQUEST = {
    "idempotency_key": KEY,
    "amount": "42.00",
    "currency": "EUR",
    "customer_id": "cus_crash",
    "payment_method": "tok_visa",
}
Acknowledged = list[str]


@dataclass(frozen=True)
class Scenario:
    """A client story: `setup` is not crashed into, `act` is, at every crossing it makes.

    With a `second_actor`, each crossing runs it in another process instead of crashing.
    """

    name: str
    act: Callable[[AegisPay, Acknowledged], None]
    setup: Callable[[AegisPay], AegisPay] = lambda pay: pay
    faults: FailureConfig = field(default_factory=FailureConfig)
    second_actor: Callable[[AegisPay], None] | None = None


def _create(pay: AegisPay, acknowledged: Acknowledged) -> None:
    acknowledged.append(pay.create_payment(**REQUEST).id)


def _process(pay: AegisPay, acknowledged: Acknowledged) -> None:
    acknowledged.append(pay.process_payment(payment_id_for(KEY)).id)


def _created(pay: AegisPay) -> AegisPay:
    pay.create_payment(**REQUEST)
    return pay


def _duplicate_create(pay: AegisPay, acknowledged: Acknowledged) -> None:
    """Another process sends the same request while this one is about to append."""
    sibling = pay.sibling()
    pay.crashpoints.arm("events.append", "before", 1, lambda: _create(sibling, acknowledged))
    _create(pay, acknowledged)


def _in_flight(pay: AegisPay) -> AegisPay:
    """Two payments left in flight by a crash: one charged, one never sent."""
    for key in ("charged", "unsent"):
        payment = pay.create_payment(**{**REQUEST, "idempotency_key": key})
        pay.crash_at("gateway.charge", "after" if key == "charged" else "before")
        try:
            pay.process_payment(payment.id)
        except ProcessCrash:
            pay = pay.restart()
    return pay


def _recover(pay: AegisPay, acknowledged: Acknowledged) -> None:
    pay.recover()


def _schedule(kind: str) -> FailureConfig:
    return FailureConfig(schedule=(ScheduledFault.model_validate({"kind": kind}),))


# The second actor's charges never connect: it can only give up, and must do so safely.
SECOND_ACTOR_FAULTS = FailureConfig(schedule=(ScheduledFault(kind="network", calls=20),))


def _other_process(pay: AegisPay) -> AegisPay:
    """Another process over the same storage: its own memory, locks and (failing) network."""
    return pay.sibling(faults=SECOND_ACTOR_FAULTS)


def _recovery_elsewhere(pay: AegisPay) -> None:
    _other_process(pay).recover()


def _client_retry_elsewhere(pay: AegisPay) -> None:
    # The retrying client may see an error; the first actor carries on regardless.
    with suppress(AegisPayError):
        _other_process(pay).process_payment(payment_id_for(KEY))


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("create", _create),
    Scenario("process_happy_path", _process, setup=_created),
    Scenario("process_with_retry", _process, setup=_created, faults=_schedule("network")),
    Scenario("process_with_partial_failure", _process, setup=_created, faults=_schedule("partial")),
    Scenario("concurrent_duplicate_create", _duplicate_create),
    Scenario("recovery", _recover, setup=_in_flight),
    Scenario(
        "process_vs_recovery_elsewhere", _process, setup=_created, second_actor=_recovery_elsewhere
    ),
    Scenario(
        "process_vs_client_retry_elsewhere",
        _process,
        setup=_created,
        second_actor=_client_retry_elsewhere,
    ),
)


@dataclass
class CaseResult:
    """One crash case and the invariants it broke (none, we hope)."""

    scenario: str
    crossing: Crossing | None
    crashed: bool
    violations: list[str]
    interruption: str = "crash"

    @property
    def name(self) -> str:
        """A readable case name: scenario and crash (or cut-in) point."""
        if self.crossing is None:
            return self.scenario
        return f"{self.scenario}: {self.interruption} {self.crossing}"


@dataclass
class EnumerationReport:
    """Every case of every scenario, and what failed."""

    scenarios: dict[str, int] = field(default_factory=dict)
    boundaries: dict[str, list[str]] = field(default_factory=dict)
    cases: list[CaseResult] = field(default_factory=list)

    @property
    def failures(self) -> list[CaseResult]:
        """The cases that broke an invariant or did not crash where armed."""
        return [case for case in self.cases if case.violations]

    def as_dict(self) -> dict[str, object]:
        """The JSON the `crashpoints` command prints."""
        return {
            "scenarios": self.scenarios,
            "boundaries": self.boundaries,
            "cases": len(self.cases),
            "violations": sum(len(case.violations) for case in self.cases),
            "failures": {case.name: case.violations for case in self.failures},
        }


def enumerate_crashes(
    scenarios: tuple[Scenario, ...] = SCENARIOS,
    seed: int = 0,
    engine: type[AegisPay] = AegisPay,
) -> EnumerationReport:
    """Run every scenario once to list its crossings, then crash at each one in turn.

    `engine` is the class each case is built from: a test hands in a broken one to show the
    enumeration notices.
    """
    report = EnumerationReport()
    for scenario in scenarios:
        baseline, trace = run_case(scenario, None, seed, engine)
        report.cases.append(baseline)
        report.scenarios[scenario.name] = len(trace)
        report.boundaries[scenario.name] = sorted({c.boundary for c in trace})
        for crossing in trace:
            report.cases.append(run_case(scenario, crossing, seed, engine)[0])
    return report


def run_case(
    scenario: Scenario,
    crossing: Crossing | None,
    seed: int,
    engine: type[AegisPay] = AegisPay,
) -> tuple[CaseResult, list[Crossing]]:
    """Run one case; return its result and the crossings the client's actions made."""
    pay = scenario.setup(engine.in_memory(seed=seed, faults=scenario.faults))
    pay.crashpoints.reset()  # crossings are numbered from the client's first action
    pay.crashpoints.recording = True
    cut_in: list[Crossing] = []
    if crossing is not None and scenario.second_actor is not None:
        second_actor = scenario.second_actor

        def interrupt() -> None:
            cut_in.append(crossing)
            second_actor(pay)

        pay.crashpoints.arm(crossing.boundary, crossing.side, crossing.nth, interrupt)
    elif crossing is not None:
        pay.crash_at(crossing.boundary, crossing.side, crossing.nth)
    acknowledged: Acknowledged = []
    crashed = False
    try:
        scenario.act(pay, acknowledged)
    except ProcessCrash:
        crashed, pay = True, pay.restart()
    trace = [] if crashed else list(pay.crashpoints.trace)
    pay.crashpoints.disarm()
    interruption = "crash" if scenario.second_actor is None else "second actor at"
    happened = crashed or bool(cut_in)
    violations = [] if crossing is None or happened else [f"never reached {crossing}"]
    violations += _recover_and_check(pay, scenario, acknowledged)
    return CaseResult(scenario.name, crossing, crashed, violations, interruption), trace


def _recover_and_check(pay: AegisPay, scenario: Scenario, acknowledged: Acknowledged) -> list[str]:
    """Heal and recover: every invariant must hold. Then the client retries: again."""
    pay.set_faults(FailureConfig())
    violations = _settled_violations(pay, "after recovery")
    scenario.act(pay, [])
    violations += _settled_violations(pay, "after the client's retry")
    for payment_id in acknowledged:
        try:
            pay.get_payment(payment_id)
        except PaymentNotFound:
            violations.append(f"nothing_lost: acknowledged payment {payment_id} is gone")
    return violations


def _settled_violations(pay: AegisPay, when: str) -> list[str]:
    report = pay.recover(until_quiet=True)
    found = pay.check_invariants().details
    found += [f"unresolved: {payment_id}" for payment_id in report.unresolved_ids]
    return [f"{when}: {violation}" for violation in found]


def replays_identically(scenario: Scenario, seed: int = 0) -> bool:
    """Invariant 7: the same scenario and seed give the same event log."""
    digests = set()
    for _ in range(2):
        pay = scenario.setup(AegisPay.in_memory(seed=seed, faults=scenario.faults))
        scenario.act(pay, [])
        digests.add(event_log_digest(pay.event_store))
    return len(digests) == 1
