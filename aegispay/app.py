"""AegisPay: the composition root. It builds the adapters, wires the ports, and runs programs."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from aegispay.domain.charges import ChargeRecord
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
from aegispay.recovery.coordinator import RecoveryReport, recover
from aegispay.resilience.breaker import BreakerConfig, CircuitBreaker
from aegispay.resilience.gateway import ResilientGateway
from aegispay.resilience.retry import RetryPolicy
from aegispay.resilience.routing import GatewayRoutes
from aegispay.service import PaymentService
from aegispay.sim.faults import FailureConfig, FaultInjector

GATEWAY_NAMES = ("primary", "fallback")


@dataclass(frozen=True)
class Settings:
    """The tunable policies of an engine: faults, retries, breakers, and the seed behind them."""

    seed: int = 0
    faults: FailureConfig = field(default_factory=FailureConfig)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)


class AegisPay:
    """A payment engine: create payments idempotently and drive them to the gateway's truth."""

    def __init__(
        self,
        *,
        events: EventStore,
        projections: ProjectionStore,
        locks: LockManager,
        ledgers: dict[str, Ledger],
        clock: Clock,
        ids: IdGenerator,
        settings: Settings,
        closers: tuple[Callable[[], None], ...] = (),
    ) -> None:
        self.clock = clock
        self.metrics = MemoryMetrics()
        self.logger = MemoryLogger(clock)
        self.locks = locks
        self.event_store = events
        self.projections = projections
        self.settings = settings
        self.faults = {
            name: FaultInjector(
                settings.faults, clock, self.metrics, seed=f"{settings.seed}/faults/{name}"
            )
            for name in ledgers
        }
        self.gateways = {
            name: SimulatedGateway(name, ledger, clock, self.faults[name])
            for name, ledger in ledgers.items()
        }
        self.routes = GatewayRoutes(
            [
                ResilientGateway(
                    gateway,
                    breaker=CircuitBreaker(name, clock, self.metrics, settings.breaker),
                    policy=settings.retry,
                    clock=clock,
                    metrics=self.metrics,
                    rng=random.Random(f"{settings.seed}/jitter/{name}"),
                )
                for name, gateway in self.gateways.items()
            ]
        )
        self.ports = Ports(
            events=events,
            projections=projections,
            gateways=self.routes,
            clock=clock,
            ids=ids,
            logger=self.logger,
            metrics=self.metrics,
        )
        self._service = PaymentService(self.ports, locks)
        self._closers = closers

    @property
    def gateway(self) -> SimulatedGateway:
        """The primary simulated gateway."""
        return self.gateways[GATEWAY_NAMES[0]]

    def circuit_breaker(self, name: str = "primary") -> CircuitBreaker:
        """The breaker in front of a gateway, with its `.state` and recorded `.transitions`."""
        if name not in self.gateways:
            raise InvalidRequest("name", f"must be one of {', '.join(self.gateways)}", name)
        return self.routes.get(name).breaker

    def set_faults(self, faults: FailureConfig | None = None, gateway: str | None = None) -> None:
        """Change injected faults while running; FailureConfig() (or None) heals everything."""
        config = faults if faults is not None else FailureConfig()
        if not isinstance(config, FailureConfig):
            raise InvalidRequest("faults", "must be a FailureConfig", faults)
        if gateway is not None and gateway not in self.faults:
            raise InvalidRequest("gateway", f"must be one of {', '.join(self.faults)}", gateway)
        for name, injector in self.faults.items():
            if gateway in (None, name):
                injector.configure(config)

    @classmethod
    def in_memory(
        cls,
        seed: int = 0,
        faults: FailureConfig | None = None,
        retry: RetryPolicy | None = None,
        breaker: BreakerConfig | None = None,
    ) -> AegisPay:
        """An engine entirely in memory on a virtual clock; the seed makes runs reproducible."""
        settings = _settings(seed, faults, retry, breaker)
        clock = VirtualClock()
        return cls(
            events=InMemoryEventStore(),
            projections=InMemoryProjectionStore(),
            locks=InMemoryLockManager(clock),
            ledgers={name: InMemoryLedger() for name in GATEWAY_NAMES},
            clock=clock,
            ids=SeededIdGenerator(seed),
            settings=settings,
        )

    @classmethod
    def open(
        cls,
        store: str = "sqlite:///aegispay.db",
        gateway: str = "sqlite:///aegispay-gateway.db",
        *,
        seed: int = 0,
        faults: FailureConfig | None = None,
        retry: RetryPolicy | None = None,
        breaker: BreakerConfig | None = None,
        clock: Clock | None = None,
    ) -> AegisPay:
        """An engine over durable stores named by URL ('sqlite:///path.db' or 'memory://')."""
        store_url = parse_store_url("store", store)
        gateway_url = parse_store_url("gateway", gateway)
        settings = _settings(seed, faults, retry, breaker)
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
        ledgers: dict[str, Ledger] = {}
        for name in GATEWAY_NAMES:
            if gateway_url.scheme == "sqlite":
                _ensure_parent("gateway", gateway_url.path)
                sqlite_ledger = SQLiteLedger(gateway_url.path, gateway=name)
                closers.append(sqlite_ledger.close)
                ledgers[name] = sqlite_ledger
            else:
                ledgers[name] = InMemoryLedger()
        return cls(
            events=events,
            projections=projections,
            locks=InMemoryLockManager(clock),
            ledgers=ledgers,
            clock=clock,
            ids=RandomIdGenerator(),
            settings=settings,
            closers=tuple(closers),
        )

    def recover(self) -> RecoveryReport:
        """Find payments left in flight, verify each with its gateway, and settle it."""
        return recover(self.ports, self._service)

    def charges(self) -> list[ChargeRecord]:
        """Every charge record of every gateway."""
        return [record for gateway in self.gateways.values() for record in gateway.charges()]

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


def _settings(
    seed: object,
    faults: FailureConfig | None,
    retry: RetryPolicy | None,
    breaker: BreakerConfig | None,
) -> Settings:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidRequest("seed", "must be an integer", seed)
    for field_name, value, kind in (
        ("faults", faults, FailureConfig),
        ("retry", retry, RetryPolicy),
        ("breaker", breaker, BreakerConfig),
    ):
        if value is not None and not isinstance(value, kind):
            raise InvalidRequest(field_name, f"must be a {kind.__name__}", value)
    return Settings(
        seed=seed,
        faults=faults or FailureConfig(),
        retry=retry or RetryPolicy(),
        breaker=breaker or BreakerConfig(),
    )


def _ensure_parent(field: str, path: str) -> None:
    parent = Path(path).parent
    if not parent.is_dir():
        raise InvalidRequest(field, f"directory {str(parent)!r} does not exist", path)
