"""Folds kept by content: the payment a stream's events make, under the hash of its last event.

A verified read hands back each event with its chain hash, and the hash of version v covers
every event up to v (stream, version, type, payload, and the hash before). So the key
(stream, version, hash) pins the whole prefix: the same key cannot fold to another payment,
and any change to an event, even one written with the chain recomputed, is a new key. Loading a
payment that has not moved since it was last folded then costs a lookup instead of a replay.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from aegispay.domain.payment import Payment, replay

if TYPE_CHECKING:
    from aegispay.orchestration.ports import RecordedEvent

FOLDS_KEPT = 4096


class Folds:
    """A bounded cache of folded payments, oldest dropped first; safe to share by threads."""

    def __init__(self, size: int = FOLDS_KEPT) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"size: must be a non-negative int (got {size!r})")
        self._size = size
        self._folds: dict[tuple[str, int, str], Payment] = {}
        self._mutex = threading.Lock()
        self.hits = 0
        self.misses = 0

    def replay(self, recorded: Sequence[RecordedEvent]) -> Payment | None:
        """The payment a verified read's events fold to (None for an empty stream)."""
        if not recorded:
            return None
        last = recorded[-1]
        key = (last.stream_id, last.version, last.hash)
        payment = self._folds.get(key)
        if payment is not None:
            self.hits += 1
            return payment
        self.misses += 1
        payment = replay(r.event for r in recorded)
        if payment is not None and self._size:
            with self._mutex:
                if len(self._folds) >= self._size:
                    del self._folds[next(iter(self._folds))]
                self._folds[key] = payment
        return payment

    def __len__(self) -> int:
        return len(self._folds)
