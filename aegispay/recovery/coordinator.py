"""The recovery coordinator: settles every payment whose processing started and did not finish."""

from __future__ import annotations

from dataclasses import dataclass, field

from aegispay.domain.errors import AegisPayError, LockTimeout
from aegispay.domain.states import IN_FLIGHT, PaymentState
from aegispay.orchestration.ports import Ports
from aegispay.service import PaymentService


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
    halted_ids: list[str] = field(default_factory=list)

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


def plan_recovery(ports: Ports) -> list[str]:
    """The payments to settle: in flight per the projection's state index (no history scan)."""
    return ports.projections.ids_in_states(IN_FLIGHT)


def recover(ports: Ports, service: PaymentService) -> RecoveryReport:
    """Settle each in-flight payment under its lock; one payment's trouble never stops the rest."""
    report = RecoveryReport()
    for payment_id in plan_recovery(ports):
        report.found += 1
        row = ports.projections.get(payment_id)
        seen = row.version if row is not None else 0
        try:
            payment = service.process(payment_id)
        except LockTimeout:
            # Someone else holds it and is settling it now; the next run will see the result.
            report.unresolved += 1
            report.unresolved_ids.append(payment_id)
            continue
        except AegisPayError as error:
            report.streams_halted += 1
            report.halted_ids.append(payment_id)
            ports.metrics.increment("alerts.stream_halted")
            ports.logger.log("error", "recovery halted a stream", payment=payment_id, error=error)
            continue
        appended = ports.events.read(payment_id)[seen:]
        report.redriven += any(r.event.type == "ChargeNotFound" for r in appended)
        match payment.state:
            case PaymentState.SUCCESS:
                report.succeeded += 1
            case PaymentState.FAILURE:
                report.failed += 1
            case _:
                report.unresolved += 1
                report.unresolved_ids.append(payment_id)
    return report
