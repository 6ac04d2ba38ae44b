"""The recovery coordinator: repairs the projection, then settles every payment left in flight.

1. Halted: streams found unreadable before are read again; one that reads cleanly (an
   operator repaired it) is cleared, the others are reported again, every run.
2. Repair: every stream written since the last checkpoint is compared with its projection
   row (by version, without parsing events); a drifted or unreadable row is rebuilt.
3. Settle: the projection's state index names the payments whose processing started and did
   not finish; each is settled under its lock (replay, verify with the gateway, append).
4. Checkpoint: when every repair was written, the checkpoint moves to where step 2 began.
   Halted streams are remembered by name, so they never hold the checkpoint back.
`recover(..., until_quiet=True)` runs again, letting open breakers cool down on the clock in
between, until nothing is left unresolved or unrepaired. Settling a payment is the engine's
own locked processing, handed in as `process`: recovery never reaches up for it.
The cost follows the in-flight payments, the halted streams and the events since the last run,
never the length of history. So recovery finds damage only in the streams it reads; damage in
a stream settled long ago is found by a scrub of everything (`aegispay verify`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields

from aegispay.domain.errors import (
    ConcurrencyError,
    EventContinuityError,
    EventIntegrityError,
    InvalidTransition,
    LockTimeout,
)
from aegispay.domain.payment import Payment, replay
from aegispay.domain.states import IN_FLIGHT, PaymentState
from aegispay.orchestration.ports import Ports

# Settle one payment under its lock: the engine's `process`, handed in.
Process = Callable[[str], Payment]
# A recovery run that keeps finding work stops after this many passes.
MAX_PASSES = 20

# Ids read per query when every stream or row is walked in id order.
ID_PAGE = 1000
# A stream that cannot be read in full halts: it is reported, never skipped over.
HALTING_ERRORS = (EventContinuityError, InvalidTransition)


@dataclass
class RecoveryReport:
    """What one recovery run found and what became of it.

    A payment counts as succeeded or failed when this run found it in flight and it ended so;
    when two runs race, one that appended nothing does not count it, but a run whose write was
    refused half-way may count a payment the other run settled.
    """

    found: int = 0
    succeeded: int = 0
    failed: int = 0
    redriven: int = 0
    cancelled: int = 0
    unresolved: int = 0
    projections_repaired: int = 0
    repairs_failed: int = 0
    streams_halted: int = 0
    passes: int = 1
    unresolved_ids: list[str] = field(default_factory=list)
    halted: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        """The figures, for JSON and notebooks."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.type == "int"}

    def add(self, later: RecoveryReport) -> RecoveryReport:
        """Totals over two runs; what is still open is what the later run left open."""
        total = RecoveryReport(**{name: value + getattr(later, name)
                                  for name, value in self.as_dict().items()})  # fmt: skip
        total.unresolved, total.unresolved_ids = later.unresolved, later.unresolved_ids
        total.streams_halted, total.halted = later.streams_halted, later.halted
        total.repairs_failed = later.repairs_failed
        return total

    def halt(self, ports: Ports, stream_id: str, error: Exception) -> None:
        """Report a stream that cannot be read, remember it, and raise the alert."""
        if stream_id in self.halted:
            return
        self.streams_halted += 1
        self.halted[stream_id] = str(error)
        ports.metrics.increment("alerts.stream_halted")
        if isinstance(error, EventIntegrityError):
            # Stored events failed the log's checks: edited, moved, lost or unreadable.
            ports.metrics.increment("alerts.tampered")
        ports.logger.log("error", "stream halted", payment=stream_id, error=error)
        try:
            ports.recovery_log.mark_halted(stream_id, str(error))
        except Exception:  # not remembered: the checkpoint must not move past it
            self.repairs_failed += 1


def recover(
    ports: Ports, process: Process, until_quiet: bool = False, cool_down: float = 60.0
) -> RecoveryReport:
    """Recheck halted streams, repair drifted rows, settle in-flight payments, move on.

    With `until_quiet`, pass again (sleeping `cool_down` on the clock first, so open breakers
    may probe) while anything is unresolved or unrepaired, at most MAX_PASSES times; the
    report then totals every pass (what is still open is what the last pass left open).
    """
    total = recover_once(ports, process)
    while until_quiet and (total.unresolved or total.repairs_failed) and total.passes < MAX_PASSES:
        ports.clock.sleep(cool_down)
        total = total.add(recover_once(ports, process))
    return total


def recover_once(ports: Ports, process: Process) -> RecoveryReport:
    """One pass of the four steps."""
    report = RecoveryReport()
    start = ports.events.last_position()
    recheck_halted(ports, report)
    repair_projections(ports, ports.recovery_log.checkpoint(), report)
    for payment_id in plan_recovery(ports):
        if payment_id not in report.halted:
            settle(ports, process, payment_id, report)
    if not report.repairs_failed:
        ports.recovery_log.set_checkpoint(start)
    ports.metrics.increment("recovery.runs")
    return report


