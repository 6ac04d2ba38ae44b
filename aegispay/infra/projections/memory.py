"""An in-memory projection store with a per-state index."""

from __future__ import annotations

import bisect
import builtins
import threading
from collections.abc import Sequence

from aegispay.domain.payment import Payment
from aegispay.domain.states import PaymentState


class InMemoryProjectionStore:
    """Rows in a dict plus, per state, the set of ids in it (the index)."""

    def __init__(self) -> None:
        self._rows: dict[str, Payment] = {}
        self._by_state: dict[PaymentState, dict[str, None]] = {s: {} for s in PaymentState}
        self._created: dict[str, int] = {}
        self._next_seq = 0
        self._checkpoint = 0
        self._halted: dict[str, str] = {}
        self._lock = threading.Lock()

    def save(self, payment: Payment) -> None:
        """Insert or replace an older row and move it in the state index."""
        with self._lock:
            old = self._rows.get(payment.id)
            if old is not None and old.version > payment.version:
                return
            if payment.id not in self._created:
                self._created[payment.id] = self._next_seq
                self._next_seq += 1
            if old is not None:
                self._by_state[old.state].pop(payment.id, None)
            self._rows[payment.id] = payment
            self._by_state[payment.state][payment.id] = None

    def get(self, payment_id: str) -> Payment | None:
        """Return the row, or None."""
        with self._lock:
            return self._rows.get(payment_id)

    def list(self, state: PaymentState | None = None) -> builtins.list[Payment]:
        """Return rows in order of creation, optionally of one state."""
        with self._lock:
            rows = list(self._rows.values())
        return rows if state is None else [p for p in rows if p.state is state]

    def ids_in_states(self, states: Sequence[PaymentState]) -> builtins.list[str]:
        """Return ids in the given states from the index, in order of creation."""
        with self._lock:
            found = [pid for s in states for pid in self._by_state[s]]
            return sorted(found, key=self._created.__getitem__)

    def ids_after(self, after: str = "", limit: int = 1000) -> builtins.list[str]:
        """Return a page of row ids greater than `after`, in id order."""
        with self._lock:
            ids = sorted(self._rows)
        start = bisect.bisect_right(ids, after)
        return ids[start : start + limit]

    def delete(self, payment_id: str) -> None:
        """Remove a row if present."""
        with self._lock:
            old = self._rows.pop(payment_id, None)
            self._created.pop(payment_id, None)
            if old is not None:
                self._by_state[old.state].pop(payment_id, None)

    def checkpoint(self) -> int:
        """Return the event position recovery has checked every row up to (0 at first)."""
        return self._checkpoint

    def set_checkpoint(self, position: int) -> None:
        """Record the position recovery has checked every row up to."""
        self._checkpoint = position

    def halted(self) -> dict[str, str]:
        """Return the streams marked unreadable, with their reasons."""
        with self._lock:
            return dict(self._halted)

    def mark_halted(self, stream_id: str, reason: str) -> None:
        """Remember an unreadable stream."""
        with self._lock:
            self._halted[stream_id] = reason

    def clear_halted(self, stream_id: str) -> None:
        """Forget a stream that reads cleanly again."""
        with self._lock:
            self._halted.pop(stream_id, None)
