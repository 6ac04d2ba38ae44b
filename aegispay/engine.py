"""The engine and its composition root: every port a keyword with an embedded default.

`Engine(...)` takes any event store, projection store, recovery log, lock manager, gateways,
clock, ids, logger and metrics; what is not given is the embedded default (memory, or SQLite
files named by URL with `Engine.open`, in-process locks, the simulated provider). It knows
nothing of the simulator: `aegispay.sim` wraps an engine's ports from outside, by overriding
`wrap_port` and `wrap_gateway`, and only when faults or crash points are asked for.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar, runtime_checkable

from aegispay.domain.charges import ChargeRecord
from aegispay.domain.commands import MAX_ID_LENGTH, CreatePayment, validate_text
from aegispay.domain.errors import InvalidRequest, PaymentNotFound
from aegispay.domain.payment import Payment
from aegispay.domain.states import PaymentState
from aegispay.infra.clock import SystemClock, VirtualClock
from aegispay.infra.events.chain import key_from_environment
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
from aegispay.infra.urls import StoreURL, parse_locks_url, parse_storage_urls, parse_store_url
from aegispay.io import IO
from aegispay.orchestration import workflows
from aegispay.orchestration.policy import ENGINE_POLICY, Policy
from aegispay.orchestration.ports import (
    Clock,
    EventStore,
    IdGenerator,
    LockManager,
    Logger,
    PaymentGateway,
    Ports,
    ProjectionStore,
    RecordedEvent,
    RecoveryLog,
)
from aegispay.recovery.coordinator import RecoveryReport, rebuild_projections, recover
from aegispay.resilience.breaker import BreakerConfig, CircuitBreaker
from aegispay.resilience.gateway import ResilientGateway
from aegispay.resilience.retry import RetryPolicy
from aegispay.resilience.routing import GatewayRoutes
from aegispay.service import PaymentService

GATEWAY_NAMES = ("primary", "fallback")
P = TypeVar("P", RetryPolicy, BreakerConfig)
A = TypeVar("A")


@dataclass(frozen=True)
class Settings:
    """The tunable policies of an engine: retries, breakers, and the seed behind them."""

    seed: int = 0
    # One retry policy and one breaker configuration per gateway name.
    retry: dict[str, RetryPolicy] = field(default_factory=dict)
    breaker: dict[str, BreakerConfig] = field(default_factory=dict)
    # How many restarts came before: each process draws its own seeded sequences.
    generation: int = 0
    # Seconds a payment's lease lasts: a holder that died blocks its payments this long.
    lock_ttl: float = 30.0

    def seed_for(self, part: str) -> str:
        """The seed of one random part of this process (faults, jitter, ids)."""
        return f"{self.seed}/{self.generation}/{part}"


@runtime_checkable
class LedgerGateway(PaymentGateway, Protocol):
    """A gateway that can list its ledger (the simulated provider can): what audits read."""

    def charges(self) -> list[ChargeRecord]:
        """Every record the gateway holds, in order."""
        ...


@dataclass
class Storage:
    """What outlives a process: events, projection, recovery log, the provider's ledgers."""

    events: EventStore
    projections: ProjectionStore
    recovery_log: RecoveryLog
    ledgers: dict[str, Ledger]
    closers: tuple[Callable[[], None], ...] = ()
    # Durable storage is reopened by a restarted process; memory is handed over as it is.
    reopen: Callable[[], Storage] | None = None

    @classmethod
    def in_memory(cls, clock: Clock, chain_key: bytes | None = None) -> Storage:
        """Stores in this process's memory, standing for a disk that survives restarts."""
        projections = InMemoryProjectionStore()
        return cls(
            InMemoryEventStore(clock, key=chain_key),
            projections,
            projections,
            {name: InMemoryLedger() for name in GATEWAY_NAMES},
        )

    @classmethod
    def open(
        cls, store: str, gateway: str, clock: Clock, chain_key: bytes | None = None
    ) -> Storage:
        """Open the stores named by URL; memory:// ones live as long as this object.

        The event store stamps each event it writes with the time on `clock`, and keys its
        hash chain with `chain_key` when one is given.
        """
        store_url, gateway_url = parse_storage_urls(store, gateway)
        storage = cls.in_memory(clock, chain_key)
        closers: list[Callable[[], None]] = []
        if store_url.scheme == "sqlite":
            with opening("store", store_url.path):
                events = SQLiteEventStore(store_url.path, clock, key=chain_key)
                # One set of connections: an append writes its projection row in its transaction.
                projections = SQLiteProjectionStore(store_url.path, connections=events.connections)
            closers += [events.close, projections.close]
            storage.events, storage.projections, storage.recovery_log = (
                events, projections, projections,
            )  # fmt: skip
        if gateway_url.scheme == "sqlite":
            with opening("gateway", gateway_url.path):
                ledgers = {name: SQLiteLedger(gateway_url.path, name) for name in GATEWAY_NAMES}
            closers += [ledger.close for ledger in ledgers.values()]
            storage.ledgers = dict(ledgers)
        if store_url.scheme == "postgresql":
            storage.events, projections, close = _open_postgres_store(store_url, clock, chain_key)
            storage.projections = storage.recovery_log = projections
            closers.append(close)
        if gateway_url.scheme == "postgresql":
            storage.ledgers, close = _open_postgres_ledgers(gateway_url)
            closers.append(close)
        storage.closers = tuple(closers)
        if closers:
            storage.reopen = lambda: _reopened(storage, store, gateway, clock, chain_key)
        return storage

    def close(self) -> None:
        """Close every connection to durable storage."""
        for close in self.closers:
            close()


