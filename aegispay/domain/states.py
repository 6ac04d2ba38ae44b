"""Payment states and the one transition table every other view is drawn from."""

from __future__ import annotations

from enum import StrEnum


class PaymentState(StrEnum):
    """Where a payment stands; UNKNOWN means the gateway may or may not have charged."""

    INITIATED = "INITIATED"
    AUTHENTICATED = "AUTHENTICATED"
    PROCESSING = "PROCESSING"
    UNKNOWN = "UNKNOWN"
    CANCELLING = "CANCELLING"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"

    @property
    def is_terminal(self) -> bool:
        """True when no event may follow."""
        return not TRANSITIONS[self]


S = PaymentState

# The single source of truth: state -> {event type -> next state}.
# Once ProcessingStarted is recorded, anyone may have sent the charge: from then on FAILURE
# follows only a definitive answer from the gateway, a decline or a confirmed cancel of our
# reference (after which the gateway refuses that reference). UNKNOWN and CANCELLING are left
# only through what the gateway answers.
TRANSITIONS: dict[PaymentState, dict[str, PaymentState]] = {
    S.INITIATED: {"PaymentAuthenticated": S.AUTHENTICATED, "PaymentFailed": S.FAILURE},
    S.AUTHENTICATED: {"ProcessingStarted": S.PROCESSING, "PaymentFailed": S.FAILURE},
    S.PROCESSING: {
        "PaymentSucceeded": S.SUCCESS,
        "PaymentFailed": S.FAILURE,
        "GatewayOutcomeUnknown": S.UNKNOWN,
        "ChargeConfirmed": S.SUCCESS,
        "DeclineConfirmed": S.FAILURE,
        "ChargeNotFound": S.PROCESSING,
        "CancelRequested": S.CANCELLING,
        "CancelConfirmed": S.FAILURE,
    },
    S.UNKNOWN: {
        "ChargeConfirmed": S.SUCCESS,
        "DeclineConfirmed": S.FAILURE,
        "ChargeNotFound": S.PROCESSING,
        "CancelConfirmed": S.FAILURE,
    },
    S.CANCELLING: {
        "CancelConfirmed": S.FAILURE,
        "ChargeConfirmed": S.SUCCESS,
        "DeclineConfirmed": S.FAILURE,
        "PaymentRerouted": S.PROCESSING,
    },
    S.SUCCESS: {},
    S.FAILURE: {},
}

# Processing started: the gateway may have been called, so recovery must settle these.
IN_FLIGHT: tuple[PaymentState, ...] = (S.PROCESSING, S.UNKNOWN, S.CANCELLING)


def next_state(state: PaymentState, event_type: str) -> PaymentState | None:
    """Return the state an event leads to, or None when the table forbids it."""
    return TRANSITIONS[state].get(event_type)
