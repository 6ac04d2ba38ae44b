"""Workers and their janitor: processes on any machine take created payments from a shared queue,
and settle what other workers left in flight.

A worker claims a few queued payments for a lease (renewed by a heartbeat while it works),
processes each under its lock, and logs what it did, only while the claim is still its own. Its
janitor runs recovery when the worker starts and then on a payment-sync schedule (Hyperswitch's:
first after 60 s, then every 300 s, 5 times), under a short lease renewed while it sweeps, so
that two janitors rarely do the same work and a dead one silences the others for seconds only;
recovery is safe to run twice at once, so correctness never rests on that lease.

A worker outlives its servers: an error that heals (a connection cut, a server restarting, a
lock timeout) is said in one line, the step is retried with backoff (tenacity, on an injected
sleep and clock), and the worker says when the server is back; it gives up, raising GaveUp,
only when an outage lasts past `give_up_after` seconds.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import Protocol, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential_jitter

from aegispay.domain.errors import AegisPayError, InvalidRequest, LockNotHeld
from aegispay.domain.states import IN_FLIGHT, PaymentState
from aegispay.engine import Engine
from aegispay.infra.queue import Claim, WorkRecord
from aegispay.infra.queue.memory import InMemoryPaymentQueue
from aegispay.orchestration.ports import Clock
from aegispay.recovery.coordinator import RecoveryReport

# Hyperswitch's payment sync: the first check after 60 s, then every 300 s, 5 times.
DEFAULT_SYNC = "60,300x5"
JANITOR_LOCK = "janitor"
# Seconds a janitor's lease lasts; its heartbeat renews it while it sweeps, so a janitor that
# died silences the others this long at most.
JANITOR_LEASE = 10.0
# Seconds waited for a lock beyond its lease: enough for a dead holder's lease to run out.
LOCK_MARGIN = 5.0
# How many times per lease a heartbeat renews it.
BEATS_PER_LEASE = 3
# Seconds an outage may last before the worker gives up (`aegispay worker --give-up-after`).
GIVE_UP_AFTER = 300.0
# Backoff between tries of a step during an outage: from the first to the longest, jittered.
OUTAGE_BACKOFF = (0.2, 5.0)
T = TypeVar("T")
# Counted by the payment service each time the store refuses a stale write of this process.
STALE_WRITES = "fence.stale_writes_refused"
# Created payments no worker has started: the janitor queues them again, in case the process
# that created one died before queuing it.
NOT_STARTED = (PaymentState.INITIATED, PaymentState.AUTHENTICATED)


class PaymentQueue(Protocol):
    """Created payments waiting for a worker, claimed as leases, and the log of who did what."""

    def enqueue(self, payment_id: str) -> bool:
        """Add a payment unless it waits already; True when this made it claimable."""
        ...

    def requeue(self, payment_ids: Sequence[str]) -> int:
        """Make payments claimable unless waiting or held; return how many it changed."""
        ...

    def claim(self, worker: str, limit: int, lease: float) -> Claim:
        """Take up to `limit` ids whose time has come for `lease` seconds, committed at once."""
        ...

    def renew(self, claim: Claim, lease: float, ids: Sequence[str] | None = None) -> set[str]:
        """Push the claim's lease on; return the ids it still holds."""
        ...

    def complete(self, claim: Claim, payment_id: str, record: WorkRecord | None = None) -> bool:
        """Take a payment off the queue (logging `record`) if the claim still holds it."""
        ...

    def release(self, claim: Claim, delay: float = 0.0) -> None:
        """Give back what the claim still holds, claimable after `delay` seconds."""
        ...

    def pending(self) -> int:
        """How many payments wait."""
        ...

    def record(self, payment_id: str, worker: str, action: str, state: str, at: datetime) -> None:
        """Log that a worker moved a payment on."""
        ...

    def work_log(self) -> list[WorkRecord]:
        """Everything logged, oldest first."""
        ...


def open_queue(engine: Engine) -> PaymentQueue:
    """The queue beside an engine's event store: a table on PostgreSQL, else this process's."""
    database = getattr(engine.event_store, "database", None)
    if database is None:
        return InMemoryPaymentQueue(engine.clock)
    from aegispay.infra.queue.postgres import PostgresPaymentQueue  # noqa: PLC0415 - psycopg

    return PostgresPaymentQueue(database)