# psycopg is imported only when a postgresql:// URL is opened: the embedded path never loads it.
def _open_postgres_store(
    url: StoreURL, clock: Clock, chain_key: bytes | None
) -> tuple[EventStore, Any, Callable[[], None]]:
    """Open the event store and projection (also the recovery log) on one pool."""
    from aegispay.infra.events.postgres import PostgresEventStore  # noqa: PLC0415
    from aegispay.infra.postgres import PostgresDatabase  # noqa: PLC0415
    from aegispay.infra.projections.postgres import PostgresProjectionStore  # noqa: PLC0415

    database = PostgresDatabase(url.path, url.schema, field="store")
    return (
        PostgresEventStore(database, clock, key=chain_key),
        PostgresProjectionStore(database),
        database.close,
    )


def _open_postgres_ledgers(url: StoreURL) -> tuple[dict[str, Ledger], Callable[[], None]]:
    """Open every gateway's ledger on one pool: the provider every process shares."""
    from aegispay.infra.gateway.postgres import PostgresLedger  # noqa: PLC0415
    from aegispay.infra.postgres import PostgresDatabase  # noqa: PLC0415

    database = PostgresDatabase(url.path, url.schema, field="gateway")
    return {name: PostgresLedger(database, name) for name in GATEWAY_NAMES}, database.close


def open_locks(
    url: str, clock: Clock, on_outage: Callable[[str], None] | None = None
) -> LockManager:
    """The lock manager a URL names: 'memory://' (this process only) or 'redis://host:port/db'.
    With `on_outage`, a Redis lock manager goes on without leases while Redis is down, saying
    so through it (the event store's expected version is the fence)."""
    parsed = parse_locks_url(url)
    if parsed.scheme == "memory":
        return InMemoryLockManager(clock)
    from aegispay.infra.locks.redis import RedisLockManager  # noqa: PLC0415

    return RedisLockManager.from_url(parsed.url, clock, prefix=parsed.prefix, on_outage=on_outage)


def _reopened(
    old: Storage, store: str, gateway: str, clock: Clock, chain_key: bytes | None
) -> Storage:
    fresh = Storage.open(store, gateway, clock, chain_key)
    # A store that is memory:// is handed over: only the files are reopened.
    if parse_store_url("store", store).scheme == "memory":
        fresh.events, fresh.projections = old.events, old.projections
        fresh.recovery_log = old.recovery_log
    if parse_store_url("gateway", gateway).scheme == "memory":
        fresh.ledgers = old.ledgers
    return fresh


