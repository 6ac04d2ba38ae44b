"""Crash points: every adapter call is a named boundary where the process can be made to die.

A boundary is `<port>.<operation>` (`events.append`, `gateway.charge` ...), with a side:
`before` the call (it never happened) or `after` it (it happened, and we never learnt so).
Gateway calls have a third side, `inside`: the request is on the wire and the gateway has not
acted on it yet (a slow network), where another actor may run before our charge lands.
`arm` attaches a one-shot action to the nth crossing of a boundary; `crash` is the action
that raises ProcessCrash. The trace of crossings is what the crash enumeration walks.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal


class ProcessCrash(BaseException):
    """The process died here. A BaseException, so no `except Exception` can swallow it."""


Side = Literal["before", "inside", "after"]
SIDES: tuple[Side, ...] = ("before", "inside", "after")

# The operations of each port that cross a boundary.
OPERATIONS: dict[str, tuple[str, ...]] = {
    "events": ("read", "append", "stream_ids", "last_position", "streams_since"),
    "projection": (
        "save", "get", "list", "ids_in_states", "delete", "checkpoint", "set_checkpoint",
        "halted", "mark_halted", "clear_halted",
    ),
    "locks": ("acquire", "release"),
    "gateway": ("charge", "status", "cancel"),
}  # fmt: skip
BOUNDARIES: tuple[str, ...] = tuple(
    f"{port}.{op}" for port, ops in OPERATIONS.items() for op in ops
)


def sides_of(boundary: str) -> tuple[Side, ...]:
    """The sides a boundary has: `inside` only where a request travels to the gateway."""
    return SIDES if boundary.startswith("gateway.") else ("before", "after")


@dataclass(frozen=True)
class Crossing:
    """One crossing of a boundary: which, on which side, and the how-manieth it was."""

    boundary: str
    side: Side
    nth: int

    def __str__(self) -> str:
        return f"{self.side} {self.boundary} #{self.nth}"


class CrashPoints:
    """Counts boundary crossings, keeps their trace, fires armed one-shot actions and listeners."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()
        self._armed: dict[tuple[str, str, int], list[Callable[[], None]]] = {}
        self._mutex = threading.Lock()
        self.trace: list[Crossing] = []
        # Off by default: a long-running engine must not keep every crossing it ever made.
        self.recording = False
        # Called at every crossing (tracing); `hooks` only at one boundary's side.
        self.listeners: list[Callable[[Crossing], None]] = []
        self.hooks: dict[tuple[str, Side], list[Callable[[], None]]] = {}

    def arm(self, boundary: str, side: Side, nth: int, action: Callable[[], None]) -> None:
        """Run `action` once, at the nth crossing of `boundary` on `side` (counted from now)."""
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary: must be one of {', '.join(BOUNDARIES)} (got {boundary!r})")
        if side not in SIDES:
            raise ValueError(f"side: must be 'before', 'inside' or 'after' (got {side!r})")
        if side not in sides_of(boundary):
            raise ValueError(f"side: 'inside' is for gateway calls only (got {boundary!r})")
        if nth < 1:
            raise ValueError(f"nth: must be at least 1 (got {nth})")
        with self._mutex:
            key = (boundary, side, self._counts[(boundary, side)] + nth)
            self._armed.setdefault(key, []).append(action)

    def crash_at(self, boundary: str, side: Side = "before", nth: int = 1) -> None:
        """Make the process die at the nth crossing of a boundary."""

        def die() -> None:
            raise ProcessCrash(f"crashed {side} {boundary} #{nth}")

        self.arm(boundary, side, nth, die)

    def disarm(self) -> None:
        """Forget every armed action."""
        with self._mutex:
            self._armed.clear()

    def reset(self) -> None:
        """Start counting and tracing afresh, with nothing armed."""
        with self._mutex:
            self._armed.clear()
            self._counts.clear()
            self.trace.clear()

    @property
    def armed(self) -> int:
        """How many actions are still waiting for their crossing."""
        return sum(len(actions) for actions in self._armed.values())

    def hook(self, boundary: str, side: Side, action: Callable[[], None]) -> None:
        """Run `action` at every crossing of one boundary's side, after any armed action."""
        self.hooks.setdefault((boundary, side), []).append(action)

    def cross(self, boundary: str, side: Side) -> None:
        """Count a crossing, record it, and fire the action armed for it, if any."""
        key = (boundary, side)
        if not (self._armed or self.recording or self.listeners):
            # Nobody looks at the count: arming counts from the count it finds, whatever it
            # is, so a crossing made while nothing is armed or traced need not be counted.
            for hook in self.hooks.get(key, ()):
                hook()
            return
        with self._mutex:
            nth = self._counts[key] = self._counts[key] + 1
            if self.recording:
                self.trace.append(Crossing(boundary, side, nth))
            actions = self._armed.pop((boundary, side, nth), None) if self._armed else None
        # Armed actions first: a hook that fails the call must not swallow an armed crash.
        for action in actions or ():
            action()
        for hook in self.hooks.get(key, ()):
            hook()
        for listener in self.listeners:
            listener(Crossing(boundary, side, nth))


class Boundaries:
    """Wraps an adapter so each of its port's operations crosses a named boundary."""

    def __init__(self, port: str, inner: object, points: CrashPoints) -> None:
        self._port = port
        self._inner = inner
        self._points = points
        self._operations = OPERATIONS[port]

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name not in self._operations:
            if callable(attribute):
                setattr(self, name, attribute)  # a method: found here next time, as it is
            return attribute
        boundary, points = f"{self._port}.{name}", self._points
        cross, hooks = points.cross, points.hooks
        before, after = (boundary, "before"), (boundary, "after")

        def crossing(*args: Any, **kwargs: Any) -> Any:
            # Each side asks afresh whether anything would count, fire or trace there: the
            # call itself may arm its own `after` (an `inside` hook, a nested boundary).
            if points._armed or points.recording or points.listeners or before in hooks:
                cross(boundary, "before")
            result = attribute(*args, **kwargs)
            if points._armed or points.recording or points.listeners or after in hooks:
                cross(boundary, "after")
            return result

        # Built once per operation: later calls find it without coming back here.
        setattr(self, name, crossing)
        return crossing