@dataclass(frozen=True)
class SyncSchedule:
    """Seconds between janitor runs after the one at start-up: '60,300x5' is 60, then 300 five
    times; after the last, runs go on at the last interval."""

    intervals: tuple[float, ...]

    @classmethod
    def parse(cls, text: str) -> SyncSchedule:
        """Parse 'SECONDS[xTIMES],...' such as '60,300x5' or '0.5,1x3'."""
        intervals: list[float] = []
        for part in text.split(","):
            found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:x\s*(\d+))?\s*", part)
            if found is None or float(found[1]) <= 0 or found[2] == "0":
                raise InvalidRequest("sync", "must be like '60,300x5' (seconds above zero)", text)
            intervals += [float(found[1])] * int(found[2] or 1)
        return cls(tuple(intervals))

    @property
    def span(self) -> float:
        """Seconds from a payment's start to its last scheduled sync: older and unresolved is
        an alert."""
        return sum(self.intervals)

    def after(self, run: int) -> float:
        """Seconds from the run numbered `run` (0 at start-up) to the next."""
        return self.intervals[min(run, len(self.intervals) - 1)]


@dataclass
class JanitorRun:
    """What one janitor run found: recovery's report, in-flight payments by age, alerts."""

    ran: bool
    recovery: RecoveryReport = field(default_factory=RecoveryReport)
    settled: list[str] = field(default_factory=list)
    requeued: int = 0
    in_flight_by_age: dict[str, int] = field(default_factory=dict)
    halted: int = 0
    alerts: list[str] = field(default_factory=list)

    def line(self, worker: str) -> str:
        """One line for the worker's output."""
        if not self.ran:
            return f"janitor {worker}: another janitor holds the lock; skipped"
        return (
            f"janitor {worker}: settled {len(self.settled)}, unresolved "
            f"{self.recovery.unresolved}, requeued {self.requeued}, in flight by age "
            f"{self.in_flight_by_age}, halted streams {self.halted}"
        )


class Janitor:
    """Recovery on a schedule, under a lock; reports in-flight ages and raises alert lines."""

    def __init__(
        self, engine: Engine, queue: PaymentQueue, worker: str, schedule: SyncSchedule
    ) -> None:
        self.engine, self.queue, self.worker, self.schedule = engine, queue, worker, schedule
        self.runs = 0
        self._next = engine.clock.now()

    def due(self) -> bool:
        """Whether the schedule says it is time for the next run."""
        return self.engine.clock.now() >= self._next

    @property
    def lease(self) -> float:
        """Seconds a janitor's lease lasts unless its heartbeat renews it."""
        return JANITOR_LEASE

    def run(self, wait: float = 0.0, stop: threading.Event | None = None) -> JanitorRun:
        """Run once now and schedule the next run. If another janitor holds the lease (it is
        alive: its heartbeat renews it), skip, trying again after a lease rather than a whole
        interval, or first wait up to `wait` seconds for it, giving up as soon as `stop` is set.

        A run given no `wait` waits for no payment's lock either: a payment another process
        holds is counted unresolved and left to its holder, or, if the holder died, to the
        worker the queue hands it to once its lease runs out (so a worker started beside a
        dead one's payment starts working at once). A run given a `wait` is the last word
        (`--until-empty`) and waits for every lock to be released or to run out."""
        clock = self.engine.clock
        self._next = clock.now() + _seconds(self.schedule.after(self.runs))
        self.runs += 1
        if not self._take_lock(wait, stop):
            self._next = min(self._next, clock.now() + _seconds(self.lease))
            return JanitorRun(ran=False)
        locks = self.engine.locks
        try:
            renew = lambda: locks.extend(JANITOR_LOCK, self.worker, ttl=self.lease)  # noqa: E731
            with Heartbeat(renew, self.lease / BEATS_PER_LEASE):
                return self._sweep(wait_for_locks=wait > 0)
        finally:
            # The lease may have run out during a long sweep: it is someone else's now.
            with suppress(LockNotHeld):
                locks.release(JANITOR_LOCK, self.worker)

    def _take_lock(self, wait: float, stop: threading.Event | None) -> bool:
        """Try for the janitor's lock, a second of waiting at a time, for up to `wait` s."""
        clock, locks = self.engine.clock, self.engine.locks
        deadline = clock.now() + _seconds(wait)
        while True:
            left = max(0.0, (deadline - clock.now()).total_seconds())
            if locks.acquire(JANITOR_LOCK, self.worker, ttl=self.lease, wait=min(left, 1.0)):
                return True
            if clock.now() >= deadline or (stop is not None and stop.is_set()):
                return False

    def _sweep(self, wait_for_locks: bool) -> JanitorRun:
        projections = self.engine.projections
        before = set(projections.ids_in_states(IN_FLIGHT))
        report = self.engine.recover(wait_for_locks=wait_for_locks)
        now = self.engine.clock.now()
        # Ids in one statement, in creation order: what settled, and what is left to report.
        in_flight = projections.ids_in_states(IN_FLIGHT)
        settled = sorted(before - set(in_flight))
        for payment_id in settled:
            state = self.engine.get_payment(payment_id).state.value
            self.queue.record(payment_id, self.worker, "settled", state, now)
        # Only what this made claimable counts: a payment waiting, or held by a live lease, is
        # left as it is.
        requeued = self.queue.requeue(projections.ids_in_states(NOT_STARTED))
        run = JanitorRun(True, report, settled, requeued, halted=report.streams_halted)
        first, span = self.schedule.intervals[0], self.schedule.span
        run.in_flight_by_age = {"before first sync": 0, "in sync schedule": 0, "past schedule": 0}
        # Only the rows of payments in flight are read, so a backlog of payments not yet
        # started costs the sweep nothing here. A payment that settled since is left out.
        for payment_id in in_flight:
            payment = projections.get(payment_id)
            if payment is None or payment.state not in IN_FLIGHT:
                continue
            age = (now - payment.created_at).total_seconds()
            if age < first:
                run.in_flight_by_age["before first sync"] += 1
            elif age < span:
                run.in_flight_by_age["in sync schedule"] += 1
            else:
                run.in_flight_by_age["past schedule"] += 1
                run.alerts.append(
                    f"ALERT payment {payment.id} unresolved after {age:.0f} s "
                    f"(past the sync schedule of {span:.0f} s): ask the provider"
                )
        return run


