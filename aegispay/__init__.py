"""AegisPay: a payment engine that stays correct when everything fails, and shows how."""

from aegispay.app import AegisPay
from aegispay.domain.charges import ChargeRecord, ChargeStatus
from aegispay.domain.errors import (
    AegisPayError,
    ConcurrencyError,
    EventContinuityError,
    IdempotencyKeyConflict,
    InvalidRequest,
    InvalidTransition,
    LockNotHeld,
    LockTimeout,
    PaymentNotFound,
)
from aegispay.domain.money import Money
from aegispay.domain.payment import Payment, evolve, replay
from aegispay.domain.states import TRANSITIONS, PaymentState
from aegispay.infra.clock import SystemClock, VirtualClock
from aegispay.io import IO

__all__ = [
    "IO",
    "TRANSITIONS",
    "AegisPay",
    "AegisPayError",
    "ChargeRecord",
    "ChargeStatus",
    "ConcurrencyError",
    "EventContinuityError",
    "IdempotencyKeyConflict",
    "InvalidRequest",
    "InvalidTransition",
    "LockNotHeld",
    "LockTimeout",
    "Money",
    "Payment",
    "PaymentNotFound",
    "PaymentState",
    "SystemClock",
    "VirtualClock",
    "evolve",
    "replay",
]
