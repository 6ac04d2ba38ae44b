"""Lab `breaker`: write the circuit breaker's step, the pure function behind every gateway call.

A breaker stands in front of a gateway. CLOSED, it lets calls through and counts consecutive
transport failures; at `config.failure_threshold` of them it opens. OPEN, it refuses every call
without touching the gateway until `config.timeout` seconds have passed; then it lets exactly
one call through as a probe (HALF_OPEN). A probe that succeeds closes it; one that fails opens
it again for another timeout.

You write `step(breaker, event, now, config) -> Decision`, the same shape as the engine's own
`aegispay.resilience.breaker.step`: `breaker` is a frozen `Breaker(state, failures, opened_at,
probing)`, `event` a `BreakerEvent` ("request", "success" or "failure"), `now` a datetime and
`config` a `BreakerConfig`; return `Decision(breaker, allowed, cause)`, where `allowed` says
whether a request may go. For example, a first try that never half-opens:

    def step(breaker, event, now, config):
        if breaker.state == "OPEN":
            return Decision(breaker, event != "request", "")
        failures = {"failure": breaker.failures + 1, "success": 0}.get(event, breaker.failures)
        if failures >= config.failure_threshold:
            return Decision(Breaker("OPEN", failures, now), True, "opened")
        return Decision(Breaker("CLOSED", failures), True, "")

The harness drives your step the way the engine's breaker does (a request, then the call's
success or failure if it was let through; a call whose answer has not come yet; the clock
moving past the timeout) over every sequence of up to seven of these, shortest first, with a
threshold of 3 and a timeout of 60 s. After each step, whether a request went and the state it
reports must be what the breaker's promises say.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from itertools import product

from aegispay.domain.errors import InvalidRequest
from aegispay.infra.clock import EPOCH
from aegispay.labs.verdict import Step, Verdict
from aegispay.resilience.breaker import (
    Breaker,
    BreakerConfig,
    BreakerEvent,
    BreakerState,
    Decision,
)
from aegispay.resilience.breaker import step as engine_step

StepFunction = Callable[[Breaker, BreakerEvent, datetime, BreakerConfig], Decision]
CONFIG = BreakerConfig(failure_threshold=3, timeout=60.0)
# What happens, one move at a time: a call that succeeds, fails, or hangs; or time passing.
MOVES = ("a call succeeds", "a call fails", "a call hangs", "60 s pass")
LONGEST = 7


# The promise each row of the breaker's table keeps: (state before, event, allowed or state after).
ROW_PROMISES: dict[tuple[BreakerState, BreakerEvent, object], str] = {
    (BreakerState.CLOSED, BreakerEvent.REQUEST, True): "a closed breaker lets every call through",
    (BreakerState.OPEN, BreakerEvent.REQUEST, True): "after the timeout, one probe goes through",
    (BreakerState.OPEN, BreakerEvent.REQUEST, False): (
        "an open breaker refuses every call until the timeout"
    ),
    (BreakerState.HALF_OPEN, BreakerEvent.SUCCESS, BreakerState.CLOSED): (
        "a successful probe closes it"
    ),
    (BreakerState.HALF_OPEN, BreakerEvent.FAILURE, BreakerState.OPEN): (
        "a failed probe opens it again"
    ),
    (BreakerState.CLOSED, BreakerEvent.FAILURE, BreakerState.OPEN): (
        f"it opens after {CONFIG.failure_threshold} consecutive failures"
    ),
}


def promise_of(before: BreakerState, event: BreakerEvent, expected: Decision) -> str:
    """The promise the breaker's table keeps at this row, in words."""
    outcome = expected.allowed if event is BreakerEvent.REQUEST else expected.breaker.state
    if event is BreakerEvent.REQUEST and before is BreakerState.HALF_OPEN:
        return "a half-open breaker lets one probe through, no more"
    return ROW_PROMISES.get(
        (before, event, outcome),
        f"it stays closed until {CONFIG.failure_threshold} consecutive failures",
    )


def _events(move: str, allowed: bool | None) -> Iterator[BreakerEvent]:
    if move == "60 s pass":
        return
    yield BreakerEvent.REQUEST
    if move != "a call hangs" and allowed:
        yield BreakerEvent.SUCCESS if move == "a call succeeds" else BreakerEvent.FAILURE


def play(solution: StepFunction, moves: tuple[str, ...]) -> tuple[list[Step], str | None]:
    """Drive the solution and the engine's step side by side; the first promise broken, if any."""
    ours, theirs, now, steps = Breaker(), Breaker(), EPOCH, []
    for move in moves:
        if move == "60 s pass":
            now += timedelta(seconds=CONFIG.timeout)
            steps.append(Step("client", "60 s pass"))
            continue
        steps.append(Step("client", f"{move.replace('a call', 'the client calls:')}", "breaker"))
        allowed: bool | None = None
        for event in _events(move, allowed=True):
            if event is not BreakerEvent.REQUEST and not allowed:
                break
            expected = engine_step(ours, event, now, CONFIG)
            got = solution(theirs, event, now, CONFIG)
            if not isinstance(got, Decision):
                raise InvalidRequest("step", "must return a Decision", got)
            said = _said(event, got)
            steps.append(Step("breaker", said, "client" if event is BreakerEvent.REQUEST else None))
            if got.allowed != expected.allowed and event is BreakerEvent.REQUEST:
                return steps, promise_of(ours.state, event, expected)
            if BreakerState(got.breaker.state) is not expected.breaker.state:
                wanted = expected.breaker.state
                steps.append(
                    Step("breaker", f"it says {got.breaker.state} where it must be {wanted}")
                )
                return steps, promise_of(ours.state, event, expected)
            ours, theirs = expected.breaker, got.breaker
            if event is BreakerEvent.REQUEST:
                allowed = expected.allowed
    return steps, None


def _said(event: BreakerEvent, decision: Decision) -> str:
    state = decision.breaker.state
    if event is BreakerEvent.REQUEST:
        return f"the breaker {'lets it through' if decision.allowed else 'refuses it'} ({state})"
    return f"the breaker hears a {event.value}: {state}"


def check(solution: StepFunction, seed: int = 0, depth: int = 2) -> Verdict:
    """Drive `solution` through every sequence of moves up to LONGEST (+2 per extra depth)."""
    tried = 0
    for length in range(1, LONGEST + 2 * (depth - 2) + 1):
        for moves in product(MOVES, repeat=length):
            tried += 1
            steps, promise = play(solution, moves)
            if promise is not None:
                marked = (*steps[:-1], steps[-1]._replace(breaking=True))
                return Verdict(False, tried, promise, marked, "breaker lab", schedule=moves)
    return Verdict(True, tried, subject="breaker lab")