def plan_recovery(ports: Ports) -> list[str]:
    """The payments to settle: in flight per the projection's state index (no history scan)."""
    return ports.projections.ids_in_states(IN_FLIGHT)


def recheck_halted(ports: Ports, report: RecoveryReport) -> None:
    """Read every stream halted before: report it again, or clear it if it reads cleanly now."""
    for stream_id in ports.recovery_log.halted():
        rebuilt = _replay(ports, stream_id, report)
        if rebuilt is not None:
            ports.recovery_log.clear_halted(stream_id)
            _write_row(ports, rebuilt, _row(ports, stream_id), report)


def repair_projections(ports: Ports, after_position: int, report: RecoveryReport) -> None:
    """Rebuild the rows of streams written after a position whose version drifted."""
    for stream_id, version in ports.events.streams_since(after_position).items():
        row = _row(ports, stream_id)
        if row is not None and row.version == version:
            continue
        rebuilt = _replay(ports, stream_id, report)
        if rebuilt is not None:
            _write_row(ports, rebuilt, row, report)


def settle(ports: Ports, process: Process, payment_id: str, report: RecoveryReport) -> None:
    """Settle one in-flight payment under its lock and count what became of it."""
    try:
        recorded = ports.events.read(payment_id)
        stored = replay(r.event for r in recorded)
    except HALTING_ERRORS as error:
        report.halt(ports, payment_id, error)
        return
    if stored is not None and stored.state.is_terminal:
        # Settled long ago; only its row lagged behind (written before the checkpoint).
        _write_row(ports, stored, _row(ports, payment_id), report)
        return
    report.found += 1
    try:
        payment: Payment | None = process(payment_id)
    except (LockTimeout, ConcurrencyError):
        payment = None  # another process holds it or got there first: count it open
    except HALTING_ERRORS as error:
        report.halt(ports, payment_id, error)
        return
    if payment is None or not payment.state.is_terminal:
        report.unresolved += 1
        report.unresolved_ids.append(payment_id)
        return
    appended = [r.event.type for r in ports.events.read(payment_id)[len(recorded) :]]
    if not appended:
        return  # another process settled it while we waited for the lock
    report.redriven += "ChargeNotFound" in appended
    report.cancelled += "CancelConfirmed" in appended
    if payment.state is PaymentState.SUCCESS:
        report.succeeded += 1
    else:
        report.failed += 1


def rebuild_projections(ports: Ports) -> RecoveryReport:
    """Rebuild every row from events, drop rows with no events, and reset the checkpoint.

    Streams and rows are walked in id order a page at a time, so memory stays flat however
    long the history.
    """
    report = RecoveryReport()
    start = ports.events.last_position()
    for stream_id in in_id_order(ports.events.stream_ids_after):
        rebuilt = _replay(ports, stream_id, report)
        row = _row(ports, stream_id)
        if rebuilt is not None and row != rebuilt:
            _write_row(ports, rebuilt, row, report)
    for payment_id in _rows_without_events(ports):
        ports.projections.delete(payment_id)
        report.projections_repaired += 1
    if not report.repairs_failed:
        ports.recovery_log.set_checkpoint(start)
    return report


def in_id_order(page: Callable[[str, int], list[str]]) -> Iterator[str]:
    """Every id a paged query (`stream_ids_after`, `ids_after`) returns, one page at a time."""
    after = ""
    while True:
        ids = page(after, ID_PAGE)
        yield from ids
        if len(ids) < ID_PAGE:
            return
        after = ids[-1]


def _rows_without_events(ports: Ports) -> list[str]:
    """The rows whose id names no stream: both walked in id order, side by side."""
    streams = in_id_order(ports.events.stream_ids_after)
    stream = next(streams, None)
    lost = []
    for row_id in in_id_order(ports.projections.ids_after):
        while stream is not None and stream < row_id:
            stream = next(streams, None)
        if stream != row_id:
            lost.append(row_id)
    # Deleted after the walk, so that no page is read while rows are being removed under it.
    return lost


def _replay(ports: Ports, stream_id: str, report: RecoveryReport) -> Payment | None:
    try:
        return replay(r.event for r in ports.events.read(stream_id))
    except HALTING_ERRORS as error:
        report.halt(ports, stream_id, error)
        return None


def _row(ports: Ports, payment_id: str) -> Payment | None:
    """A payment's projection row; an unreadable row counts as missing, to be rebuilt."""
    try:
        return ports.projections.get(payment_id)
    except Exception:  # a corrupt row is drift like any other
        return None


def _write_row(
    ports: Ports, payment: Payment, current: Payment | None, report: RecoveryReport
) -> None:
    """Write a rebuilt row over `current`; a failed write is counted and retried next run."""
    try:
        if current is not None and current.version > payment.version:
            # The stored row claims a newer version than the events hold: save would keep it.
            ports.projections.delete(payment.id)
        ports.projections.save(payment)
    except Exception as error:  # a failed repair is retried by the next run
        ports.logger.log("warning", "projection repair failed", payment=payment.id, error=error)
        report.repairs_failed += 1
        return
    report.projections_repaired += 1
    ports.metrics.increment("projection.repaired")
