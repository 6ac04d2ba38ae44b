"""AegisPay: a payment engine that stays correct when everything fails, and shows how.

The engine's surface is here; the simulator's levers (faults, crash points, chaos, crash
enumeration, invariant checks) are in `aegispay.sim`. `AegisPay` is the engine with those
levers at hand, and without them asked for it is the plain engine (`Engine`).
"""

from typing import TYPE_CHECKING, Any

from aegispay.domain.charges import ChargeRecord, ChargeStatus
from aegispay.domain.commands import payment_id_for
from aegispay.domain.errors import (
    AegisPayError,
    ConcurrencyError,
    EventContinuityError,
    EventIntegrityError,
    IdempotencyKeyConflict,
    InvalidRequest,
    InvalidTransition,
    LockNotHeld,
    LockTimeout,
    PaymentNotFound,
)
from aegispay.domain.failures import ERROR_CLASSES, ErrorClass, Fault, GatewayError
from aegispay.domain.money import Money
from aegispay.domain.payment import Payment, evolve, replay
from aegispay.domain.states import IN_FLIGHT, TRANSITIONS, PaymentState
from aegispay.engine import Engine
from aegispay.infra.clock import SystemClock, VirtualClock
from aegispay.io import IO
from aegispay.orchestration.ports import RecordedEvent
from aegispay.recovery.coordinator import RecoveryReport
from aegispay.resilience.breaker import BreakerConfig, BreakerState
from aegispay.resilience.retry import RetryPolicy

# The package's front door re-exports the engine with the simulator's levers at hand.
from aegispay.sim.harness import AegisPay

if TYPE_CHECKING:
    # The labs, as `aegispay.labs`: they attack the engine above from outside, and are imported
    # on first use, so that `import aegispay` does not pay for them (the CLI imports them for
    # its `attack` command's choices; what they cost is small once viz's widgets stay out).
    from aegispay import labs

__all__ = [
    "ERROR_CLASSES",
    "IN_FLIGHT",
    "IO",
    "TRANSITIONS",
    "AegisPay",
    "AegisPayError",
    "BreakerConfig",
    "BreakerState",
    "ChargeRecord",
    "ChargeStatus",
    "ConcurrencyError",
    "Engine",
    "ErrorClass",
    "EventContinuityError",
    "EventIntegrityError",
    "Fault",
    "GatewayError",
    "IdempotencyKeyConflict",
    "InvalidRequest",
    "InvalidTransition",
    "LockNotHeld",
    "LockTimeout",
    "Money",
    "Payment",
    "PaymentNotFound",
    "PaymentState",
    "RecordedEvent",
    "RecoveryReport",
    "RetryPolicy",
    "SystemClock",
    "VirtualClock",
    "evolve",
    "labs",
    "payment_id_for",
    "replay",
]


if not TYPE_CHECKING:
    # Hidden from type checkers, which see the import above: a misspelt name stays an error.

    def __getattr__(name: str) -> Any:
        """`aegispay.labs`, imported on first use (PEP 562)."""
        if name == "labs":
            import importlib  # noqa: PLC0415 - only when the labs are asked for

            return importlib.import_module("aegispay.labs")
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
