"""Lab `create_once`: create a payment once per idempotency key, whoever asks and however often.

Clients retry: the same request arrives twice, sometimes at the same moment in two processes.
And a buggy client reuses a key for another amount. Every repeat of a request must get the
one payment back; a request with the same key and other parameters must be refused, and must
change nothing.

You write `create(log, request) -> Payment`. `request` is the engine's `CreatePayment`
(`.idempotency_key`, `.payment_id` (derived from the key), `.amount` (a Money, with its
`.currency`), `.customer_id`, `.payment_method`). `log` is the event store of the process the
request reached:

    log.load(payment_id) -> Payment | None          the payment as its events tell it
    log.initiated(request) -> PaymentInitiated     the event that records a new payment
    log.append(event, expected_version=None) -> Payment
        append and return the payment; with `expected_version`, the store refuses with
        ConcurrencyError if the stream is no longer at that version (0: it does not exist);
        without, it appends wherever the stream has got to

Refuse a request by raising (`IdempotencyKeyConflict` is the engine's way). For example, a
first try that checks, then writes:

    def create(log, request):
        existing = log.load(request.payment_id)
        if existing is not None:
            return existing
        return log.append(log.initiated(request))

The harness sends the request on process A and cuts in at every crossing of its reads and
writes with process B sending the same request, or the same key with another amount or another
currency; it crashes A at every crossing too, and the client then retries. The promises: one
payment per key, its history whole; every repeat of the request gets that payment back; a
request with the same key and other parameters is refused and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from aegispay.domain.commands import CreatePayment
from aegispay.domain.errors import InvalidTransition
from aegispay.domain.events import PaymentEvent, PaymentInitiated
from aegispay.domain.payment import Payment, replay
from aegispay.infra.clock import VirtualClock
from aegispay.labs.narration import PROCESS_B, Narrated, Story
from aegispay.labs.runner import PROMISES, REQUEST, marked
from aegispay.labs.verdict import Verdict
from aegispay.orchestration import workflows
from aegispay.sim.crashpoints import Crossing, ProcessCrash
from aegispay.sim.faults import FailureConfig

Create = Callable[["Log", CreatePayment], object]
SAME = CreatePayment.parse(**REQUEST)
OTHERS = {
    "the same key with another amount": CreatePayment.parse(**{**REQUEST, "amount": "43.00"}),
    "the same key in another currency": CreatePayment.parse(**{**REQUEST, "currency": "USD"}),
}
CUT_INS = ("the same request", *OTHERS)


class Log:
    """What the learner's `create` may do with one process's event store."""

    def __init__(self, pay: Narrated) -> None:
        self._pay = pay

    def load(self, payment_id: str) -> Payment | None:
        """The payment as its events tell it, or None."""
        return workflows.load(self._pay.ports, payment_id).unsafe_run()

    def initiated(self, request: CreatePayment) -> PaymentInitiated:
        """The event that records a new payment for this request, now."""
        from aegispay.domain import decisions  # noqa: PLC0415 - the learner's one decision

        return decisions.initiate(request, self._pay.clock.now())

    def append(self, event: PaymentEvent, expected_version: int | None = None) -> Payment:
        """Append at `expected_version` (refused if stale), or wherever the stream has got to."""
        ports = self._pay.ports
        stored = ports.events.read_unverified(event.payment_id)
        at = len(stored) if expected_version is None else expected_version
        current = replay(r.event for r in stored) if at == len(stored) else None
        try:
            after = replay([event], start=current)
        except InvalidTransition:  # written anyway, as a store without a check would
            after = replay([event])
        assert after is not None, "one event folds to a payment"
        ports.events.append(event.payment_id, [event], at, workflows.project(ports, after))
        return after


@dataclass
class Run:
    """One run: its story, the crossings A made, and the promise broken, if any."""

    story: Story
    trace: list[Crossing] = field(default_factory=list)
    promise: str | None = None


Answer = tuple[str, CreatePayment, object]


def _run(create: Create, crash: Crossing | None, cut_in: tuple[Crossing, str] | None) -> Run:
    """The request on process A, with a crash or a second request cutting in; then judged."""
    story = Story(reads=True)
    pay = Narrated.telling(story)(clock=VirtualClock(), faults=FailureConfig())
    answers: list[Answer] = []

    def ask(process: Narrated, label: str, request: CreatePayment) -> None:
        story.tell("client", f"the client sends {label}", process.actor)
        try:
            answer = create(Log(process), request)
        except Exception as error:  # a refusal, or the learner's code failing: both are answers
            answer = error
        said = type(answer).__name__ if isinstance(answer, Exception) else "a payment"
        story.tell(process.actor, f"{process.actor} answers: {said}", "client")
        answers.append((label, request, answer))

    pay.crashpoints.reset()
    pay.crashpoints.recording = crash is None and cut_in is None
    if cut_in is not None:
        crossing, label = cut_in
        other = pay.sibling(offset=PROCESS_B)
        request = OTHERS.get(label, SAME)
        pay.crashpoints.arm(
            crossing.boundary, crossing.side, crossing.nth, lambda: ask(other, label, request)
        )
    if crash is not None:
        pay.crash_at(crash.boundary, crash.side, crash.nth)
    try:
        ask(pay, "the request", SAME)
    except ProcessCrash:
        story.death("process A", "")
        pay = pay.restart()
        ask(pay, "the request again", SAME)
    trace = list(pay.crashpoints.trace)
    pay.crashpoints.disarm()
    if crash is None and cut_in is None:
        label = "the same key with another amount"
        ask(pay, label, OTHERS[label])
    story.reads = False  # recovery's own reads, before the judging, are not the learner's
    return Run(story, trace, _judge(pay, answers))


def _judge(pay: Narrated, answers: list[Answer]) -> str | None:
    """The first promise broken after recovery: an invariant, then what each client was told."""
    pay.recover(until_quiet=True)  # repairs a projection row a crash left behind
    found = pay.check_invariants()
    for invariant, words in PROMISES.items():
        if found.counts[invariant]:
            return words
    stored = pay.projections.get(SAME.payment_id)
    for label, request, answer in answers:
        if stored is None:
            return PROMISES["nothing_lost"] if isinstance(answer, Payment) else None
        repeat = (stored.amount, stored.customer_id, stored.payment_method) == (
            request.amount, request.customer_id, request.payment_method,
        )  # fmt: skip
        if repeat and not (isinstance(answer, Payment) and answer.id == stored.id):
            return f"every repeat of the stored request gets its payment back ({label} did not)"
        if not repeat and isinstance(answer, Payment):
            return f"the same key with other parameters is refused ({label} was accepted)"
    return None


def check(create: Create, seed: int = 0, depth: int = 2) -> Verdict:
    """Attack `create`: a crash at every crossing, and each other request cutting in there."""
    baseline = _run(create, None, None)
    runs: list[tuple[Crossing | None, tuple[Crossing, str] | None]] = [
        (crossing, None) for crossing in baseline.trace
    ]
    runs += [(None, (crossing, label)) for crossing in baseline.trace for label in CUT_INS]
    tried = 1
    outcome = baseline
    for crash, cut_in in runs:
        if outcome.promise is not None:
            break
        tried += 1
        outcome = _run(create, crash, cut_in)
    if outcome.promise is None:
        return Verdict(True, tried, subject="create_once lab")
    return Verdict(False, tried, outcome.promise, marked(outcome.story.steps, outcome.promise),
                   "create_once lab")  # fmt: skip
