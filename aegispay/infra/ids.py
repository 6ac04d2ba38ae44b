"""Id generators: random for durable stores, seeded for reproducible simulations."""

from __future__ import annotations

import random
import threading
import uuid


class RandomIdGenerator:
    """Random 128-bit ids: unique across processes and restarts."""

    def new_id(self, prefix: str) -> str:
        """Return prefix_ and 32 random hex digits."""
        return f"{prefix}_{uuid.uuid4().hex}"


class SeededIdGenerator:
    """A repeatable id sequence from a seed; for in-memory simulations only."""

    def __init__(self, seed: int | str) -> None:
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def new_id(self, prefix: str) -> str:
        """Return prefix_ and the next 32 hex digits of the seeded sequence."""
        with self._lock:
            return f"{prefix}_{self._random.getrandbits(128):032x}"
