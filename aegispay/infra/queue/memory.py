"""An in-memory payment queue: the fake, and the single-host queue of workers in one process."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from aegispay.infra.queue import WorkRecord


class InMemoryPaymentQueue:
    """Payment ids in arrival order; a claimed id is hidden from others until its claim ends."""

    def __init__(self) -> None:
        self._waiting: dict[str, None] = {}
        self._claimed: set[str] = set()
        self._log: list[WorkRecord] = []
        self._mutex = threading.Lock()

    def enqueue(self, payment_id: str) -> None:
        """Add a payment unless it is already waiting."""
        with self._mutex:
            self._waiting.setdefault(payment_id)

    @contextmanager
    def claim(self, limit: int) -> Iterator[list[str]]:
        """Take up to `limit` waiting ids nobody else holds; they leave the queue when the block
        ends normally and go back when it raises."""
        with self._mutex:
            ids = [pid for pid in self._waiting if pid not in self._claimed][:limit]
            self._claimed.update(ids)
        try:
            yield ids
        except BaseException:
            with self._mutex:
                self._claimed.difference_update(ids)
            raise
        with self._mutex:
            self._claimed.difference_update(ids)
            for payment_id in ids:
                self._waiting.pop(payment_id, None)

    def pending(self) -> int:
        """How many payments wait, claimed or not."""
        with self._mutex:
            return len(self._waiting)

    def record(self, payment_id: str, worker: str, action: str, state: str, at: datetime) -> None:
        """Log that a worker moved a payment on."""
        with self._mutex:
            self._log.append(WorkRecord(payment_id, worker, action, state, at))

    def work_log(self) -> list[WorkRecord]:
        """Everything logged, oldest first."""
        with self._mutex:
            return list(self._log)