class Engine:
    """A payment engine: create payments idempotently and drive them to the gateway's truth.

    Every port is a keyword; what is not given is the embedded default. For example, with a
    lock manager and a gateway of your own (anything with the ports' methods):
        Engine.open("sqlite:///pay.db", locks=my_locks, gateways=[my_gateway])
    """

    def __init__(
        self,
        *,
        storage: Storage | None = None,
        events: EventStore | None = None,
        projections: ProjectionStore | None = None,
        recovery_log: RecoveryLog | None = None,
        locks: LockManager | None = None,
        gateways: Sequence[PaymentGateway] | None = None,
        clock: Clock | None = None,
        ids: IdGenerator | None = None,
        logger: Logger | None = None,
        metrics: MemoryMetrics | None = None,
        settings: Settings | None = None,
        policy: Policy | None = None,
    ) -> None:
        self.clock: Clock = clock or VirtualClock()
        # The replaceable decisions of processing: the engine's own unless another is given.
        self.policy = policy or ENGINE_POLICY
        self.settings = settings or _settings(0, None, None)
        self.storage = storage or Storage.in_memory(self.clock)
        self.storage.events = events or self.storage.events
        self.storage.projections = projections or self.storage.projections
        self.storage.recovery_log = recovery_log or self.storage.recovery_log
        self.metrics = metrics or MemoryMetrics()
        self.logger: Logger = logger or MemoryLogger(self.clock)
        # The raw stores, for reading and auditing; the ports may get them wrapped.
        self.event_store = self.storage.events
        self.projections = self.storage.projections
        self.locks: LockManager = locks or InMemoryLockManager(self.clock)
        # A lock service outlives our process (Redis does); in-process locks die with it.
        self._given_locks = locks
        # A provider outlives our process: gateways given here are handed to the next one.
        self._given_gateways = gateways
        chosen = gateways or [
            SimulatedGateway(name, ledger, self.clock)
            for name, ledger in self.storage.ledgers.items()
        ]
        self._gateways: dict[str, PaymentGateway] = {gateway.name: gateway for gateway in chosen}
        self._ids = ids or SeededIdGenerator(self.settings.seed_for("ids"))
        configs = {
            name: self._policy(self.settings.breaker, name, BreakerConfig)
            for name in self._gateways
        }
        self.breakers = {
            name: CircuitBreaker(name, self.clock, self.metrics, config)
            for name, config in configs.items()
        }
        self._wire()

    def _wire(self) -> None:
        """Build the ports from the adapters, each given through its wrapper (none here)."""
        self.routes = GatewayRoutes(
            [self._resilient(name, gateway) for name, gateway in self._gateways.items()]
        )
        self.ports = Ports(
            events=self.wrap_port("events", self.storage.events),
            projections=self.wrap_port("projection", self.storage.projections),
            recovery_log=self.wrap_port("recovery_log", self.storage.recovery_log),
            gateways=self.routes,
            clock=self.clock,
            ids=self._ids,
            logger=self.logger,
            metrics=self.metrics,
            policy=self.policy,
        )
        self._service = PaymentService(
            self.ports, self.wrap_port("locks", self.locks), self.settings.lock_ttl
        )

    def wrap_port(self, port: str, adapter: A) -> A:
        """The adapter a port is given: as it is here; a harness may wrap it."""
        return adapter

    def wrap_gateway(self, gateway: PaymentGateway) -> PaymentGateway:
        """The gateway behind each breaker: as it is here; a harness may wrap it."""
        return gateway

    def _resilient(self, name: str, gateway: PaymentGateway) -> ResilientGateway:
        return ResilientGateway(
            self.wrap_gateway(gateway),
            breaker=self.breakers[name],
            policy=self._policy(self.settings.retry, name, RetryPolicy),
            clock=self.clock,
            metrics=self.metrics,
            rng=random.Random(self.settings.seed_for(f"jitter/{name}")),
        )

    @staticmethod
    def _policy(policies: Mapping[str, P], name: str, kind: type[P]) -> P:
        return policies.get(name) or kind()

    @property
    def gateways(self) -> dict[str, PaymentGateway]:
        """The gateways by name, in priority order (primary first)."""
        return self._gateways

    @property
    def gateway(self) -> PaymentGateway:
        """The first gateway in priority order (the primary), as the engine was given it."""
        return next(iter(self._gateways.values()))

    @property
    def generation(self) -> int:
        """How many restarts came before this process."""
        return self.settings.generation

    def circuit_breaker(self, name: str = "primary") -> CircuitBreaker:
        """The breaker in front of a gateway, with its `.state` and recorded `.transitions`."""
        if name not in self.breakers:
            raise InvalidRequest("name", f"must be one of {', '.join(self.breakers)}", name)
        return self.breakers[name]

    @classmethod
    def in_memory(
        cls,
        seed: int = 0,
        retry: RetryPolicy | Mapping[str, RetryPolicy] | None = None,
        breaker: BreakerConfig | Mapping[str, BreakerConfig] | None = None,
        **ports: Any,
    ) -> Self:
        """An engine entirely in memory on a virtual clock; the seed makes runs reproducible.

        Any port may be given instead of its in-memory default (`locks=`, `gateways=` ...).
        """
        clock = ports.pop("clock", None) or VirtualClock()
        settings = _settings(seed, retry, breaker)
        return cls(storage=Storage.in_memory(clock), clock=clock, settings=settings, **ports)

    @classmethod
    def open(
        cls,
        store: str = "sqlite:///aegispay.db",
        gateway: str = "sqlite:///aegispay-gateway.db",
        *,
        seed: int = 0,
        retry: RetryPolicy | Mapping[str, RetryPolicy] | None = None,
        breaker: BreakerConfig | Mapping[str, BreakerConfig] | None = None,
        clock: Clock | None = None,
        recover_on_start: bool = False,
        lock_ttl: float = 30.0,
        chain_key: bytes | None = None,
        **ports: Any,
    ) -> Self:
        """An engine over durable stores named by URL ('sqlite:///path.db' or 'memory://').

        Ids are random here, unique across processes and restarts. Any port may be given
        instead of its default (`locks=`, `gateways=` ...); `locks` may also be a URL
        ('memory://' or 'redis://host:6379/0'), and the stores 'postgresql://...' URLs.
        `lock_ttl` is how long a payment's lease lasts, in seconds of `clock`. `chain_key`
        keys the event store's hash chain; without it, AEGISPAY_CHAIN_KEY (the key) or
        AEGISPAY_CHAIN_KEY_FILE (a file holding it) does, if set.
        """
        if isinstance(lock_ttl, bool) or not isinstance(lock_ttl, int | float) or lock_ttl <= 0:
            raise InvalidRequest("lock_ttl", "must be a number of seconds above zero", lock_ttl)
        clock = clock or SystemClock()
        # Read before anything is opened: a bad key leaves no connection behind.
        key = chain_key if chain_key is not None else key_from_environment(os.environ)
        ports.setdefault("ids", RandomIdGenerator())
        opened_locks = isinstance(ports.get("locks"), str)
        if opened_locks:
            ports["locks"] = open_locks(ports["locks"], clock)
        engine = cls(
            storage=Storage.open(store, gateway, clock, key),
            clock=clock,
            settings=replace(_settings(seed, retry, breaker), lock_ttl=lock_ttl),
            **ports,
        )
        close_locks = getattr(engine.locks, "close", None)
        if opened_locks and close_locks is not None:
            engine.storage.closers += (close_locks,)
        if recover_on_start:
            engine.recover()
        return engine

    def restart(self) -> Self:
        """A new process over the same durable state: this one's memory and locks are gone."""
        storage = self.storage
        if storage.reopen is not None:
            storage.close()
            storage = storage.reopen()
        return self._successor(storage, replace(self.settings, generation=self.generation + 1))

    def _successor(self, storage: Storage, settings: Settings) -> Self:
        """The engine of the next process over `storage` (a harness hands its own on)."""
        ids = None if isinstance(self._ids, SeededIdGenerator) else RandomIdGenerator()
        return type(self)(
            storage=storage,
            clock=self.clock,
            settings=settings,
            ids=ids,
            gateways=self._given_gateways,
            locks=self._given_locks,
            policy=self.policy,
        )

    def recover(self, until_quiet: bool = False, *, wait_for_locks: bool = True) -> RecoveryReport:
        """Repair the projection, then verify and settle every payment left in flight.

        With `until_quiet`, run again (letting open breakers cool down on the clock between
        runs) until nothing is left unresolved or unrepaired. Without `wait_for_locks`, a
        payment whose lock another process holds is left unresolved at once instead of waited
        for (its holder is at work on it, or its lease runs out and the queue hands it on).
        """
        service = self._service
        process = service.process if wait_for_locks else lambda pid: service.process(pid, 0.0)
        return recover(
            self.ports,
            process,
            until_quiet=until_quiet,
            cool_down=max(breaker.config.timeout for breaker in self.breakers.values()),
        )

    def rebuild_projections(self) -> RecoveryReport:
        """Rebuild every projection row from the events; halted streams are reported."""
        return rebuild_projections(self.ports)

    def charges(self) -> list[ChargeRecord]:
        """Every record of every gateway that can list its ledger (the simulated one can)."""
        return [
            record
            for gateway in self.gateways.values()
            if isinstance(gateway, LedgerGateway)
            for record in gateway.charges()
        ]

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

    def __enter__(self) -> Self:
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


def _settings(seed: object, retry: object, breaker: object) -> Settings:
    """Validate the engine's policies; retry and breaker take one value or one per gateway."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidRequest("seed", "must be an integer", seed)
    return Settings(
        seed=seed,
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
