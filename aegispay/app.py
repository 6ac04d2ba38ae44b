"""AegisPay: the composition root. It builds the adapters, wires the ports, and runs programs."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import TypeVar, cast

from aegispay.domain.charges import ChargeRecord
from aegispay.domain.commands import MAX_ID_LENGTH, CreatePayment, validate_text
from aegispay.domain.errors import InvalidRequest, PaymentNotFound
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
from aegispay.infra.sqlite import opening
from aegispay.infra.telemetry import MemoryLogger, MemoryMetrics
from aegispay.infra.urls import parse_storage_urls, parse_store_url
from aegispay.io import IO
from aegispay.orchestration import workflows
from aegispay.orchestration.ports import (
    Clock,
    EventStore,
    IdGenerator,
    LockManager,
    PaymentGateway,
    Ports,
    ProjectionStore,
    RecordedEvent,
)
from aegispay.recovery.coordinator import RecoveryReport, rebuild_projections, recover
from aegispay.resilience.breaker import BreakerConfig, CircuitBreaker
from aegispay.resilience.gateway import ResilientGateway
from aegispay.resilience.retry import RetryPolicy
from aegispay.resilience.routing import GatewayRoutes
from aegispay.service import PaymentService
from aegispay.sim.crashpoints import Boundaries, CrashPoints, Side
from aegispay.sim.faults import FailureConfig, FaultInjector, ProjectionFaults
from aegispay.sim.invariants import (
    InvariantReport,
    charges_in_reference_order,
    check_invariants,
)

GATEWAY_NAMES = ("primary", "fallback")
P = TypeVar("P", RetryPolicy, BreakerConfig)


@dataclass(frozen=True)
class Settings:
    """The tunable policies of an engine: faults, retries, breakers, and the seed behind them."""

    seed: int = 0
    faults: FailureConfig = field(default_factory=FailureConfig)
    # One retry policy and one breaker configuration per gateway name.
    retry: dict[str, RetryPolicy] = field(default_factory=dict)
    breaker: dict[str, BreakerConfig] = field(default_factory=dict)
    # How many restarts came before: each process draws its own seeded sequences.
    generation: int = 0

    def seed_for(self, part: str) -> str:
        """The seed of one random part of this process (faults, jitter, ids)."""
        return f"{self.seed}/{self.generation}/{part}"


@dataclass
class Storage:
    """What outlives a process: the event store, the projection, the gateways' ledgers."""

    events: EventStore
    projections: ProjectionStore
    ledgers: dict[str, Ledger]
    closers: tuple[Callable[[], None], ...] = ()
    # Durable storage is reopened by a restarted process; memory is handed over as it is.
    reopen: Callable[[], Storage] | None = None

    @classmethod
    def in_memory(cls, clock: Clock) -> Storage:
        """Stores in this process's memory, standing for a disk that survives restarts."""
        return cls(
            InMemoryEventStore(clock),
            InMemoryProjectionStore(),
            {name: InMemoryLedger() for name in GATEWAY_NAMES},
        )

    @classmethod
    def open(cls, store: str, gateway: str, clock: Clock) -> Storage:
        """Open the stores named by URL; memory:// ones live as long as this object.

        The event store stamps each event it writes with the time on `clock`.
        """
        store_url, gateway_url = parse_storage_urls(store, gateway)
        memory = cls.in_memory(clock)
        closers: list[Callable[[], None]] = []
        events, projections = memory.events, memory.projections
        if store_url.scheme == "sqlite":
            with opening("store", store_url.path):
                sqlite_events = SQLiteEventStore(store_url.path, clock)
                # One set of connections: an append writes its projection row in its transaction.
                sqlite_projections = SQLiteProjectionStore(
                    store_url.path, connections=sqlite_events.connections
                )
            closers += [sqlite_events.close, sqlite_projections.close]
            events, projections = sqlite_events, sqlite_projections
        ledgers = memory.ledgers
        if gateway_url.scheme == "sqlite":
            with opening("gateway", gateway_url.path):
                sqlite_ledgers = {
                    name: SQLiteLedger(gateway_url.path, name) for name in GATEWAY_NAMES
                }
            closers += [ledger.close for ledger in sqlite_ledgers.values()]
            ledgers = dict(sqlite_ledgers)
        storage = cls(events, projections, ledgers, tuple(closers))
        if closers:
            storage.reopen = lambda: _reopened(storage, store, gateway, clock)
        return storage

    def close(self) -> None:
        """Close every connection to durable storage."""
        for close in self.closers:
            close()


