"""AegisPay: a payment engine that stays correct when everything fails, and shows how."""

from aegispay.app import AegisPay
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
from aegispay.domain.failures import ERROR_CLASSES, ErrorClass, GatewayError
from aegispay.domain.money import Money
from aegispay.domain.payment import Payment, evolve, replay
from aegispay.domain.states import TRANSITIONS, PaymentState
from aegispay.infra.clock import SystemClock, VirtualClock
from aegispay.io import IO
from aegispay.orchestration.ports import RecordedEvent
from aegispay.recovery.coordinator import RecoveryReport
from aegispay.resilience.breaker import BreakerConfig, BreakerState
from aegispay.resilience.retry import RetryPolicy
from aegispay.sim.chaos import run_chaos
from aegispay.sim.crashpoints import BOUNDARIES, ProcessCrash
from aegispay.sim.enumeration import enumerate_crashes
from aegispay.sim.faults import FAULT_KINDS, FailureConfig, ScheduledFault
from aegispay.sim.invariants import check_invariants, event_log_digest
from aegispay.sim.workload import run_workload, settle

__all__ = [
    "BOUNDARIES",
    "ERROR_CLASSES",
    "FAULT_KINDS",
    "IO",
    "TRANSITIONS",
    "AegisPay",
    "AegisPayError",
    "BreakerConfig",
    "BreakerState",
    "ChargeRecord",
    "ChargeStatus",
    "ConcurrencyError",
    "ErrorClass",
    "EventContinuityError",
    "EventIntegrityError",
    "FailureConfig",
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
    "ProcessCrash",
    "RecordedEvent",
    "RecoveryReport",
    "RetryPolicy",
    "ScheduledFault",
    "SystemClock",
    "VirtualClock",
    "check_invariants",
    "enumerate_crashes",
    "event_log_digest",
    "evolve",
    "payment_id_for",
    "replay",
    "run_chaos",
    "run_workload",
    "settle",
]
