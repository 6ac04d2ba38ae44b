"""Schedules: what goes wrong in one run of a client's payment, as a short tuple of moves.

A move is a gateway fault (`FaultMove`: the next calls of one operation fail so), a crash of
process A at one crossing of a boundary (`Crash`), or a second actor cutting in at a crossing
(`CutIn`: process B paying, a recovery elsewhere, or a duplicate create, arriving while A works
or after A paused past its lease, with the network working, failing for charges, or down).
A schedule's length is its number of moves; `schedules` lists them in order of length, so the
first that breaks a promise is the shortest. Crossings come from the harness's own crash points.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import combinations
from typing import Literal

from aegispay.domain.failures import Fault
from aegispay.sim.crashpoints import Crossing
from aegispay.sim.faults import FailureConfig, ScheduledFault

Operation = Literal["charge", "status", "cancel"]
Network = Literal["working", "charges fail", "down"]
Arrival = Literal["arrives", "after A's pause"]
SecondActor = Literal["process B pays", "recovery runs", "duplicate create"]
# Enough failing calls to outlast every retry of one call (the policy retries three times).
OUTAGE = 4


@dataclass(frozen=True)
class FaultMove:
    """The next `calls` calls of `operation` fail with `kind`."""

    kind: Fault
    operation: Operation = "charge"
    calls: int = 1

    def __str__(self) -> str:
        times = "every attempt of" if self.calls >= OUTAGE else "the first"
        return f"{self.kind.value} on {times} {self.operation}"

    def scheduled(self) -> ScheduledFault:
        """The harness's schedule entry for this move."""
        return ScheduledFault(kind=self.kind, calls=self.calls, operation=self.operation)


@dataclass(frozen=True)
class Crash:
    """Process A dies at one crossing."""

    crossing: Crossing

    def __str__(self) -> str:
        return f"process A crashes {self.crossing}"


@dataclass(frozen=True)
class CutIn:
    """A second actor runs at one crossing of process A's work."""

    crossing: Crossing
    actor: SecondActor
    arrival: Arrival
    network: Network

    def __str__(self) -> str:
        return f"{self.actor} ({self.arrival}, network {self.network}) at {self.crossing}"


Move = FaultMove | Crash | CutIn
Schedule = tuple[Move, ...]

FAULT_MOVES: tuple[FaultMove, ...] = (
    FaultMove(Fault.TIMEOUT_BEFORE),
    FaultMove(Fault.NETWORK),
    FaultMove(Fault.NETWORK, calls=OUTAGE),
    FaultMove(Fault.TIMEOUT_AFTER),
    FaultMove(Fault.PARTIAL),
    FaultMove(Fault.DECLINE),
    FaultMove(Fault.CRASH),
    FaultMove(Fault.NETWORK, "status", OUTAGE),
    FaultMove(Fault.NETWORK, "cancel", OUTAGE),
)
# Where a second actor cuts in: where A writes, takes its lease, or talks to the gateway.
CUT_IN_BOUNDARIES = ("events.append", "locks.acquire", "gateway.charge", "gateway.status")
CUT_INS: tuple[tuple[SecondActor, Arrival, Network], ...] = (
    *(
        (actor, arrival, network)
        for actor in ("process B pays", "recovery runs")
        for arrival in ("arrives", "after A's pause")
        for network in ("working", "charges fail", "down")
    ),
    ("duplicate create", "arrives", "working"),
    ("duplicate create", "after A's pause", "working"),
)


def cuts_in(crossing: Crossing) -> bool:
    """Whether a second actor cuts in here (after a lookup is the same as before the write
    that follows it, so that side is left out)."""
    if crossing.boundary == "gateway.status" and crossing.side == "after":
        return False
    return crossing.boundary in CUT_IN_BOUNDARIES


def network_faults(network: Network) -> FailureConfig:
    """A second actor's network: working, refusing its charges, or refusing every call."""
    failing: dict[str, tuple[Operation, ...]] = {
        "working": (), "charges fail": ("charge",), "down": ("charge", "status", "cancel"),
    }  # fmt: skip
    return FailureConfig(
        schedule=tuple(
            ScheduledFault(kind=Fault.NETWORK, calls=40, operation=operation)
            for operation in failing[network]
        )
    )


def fault_config(schedule: Schedule) -> FailureConfig:
    """Process A's gateway faults: every fault move of the schedule, in order."""
    return FailureConfig(
        schedule=tuple(move.scheduled() for move in schedule if isinstance(move, FaultMove))
    )


def schedules(crossings: Callable[[Schedule], list[Crossing]], depth: int) -> Iterator[Schedule]:
    """Every schedule of up to `depth` moves, shortest first: faults, then one crash or cut-in.

    `crossings(faults)` lists the crossings process A makes under those faults alone.
    """
    yield ()
    for length in range(1, depth + 1):
        for faults in combinations(FAULT_MOVES, length):
            yield faults
        for faults in combinations(FAULT_MOVES, length - 1):
            trace = crossings(faults)
            for crossing in trace:
                yield (*faults, Crash(crossing))
            for crossing in trace:
                if cuts_in(crossing):
                    for actor, arrival, network in CUT_INS:
                        yield (*faults, CutIn(crossing, actor, arrival, network))


def chaos(
    crossings: Callable[[Schedule], list[Crossing]], seed: int, runs: int
) -> Iterator[Schedule]:
    """Seeded random schedules of two or three faults and one crash or cut-in."""
    rng = random.Random(f"labs/chaos/{seed}")
    for _ in range(runs):
        faults = tuple(sorted(rng.sample(FAULT_MOVES, rng.randint(2, 3)), key=FAULT_MOVES.index))
        trace = crossings(faults)
        if not trace:
            yield faults
            continue
        crossing = rng.choice(trace)
        if rng.random() < 0.3:
            yield (*faults, Crash(crossing))
        else:
            yield (*faults, CutIn(crossing, *rng.choice(CUT_INS)))
