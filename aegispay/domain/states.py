"""Payment states and the one transition table every other view is drawn from."""

from __future__ import annotations

from enum import StrEnum


class PaymentState(StrEnum):
    """Where a payment stands; UNKNOWN means the gateway may or may not have charged."""

    INITIATED = "INITIATED"
    AUTHENTICATED = "AUTHENTICATED"
    PROCESSING = "PROCESSING"
    UNKNOWN = "UNKNOWN"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"

    @property
    def is_terminal(self) -> bool:
        """True when no event may follow."""
        return not TRANSITIONS[self]


S = PaymentState

# The single source of truth: state -> {event type -> next state}.
# UNKNOWN is left only through verification events (the gateway was asked).
TRANSITIONS: dict[PaymentState, dict[str, PaymentState]] = {
    S.INITIATED: {"PaymentAuthenticated": S.AUTHENTICATED, "PaymentFailed": S.FAILURE},
    S.AUTHENTICATED: {"ProcessingStarted": S.PROCESSING, "PaymentFailed": S.FAILURE},
    S.PROCESSING: {
        "PaymentRerouted": S.PROCESSING,
        "PaymentSucceeded": S.SUCCESS,
        "PaymentFailed": S.FAILURE,
        "GatewayOutcomeUnknown": S.UNKNOWN,
        "ChargeConfirmed": S.SUCCESS,
        "DeclineConfirmed": S.FAILURE,
        "ChargeNotFound": S.PROCESSING,
    },
    S.UNKNOWN: {
        "ChargeConfirmed": S.SUCCESS,
        "DeclineConfirmed": S.FAILURE,
        "ChargeNotFound": S.PROCESSING,
    },
    S.SUCCESS: {},
    S.FAILURE: {},
}

# Processing started: the gateway may have been called, so recovery must settle these.
IN_FLIGHT: tuple[PaymentState, ...] = (S.PROCESSING, S.UNKNOWN)


def next_state(state: PaymentState, event_type: str) -> PaymentState | None:
    """Return the state an event leads to, or None when the table forbids it."""
    return TRANSITIONS[state].get(event_type)
