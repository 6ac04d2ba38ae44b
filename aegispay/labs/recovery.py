"""Lab `recovery`: decide what becomes of a payment left in flight, given what the gateway said.

A process died, or gave up, with a payment whose processing started: the charge may or may
not have reached the gateway, and another process's charge may still be on the wire. Recovery
(and any process that meets the payment later) asks the gateway about our reference, and
your function decides what to do with the answer.

You write `decide(seen) -> str`. `seen.answer` is what the gateway answered for our reference,
one of "charged", "declined", "cancelled", "not_found", "unreachable" (a `str` enum);
`seen.payment` is the payment replayed from its events (`.state`, `.version` ...), and
`seen.record` the gateway's record when it has one. Answer one of:

    "succeed"   settle the payment as paid
    "fail"      settle it as failed
    "redrive"   charge again with the same idempotency key (the gateway deduplicates)
    "cancel"    cancel our reference at the gateway, then settle on its answer
    "wait"      leave it for a later run

For example, a first try that trusts "not found" to mean "never charged":

    def decide(seen):
        if seen.answer == "charged":
            return "succeed"
        if seen.answer == "unreachable":
            return "wait"
        return "fail"

The harness builds the engine with your function as its recovery policy and runs the whole
attack (crash points, second actors cutting in with their charge on the wire, lost responses,
paused lease holders, then seeded chaos). The promise: nobody is charged twice, and after the
faults heal and recovery runs, the payment is settled and agrees with the gateway.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from aegispay.domain.decisions import Action, Seen
from aegispay.domain.errors import InvalidRequest
from aegispay.labs.runner import World, search
from aegispay.labs.verdict import Verdict
from aegispay.orchestration.policy import ENGINE_POLICY

Decide = Callable[[Seen], object]
ACTIONS: tuple[str, ...] = tuple(action.value for action in Action)


def judged(decide: Decide) -> Callable[[Seen], Action]:
    """The learner's decision, its answer checked: anything but an action is a clear error."""

    def checked(seen: Seen) -> Action:
        answer = decide(seen)
        if isinstance(answer, str) and answer in ACTIONS:
            return Action(answer)
        raise InvalidRequest(
            "decide", f"must answer one of {', '.join(ACTIONS)} (for {seen.answer.value})", answer
        )

    return checked


def check(decide: Decide, seed: int = 0, depth: int = 2) -> Verdict:
    """Attack an engine whose recovery decisions are `decide`'s."""
    world = World(policy=replace(ENGINE_POLICY, recover=judged(decide)))
    return search(world, "recovery lab", seed=seed, depth=depth)
