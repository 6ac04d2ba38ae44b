"""The embedded adapters, one per port and technology: the defaults and the tests' fakes."""

from aegispay.infra.clock import SystemClock, VirtualClock
from aegispay.infra.events.memory import InMemoryEventStore
from aegispay.infra.events.sqlite import SQLiteEventStore
from aegispay.infra.gateway.ledger import InMemoryLedger, SQLiteLedger
from aegispay.infra.gateway.simulated import SimulatedGateway
from aegispay.infra.ids import RandomIdGenerator, SeededIdGenerator
from aegispay.infra.locks.memory import InMemoryLockManager
from aegispay.infra.projections.memory import InMemoryProjectionStore
from aegispay.infra.projections.sqlite import SQLiteProjectionStore
from aegispay.infra.queue.memory import InMemoryPaymentQueue
from aegispay.infra.telemetry import MemoryLogger, MemoryMetrics

__all__ = [
    "InMemoryEventStore",
    "InMemoryLedger",
    "InMemoryLockManager",
    "InMemoryPaymentQueue",
    "InMemoryProjectionStore",
    "MemoryLogger",
    "MemoryMetrics",
    "RandomIdGenerator",
    "SQLiteEventStore",
    "SQLiteLedger",
    "SQLiteProjectionStore",
    "SeededIdGenerator",
    "SimulatedGateway",
    "SystemClock",
    "VirtualClock",
]
