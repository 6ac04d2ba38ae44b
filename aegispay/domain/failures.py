"""Gateway failures and their classification, as data: the table decides each failure's policy."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from aegispay.domain.errors import AegisPayError


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
ERROR_CLASSES: dict[str, FailureRule] = {
    "timeout_before": FailureRule(
        ErrorClass.RETRYABLE, False, "timed out connecting: retry with backoff, same key"
    ),
    "network": FailureRule(
        ErrorClass.RETRYABLE, False, "connection refused: retry with backoff, same key"
    ),
    "timeout_after": FailureRule(
        ErrorClass.OUTCOME_UNKNOWN, True, "sent, no answer in time: go UNKNOWN, verify"
    ),
    "partial": FailureRule(
        ErrorClass.OUTCOME_UNKNOWN, True, "charged, response lost: go UNKNOWN, verify"
    ),
    "decline": FailureRule(ErrorClass.DEFINITIVE, False, "declined: FAILURE, never retried"),
    "circuit_open": FailureRule(
        ErrorClass.DEFINITIVE, False, "breaker open, not sent: fail fast or route elsewhere"
    ),
    "unexpected": FailureRule(
        ErrorClass.OUTCOME_UNKNOWN, True, "an error nobody classified: never guess, verify"
    ),
}


class GatewayError(AegisPayError):
    """A gateway call failed; `kind` names its row in ERROR_CLASSES."""

    kind = "unexpected"

    def __init__(self, gateway: str, detail: str = "") -> None:
        self.gateway = gateway
        super().__init__(f"{self.kind} at gateway {gateway!r}" + (f": {detail}" if detail else ""))


class GatewayTimeoutBeforeSend(GatewayError):
    """The call timed out before the request left: the gateway never saw it."""

    kind = "timeout_before"


class GatewayNetworkError(GatewayError):
    """The connection was refused: the gateway never saw the request."""

    kind = "network"


class GatewayTimeoutAfterSend(GatewayError):
    """The request was sent (and acted on) but no answer came in time."""

    kind = "timeout_after"


class GatewayResponseLost(GatewayError):
    """The gateway charged, then the response was lost on the way back."""

    kind = "partial"


class CircuitOpenError(GatewayError):
    """The breaker is open: the call was refused here without reaching the gateway."""

    kind = "circuit_open"


def kind_of(error: BaseException) -> str:
    """The table row an error belongs to: its kind, or 'unexpected' for anything unclassified."""
    kind = getattr(error, "kind", "unexpected")
    return kind if kind in ERROR_CLASSES else "unexpected"


def classify(error: BaseException) -> FailureRule:
    """Look an error's policy up in the table."""
    return ERROR_CLASSES[kind_of(error)]
