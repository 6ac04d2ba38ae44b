"""Seeded fault injection for the simulated gateways: every random decision comes from a seed."""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aegispay.domain.charges import ChargeRecord, ChargeRequest, ChargeStatus
from aegispay.domain.commands import validated
from aegispay.domain.errors import InvalidRequest, ProjectionWriteFailed
from aegispay.domain.failures import (
    TRANSPORT_FAULTS,
    Fault,
    GatewayNetworkError,
    GatewayResponseLost,
    GatewayTimeoutAfterSend,
    GatewayTimeoutBeforeSend,
)
from aegispay.infra.gateway.simulated import SimulatedGateway, transaction_id_for
from aegispay.orchestration.ports import Clock, Metrics, PaymentGateway
from aegispay.sim.crashpoints import ProcessCrash

# What the simulator injects: every Fault but those the engine raises itself.
INJECTED: tuple[Fault, ...] = tuple(
    kind for kind in Fault if kind not in (Fault.CIRCUIT_OPEN, Fault.UNEXPECTED)
)
FAULT_KINDS: tuple[str, ...] = tuple(kind.value for kind in INJECTED)
# Every kind but `projection` strikes gateway calls; `projection` strikes projection writes.
GATEWAY_FAULT_KINDS: tuple[str, ...] = tuple(k for k in FAULT_KINDS if k != Fault.PROJECTION)
# Kinds that replace a call's normal outcome; drawn from one uniform number, in this order.
EXCLUSIVE_KINDS: tuple[Fault, ...] = tuple(
    kind for kind in INJECTED if kind not in (Fault.SLOW, Fault.PROJECTION)
)
# Kinds that can strike a status lookup or a cancel (nothing to decline; we crash on charges).
LOOKUP_KINDS: tuple[Fault, ...] = TRANSPORT_FAULTS

R = TypeVar("R")
# The reason a decline injected as a fault carries.
DECLINED_BY_FAULT = "do_not_honor"


@dataclass(frozen=True)
class PlannedFault:
    """What will go wrong with one gateway call: an exclusive kind (or None), and slowness."""

    kind: str | None = None
    slow: bool = False


# The plans of most calls, made once: a plan is a frozen value, so every call may share them.
NO_FAULT = PlannedFault()
ONLY_SLOW = PlannedFault(None, slow=True)


# The seed's names: simulate_X switches a fault on, X_rate sets how often.
SEED_NAMES = {
    "simulate_timeout": ("timeout_after_rate", "timeout_rate"),
    "simulate_partial_failure": ("partial_rate", "partial_failure_rate"),
    "simulate_network_error": ("network_rate", "network_error_rate"),
    "simulate_crash": ("crash_rate", "crash_rate"),
}
SEED_DEFAULT_RATE = 0.1


class ScheduledFault(BaseModel):
    """An explicit schedule entry: the next `calls` charges (or lookups, or cancels) fail."""

    model_config = ConfigDict(frozen=True)

    kind: Fault
    calls: int = Field(default=1, ge=1)
    operation: Literal["charge", "status", "cancel"] = "charge"

    @field_validator("kind")
    @classmethod
    def _injectable(cls, kind: Fault) -> Fault:
        if kind not in INJECTED:
            raise ValueError(f"must be one of {', '.join(FAULT_KINDS)} (got {kind.value!r})")
        return kind


