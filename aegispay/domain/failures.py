"""Gateway failures and their classification, as data: the table decides each failure's policy."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from aegispay.domain.errors import AegisPayError


class Fault(StrEnum):
    """Every kind of thing that goes wrong around a gateway call: one name, used everywhere.

    Errors carry one as their `kind`; ERROR_CLASSES gives the policy of those a call can raise;
    the simulator injects the rest too (slowness, a process crash, a failing projection write).
    """

    TIMEOUT_BEFORE = "timeout_before"
    NETWORK = "network"
    TIMEOUT_AFTER = "timeout_after"
    PARTIAL = "partial"
    DECLINE = "decline"
    CRASH = "crash"
    SLOW = "slow"
    PROJECTION = "projection"
    CIRCUIT_OPEN = "circuit_open"
    UNEXPECTED = "unexpected"


class ErrorClass(StrEnum):
    """What a failure lets us conclude, and so what we may do next."""

    RETRYABLE = "retryable"  # not charged: send the same request again after a backoff
    DEFINITIVE = "definitive"  # the answer is final for this gateway: never retry
    OUTCOME_UNKNOWN = "outcome_unknown"  # maybe charged: verify before anything else


@dataclass(frozen=True)
class FailureRule:
    """One row of the classification table."""

    error_class: ErrorClass
    may_have_charged: bool
    policy: str


# Edit a row to change a policy; a notebook prints this table as it stands.
ERROR_CLASSES: dict[Fault, FailureRule] = {
    Fault.TIMEOUT_BEFORE: FailureRule(
        ErrorClass.RETRYABLE, False, "timed out connecting: retry with backoff, same key"
    ),
    Fault.NETWORK: FailureRule(
        ErrorClass.RETRYABLE, False, "connection refused: retry with backoff, same key"
    ),
    Fault.TIMEOUT_AFTER: FailureRule(
        ErrorClass.OUTCOME_UNKNOWN, True, "sent, no answer in time: go UNKNOWN, verify"
    ),
    Fault.PARTIAL: FailureRule(
        ErrorClass.OUTCOME_UNKNOWN, True, "charged, response lost: go UNKNOWN, verify"
    ),
    Fault.DECLINE: FailureRule(ErrorClass.DEFINITIVE, False, "declined: FAILURE, never retried"),
    Fault.CIRCUIT_OPEN: FailureRule(
        ErrorClass.DEFINITIVE, False, "breaker open, not sent: cancel, then fail or reroute"
    ),
    Fault.UNEXPECTED: FailureRule(
        ErrorClass.OUTCOME_UNKNOWN, True, "an error nobody classified: never guess, verify"
    ),
}
# Transport failures: the request or its answer was lost on the way (a lookup may meet them).
TRANSPORT_FAULTS: tuple[Fault, ...] = tuple(
    kind
    for kind, rule in ERROR_CLASSES.items()
    if rule.error_class is not ErrorClass.DEFINITIVE and kind is not Fault.UNEXPECTED
)


class GatewayError(AegisPayError):
    """A gateway call failed; `kind` names its row in ERROR_CLASSES."""

    kind = Fault.UNEXPECTED

    def __init__(self, gateway: str, detail: str = "") -> None:
        self.gateway = gateway
        super().__init__(f"{self.kind} at gateway {gateway!r}" + (f": {detail}" if detail else ""))


class GatewayTimeoutBeforeSend(GatewayError):
    """The call timed out before the request left: the gateway never saw it."""

    kind = Fault.TIMEOUT_BEFORE


class GatewayNetworkError(GatewayError):
    """The connection was refused: the gateway never saw the request."""

    kind = Fault.NETWORK


class GatewayTimeoutAfterSend(GatewayError):
    """The request was sent (and acted on) but no answer came in time."""

    kind = Fault.TIMEOUT_AFTER


class GatewayResponseLost(GatewayError):
    """The gateway charged, then the response was lost on the way back."""

    kind = Fault.PARTIAL


class CircuitOpenError(GatewayError):
    """The breaker is open: the call was refused here without reaching the gateway."""

    kind = Fault.CIRCUIT_OPEN


def kind_of(error: BaseException) -> Fault:
    """The table row an error belongs to: its kind, or UNEXPECTED for anything unclassified."""
    kind = getattr(error, "kind", Fault.UNEXPECTED)
    return kind if isinstance(kind, Fault) and kind in ERROR_CLASSES else Fault.UNEXPECTED


def classify(error: BaseException) -> FailureRule:
    """Look an error's policy up in the table."""
    return ERROR_CLASSES[kind_of(error)]
