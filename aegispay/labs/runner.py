"""One run of a schedule against a world, judged by the invariants; and the search over schedules.

A `World` says how every process is built (the policy, the gateway, the event store and the
lock service, each replaceable from outside) and what the learner's part adds to the promises.
`run` plays one schedule: the client creates and pays one order on process A while the moves
strike; then the faults heal, a recovery runs to quiescence and the invariants are checked;
then the client retries, recovery runs again, and they are checked again. `search` runs the
schedules shortest first, then seeded chaos, and answers with the first that breaks a promise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import chain

from aegispay.domain.commands import payment_id_for
from aegispay.domain.errors import AegisPayError
from aegispay.domain.states import PaymentState
from aegispay.engine import GATEWAY_NAMES, Settings, Storage
from aegispay.infra.clock import VirtualClock
from aegispay.infra.gateway.simulated import SimulatedGateway
from aegispay.infra.locks.memory import InMemoryLockManager
from aegispay.labs.narration import (
    CLEAN_UP,
    PROCESS_B,
    RECOVERY,
    Narrated,
    NarratedLedger,
    Story,
)
from aegispay.labs.schedules import Crash, CutIn, Schedule, chaos, fault_config, network_faults
from aegispay.labs.schedules import schedules as all_schedules
from aegispay.labs.verdict import Step, Verdict
from aegispay.orchestration.policy import ENGINE_POLICY, Policy
from aegispay.orchestration.ports import Clock, EventStore, LockManager
from aegispay.resilience.retry import RetryPolicy
from aegispay.sim.crashpoints import Crossing, ProcessCrash
from aegispay.sim.faults import FailureConfig

KEY = "order-1"
REQUEST = {
    "idempotency_key": KEY,
    "amount": "42.00",
    "currency": "EUR",
    "customer_id": "cus_lab",
    "payment_method": "tok_visa",
}
PAYMENT_ID = payment_id_for(KEY)
# The promises, strongest first: the words a verdict names, by the invariant that checks them.
# (failure_is_definitive is the engine's rule for keeping the first two, not a promise of its
# own: a solution is judged by what the customer and the books can see.)
PROMISES: dict[str, str] = {
    "at_most_one_charge": "charged twice",
    "settled_matches_gateway": "records never agree with the gateway",
    "amounts_match_gateway": "charged another amount than recorded",
    "one_payment_per_key": "two payments for one key",
    "stream_continuity": "the payment's history is broken",
    "nothing_lost": "an acknowledged payment is lost",
    "projection_matches_events": "the payments table disagrees with the events",
}


@dataclass
class Run:
    """What one run saw: the story, the crossings A made, and the promise it broke (if any)."""

    story: Story
    schedule: Schedule = ()
    trace: list[Crossing] = field(default_factory=list)
    promise: str | None = None
    acknowledged: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    final: PaymentState | None = None


Check = Callable[[Narrated, Run], str | None]


def no_more(pay: Narrated, run: Run) -> str | None:
    """The engine's own promises only: nothing more to check."""
    return None


@dataclass(frozen=True)
class World:
    """How every process of a run is built, and what a lab checks beyond the invariants."""

    policy: Policy = ENGINE_POLICY
    gateway: type[SimulatedGateway] = SimulatedGateway
    events: Callable[[EventStore], EventStore] = lambda events: events
    locks: Callable[[Clock], LockManager] = InMemoryLockManager
    engine: type[Narrated] = Narrated
    check: Check = no_more
    lock_ttl: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)


class Blocked(BaseException):
    """A second actor that arrived found the lease held: it waits for process A to finish."""


class NoWait:
    """A lock service seen by an actor that tries once: a held lease means it must wait."""

    def __init__(self, inner: LockManager) -> None:
        self._inner = inner

    def acquire(self, resource: str, owner: str, ttl: float, wait: float = 0.0) -> bool:
        """Take the lease now, or stop this actor until process A is done with it."""
        if not self._inner.acquire(resource, owner, ttl, 0.0):
            raise Blocked(resource)
        return True

    def release(self, resource: str, owner: str) -> None:
        """Release through."""
        self._inner.release(resource, owner)

    def extend(self, resource: str, owner: str, ttl: float) -> None:
        """Extend through."""
        self._inner.extend(resource, owner, ttl)

    def holder(self, resource: str) -> str | None:
        """Ask through."""
        return self._inner.holder(resource)


