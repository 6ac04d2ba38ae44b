"""The crash theatre's two stages: where the engine process runs, dies and comes back.

`SimulatedStage` runs the engine in this process on memory, on a virtual clock: the gateway
answers in 0.35 s and a restart takes 2 s, both simulated. Its crash is a ProcessCrash raised at
the chosen boundary. `KilledStage` runs each payment in a real worker process (its own pid) on
SQLite files in a temporary folder (`aegispay.viz.theatre_worker`): the worker stops at the
boundary and the stage kills it with SIGKILL; restarting reopens the same files in this app's
own process, which plays the next one and says so. Both offer `pay`, `restart` and `recover`,
and `engine`: the engine whose stores the pictures read.
`recovery_steps` tells a recovery run as steps, from its report and the events it appended.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from aegispay.domain.payment import replay
from aegispay.domain.states import PaymentState
from aegispay.infra.clock import VirtualClock
from aegispay.orchestration.ports import RecordedEvent
from aegispay.recovery.coordinator import RecoveryReport
from aegispay.sim.crashpoints import ProcessCrash, Side
from aegispay.sim.faults import FailureConfig
from aegispay.sim.harness import AegisPay

# How long a worker may take to reach its boundary (it imports the package first).
WORKER_TIMEOUT = 60.0
# The simulated stage's timings, on its virtual clock: every gateway call answers this late (as
# a "slow" fault that always strikes), and a dead process is back this long after its crash.
GATEWAY_MILLISECONDS = 350
RESTART_SECONDS = 2.0


@dataclass(frozen=True)
class CrashChoice:
    """Where to crash, in the words a person uses, and as the boundary the engine crosses.

    The nth crossing is counted from after the payment's creation: `events.append #1` writes
    PaymentAuthenticated and ProcessingStarted together, `#2` the outcome (PaymentSucceeded).
    """

    words: str
    boundary: str | None = None
    side: Side = "after"
    nth: int = 1

    @property
    def crossing(self) -> str:
        """The boundary as the engine names it ('after gateway.charge #1'), or 'no crash'."""
        return f"{self.side} {self.boundary} #{self.nth}" if self.boundary else "no crash"


CRASH_CHOICES: tuple[CrashChoice, ...] = (
    CrashChoice("after the gateway charged, before we recorded it", "gateway.charge", "after"),
    CrashChoice("before the charge was sent", "gateway.charge", "before"),
    CrashChoice("while the charge is on the wire", "gateway.charge", "inside"),
    CrashChoice("after ProcessingStarted was written", "events.append", "after", 1),
    CrashChoice("after PaymentSucceeded was written", "events.append", "after", 2),
    CrashChoice("no crash"),
)


@dataclass(frozen=True)
class ProcessView:
    """The engine process as the picture shows it: alive or dead, and what to say about it."""

    alive: bool
    headline: str
    detail: str


def order(key: str) -> dict[str, str]:
    """The shop's request: one order of 25.00 EUR under `key`."""
    return {
        "idempotency_key": key, "amount": "25.00", "currency": "EUR",
        "customer_id": "cus_theatre", "payment_method": "tok_visa",
    }  # fmt: skip


class Stage(Protocol):
    """Where the engine runs: pay with a crash, restart, recover; `engine` is read for pictures."""

    engine: AegisPay
    process: ProcessView

    def pay(self, key: str, choice: CrashChoice) -> str:
        """Create and process one payment, crashing as chosen; return its id."""
        ...

    def restart(self) -> None:
        """Start the next process over the same storage."""
        ...

    def recover(self) -> RecoveryReport:
        """Run recovery in the live process."""
        ...

    def close(self) -> None:
        """Let go of every process and file."""
        ...


def process_number(engine: AegisPay) -> int:
    """Which process this is: 1 for the first, one more for each restart."""
    return engine.generation + 1


class SimulatedStage:
    """The engine in this process on memory that stands for the disk; it dies by ProcessCrash."""

    def __init__(self, seed: int = 12, clock: VirtualClock | None = None) -> None:
        self.clock = clock or VirtualClock()
        slow = FailureConfig(slow_rate=1.0, slow_delay_ms=GATEWAY_MILLISECONDS)
        self.engine = AegisPay.in_memory(
            seed=seed, clock=self.clock, faults=slow, crash_points=True
        )
        self.process = self._alive()

    def _alive(self) -> ProcessView:
        number = process_number(self.engine)
        if number == 1:
            return ProcessView(True, "process 1: alive", "its stores in memory stand for the disk")
        return ProcessView(
            True, f"process {number}: new, alive",
            f"started {RESTART_SECONDS:g} s after the crash with its memory empty: "
            "it knows only what the disk holds",
        )  # fmt: skip

    def pay(self, key: str, choice: CrashChoice) -> str:
        """Create the payment, arm the crash, process it: a crash leaves the process dead."""
        payment = self.engine.create_payment(**order(key))
        if choice.boundary is not None:
            self.engine.crash_at(choice.boundary, choice.side, choice.nth)
        try:
            self.engine.process_payment(payment.id)
        except ProcessCrash:
            self.process = ProcessView(
                False, f"process {process_number(self.engine)}: dead",
                f"it died {choice.words}: its memory and locks are gone",
            )  # fmt: skip
        else:
            self.engine.crashpoints.disarm()
        return payment.id

    def restart(self) -> None:
        """A new engine over the same stores, as a restarted process would open them."""
        self.clock.advance(RESTART_SECONDS)
        self.engine = self.engine.restart()
        self.process = self._alive()

    def recover(self) -> RecoveryReport:
        """Recovery in the live engine."""
        return self.engine.recover()

    def close(self) -> None:
        """Nothing to let go of: memory goes with the stage."""


