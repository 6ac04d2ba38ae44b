"""Lab `lock`: write the lease manager that keeps two processes off the same payment.

A lease has an owner and a time to live: while it is live, nobody else may take it; once its
TTL has passed it is free again (a holder that died must not block the payment for ever); only
its owner may release or extend it, and only while it is live. A holder can be paused past its
lease (a long GC pause, a stalled VM): by the time it wakes up, someone else may hold the lease.

You write a class `Locks(clock)` with the engine's LockManager methods:

    acquire(resource, owner, ttl, wait=0.0) -> bool   take it if free or expired
    release(resource, owner)                          give it back; raise if not yours
    extend(resource, owner, ttl)                      push its expiry to now + ttl; same rule
    holder(resource) -> str | None                    the owner of the live lease, or None

Time comes only from `clock.now()` (a datetime; the harness's clock jumps). For example, a
first try that forgets whose lease it is:

    class Locks:
        def __init__(self, clock):
            self.clock, self.leases = clock, {}
        def acquire(self, resource, owner, ttl, wait=0.0):
            lease = self.leases.get(resource)
            if lease and lease[1] > self.clock.now():
                return False
            self.leases[resource] = (owner, self.clock.now() + timedelta(seconds=ttl))
            return True
        def release(self, resource, owner):
            self.leases.pop(resource, None)
        ...

The harness plays processes A and B against your class and the engine's own lease manager side
by side: every sequence of up to five takes, releases, extends, pauses past the lease and clock
jumps, shortest first, comparing each answer and the holder after each move. Then it runs the
payment attack with your class as the lock service every process shares.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from itertools import product
from typing import Any

from aegispay.domain.errors import InvalidRequest
from aegispay.infra.clock import VirtualClock
from aegispay.infra.locks.memory import InMemoryLockManager
from aegispay.labs.runner import World, search
from aegispay.labs.verdict import Step, Verdict
from aegispay.orchestration.ports import Clock, LockManager

RESOURCE, TTL = "payment:order-1", 30.0
MOVES = (
    "A takes", "B takes", "A releases", "B releases", "A extends", "B extends",
    "31 s pass", "the clock jumps an hour",
)  # fmt: skip
LONGEST = 5
Factory = Callable[[Clock], Any]


def _do(locks: Any, move: str, clock: VirtualClock) -> object:
    """Make one move on a lease manager; what it answered, or the kind of error it raised."""
    if move == "31 s pass":
        clock.advance(TTL + 1)
        return None
    if move == "the clock jumps an hour":
        clock.advance(3600)
        return None
    owner, verb = move.split(" ", 1)
    try:
        if verb == "takes":
            answer: object = locks.acquire(RESOURCE, owner, TTL, 0.0)
        elif verb == "releases":
            answer = locks.release(RESOURCE, owner)
        else:
            answer = locks.extend(RESOURCE, owner, TTL)
    except Exception:  # any refusal counts as a refusal; which class it is does not matter
        return "refused"
    return bool(answer) if verb == "takes" else "done"


def promise_of(move: str, expected: object, got: object) -> str:
    """The promise a different answer to this move breaks, in words."""
    verb = move.split(" ", 1)[-1]
    if verb == "takes":
        return (
            "one live holder at a time" if got is True else "a free or expired lease can be taken"
        )
    return f"the live owner can {verb[:-1]} its lease"


def holder_promise(move: str, wanted: str | None, named: str | None) -> str:
    """The promise a wrong holder after this move breaks, in words."""
    verb = move.split(" ", 1)[-1]
    if verb == "releases" and wanted is not None:
        return f"only the live owner releases a lease ({move[0]} released {wanted}'s)"
    if verb == "extends":
        return f"only the live owner extends a lease ({move[0]} took it over by extending)"
    if named is not None and wanted is None:
        return "a lease ends when its TTL has passed"
    return "the holder is the owner of the live lease"


def play(factory: Factory, moves: tuple[str, ...]) -> tuple[list[Step], str | None]:
    """Play the moves on the solution and the engine's lease manager; the first difference.

    Releasing or extending a lease one does not hold may be refused or ignored: what must not
    happen is that it changes who holds the lease.
    """
    ours, theirs = VirtualClock(), VirtualClock()
    reference, solution = InMemoryLockManager(ours), factory(theirs)
    steps: list[Step] = []
    for move in moves:
        expected, got = _do(reference, move, ours), _do(solution, move, theirs)
        actor = {"A": "process A", "B": "process B"}.get(move[0], "clock")
        steps.append(Step(actor, f"{move}: {_words(got)}", "lock service" * (actor != "clock")))
        if expected != got and (expected, got) != ("refused", "done"):
            return steps, promise_of(move, expected, got)
        wanted, named = reference.holder(RESOURCE), solution.holder(RESOURCE)
        if wanted != named:
            said = (
                f"it names {named or 'nobody'} as the holder, where it must be {wanted or 'nobody'}"
            )
            steps.append(Step("lock service", said))
            return steps, holder_promise(move, wanted, named)
    return steps, None


def _words(answer: object) -> str:
    if answer is None:
        return "the lease's owner does not notice"
    return "granted" if answer is True else "done" if answer == "done" else "refused"


def check(factory: Factory, seed: int = 0, depth: int = 2) -> Verdict:
    """Compare the solution with the engine's lease manager, then run the payment attack on it."""
    tried = 0
    for length in range(1, LONGEST + depth - 1):
        for moves in product(MOVES, repeat=length):
            tried += 1
            steps, promise = play(factory, moves)
            if promise is not None:
                marked = (*steps[:-1], steps[-1]._replace(breaking=True))
                return Verdict(False, tried, promise, marked, "lock lab", schedule=moves)
    attacked = search(
        replace(World(), locks=_shared(factory)), "lock lab", seed=seed, depth=1, chaos_runs=0
    )
    return replace(attacked, tried=attacked.tried + tried)


def _shared(factory: Factory) -> Callable[[Clock], LockManager]:
    def build(clock: Clock) -> LockManager:
        locks: LockManager = factory(clock)
        for method in ("acquire", "release", "extend", "holder"):
            if not callable(getattr(locks, method, None)):
                raise InvalidRequest("solution", f"a lease manager needs a method {method}")
        return locks

    return build