class FailureConfig(BaseModel):
    """How often each fault kind strikes a gateway call; an empty config heals everything.

    The seed's names are accepted too: `simulate_timeout`, `simulate_partial_failure`,
    `simulate_network_error` and `simulate_crash` switch a fault on, and without a rate beside
    them mean a rate of 0.1 (`simulate_timeout=True` is `timeout_after_rate=0.1`); False turns
    the fault off whatever rate is given. `timeout_rate`, `partial_failure_rate` and
    `network_error_rate` are other names for `timeout_after_rate`, `partial_rate` and
    `network_rate`; giving both names of one rate with different values is refused.

    A ScheduledFault strikes charges unless its `operation` is "status" or "cancel".
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    timeout_before_rate: float = Field(default=0.0, ge=0, le=1)
    timeout_after_rate: float = Field(default=0.0, ge=0, le=1)
    network_rate: float = Field(default=0.0, ge=0, le=1)
    partial_rate: float = Field(default=0.0, ge=0, le=1)
    decline_rate: float = Field(default=0.0, ge=0, le=1)
    slow_rate: float = Field(default=0.0, ge=0, le=1)
    crash_rate: float = Field(default=0.0, ge=0, le=1)
    projection_rate: float = Field(default=0.0, ge=0, le=1, description="projection writes")
    timeout_delay_ms: int = Field(default=5_000, ge=0, description="how long a timeout takes")
    slow_delay_ms: int = Field(default=1_500, ge=0, description="latency of a slow response")
    schedule: tuple[ScheduledFault, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _accept_seed_names(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for switch, (rate_field, seed_rate) in SEED_NAMES.items():
            enabled = data.pop(switch, None)
            rate = data.pop(seed_rate, None) if seed_rate != rate_field else None
            if rate is not None and data.get(rate_field, rate) != rate:
                raise ValueError(
                    f"{rate_field} and {seed_rate} name the same rate: give one "
                    f"(got {data[rate_field]!r} and {rate!r})"
                )
            if enabled is False:
                data[rate_field] = 0.0
            elif rate is not None:
                data[rate_field] = rate
            elif enabled and rate_field not in data:
                data[rate_field] = SEED_DEFAULT_RATE
        return data

    @field_validator(*(f"{kind}_rate" for kind in FAULT_KINDS), mode="before")
    @classmethod
    def _rate_is_not_a_bool(cls, value: Any) -> Any:
        # A float field would read True as 1.0: every call failing, from what was surely a typo.
        if isinstance(value, bool):
            raise ValueError("must be a number between 0 and 1, not a bool")
        return value

    @model_validator(mode="after")
    def _rates_fit(self) -> FailureConfig:
        total = math.fsum(self.rate(kind) for kind in EXCLUSIVE_KINDS)
        if total > 1 + 1e-12:  # rates such as 0.33 + 0.56 + 0.11 add up to 1, not 1.0000000001
            raise ValueError(
                f"the rates of {', '.join(EXCLUSIVE_KINDS)} add up to {total:g}; at most 1"
            )
        return self

    def rate(self, kind: str) -> float:
        """The configured rate of a fault kind."""
        value: float = getattr(self, f"{kind}_rate")
        return value

    @classmethod
    def from_pairs(cls, pairs: list[str]) -> FailureConfig:
        """Build from 'kind=rate' strings, as the CLI's repeatable --fault gives them."""
        rates: dict[str, object] = {}
        for pair in pairs:
            kind, sep, rate = pair.partition("=")
            if not sep or kind not in FAULT_KINDS:
                kinds = ", ".join(FAULT_KINDS)
                raise InvalidRequest("fault", f"expected kind=rate, kind one of {kinds}", pair)
            if f"{kind}_rate" in rates:
                raise InvalidRequest("fault", f"fault {kind!r} given twice", pair)
            rates[f"{kind}_rate"] = rate
        return validated(cls, **rates)


class FaultInjector:
    """Decides, per gateway call, what goes wrong; seeded, so a run repeats exactly."""

    def __init__(
        self, config: FailureConfig, clock: Clock, metrics: Metrics, seed: int | str
    ) -> None:
        self._clock = clock
        self._metrics = metrics
        self._rng = random.Random(seed)
        self._mutex = threading.Lock()
        # Called once the request is on its way and before the gateway acts on it: where a
        # second actor can run while our charge is in flight (the crash points hook in here).
        self.on_the_wire: Callable[[str], None] = lambda operation: None
        self.configure(config)

    def configure(self, config: FailureConfig) -> None:
        """Replace the fault rates and schedule; the random sequence carries on."""
        with self._mutex:
            self.config = config
            # Each exclusive kind with the top of its band in [0, 1): one pick, one band.
            top, bands = 0.0, []
            for kind in EXCLUSIVE_KINDS:
                top += config.rate(kind)
                bands.append((kind, top))
            self._bands = tuple(bands)
            self._schedule = [
                (entry.operation, entry.kind)
                for entry in config.schedule
                for _ in range(entry.calls)
            ]

    def draw(self, gateway: str, operation: str) -> PlannedFault:
        """Plan this call's fault: the schedule first, then the seeded rates."""
        with self._mutex:
            # Two draws per call, always, so the sequence does not depend on the outcomes.
            pick, slow_pick = self._rng.random(), self._rng.random()
            for index, (scheduled_operation, scheduled) in enumerate(self._schedule):
                if scheduled_operation == operation:
                    del self._schedule[index]
                    if scheduled == "slow":
                        return ONLY_SLOW
                    return self._allowed(scheduled, operation, slow=False)
            slow = slow_pick < self.config.slow_rate
            for kind, top in self._bands:
                if pick < top:
                    return self._allowed(kind, operation, slow)
            return ONLY_SLOW if slow else NO_FAULT

    def before(self, gateway: str, operation: str, fault: PlannedFault) -> None:
        """Strike what comes before the gateway acts: latency, a connect timeout, a refusal."""
        if fault.slow:
            self._strike("slow")
            self._clock.sleep(self.config.slow_delay_ms / 1000)
        match fault.kind:
            case "timeout_before":
                self._strike("timeout_before")
                self._clock.sleep(self.config.timeout_delay_ms / 1000)
                raise GatewayTimeoutBeforeSend(gateway, "connect timed out")
            case "network":
                self._strike("network")
                raise GatewayNetworkError(gateway, "connection refused")
            case "decline":
                self._strike("decline")
        self.on_the_wire(operation)

    def after(self, gateway: str, operation: str, fault: PlannedFault) -> None:
        """Strike what comes after the gateway acted: the answer never reaches us."""
        match fault.kind:
            case "timeout_after":
                self._strike("timeout_after")
                self._clock.sleep(self.config.timeout_delay_ms / 1000)
                raise GatewayTimeoutAfterSend(gateway, "read timed out after sending")
            case "partial":
                self._strike("partial")
                raise GatewayResponseLost(gateway, "charged, then the connection dropped")
            case "crash":
                self._strike("crash")
                raise ProcessCrash(f"process died waiting for {gateway}'s answer to {operation}")

    @staticmethod
    def _allowed(kind: str, operation: str, slow: bool) -> PlannedFault:
        return PlannedFault(kind if operation == "charge" or kind in LOOKUP_KINDS else None, slow)

    def now(self) -> datetime:
        """The injector's clock."""
        return self._clock.now()

    def _strike(self, kind: str) -> None:
        self._metrics.increment(f"faults.{kind}")