class KilledStage:
    """A real worker process per payment on SQLite files, killed by SIGKILL at the boundary;
    this process reopens the files as the next one."""

    def __init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="aegispay-theatre-")
        folder = Path(self._folder.name)
        self.store = f"sqlite:///{folder / 'store.db'}"
        self.gateway = f"sqlite:///{folder / 'gateway.db'}"
        self.engine = AegisPay.open(store=self.store, gateway=self.gateway)
        self.worker: subprocess.Popen[str] | None = None
        self.process = ProcessView(
            True, "ready", f"each payment runs in a new worker process, its own pid, on {folder}"
        )
        self.killed: int | None = None

    def pay(self, key: str, choice: CrashChoice) -> str:
        """Run the worker; when it says it stopped at the boundary, kill it with SIGKILL."""
        crash = (
            ["--crash", f"{choice.boundary}:{choice.side}:{choice.nth}"] if choice.boundary else []
        )
        command = [
            sys.executable, "-m", "aegispay.viz.theatre_worker",
            "--store", self.store, "--gateway", self.gateway, "--key", key, *crash,
        ]  # fmt: skip
        self.worker = worker = subprocess.Popen(
            command, cwd=self._folder.name, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        said = read_until(worker, ("stopped", "settled"), WORKER_TIMEOUT)
        payment_id = next(line.split()[1] for line in said if line.startswith("created "))
        if said[-1].startswith("stopped "):
            os.kill(worker.pid, signal.SIGKILL)
            status = worker.wait(timeout=WORKER_TIMEOUT)
            self.killed = worker.pid
            self.process = ProcessView(
                False, f"worker pid {worker.pid}: killed",
                f"it stopped {choice.words}, and was killed with SIGKILL (exit status {status})",
            )  # fmt: skip
        else:
            status = worker.wait(timeout=WORKER_TIMEOUT)
            self.process = ProcessView(
                True,
                f"worker pid {worker.pid}: finished",
                f"it settled the payment (exit {status})",
            )
        return payment_id

    def restart(self) -> None:
        """Reopen the same files as the next process: nothing of the dead one's memory."""
        self.engine = self.engine.restart()
        self.process = ProcessView(
            True, f"next process: this app, pid {os.getpid()}",
            f"not the killed worker (pid {self.killed}): the app's own process plays the next "
            "one, reopening the worker's files with its memory empty",
        )  # fmt: skip

    def recover(self) -> RecoveryReport:
        """Recovery over the files the dead worker left."""
        return self.engine.recover()

    def close(self) -> None:
        """Kill a worker still running, close the files, remove the folder."""
        if self.worker is not None and self.worker.poll() is None:
            self.worker.kill()
            self.worker.wait()
        if self.worker is not None and self.worker.stdout is not None:
            self.worker.stdout.close()
        self.engine.close()
        self._folder.cleanup()


def read_until(worker: subprocess.Popen[str], ends: Sequence[str], timeout: float) -> list[str]:
    """The worker's lines up to the first that starts with one of `ends`; raise when it exits
    or falls silent for `timeout` seconds before that."""
    assert worker.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(worker.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(timeout=deadline - time.monotonic()):
                continue
            line = worker.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
            if line.startswith(tuple(ends)):
                return lines
    worker.kill()
    worker.wait()
    raise RuntimeError("the worker ended before its story did: " + " | ".join(lines[-5:]))


def recovery_steps(
    report: RecoveryReport, before: Sequence[RecordedEvent], after: Sequence[RecordedEvent]
) -> list[tuple[str, str]]:
    """A recovery run as (step, what happened) pairs: found, replayed, asked the gateway,
    settled; drawn from its report and from the events it appended to the payment's stream."""
    appended = list(after[len(before) :])
    found = f"{report.found} payment(s) in flight, by the projection's state index"
    if report.projections_repaired:
        found += f"; {report.projections_repaired} projection row(s) behind their events"
    steps = [("found", found)]
    stored = replay(r.event for r in before)
    if stored is not None:
        steps.append(("replayed", f"v1..v{len(before)} folded into {stored.state}"))
    types = [r.event.type for r in appended]
    if "ChargeConfirmed" in types:
        asked = "charged: it holds our charge, so we were paid"
    elif "ChargeNotFound" in types:
        asked = "no charge under our reference: sent it again with the same idempotency key"
    elif "DeclineConfirmed" in types:
        asked = "declined"
    elif "CancelConfirmed" in types:
        asked = "cancelled our reference at our request: it will refuse it from now on"
    else:
        asked = "not asked: the events already hold the outcome"
    if stored is not None and stored.gateway and appended:
        asked = f"{stored.gateway}, by our reference: {asked}"
    steps.append(("asked the gateway", asked))
    settled = ", ".join(f"v{r.version} {r.event.type}" for r in appended)
    now = replay(r.event for r in after)
    if now is not None and now.state is not PaymentState.INITIATED:
        end = f"appended {settled} → {now.state}" if settled else f"already {now.state}"
        repaired = "; projection row rewritten" if report.projections_repaired else ""
        steps.append(("settled", end + repaired))
    return steps
