"""AegisPay: the composition root. It builds the adapters, wires the ports, and runs programs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from aegispay.domain.commands import MAX_ID_LENGTH, CreatePayment, validate_text
from aegispay.domain.errors import InvalidRequest, PaymentNotFound
from aegispay.domain.events import PaymentEvent
from aegispay.domain.payment import Payment
from aegispay.domain.states import PaymentState
from aegispay.infra.clock import SystemClock, VirtualClock
from aegispay.infra.events.memory import InMemoryEventStore
from aegispay.infra.events.sqlite import SQLiteEventStore
from aegispay.infra.gateway.ledger import InMemoryLedger, Ledger, SQLiteLedger
from aegispay.infra.gateway.simulated import SimulatedGateway
from aegispay.infra.ids import RandomIdGenerator, SeededIdGenerator
from aegispay.infra.locks.memory import InMemoryLockManager
from aegispay.infra.projections.memory import InMemoryProjectionStore
from aegispay.infra.projections.sqlite import SQLiteProjectionStore
from aegispay.infra.telemetry import MemoryLogger, MemoryMetrics
from aegispay.infra.urls import parse_store_url
from aegispay.orchestration import workflows
from aegispay.orchestration.ports import (
    Clock,
    EventStore,
    IdGenerator,
    LockManager,
    Ports,
    ProjectionStore,
)
from aegispay.service import PaymentService


class AegisPay:
    """A payment engine: create payments idempotently and process them to a terminal state."""

    def __init__(
        self,
        *,
        events: EventStore,
        projections: ProjectionStore,
        locks: LockManager,
        gateway: SimulatedGateway,
        clock: Clock,
        ids: IdGenerator,
        closers: tuple[Callable[[], None], ...] = (),
    ) -> None:
        self.clock = clock
        self.metrics = MemoryMetrics()
        self.logger = MemoryLogger(clock)
        self.gateway = gateway
        self.locks = locks
        self.event_store = events
        self.projections = projections
        self.ports = Ports(
            events=events,
            projections=projections,
            gateway=gateway,
            clock=clock,
            ids=ids,
            logger=self.logger,
            metrics=self.metrics,
        )
        self._service = PaymentService(self.ports, locks)
        self._closers = closers

    @classmethod
    def in_memory(cls, seed: int = 0) -> AegisPay:
        """An engine entirely in memory on a virtual clock; the seed makes runs reproducible."""
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise InvalidRequest("seed", "must be an integer", seed)
        clock = VirtualClock()
        return cls(
            events=InMemoryEventStore(),
            projections=InMemoryProjectionStore(),
            locks=InMemoryLockManager(clock),
            gateway=SimulatedGateway("primary", InMemoryLedger(), clock),
            clock=clock,
            ids=SeededIdGenerator(seed),
        )

    @classmethod
    def open(
        cls,
        store: str = "sqlite:///aegispay.db",
        gateway: str = "sqlite:///aegispay-gateway.db",
        clock: Clock | None = None,
    ) -> AegisPay:
        """An engine over durable stores named by URL ('sqlite:///path.db' or 'memory://')."""
        store_url = parse_store_url("store", store)
        gateway_url = parse_store_url("gateway", gateway)
        clock = clock or SystemClock()
        closers: list[Callable[[], None]] = []
        events: EventStore
        projections: ProjectionStore
        if store_url.scheme == "sqlite":
            _ensure_parent("store", store_url.path)
            sqlite_events = SQLiteEventStore(store_url.path)
            sqlite_projections = SQLiteProjectionStore(store_url.path)
            closers += [sqlite_events.close, sqlite_projections.close]
            events, projections = sqlite_events, sqlite_projections
        else:
            events, projections = InMemoryEventStore(), InMemoryProjectionStore()
        ledger: Ledger
        if gateway_url.scheme == "sqlite":
            _ensure_parent("gateway", gateway_url.path)
            sqlite_ledger = SQLiteLedger(gateway_url.path)
            closers.append(sqlite_ledger.close)
            ledger = sqlite_ledger
        else:
            ledger = InMemoryLedger()
        return cls(
            events=events,
            projections=projections,
            locks=InMemoryLockManager(clock),
            gateway=SimulatedGateway("primary", ledger, clock),
            clock=clock,
            ids=RandomIdGenerator(),
            closers=tuple(closers),
        )

    def create_payment(
        self,
        *,
        idempotency_key: str,
        amount: object,
        currency: str,
        customer_id: str,
        payment_method: str,
    ) -> Payment:
        """Create a payment once per idempotency key; the same key and parameters return it."""
        command = CreatePayment.parse(
            idempotency_key=idempotency_key,
            amount=amount,
            currency=currency,
            customer_id=customer_id,
            payment_method=payment_method,
        )
        return self._service.create(command).payment

    def process_payment(self, payment_id: str) -> Payment:
        """Authenticate, charge and settle a payment; calling it again is safe."""
        return self._service.process(self._valid_id(payment_id))

    def get_payment(self, payment_id: str) -> Payment:
        """Return a payment as its events tell it."""
        return workflows.require(self.ports, self._valid_id(payment_id)).unsafe_run()

    def list_payments(self, state: PaymentState | str | None = None) -> list[Payment]:
        """Return payments (of one state, if given) from the projection, oldest first."""
        if state is None:
            return self.projections.list()
        try:
            wanted = PaymentState(state.upper() if isinstance(state, str) else state)
        except ValueError:
            names = ", ".join(PaymentState)
            raise InvalidRequest("state", f"must be one of {names}", state) from None
        return self.projections.list(wanted)

    def events(self, payment_id: str) -> list[PaymentEvent]:
        """Return a payment's events in order: its history and its source of truth."""
        valid = self._valid_id(payment_id)
        recorded = self.event_store.read(valid)
        if not recorded:
            raise PaymentNotFound(valid)
        return [r.event for r in recorded]

    def close(self) -> None:
        """Close the stores' connections."""
        for close in self._closers:
            close()

    def __enter__(self) -> AegisPay:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def _valid_id(self, payment_id: object) -> str:
        return validate_text("payment_id", payment_id, MAX_ID_LENGTH)


def _ensure_parent(field: str, path: str) -> None:
    parent = Path(path).parent
    if not parent.is_dir():
        raise InvalidRequest(field, f"directory {str(parent)!r} does not exist", path)
