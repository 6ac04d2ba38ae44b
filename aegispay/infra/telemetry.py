"""Logger and Metrics adapters: in-memory records a notebook can print, and stdlib logging."""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from datetime import datetime
from typing import NamedTuple

from aegispay.orchestration.ports import Clock


class LogLine(NamedTuple):
    """One structured log line (a tuple: immutable, and cheap to make on every step)."""

    at: datetime
    level: str
    message: str
    fields: dict[str, object]

    def __str__(self) -> str:
        shown = " ".join(f"{k}={v}" for k, v in self.fields.items())
        return f"{self.at:%H:%M:%S} {self.level:<7} {self.message} {shown}".rstrip()


# A library configures no output of its own: applications decide where `aegispay` logs go.
logging.getLogger("aegispay").addHandler(logging.NullHandler())
# Level names as the engine writes them ("info") to stdlib's numbers, looked up once each.
LEVELS: dict[str, int] = {}


class MemoryLogger:
    """Keeps the last `keep` lines in memory, and forwards each to stdlib logging."""

    def __init__(self, clock: Clock, keep: int = 10_000) -> None:
        self._clock = clock
        self.lines: deque[LogLine] = deque(maxlen=keep)
        self._stdlib = logging.getLogger("aegispay")

    def log(self, level: str, message: str, **fields: object) -> None:
        """Record a line and pass it to the `aegispay` stdlib logger."""
        self.lines.append(LogLine(self._clock.now(), level, message, fields))
        number = LEVELS.get(level)
        if number is None:
            number = LEVELS[level] = logging.getLevelName(level.upper())
        if self._stdlib.isEnabledFor(number):
            self._stdlib.log(number, "%s %s", message, fields)


class MemoryMetrics:
    """Named counters, safe to increment from several threads."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def increment(self, name: str, by: int = 1) -> None:
        """Add `by` to the counter `name`."""
        with self._lock:
            self._counts[name] += by

    def get(self, name: str) -> int:
        """Return a counter's value (0 if never incremented)."""
        with self._lock:
            return self._counts[name]

    def counts(self, prefix: str) -> dict[str, int]:
        """The counters whose names start with `prefix`, named without it."""
        with self._lock:
            return {
                name[len(prefix) :]: count
                for name, count in sorted(self._counts.items())
                if name.startswith(prefix)
            }

    def snapshot(self) -> dict[str, int]:
        """Return every counter, sorted by name."""
        with self._lock:
            return dict(sorted(self._counts.items()))

    def __repr__(self) -> str:
        return f"MemoryMetrics({self.snapshot()})"