def run(world: World, schedule: Schedule, seed: int = 0) -> Run:
    """Play one schedule and judge it; see the module docstring for the phases."""
    story = Story()
    result = Run(story, schedule)
    clock = VirtualClock()
    storage = Storage.in_memory(clock)
    storage.events = world.events(storage.events)
    storage.ledgers = {
        name: NarratedLedger(ledger, story) for name, ledger in storage.ledgers.items()
    }
    pay = world.engine.telling(story)(
        storage=storage,
        clock=clock,
        settings=Settings(
            seed=seed,
            retry=dict.fromkeys(GATEWAY_NAMES, world.retry),
            lock_ttl=world.lock_ttl,
        ),
        faults=fault_config(schedule),
        gateways=[world.gateway(name, ledger, clock) for name, ledger in storage.ledgers.items()],
        locks=world.locks(clock),
        policy=world.policy,
    )
    deferred: list[Callable[[], None]] = []
    crossing_moves = [move for move in schedule if isinstance(move, Crash | CutIn)]
    pay.crashpoints.reset()
    pay.crashpoints.recording = not crossing_moves
    for move in crossing_moves:
        _arm(world, pay, move, result, deferred)
    try:
        _client(pay, result)
    except ProcessCrash:
        story.death("process A", "")
        pay = pay.restart()
    result.trace = list(pay.crashpoints.trace) if not crossing_moves else []
    pay.crashpoints.disarm()
    for later in deferred:
        later()
    pay.set_faults(FailureConfig())
    cleaner = pay.sibling(faults=FailureConfig(), offset=CLEAN_UP)
    result.promise = _settle_and_judge(world, cleaner, result, "the faults heal; recovery runs")
    if result.promise is None:
        _client(pay, result, retry=True)
        result.promise = _settle_and_judge(world, cleaner, result, "recovery runs again")
    return result


def _client(pay: Narrated, result: Run, retry: bool = False) -> None:
    """The client: create the order's payment, then pay it; a retry sends the very same."""
    asks = "the client retries: create and pay order-1" if retry else "the client pays order-1"
    result.story.tell("client", f"{asks} (42.00 EUR)", "process A")
    try:
        payment = pay.create_payment(**REQUEST)
        result.acknowledged.append(payment.id)
        done = pay.process_payment(payment.id)
    except AegisPayError as error:
        result.story.tell("process A", f"process A answers the client: error ({error})", "client")
        return
    result.answers.append(done.state.value)
    result.story.tell("process A", f"process A answers the client: {done.state}", "client")


def _arm(
    world: World,
    pay: Narrated,
    move: Crash | CutIn,
    result: Run,
    deferred: list[Callable[[], None]],
) -> None:
    crossing = move.crossing
    if isinstance(move, Crash):

        def die() -> None:
            result.story.death("process A", _where(crossing))
            raise ProcessCrash(str(move))

        pay.crashpoints.arm(crossing.boundary, crossing.side, crossing.nth, die)
        return

    def cut_in() -> None:
        if move.arrival == "after A's pause":
            result.story.tell("process A", f"process A pauses {_where(crossing)}, past its lease")
            pay.clock.sleep(world.lock_ttl + 1)
        try:
            _second_actor(pay, move, result, NoWait(pay.locks))
        except Blocked:
            actor = "recovery" if move.actor == "recovery runs" else "process B"
            result.story.tell(actor, f"{actor} waits: process A holds the lease")
            deferred.append(lambda: _second_actor(pay, move, result, pay.locks))

    pay.crashpoints.arm(crossing.boundary, crossing.side, crossing.nth, cut_in)


def _second_actor(pay: Narrated, move: CutIn, result: Run, locks: object) -> None:
    offset = RECOVERY if move.actor == "recovery runs" else PROCESS_B
    other = pay.sibling(faults=network_faults(move.network), offset=offset, locks=locks)
    story = result.story
    actor = other.actor
    try:
        if move.actor == "recovery runs":
            story.tell(actor, "a recovery starts in another process")
            other.recover()
        elif move.actor == "process B pays":
            story.tell("client", "the client's retry reaches process B", actor)
            done = other.process_payment(PAYMENT_ID)
            story.tell(actor, f"process B answers: {done.state}", "client")
        else:
            story.tell("client", "a duplicate of the request reaches process B", actor)
            result.acknowledged.append(other.create_payment(**REQUEST).id)
    except AegisPayError as error:
        story.tell(actor, f"{actor} sees an error: {error}")


