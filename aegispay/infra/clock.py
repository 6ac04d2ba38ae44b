"""Clocks: the system's real time, and a virtual clock whose sleep advances time instantly."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class SystemClock:
    """Real wall-clock time and real sleeps."""

    def now(self) -> datetime:
        """Return the current UTC time."""
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        """Block the thread for `seconds`."""
        if seconds > 0:
            time.sleep(seconds)


class VirtualClock:
    """Simulated time: `sleep` and `advance` move it forward at once, so nothing waits for real."""

    def __init__(self, start: datetime = EPOCH) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.slept: list[float] = []

    def now(self) -> datetime:
        """Return the simulated time."""
        # Reading one reference is atomic; only advancing needs the lock.
        return self._now

    def advance(self, seconds: float) -> None:
        """Move simulated time forward."""
        if seconds < 0:
            raise ValueError(f"seconds: must not be negative (got {seconds})")
        with self._lock:
            self._now += timedelta(seconds=seconds)

    def sleep(self, seconds: float) -> None:
        """Record the sleep and advance time by it, instantly."""
        if seconds < 0:
            raise ValueError(f"seconds: must not be negative (got {seconds})")
        if seconds > 0:
            self.slept.append(seconds)
            self.advance(seconds)
        # Let other threads run, as a real sleep would; this yields, it does not wait. Alone,
        # there is nobody to yield to, and a yield on a busy machine costs a time slice.
        if threading.active_count() > 1:
            time.sleep(0)