class FaultyGateway:
    """Any gateway behind seeded faults: the seed's ResilientGatewayWrapper(gateway, config).

    Each call draws its fault, strikes before the gateway acts (latency, a connect timeout, a
    refused connection), calls the gateway, and strikes after it acted (the answer lost, the
    process dead). A decline is the provider's answer: the simulated provider records it in its
    ledger; a gateway of your own is answered for by this wrapper, which remembers it only as
    long as it lives.
    """

    def __init__(self, inner: PaymentGateway, injector: FaultInjector) -> None:
        self.inner = inner
        self.injector = injector
        self._declined: dict[str, ChargeRecord] = {}
        self._calls = 0
        self._mutex = threading.Lock()

    @property
    def name(self) -> str:
        """The wrapped gateway's routing name."""
        return self.inner.name

    @property
    def calls(self) -> int:
        """How many calls were sent to this gateway, including those the faults refused."""
        return self._calls

    def charge(self, request: ChargeRequest) -> ChargeRecord:
        """Charge through the faults; an injected decline is the provider's answer."""
        return self._call("charge", lambda fault: self._charge(request, fault))

    def status(self, merchant_reference: str) -> ChargeRecord | None:
        """Look a charge up through the faults."""
        return self._call(
            "status",
            lambda _: (
                self._declined.get(merchant_reference) or self.inner.status(merchant_reference)
            ),
        )

    def cancel(self, merchant_reference: str) -> ChargeRecord:
        """Cancel through the faults."""
        return self._call(
            "cancel",
            lambda _: (
                self._declined.get(merchant_reference) or self.inner.cancel(merchant_reference)
            ),
        )

    def charges(self) -> list[ChargeRecord]:
        """The wrapped gateway's ledger (when it has one) and the declines answered here."""
        listing = getattr(self.inner, "charges", None)
        held: list[ChargeRecord] = listing() if callable(listing) else []
        return held + [r for r in self._declined.values() if r not in held]

    def _call(self, operation: str, act: Callable[[PlannedFault], R]) -> R:
        with self._mutex:
            self._calls += 1
        name, injector = self.name, self.injector  # asked once: `name` asks the inner gateway
        fault = injector.draw(name, operation)
        injector.before(name, operation, fault)
        result = act(fault)
        injector.after(name, operation, fault)
        return result

    def _charge(self, request: ChargeRequest, fault: PlannedFault) -> ChargeRecord:
        if fault.kind != Fault.DECLINE:
            return self.inner.charge(request)
        if isinstance(self.inner, SimulatedGateway):
            return self.inner.charge(request, decline=DECLINED_BY_FAULT)
        declined = ChargeRecord(
            transaction_id=transaction_id_for(request.idempotency_key),
            merchant_reference=request.merchant_reference,
            idempotency_key=request.idempotency_key,
            amount=request.amount,
            payment_method=request.payment_method,
            status=ChargeStatus.DECLINED,
            decline_reason=DECLINED_BY_FAULT,
            created_at=self.injector.now(),
        )
        with self._mutex:
            return self._declined.setdefault(request.merchant_reference, declined)


class ProjectionFaults:
    """Fails projection writes at a seeded rate: the database of the seed, failing after events."""

    def __init__(self, config: FailureConfig, metrics: Metrics, seed: int | str) -> None:
        self._metrics = metrics
        self._rng = random.Random(seed)
        self.config = config

    def configure(self, config: FailureConfig) -> None:
        """Replace the rate; the random sequence carries on."""
        self.config = config

    def __call__(self) -> None:
        """On the way into a projection write, fail it at the configured rate."""
        if self._rng.random() < self.config.projection_rate:
            self._metrics.increment("faults.projection")
            raise ProjectionWriteFailed("projection write failed (injected)")