def _where(crossing: Crossing) -> str:
    port, _, operation = crossing.boundary.partition(".")
    what = {
        "events.append": "writing to the event store",
        "locks.acquire": "taking its lease",
        "gateway.charge": "the charge",
        "gateway.status": "asking the gateway",
    }.get(crossing.boundary, f"{port} {operation}")
    if crossing.side == "inside":
        return f"while {what} is on the wire"
    return f"just {crossing.side} {what}"


def _settle_and_judge(world: World, cleaner: Narrated, result: Run, heading: str) -> str | None:
    """Recover to quiescence in a healthy process, and name the first broken promise."""
    result.story.tell("recovery", heading)
    report = cleaner.recover(until_quiet=True)
    found = cleaner.check_invariants()
    for invariant, words in PROMISES.items():
        if found.counts[invariant]:
            return _refined(cleaner, invariant, words)
    if report.unresolved_ids:
        return "left unsettled after recovery"
    for payment_id in result.acknowledged:
        if not cleaner.event_store.read(payment_id):
            return PROMISES["nothing_lost"]
    row = cleaner.projections.get(PAYMENT_ID)
    result.final = row.state if row is not None else None
    return world.check(cleaner, result)


def _refined(pay: Narrated, invariant: str, words: str) -> str:
    """The settlement promise in the words of what went wrong with this payment."""
    if invariant != "settled_matches_gateway":
        return words
    charged = any(c.charged for c in pay.charges() if c.merchant_reference == PAYMENT_ID)
    row = pay.projections.get(PAYMENT_ID)
    state = row.state if row is not None else None
    if state is PaymentState.FAILURE and charged:
        return "charged but recorded as failed"
    if state is PaymentState.SUCCESS and not charged:
        return "recorded as paid but never charged"
    if state is not None and not state.is_terminal and row is not None and row.gateway:
        return "left unsettled after recovery"
    if charged and (row is None or row.gateway is None):
        return "charged, but our records never say the charge was sent"
    return words


BREAKING = {
    "charged twice": ("the gateway charges",),
    "charged but recorded as failed": ("the gateway charges", "→ FAILURE"),
    "recorded as paid but never charged": ("→ SUCCESS",),
    "charged, but our records never say the charge was sent": ("the gateway charges",),
    "the payment's history is broken": (" writes ",),
}


def marked(steps: list[Step], promise: str) -> tuple[Step, ...]:
    """The steps with the one that broke the promise marked: the last that could have."""
    clues = BREAKING.get(promise, ())
    index = max(
        (i for i, step in enumerate(steps) if any(clue in step.sentence for clue in clues)),
        default=len(steps) - 1,
    )
    return tuple(
        step._replace(breaking=True) if i == index else step for i, step in enumerate(steps)
    )


def search(
    world: World,
    subject: str,
    *,
    seed: int = 0,
    depth: int = 1,
    chaos_runs: int = 40,
    extra: Iterable[Schedule] = (),
) -> Verdict:
    """Run schedules shortest first, then seeded chaos; the first that breaks a promise wins."""
    seen: dict[Schedule, Run] = {}

    def played(schedule: Schedule) -> Run:
        if schedule not in seen:
            seen[schedule] = run(world, schedule, seed)
        return seen[schedule]

    def crossings(faults: Schedule) -> list[Crossing]:
        return played(faults).trace

    tried = refused = repeated = 0
    every = chain(all_schedules(crossings, depth), extra, chaos(crossings, seed, chaos_runs))
    for schedule in every:
        tried += 1
        outcome = played(schedule)
        sentences = [step.sentence for step in outcome.story.steps]
        refused += sum("write is refused" in sentence for sentence in sentences)
        repeated += sum("answers with the record it holds" in sentence for sentence in sentences)
        if outcome.promise is not None:
            return Verdict(
                holds=False,
                tried=tried,
                promise=outcome.promise,
                trace=marked(outcome.story.steps, outcome.promise),
                subject=subject,
                schedule=tuple(str(move) for move in schedule),
            )
    note = (
        f"over these schedules the event store refused {refused} stale writes and the "
        f"gateway answered {repeated} repeated charges with the record it held"
    )
    return Verdict(holds=True, tried=tried, subject=subject, note=note)
