"""The recovery coordinator: repairs the projection, then settles every payment left in flight.

1. Repair: every stream written since the last checkpoint is compared with its projection
   row (by version, without parsing events); a drifted row is rebuilt from its events.
2. Settle: the projection's state index names the payments whose processing started and did
   not finish; each is settled under its lock (replay, verify with the gateway, append).
3. Checkpoint: when every stream read cleanly, the checkpoint moves to where step 1 began.
The cost follows the in-flight payments and the events since the last run, never history.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aegispay.domain.errors import (
    ConcurrencyError,
    EventContinuityError,
    InvalidTransition,
    LockTimeout,
)
from aegispay.domain.payment import Payment, replay
from aegispay.domain.states import IN_FLIGHT, PaymentState
from aegispay.orchestration.ports import Ports
from aegispay.service import PaymentService

# A stream that cannot be read in full halts: it is reported, never skipped over.
HALTING_ERRORS = (EventContinuityError, InvalidTransition)


@dataclass
class RecoveryReport:
    """What one recovery run found and what became of it."""

    found: int = 0
    succeeded: int = 0
    failed: int = 0
    redriven: int = 0
    unresolved: int = 0
    projections_repaired: int = 0
    streams_halted: int = 0
    unresolved_ids: list[str] = field(default_factory=list)
    halted: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        """The figures, for JSON and notebooks."""
        return {
            "found": self.found,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "redriven": self.redriven,
            "unresolved": self.unresolved,
            "projections_repaired": self.projections_repaired,
            "streams_halted": self.streams_halted,
        }

    def halt(self, ports: Ports, stream_id: str, error: Exception) -> None:
        """Report a stream that cannot be read, and raise the alert."""
        if stream_id not in self.halted:
            self.streams_halted += 1
            self.halted[stream_id] = str(error)
            ports.metrics.increment("alerts.stream_halted")
            ports.logger.log("error", "stream halted", payment=stream_id, error=error)


def recover(ports: Ports, service: PaymentService) -> RecoveryReport:
    """Repair drifted rows, settle in-flight payments, and move the checkpoint on."""
    report = RecoveryReport()
    start = ports.events.last_position()
    clean = repair_projections(ports, ports.projections.checkpoint(), report)
    for payment_id in plan_recovery(ports):
        if payment_id not in report.halted:
            settle(ports, service, payment_id, report)
    if clean and not report.halted:
        ports.projections.set_checkpoint(start)
    ports.metrics.increment("recovery.runs")
    return report


def plan_recovery(ports: Ports) -> list[str]:
    """The payments to settle: in flight per the projection's state index (no history scan)."""
    return ports.projections.ids_in_states(IN_FLIGHT)


def repair_projections(ports: Ports, after_position: int, report: RecoveryReport) -> bool:
    """Rebuild the rows of streams written after a position whose version drifted."""
    clean = True
    for stream_id, version in ports.events.streams_since(after_position).items():
        row = ports.projections.get(stream_id)
        if row is not None and row.version == version:
            continue
        rebuilt = _replay(ports, stream_id, report)
        if rebuilt is None:
            continue
        try:
            ports.projections.save(rebuilt)
        except Exception as error:
            ports.logger.log("warning", "projection repair failed", payment=stream_id, error=error)
            clean = False
            continue
        report.projections_repaired += 1
        ports.metrics.increment("projection.repaired")
    return clean


def settle(ports: Ports, service: PaymentService, payment_id: str, report: RecoveryReport) -> None:
    """Settle one in-flight payment under its lock and count what became of it."""
    report.found += 1
    try:
        seen = len(ports.events.read(payment_id))
        payment: Payment | None = service.process(payment_id)
    except (LockTimeout, ConcurrencyError):
        # Another process holds it or got there first: it is being settled; count it open.
        payment = None
    except HALTING_ERRORS as error:
        report.halt(ports, payment_id, error)
        return
    if payment is None or not payment.state.is_terminal:
        report.unresolved += 1
        report.unresolved_ids.append(payment_id)
        return
    appended = ports.events.read(payment_id)[seen:]
    report.redriven += any(r.event.type == "ChargeNotFound" for r in appended)
    if payment.state is PaymentState.SUCCESS:
        report.succeeded += 1
    else:
        report.failed += 1


def rebuild_projections(ports: Ports) -> RecoveryReport:
    """Rebuild every row from events, drop rows with no events, and reset the checkpoint."""
    report = RecoveryReport()
    start = ports.events.last_position()
    streams = ports.events.stream_ids()
    for stream_id in streams:
        rebuilt = _replay(ports, stream_id, report)
        if rebuilt is not None and ports.projections.get(stream_id) != rebuilt:
            ports.projections.delete(stream_id)
            ports.projections.save(rebuilt)
            report.projections_repaired += 1
    known = set(streams)
    for row in ports.projections.list():
        if row.id not in known:
            ports.projections.delete(row.id)
            report.projections_repaired += 1
    if not report.halted:
        ports.projections.set_checkpoint(start)
    return report


def _replay(ports: Ports, stream_id: str, report: RecoveryReport) -> Payment | None:
    try:
        return replay(r.event for r in ports.events.read(stream_id))
    except HALTING_ERRORS as error:
        report.halt(ports, stream_id, error)
        return None