@dataclass
class WorkerSummary:
    """What a worker did before it stopped."""

    worker: str
    processed: int = 0
    states: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    janitor_runs: int = 0
    settled_by_janitor: int = 0
    alerts: int = 0
    # Payments the latest janitor run left unresolved or halted; None when it could not run.
    unresolved: int | None = None
    # Outages of a server the worker waited out, and payments it found taken over when it woke.
    outages: int = 0
    taken_over: int = 0

    def count(self, state: PaymentState) -> None:
        self.processed += 1
        self.states[state.value] = self.states.get(state.value, 0) + 1


class GaveUp(Exception):
    """A server stayed down past the worker's `give_up_after`: the worker stops."""


class Worker:
    """Takes queued payments and processes them; its janitor settles what others left."""

    def __init__(  # noqa: PLR0917 - the worker's parts, each named at its one call site
        self,
        engine: Engine,
        queue: PaymentQueue,
        name: str,
        schedule: SyncSchedule | None = None,
        batch: int = 1,
        say: Callable[[str], None] = lambda line: None,
        *,
        give_up_after: float = GIVE_UP_AFTER,
        sleep: Callable[[float], None] | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.engine, self.queue, self.name, self.batch, self.say = engine, queue, name, batch, say
        self.janitor = Janitor(engine, queue, name, schedule or SyncSchedule.parse(DEFAULT_SYNC))
        self.summary = WorkerSummary(name)
        # A claim's lease is the payment lock's: a dead worker's payment is free of both at once.
        self.lease = engine.settings.lock_ttl
        errors = outage_errors(engine, queue)
        self.outages = Outages(
            name, engine.clock, sleep or engine.clock.sleep, give_up_after, errors, warn or say
        )

    def work_once(self) -> int:
        """Claim a batch for a lease, renewed while it is processed; return how many payments
        were claimed."""
        claim = self.queue.claim(self.name, self.batch, self.lease)
        if not claim.ids:
            return 0
        renew = lambda: self.queue.renew(claim, self.lease)  # noqa: E731
        try:
            with Heartbeat(renew, self.lease / BEATS_PER_LEASE):
                for n, payment_id in enumerate(claim.ids):
                    # Fresh before the payment's lock is taken, and proof it is still ours (the
                    # first was claimed a moment ago).
                    if n == 0 or payment_id in self.queue.renew(claim, self.lease, [payment_id]):
                        self._process(claim, payment_id)
                    else:
                        self._taken_over(payment_id)
        except BaseException:
            # Another worker need not wait out the lease for what this one cannot finish.
            with suppress(Exception):
                self.queue.release(claim)
            raise
        return len(claim.ids)

    def _process(self, claim: Claim, payment_id: str) -> None:
        try:
            before = self.engine.get_payment(payment_id)
            if before.state.is_terminal:
                # Settled already: by a worker that took the claim over while this one was
                # stopped, or after a janitor's requeue raced a worker.
                if not self.queue.complete(claim, payment_id):
                    self._taken_over(payment_id)
                return
            refused = self.engine.metrics.get(STALE_WRITES)
            payment = self.engine.process_payment(payment_id)
            # The store refused a write of ours: another actor (a worker that took the claim
            # over, a janitor) moved the payment on, and the work is theirs.
            overtaken = self.engine.metrics.get(STALE_WRITES) > refused
        except AegisPayError as error:
            # Left for the janitor: a payment in flight is recovered, one not started requeued.
            self.summary.errors += 1
            self.say(f"worker {self.name}: {payment_id} left for the janitor ({error})")
            if not self.queue.complete(claim, payment_id):
                self._taken_over(payment_id)
            return
        record = WorkRecord(
            payment_id, self.name, "processed", payment.state.value, self.engine.clock.now()
        )
        if overtaken:
            self.queue.complete(claim, payment_id)
            self._taken_over(payment_id)
            return
        if not self.queue.complete(claim, payment_id, record):
            self._taken_over(payment_id)
            return
        self.summary.count(payment.state)
        self.say(f"worker {self.name}: processed {payment_id} {payment.state.value}")

    def _taken_over(self, payment_id: str) -> None:
        """Say that the claim on a payment passed to another worker while this one was away:
        what this one did is not logged as its work (the store refused any stale write)."""
        self.summary.taken_over += 1
        self.say(
            f"worker {self.name}: {payment_id} was taken over by another worker "
            "(this one's lease ran out or its writes were refused); nothing recorded"
        )

    def janitor_run(self, wait: float = 0.0, stop: threading.Event | None = None) -> None:
        """Run the janitor now (waiting up to `wait` s for another's lock, unless `stop` is
        set) and report what it found."""
        run = self.janitor.run(wait, stop)
        self.summary.janitor_runs += run.ran
        self.summary.settled_by_janitor += len(run.settled)
        self.summary.alerts += len(run.alerts)
        self.summary.unresolved = run.recovery.unresolved + run.halted if run.ran else None
        self.say(run.line(self.name))
        for alert in run.alerts:
            self.say(alert)

    def run(
        self,
        stop: threading.Event | None = None,
        *,
        once: bool = False,
        until_empty: bool = False,
        idle: float = 0.2,
    ) -> WorkerSummary:
        """Recover, then work until `stop` is set (SIGTERM), after one batch (`once`), or once
        the queue is empty (`until_empty`, with a last janitor run). Each step is retried
        through outages of the servers; GaveUp when one outlasts `give_up_after`."""
        stop = stop or threading.Event()
        step = self.outages.call
        step(self.janitor_run)
        while not stop.is_set():
            took = step(self.work_once)
            if self.janitor.due():
                step(self.janitor_run)
            if once:
                break
            if took == 0:
                if until_empty:
                    # The last word on what is left: worth waiting for the janitor's lock,
                    # which a janitor killed mid-sweep holds until its lease runs out.
                    step(lambda: self.janitor_run(wait=self.janitor.lease + LOCK_MARGIN, stop=stop))
                    break
                stop.wait(idle)
        self.summary.outages = self.outages.count
        return self.summary


class Outages:
    """Runs a worker's steps through outages of its servers: one line when one starts, retries
    with jittered exponential backoff on `sleep`, one line when it ends; GaveUp once an outage
    has lasted `give_up_after` seconds of `clock`."""

    def __init__(  # noqa: PLR0917 - one call site, each a different thing
        self,
        worker: str,
        clock: Clock,
        sleep: Callable[[float], None],
        give_up_after: float,
        errors: tuple[type[BaseException], ...],
        say: Callable[[str], None],
    ) -> None:
        self.worker, self.clock, self.sleep, self.say = worker, clock, sleep, say
        self.give_up_after, self.errors = give_up_after, errors
        self.count = 0
        self._since: datetime | None = None
        # The server of the outage under way, in its users' words.
        self._service = "a server"

    def call(self, step: Callable[[], T]) -> T:
        """Run `step`; while it raises an outage error, say so once, back off and run it again."""
        if not self.errors:
            return step()
        retrying = Retrying(
            retry=retry_if_exception_type(self.errors),
            wait=wait_exponential_jitter(
                multiplier=OUTAGE_BACKOFF[0], max=OUTAGE_BACKOFF[1], jitter=OUTAGE_BACKOFF[0]
            ),
            stop=self._past_give_up,
            sleep=self.sleep,
            before_sleep=self._report,
            reraise=True,
        )
        try:
            result = retrying(step)
        except self.errors as error:
            raise GaveUp(
                f"worker {self.worker}: {service(error)} has been down for "
                f"{self._lasted():.0f} s, past --give-up-after {self.give_up_after:g} s: "
                f"giving up ({_one_line(error)})"
            ) from None
        if self._since is not None:
            self.say(
                f"worker {self.worker}: {self._service} is back after {self._lasted():.1f} s; "
                "working again"
            )
            self._since = None
        return result

    def _past_give_up(self, state: RetryCallState) -> bool:
        """Stop when the outage has lasted `give_up_after` seconds on the clock."""
        return self._since is not None and self._lasted() >= self.give_up_after

    def _report(self, state: RetryCallState) -> None:
        if self._since is not None or state.outcome is None:
            return
        error = state.outcome.exception()
        self._since, self._service = self.clock.now(), service(error)
        self.count += 1
        self.say(
            f"worker {self.worker}: {self._service} cannot be reached ({_one_line(error)}); "
            f"retrying with backoff, giving up after {self.give_up_after:g} s"
        )

    def _lasted(self) -> float:
        return 0.0 if self._since is None else (self.clock.now() - self._since).total_seconds()


def outage_errors(engine: Engine, queue: object = None) -> tuple[type[BaseException], ...]:
    """The errors of the servers behind an engine and a queue that heal by themselves: each
    adapter on a server names its own (`outage_errors`); embedded ones have none."""
    parts = [engine.locks, queue, getattr(queue, "database", None)]
    parts += [getattr(engine.event_store, "database", None)]
    parts += [getattr(ledger, "database", None) for ledger in engine.storage.ledgers.values()]
    found: dict[type[BaseException], None] = {}
    for part in parts:
        found.update(dict.fromkeys(getattr(part, "outage_errors", ())))
    return tuple(found)


def service(error: BaseException | None) -> str:
    """The server an outage error came from, in its users' words."""
    module = type(error).__module__
    if module.startswith(("psycopg", "aegispay.infra.postgres")):
        return "PostgreSQL"
    return "Redis" if module.startswith("redis") else "a server"


class Heartbeat:
    """Calls `beat` every `interval` seconds on a thread of its own while a `with` block runs.
    A process stopped or frozen stops beating too, so what it holds runs out."""

    def __init__(self, beat: Callable[[], object], interval: float) -> None:
        self._beat, self._interval = beat, interval
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def __enter__(self) -> None:
        self._thread.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._done.wait(self._interval):
            # A beat that fails is not this thread's to report: the worker's own next call
            # meets the same fault and says so; an ownerless lease simply runs out.
            with suppress(Exception):
                self._beat()


def work_counts(log: list[WorkRecord]) -> Iterator[tuple[str, str, int]]:
    """(worker, action, how many payments) over a work log, in order of first appearance."""
    counts: dict[tuple[str, str], int] = {}
    for record in log:
        counts[record.worker, record.action] = counts.get((record.worker, record.action), 0) + 1
    for (worker, action), count in counts.items():
        yield worker, action, count


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


def _one_line(error: BaseException | None) -> str:
    return " ".join(str(error).split()) or type(error).__name__