def _reopened(old: Storage, store: str, gateway: str, clock: Clock) -> Storage:
    fresh = Storage.open(store, gateway, clock)
    # A store that is memory:// is handed over: only the files are reopened.
    if parse_store_url("store", store).scheme == "memory":
        fresh.events, fresh.projections = old.events, old.projections
    if parse_store_url("gateway", gateway).scheme == "memory":
        fresh.ledgers = old.ledgers
    return fresh


class AegisPay:
    """A payment engine: create payments idempotently and drive them to the gateway's truth."""

    def __init__(
        self,
        *,
        storage: Storage,
        clock: Clock,
        settings: Settings,
        ids: IdGenerator | None = None,
    ) -> None:
        self.clock = clock
        self.settings = settings
        self.storage = storage
        self.metrics = MemoryMetrics()
        self.logger = MemoryLogger(clock)
        self.crashpoints = CrashPoints()
        self.projection_faults = ProjectionFaults(
            settings.faults, self.metrics, settings.seed_for("projection")
        )
        self.crashpoints.listeners.append(self.projection_faults)
        # The raw stores, for reading and auditing; the ports get them behind crash points.
        self.event_store = storage.events
        self.projections = storage.projections
        self.locks: LockManager = InMemoryLockManager(clock)
        self.faults = {
            name: FaultInjector(settings.faults, clock, self.metrics, settings.seed_for(name))
            for name in storage.ledgers
        }
        for injector in self.faults.values():
            injector.on_the_wire = self._on_the_wire
        self.gateways = {
            name: SimulatedGateway(name, ledger, clock, self.faults[name])
            for name, ledger in storage.ledgers.items()
        }
        self.routes = GatewayRoutes(
            [self._resilient(gateway) for gateway in self.gateways.values()]
        )
        self.ports = Ports(
            events=cast(EventStore, self._crossing("events", storage.events)),
            projections=cast(ProjectionStore, self._crossing("projection", storage.projections)),
            gateways=self.routes,
            clock=clock,
            ids=ids or SeededIdGenerator(settings.seed_for("ids")),
            logger=self.logger,
            metrics=self.metrics,
        )
        self._service = PaymentService(
            self.ports, cast(LockManager, self._crossing("locks", self.locks))
        )

    def _on_the_wire(self, operation: str) -> None:
        self.crashpoints.cross(f"gateway.{operation}", "inside")

    def _crossing(self, port: str, adapter: object) -> Boundaries:
        return Boundaries(port, adapter, self.crashpoints)

    def _resilient(self, gateway: SimulatedGateway) -> ResilientGateway:
        return ResilientGateway(
            cast(PaymentGateway, self._crossing("gateway", gateway)),
            breaker=CircuitBreaker(
                gateway.name, self.clock, self.metrics, self.settings.breaker[gateway.name]
            ),
            policy=self.settings.retry[gateway.name],
            clock=self.clock,
            metrics=self.metrics,
            rng=random.Random(self.settings.seed_for(f"jitter/{gateway.name}")),
        )

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
        if gateway is None:
            self.projection_faults.configure(config)
        self.settings = replace(self.settings, faults=config)

    @classmethod
    def in_memory(
        cls,
        seed: int = 0,
        faults: FailureConfig | None = None,
        retry: RetryPolicy | Mapping[str, RetryPolicy] | None = None,
        breaker: BreakerConfig | Mapping[str, BreakerConfig] | None = None,
    ) -> AegisPay:
        """An engine entirely in memory on a virtual clock; the seed makes runs reproducible."""
        settings = _settings(seed, faults, retry, breaker)
        clock = VirtualClock()
        return cls(storage=Storage.in_memory(clock), clock=clock, settings=settings)

    @classmethod
    def open(
        cls,
        store: str = "sqlite:///aegispay.db",
        gateway: str = "sqlite:///aegispay-gateway.db",
        *,
        seed: int = 0,
        faults: FailureConfig | None = None,
        retry: RetryPolicy | Mapping[str, RetryPolicy] | None = None,
        breaker: BreakerConfig | Mapping[str, BreakerConfig] | None = None,
        clock: Clock | None = None,
        recover_on_start: bool = False,
    ) -> AegisPay:
        """An engine over durable stores named by URL ('sqlite:///path.db' or 'memory://').

        Ids are random here, unique across processes and restarts; a seed still drives faults.
        """
        settings = _settings(seed, faults, retry, breaker)
        clock = clock or SystemClock()
        engine = cls(
            storage=Storage.open(store, gateway, clock),
            clock=clock,
            settings=settings,
            ids=RandomIdGenerator(),
        )
        if recover_on_start:
            engine.recover()
        return engine

    def crash_at(self, boundary: str, side: Side = "before", nth: int = 1) -> None:
        """Arm a one-shot ProcessCrash at the nth crossing of a boundary ('events.append' ...)."""
        if isinstance(nth, bool) or not isinstance(nth, int):
            raise InvalidRequest("nth", "must be a whole number, 1 or more", nth)
        try:
            self.crashpoints.crash_at(boundary, side, nth)
        except ValueError as error:
            field_name, _, rule = str(error).partition(": ")
            raise InvalidRequest(field_name, rule) from None

    def restart(self) -> AegisPay:
        """A new process over the same durable state: this one's memory and locks are gone."""
        storage = self.storage
        if storage.reopen is not None:
            storage.close()
            storage = storage.reopen()
        ids = None if isinstance(self.ports.ids, SeededIdGenerator) else RandomIdGenerator()
        settings = replace(self.settings, generation=self.settings.generation + 1)
        return AegisPay(storage=storage, clock=self.clock, settings=settings, ids=ids)

    def recover(self) -> RecoveryReport:
        """Repair the projection, then verify and settle every payment left in flight."""
        return recover(self.ports, self._service)

    def rebuild_projections(self) -> RecoveryReport:
        """Rebuild every projection row from the events; halted streams are reported."""
        return rebuild_projections(self.ports)

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
        """Create a payment once per idempotency key; the same key and parameters return it.

        `amount` is exact: a string such as "19.99", a Decimal or an int, never a float.
        `currency` is an ISO 4217 code; lowercase is accepted and upper-cased.
        """
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

    def processing_program(self, payment_id: str) -> IO[Payment]:
        """The IO program process_payment runs, built and not run: nothing happens until
        `.unsafe_run()`. It takes no lock; it is here to show where the effects are."""
        return workflows.process_payment(self.ports, self._valid_id(payment_id))

    def check_invariants(self) -> InvariantReport:
        """Check every invariant of docs/architecture.md on this engine's stored state."""
        # The ledgers are read in reference order, a page at a time: the audit streams.
        charges = charges_in_reference_order(self.storage.ledgers.values())
        return check_invariants(self.event_store, self.projections, charges)

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

    def events(self, payment_id: str) -> list[RecordedEvent]:
        """Return a payment's recorded events in version order (each with its `.version`,
        `.position`, `.recorded_at`, `.hash` and the domain `.event`): its source of truth."""
        valid = self._valid_id(payment_id)
        recorded = self.event_store.read(valid)
        if not recorded:
            raise PaymentNotFound(valid)
        return recorded

    def close(self) -> None:
        """Close the stores' connections."""
        self.storage.close()

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
    faults: object,
    retry: object,
    breaker: object,
) -> Settings:
    """Validate the engine's policies; retry and breaker take one value or one per gateway."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidRequest("seed", "must be an integer", seed)
    if faults is not None and not isinstance(faults, FailureConfig):
        raise InvalidRequest("faults", "must be a FailureConfig", faults)
    return Settings(
        seed=seed,
        faults=faults or FailureConfig(),
        retry=_per_gateway("retry", retry, RetryPolicy),
        breaker=_per_gateway("breaker", breaker, BreakerConfig),
    )


def _per_gateway(name: str, value: object, kind: type[P]) -> dict[str, P]:
    """One value for every gateway, or a mapping of gateway name to value (others get defaults)."""
    if value is None or isinstance(value, kind):
        return {gateway: value or kind() for gateway in GATEWAY_NAMES}
    rule = f"must be a {kind.__name__} or a mapping of gateway name to {kind.__name__}"
    if not isinstance(value, Mapping):
        raise InvalidRequest(name, rule, value)
    for gateway, item in value.items():
        if gateway not in GATEWAY_NAMES or not isinstance(item, kind):
            raise InvalidRequest(name, f"{rule}; gateways are {', '.join(GATEWAY_NAMES)}", value)
    return {gateway: value.get(gateway) or kind() for gateway in GATEWAY_NAMES}
