"""Workers and their janitor: processes on any machine take created payments from a shared queue,
and settle what other workers left in flight.

A worker claims a few queued payments, processes each under its lock, and logs what it did. Its
janitor runs recovery when the worker starts and then on a payment-sync schedule (Hyperswitch's:
first after 60 s, then every 300 s, 5 times), under a lock so that two janitors rarely do the
same work; recovery is safe to run twice at once, so correctness never rests on that lock.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from aegispay.domain.errors import AegisPayError, InvalidRequest, LockNotHeld
from aegispay.domain.states import IN_FLIGHT, PaymentState
from aegispay.engine import Engine
from aegispay.infra.queue import WorkRecord
from aegispay.infra.queue.memory import InMemoryPaymentQueue
from aegispay.recovery.coordinator import RecoveryReport

# Hyperswitch's payment sync: the first check after 60 s, then every 300 s, 5 times.
DEFAULT_SYNC = "60,300x5"
JANITOR_LOCK = "janitor"
# Seconds waited for a lock beyond its lease: enough for a dead holder's lease to run out.
LOCK_MARGIN = 5.0
# Created payments no worker has started: the janitor queues them again, in case the process
# that created one died before queuing it.
NOT_STARTED = (PaymentState.INITIATED, PaymentState.AUTHENTICATED)


class PaymentQueue(Protocol):
    """Created payments waiting for a worker, and the log of who did what."""

    def enqueue(self, payment_id: str) -> None:
        """Add a payment unless it is already waiting."""
        ...

    def claim(self, limit: int) -> AbstractContextManager[list[str]]:
        """Take up to `limit` ids nobody else holds; gone when the block ends, back if it raises."""
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
        return InMemoryPaymentQueue()
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
        """Seconds a janitor's lock is held for: a sweep's worth, at least 30 s."""
        return max(self.schedule.intervals[0], 30.0)

    def run(self, wait: float = 0.0, stop: threading.Event | None = None) -> JanitorRun:
        """Run once now and schedule the next run. If another janitor holds the lock, skip, or
        first wait up to `wait` seconds for it (a dead janitor's lease runs out in `lease`),
        giving up as soon as `stop` is set."""
        clock = self.engine.clock
        self._next = clock.now() + _seconds(self.schedule.after(self.runs))
        self.runs += 1
        if not self._take_lock(wait, stop):
            return JanitorRun(ran=False)
        try:
            return self._sweep()
        finally:
            # The lease may have run out during a long sweep: it is someone else's now.
            with suppress(LockNotHeld):
                self.engine.locks.release(JANITOR_LOCK, self.worker)

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

    def _sweep(self) -> JanitorRun:
        projections = self.engine.projections
        before = set(projections.ids_in_states(IN_FLIGHT))
        report = self.engine.recover()
        now = self.engine.clock.now()
        settled = sorted(before - set(projections.ids_in_states(IN_FLIGHT)))
        for payment_id in settled:
            state = self.engine.get_payment(payment_id).state.value
            self.queue.record(payment_id, self.worker, "settled", state, now)
        stranded = projections.ids_in_states(NOT_STARTED)
        for payment_id in stranded:
            self.queue.enqueue(payment_id)
        run = JanitorRun(True, report, settled, len(stranded), halted=report.streams_halted)
        first, span = self.schedule.intervals[0], self.schedule.span
        run.in_flight_by_age = {"before first sync": 0, "in sync schedule": 0, "past schedule": 0}
        for payment in projections.list():
            if payment.state not in IN_FLIGHT:
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

    def count(self, state: PaymentState) -> None:
        self.processed += 1
        self.states[state.value] = self.states.get(state.value, 0) + 1


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
    ) -> None:
        self.engine, self.queue, self.name, self.batch, self.say = engine, queue, name, batch, say
        self.janitor = Janitor(engine, queue, name, schedule or SyncSchedule.parse(DEFAULT_SYNC))
        self.summary = WorkerSummary(name)

    def work_once(self) -> int:
        """Claim a batch and process it; return how many payments were claimed."""
        with self.queue.claim(self.batch) as ids:
            for payment_id in ids:
                self._process(payment_id)
        return len(ids)

    def _process(self, payment_id: str) -> None:
        try:
            before = self.engine.get_payment(payment_id)
            if before.state.is_terminal:
                return  # settled already (requeued by a janitor that raced a worker)
            payment = self.engine.process_payment(payment_id)
        except AegisPayError as error:
            # Left for the janitor: a payment in flight is recovered, one not started requeued.
            self.summary.errors += 1
            self.say(f"worker {self.name}: {payment_id} left for the janitor ({error})")
            return
        self.summary.count(payment.state)
        self.queue.record(
            payment_id, self.name, "processed", payment.state.value, self.engine.clock.now()
        )
        self.say(f"worker {self.name}: processed {payment_id} {payment.state.value}")

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
        the queue is empty (`until_empty`, with a last janitor run)."""
        stop = stop or threading.Event()
        self.janitor_run()
        while not stop.is_set():
            took = self.work_once()
            if self.janitor.due():
                self.janitor_run()
            if once:
                break
            if took == 0:
                if until_empty:
                    # The last word on what is left: worth waiting for the janitor's lock,
                    # which a janitor killed mid-sweep holds until its lease runs out.
                    self.janitor_run(wait=self.janitor.lease + LOCK_MARGIN, stop=stop)
                    break
                stop.wait(idle)
        return self.summary


def work_counts(log: list[WorkRecord]) -> Iterator[tuple[str, str, int]]:
    """(worker, action, how many payments) over a work log, in order of first appearance."""
    counts: dict[tuple[str, str], int] = {}
    for record in log:
        counts[record.worker, record.action] = counts.get((record.worker, record.action), 0) + 1
    for (worker, action), count in counts.items():
        yield worker, action, count


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)
