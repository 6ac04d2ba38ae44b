"""The engine's defenses, and for each the part that replaces it when it is switched off.

Every defense is switched off from outside, as a fault is injected: the attack builds the
engine with another port or policy (a gateway that ignores our idempotency key, one that
forgets our cancels, a store that skips the version check, a lock service that grants every
lease, a policy that writes FAILURE without asking, or one that charges before writing the
intent). The engine itself has no switch for any of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from aegispay.domain.charges import ChargeRecord, ChargeRequest
from aegispay.domain.decisions import AfterFailedCharge
from aegispay.domain.events import PaymentEvent
from aegispay.domain.failures import FailureRule
from aegispay.domain.payment import Payment, replay
from aegispay.infra.gateway.ledger import Ledger, cancellation
from aegispay.infra.gateway.simulated import SimulatedGateway
from aegispay.io import IO
from aegispay.labs.runner import World
from aegispay.orchestration import workflows
from aegispay.orchestration.ports import (
    Clock,
    EventStore,
    Ports,
    Projector,
)


class KeylessGateway(SimulatedGateway):
    """A provider that ignores our idempotency key: every charge it is sent is a new one."""

    def __init__(self, name: str, ledger: Ledger, clock: Clock) -> None:
        super().__init__(name, ledger, clock)
        self._sent = 0

    def charge(self, request: ChargeRequest, decline: str | None = None) -> ChargeRecord:
        """Charge under a key of the provider's own making, never ours."""
        with self._lock:
            self._sent += 1
            key = f"{request.idempotency_key}/attempt-{self._sent}"
        return super().charge(request.model_copy(update={"idempotency_key": key}), decline)


class FencelessGateway(SimulatedGateway):
    """A provider that answers "cancelled" for a reference it never saw and forgets it at once,
    so a later charge with that reference goes through."""

    def cancel(self, merchant_reference: str) -> ChargeRecord:
        """What is held for the reference; else a cancellation that is never recorded."""
        held = self.ledger.by_reference(merchant_reference)
        return held if held is not None else cancellation(merchant_reference, self._clock.now())


class UncheckedEventStore:
    """An event store that appends wherever the stream has got to, whatever version was read."""

    def __init__(self, inner: EventStore) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def append(
        self,
        stream_id: str,
        events: Sequence[PaymentEvent],
        expected_version: int,
        project: Projector | None = None,
    ) -> int:
        """Append at the stream's current version, never refusing a stale writer."""
        current = len(self.inner.read_unverified(stream_id))
        return self.inner.append(stream_id, events, current, project)


class GrantingLocks:
    """A lock service that grants every lease to everyone: no lock at all."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def acquire(self, resource: str, owner: str, ttl: float, wait: float = 0.0) -> bool:
        """Granted, always."""
        return True

    def release(self, resource: str, owner: str) -> None:
        """Nothing to give back."""

    def extend(self, resource: str, owner: str, ttl: float) -> None:
        """Nothing to extend."""

    def holder(self, resource: str) -> str | None:
        """Nobody, ever."""
        return None


def fail_without_asking(rule: FailureRule) -> AfterFailedCharge:
    """A charge call that failed is a failed payment: FAILURE at once, nobody asked."""
    return AfterFailedCharge.FAIL


def charge_then_intent(
    ports: Ports, payment: Payment, events: Sequence[PaymentEvent], tried: frozenset[str]
) -> IO[Payment]:
    """Send the charge first, and write the starting events with its answer only afterwards."""
    started = replay(events, start=payment)
    assert started is not None, "a start has events"
    return workflows.send_charge(ports, started).flat_map(
        lambda result: workflows.append(ports, payment, events).flat_map(
            lambda written: workflows.settle_charge(ports, written, result, tried)
        )
    )


@dataclass(frozen=True)
class Defense:
    """A defense: what it stops, and the world with it switched off."""

    name: str
    stops: str
    off: Callable[[World], World]


def _gateway(world: World, provider: type[SimulatedGateway]) -> World:
    """The world whose provider also behaves as `provider` does (one defense off per class)."""
    if issubclass(world.gateway, provider):
        return world
    mixed = type(provider.__name__, (provider, world.gateway), {})
    return replace(world, gateway=mixed)


DEFENSES: dict[str, Defense] = {
    defense.name: defense
    for defense in (
        Defense(
            "lock",
            "a second process doing the same payment's work at the same time",
            lambda world: replace(world, locks=GrantingLocks),
        ),
        Defense(
            "idempotency_key",
            "a second charge for a payment whose first charge was still on the wire",
            lambda world: _gateway(world, KeylessGateway),
        ),
        Defense(
            "fence",
            "a late charge landing after another process gave up through a cancel",
            lambda world: _gateway(world, FencelessGateway),
        ),
        Defense(
            "expected_version",
            "a stale writer appending on top of what another process wrote",
            lambda world: replace(world, events=UncheckedEventStore),
        ),
        Defense(
            "verify_before_failure",
            "FAILURE written for a charge the gateway did take",
            lambda world: replace(
                world, policy=replace(world.policy, after_failed_charge=fail_without_asking)
            ),
        ),
        Defense(
            "intent_first",
            "a charge sent by a process that died before recording it, so nobody recovers it",
            lambda world: replace(world, policy=replace(world.policy, start=charge_then_intent)),
        ),
    )
}


def names() -> Iterator[str]:
    """The defenses' names, in the order the docs list them."""
    return iter(DEFENSES)
