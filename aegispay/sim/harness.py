"""The harness: an engine whose ports can be wrapped with faults and crash points, and restarted.

`AegisPay` is the engine (`aegispay.engine.Engine`) plus the simulator's levers. Built without
faults or crash points it is the plain engine: no wrapper sits on its hot path. Asking for
faults (`faults=`, `set_faults`) or crash points (`crash_at`, `crashpoints`) wraps every port
from then on: each gateway behind a FaultyGateway and every adapter behind named boundaries.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Self, TypeVar, cast

from aegispay.domain.errors import InvalidRequest
from aegispay.engine import Engine, Settings, Storage
from aegispay.orchestration.ports import PaymentGateway
from aegispay.sim.crashpoints import Boundaries, CrashPoints, Side
from aegispay.sim.faults import FailureConfig, FaultInjector, FaultyGateway, ProjectionFaults
from aegispay.sim.invariants import InvariantReport, charges_in_reference_order, check_invariants

A = TypeVar("A")
# The ports' boundary names: the recovery log's operations are named as the projection's.
BOUNDARY_OF_PORT = {"recovery_log": "projection"}


class AegisPay(Engine):
    """The engine with the simulator's levers: faults, crash points, restarts, invariants."""

    def __init__(
        self, *, faults: FailureConfig | None = None, crash_points: bool = False, **ports: Any
    ) -> None:
        if faults is not None and not isinstance(faults, FailureConfig):
            raise InvalidRequest("faults", "must be a FailureConfig", faults)
        self.faults_config = faults or FailureConfig()
        self._harnessed = faults is not None or crash_points
        self._crashpoints = CrashPoints()
        self.faults: dict[str, FaultInjector] = {}
        self._faulty: dict[str, FaultyGateway] = {}
        super().__init__(**ports)
        self.projection_faults = ProjectionFaults(
            self.faults_config, self.metrics, self.settings.seed_for("projection")
        )
        self._crashpoints.hook("projection.save", "before", self.projection_faults)

    @property
    def harnessed(self) -> bool:
        """True once faults or crash points were asked for: the ports are wrapped."""
        return self._harnessed

    @property
    def crashpoints(self) -> CrashPoints:
        """The crash points of this process; asking for them wraps the ports."""
        self._harness()
        return self._crashpoints

    @property
    def gateways(self) -> dict[str, PaymentGateway]:
        """The gateways as the engine calls them: behind their faults once harnessed."""
        return dict(self._faulty) if self._harnessed else super().gateways

    def wrap_port(self, port: str, adapter: A) -> A:
        """Behind named boundaries, once harnessed."""
        if not self._harnessed:
            return adapter
        boundary = BOUNDARY_OF_PORT.get(port, port)
        return cast(A, Boundaries(boundary, adapter, self._crashpoints))

    def wrap_gateway(self, gateway: PaymentGateway) -> PaymentGateway:
        """Behind seeded faults and named boundaries, once harnessed."""
        if not self._harnessed:
            return gateway
        injector = FaultInjector(
            self.faults_config, self.clock, self.metrics, self.settings.seed_for(gateway.name)
        )
        injector.on_the_wire = self._on_the_wire
        self.faults[gateway.name] = injector
        self._faulty[gateway.name] = FaultyGateway(gateway, injector)
        return cast(
            PaymentGateway, Boundaries("gateway", self._faulty[gateway.name], self._crashpoints)
        )

    def _harness(self) -> None:
        if not self._harnessed:
            self._harnessed = True
            self._wire()

    def _on_the_wire(self, operation: str) -> None:
        self._crashpoints.cross(f"gateway.{operation}", "inside")

    def set_faults(self, faults: FailureConfig | None = None, gateway: str | None = None) -> None:
        """Change injected faults while running; FailureConfig() (or None) heals everything."""
        config = faults if faults is not None else FailureConfig()
        if not isinstance(config, FailureConfig):
            raise InvalidRequest("faults", "must be a FailureConfig", faults)
        names = list(super().gateways)
        if gateway is not None and gateway not in names:
            raise InvalidRequest("gateway", f"must be one of {', '.join(names)}", gateway)
        self._harness()
        for name, injector in self.faults.items():
            if gateway in (None, name):
                injector.configure(config)
        if gateway is None:
            self.projection_faults.configure(config)
            self.faults_config = config

    def crash_at(self, boundary: str, side: Side = "before", nth: int = 1) -> None:
        """Arm a one-shot ProcessCrash at the nth crossing of a boundary ('events.append' ...)."""
        if isinstance(nth, bool) or not isinstance(nth, int):
            raise InvalidRequest("nth", "must be a whole number, 1 or more", nth)
        try:
            self.crashpoints.crash_at(boundary, side, nth)
        except ValueError as error:
            field_name, _, rule = str(error).partition(": ")
            raise InvalidRequest(field_name, rule) from None

    def check_invariants(self) -> InvariantReport:
        """Check every invariant of docs/architecture.md on this engine's stored state."""
        if self._given_gateways is None:
            # The provider's ledgers, read in reference order a page at a time: the audit streams.
            charges = charges_in_reference_order(self.storage.ledgers.values())
        else:
            charges = iter(sorted(self.charges(), key=lambda record: record.merchant_reference))
        return check_invariants(self.event_store, self.projections, charges)

    def sibling(
        self, faults: FailureConfig | None = None, offset: int = 1000, **ports: Any
    ) -> Self:
        """Another process over the same storage now: its own memory and faults; the gateways,
        lock service and policy it was given are shared (in-process locks are its own)."""
        settings = replace(self.settings, generation=self.generation + offset)
        shared = {"gateways": self._given_gateways, "locks": self._given_locks}
        return type(self)(
            storage=self.storage,
            clock=self.clock,
            settings=settings,
            faults=faults if faults is not None else self.faults_config,
            policy=self.policy,
            **{**shared, **ports},
        )

    def _successor(self, storage: Storage, settings: Settings) -> Self:
        successor = super()._successor(storage, settings)
        if self._harnessed:
            successor.faults_config = self.faults_config
            successor.set_faults(self.faults_config)
        return successor
