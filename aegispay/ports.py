"""The ports: what the engine needs from the world. Implement one to plug in your own adapter."""

from aegispay.orchestration.ports import (
    Clock,
    EventStore,
    Gateways,
    IdGenerator,
    LockManager,
    Logger,
    Metrics,
    PaymentGateway,
    ProjectionStore,
    RecordedEvent,
    RecoveryLog,
)

__all__ = [
    "Clock",
    "EventStore",
    "Gateways",
    "IdGenerator",
    "LockManager",
    "Logger",
    "Metrics",
    "PaymentGateway",
    "ProjectionStore",
    "RecordedEvent",
    "RecoveryLog",
]
