"""A circuit breaker: a pure transition function over (state, event, now), and a thin wrapper.

CLOSED counts consecutive transport failures and opens at the threshold. OPEN refuses calls
without touching the gateway until `timeout` seconds have passed on the clock; then the next
request becomes the single HALF_OPEN probe, whose result closes the breaker or opens it again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

from aegispay.domain.failures import CircuitOpenError, ErrorClass, classify
from aegispay.orchestration.ports import Clock, Metrics

T = TypeVar("T")


class BreakerState(StrEnum):
    """The breaker's position."""

    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


State = BreakerState


class BreakerEvent(StrEnum):
    """What the breaker is told."""

    REQUEST = "request"  # a call wants to go through
    SUCCESS = "success"  # the call reached the gateway and came back
    FAILURE = "failure"  # a transport-level failure (never a decline)


Event = BreakerEvent


class BreakerConfig(BaseModel):
    """When to open, and how long to stay open."""

    model_config = ConfigDict(frozen=True)

    failure_threshold: int = Field(default=5, ge=1)
    timeout: float = Field(default=60.0, gt=0, description="seconds OPEN before a probe")


@dataclass(frozen=True)
class Breaker:
    """The breaker's whole state: a value, so the transition function can stay pure."""

    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    opened_at: datetime | None = None
    probing: bool = False


@dataclass(frozen=True)
class Decision:
    """The outcome of one step: the new breaker, whether the call may go, and why it changed."""

    breaker: Breaker
    allowed: bool
    cause: str


def step(  # noqa: PLR0911 - one return per row of the transition table
    breaker: Breaker, event: BreakerEvent, now: datetime, config: BreakerConfig
) -> Decision:
    """Apply one event to the breaker at time `now`."""
    match breaker.state, event:
        case State.CLOSED, Event.REQUEST:
            return Decision(breaker, True, "")
        case State.CLOSED, Event.SUCCESS:
            # Nearly every success finds no failures counted: the breaker stays as it is.
            return Decision(replace(breaker, failures=0) if breaker.failures else breaker, True, "")
        case State.CLOSED, Event.FAILURE if breaker.failures + 1 >= config.failure_threshold:
            opened = Breaker(State.OPEN, breaker.failures + 1, now)
            return Decision(opened, True, f"{opened.failures} consecutive failures")
        case State.CLOSED, Event.FAILURE:
            return Decision(replace(breaker, failures=breaker.failures + 1), True, "")
        case State.OPEN, Event.REQUEST if _cooled_down(breaker, now, config):
            probe = Breaker(State.HALF_OPEN, breaker.failures, breaker.opened_at, probing=True)
            return Decision(probe, True, f"{config.timeout:g}s open elapsed: one probe")
        case State.OPEN, Event.REQUEST:
            return Decision(breaker, False, "")
        case State.HALF_OPEN, Event.REQUEST:
            return Decision(replace(breaker, probing=True), not breaker.probing, "")
        case State.HALF_OPEN, Event.SUCCESS:
            return Decision(Breaker(), True, "probe succeeded")
        case State.HALF_OPEN, Event.FAILURE:
            return Decision(Breaker(State.OPEN, breaker.failures + 1, now), True, "probe failed")
    # A late answer to a call made before the breaker opened: it changes nothing.
    return Decision(breaker, True, "")


def _cooled_down(breaker: Breaker, now: datetime, config: BreakerConfig) -> bool:
    assert breaker.opened_at is not None, "an OPEN breaker knows when it opened"
    return now >= breaker.opened_at + timedelta(seconds=config.timeout)


@dataclass(frozen=True)
class Transition:
    """One recorded change of breaker state, with its cause and time."""

    source: BreakerState
    target: BreakerState
    cause: str
    at: datetime

    def __str__(self) -> str:
        return f"{self.at:%H:%M:%S} {self.source} -> {self.target} ({self.cause})"


class CircuitBreaker:
    """The stateful wrapper: holds the current Breaker, runs calls through it, records changes."""

    def __init__(
        self, name: str, clock: Clock, metrics: Metrics, config: BreakerConfig | None = None
    ) -> None:
        self.name = name
        self.config = config or BreakerConfig()
        self._clock = clock
        self._metrics = metrics
        self._breaker = Breaker()
        self._mutex = threading.Lock()
        self.transitions: list[Transition] = []

    @property
    def state(self) -> BreakerState:
        """The breaker's current position."""
        return self._breaker.state

    def allows_request(self) -> bool:
        """Would a call go through now? (Asks without taking the half-open probe.)"""
        breaker, now = self._breaker, self._clock.now()
        if breaker.state is BreakerState.OPEN:
            return _cooled_down(breaker, now, self.config)
        return not (breaker.state is BreakerState.HALF_OPEN and breaker.probing)

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` if the breaker allows it; count its transport failures; fail fast when open."""
        if not self._apply(BreakerEvent.REQUEST):
            self._metrics.increment(f"breaker.{self.name}.rejected")
            raise CircuitOpenError(self.name, "breaker open, call not sent")
        try:
            result = fn()
        except Exception as error:
            # A definitive error is an answer: the way to the gateway works. Anything else is
            # the transport failing.
            answered = classify(error).error_class is ErrorClass.DEFINITIVE
            self._apply(BreakerEvent.SUCCESS if answered else BreakerEvent.FAILURE)
            raise
        self._apply(BreakerEvent.SUCCESS)
        return result

    def _apply(self, event: BreakerEvent) -> bool:
        with self._mutex:
            before = self._breaker
            decision = step(before, event, self._clock.now(), self.config)
            self._breaker = decision.breaker
            if decision.breaker.state is not before.state:
                self.transitions.append(
                    Transition(
                        before.state, decision.breaker.state, decision.cause, self._clock.now()
                    )
                )
                self._metrics.increment(f"breaker.{self.name}.{decision.breaker.state.lower()}")
        return decision.allowed
