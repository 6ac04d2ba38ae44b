"""An in-memory payment queue: the fake, and the single-host queue of workers in one process."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from aegispay.infra.clock import SystemClock
from aegispay.infra.queue import Claim, WorkRecord
from aegispay.orchestration.ports import Clock


@dataclass(frozen=True)
class _Entry:
    seq: int
    # When anyone may claim it next: when it was queued, or when its claim's lease runs out.
    available_at: datetime
    claimed_by: str | None = None
    token: str | None = None


class InMemoryPaymentQueue:
    """Payment ids in order of the time each may be claimed; a claim is a lease on `clock`."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._entries: dict[str, _Entry] = {}
        self._seq = 0
        self._log: list[WorkRecord] = []
        self._mutex = threading.Lock()

    def enqueue(self, payment_id: str) -> bool:
        """Add a payment unless it waits already; True when this made it claimable (new, or
        its claim's lease had run out)."""
        now = self._clock.now()
        with self._mutex:
            entry = self._entries.get(payment_id)
            if entry is None:
                self._seq += 1
                self._entries[payment_id] = _Entry(self._seq, now)
                return True
            if entry.token is None or entry.available_at > now:
                return False  # waiting already, or held by a live lease
            self._entries[payment_id] = _Entry(entry.seq, now)
            return True

    def requeue(self, payment_ids: Sequence[str]) -> int:
        """Make payments claimable (new ones, or ones whose claim's lease ran out), leaving
        those waiting or held; return how many it changed."""
        return sum(self.enqueue(payment_id) for payment_id in payment_ids)

    def claim(self, worker: str, limit: int, lease: float) -> Claim:
        """Take up to `limit` ids whose time has come, oldest first, for `lease` seconds."""
        now = self._clock.now()
        with self._mutex:
            free = sorted(
                (entry.available_at, entry.seq, payment_id)
                for payment_id, entry in self._entries.items()
                if entry.available_at <= now
            )[:limit]
            claim = Claim(worker, tuple(payment_id for _, _, payment_id in free))
            until = now + timedelta(seconds=lease)
            for payment_id in claim.ids:
                entry = self._entries[payment_id]
                self._entries[payment_id] = replace(
                    entry, available_at=until, claimed_by=worker, token=claim.token
                )
        return claim

    def renew(self, claim: Claim, lease: float, ids: Sequence[str] | None = None) -> set[str]:
        """Push the lease of the claim's ids (or of `ids` among them) to now + `lease`; return
        those still held by this claim (the others passed to another worker)."""
        until = self._clock.now() + timedelta(seconds=lease)
        with self._mutex:
            held = {pid for pid in (claim.ids if ids is None else ids) if self._holds(claim, pid)}
            for payment_id in held:
                self._entries[payment_id] = replace(self._entries[payment_id], available_at=until)
        return held

    def complete(self, claim: Claim, payment_id: str, record: WorkRecord | None = None) -> bool:
        """Take a payment off the queue and log `record` (if any), if this claim still holds
        it; False, writing nothing, if its lease passed to another worker."""
        with self._mutex:
            if not self._holds(claim, payment_id):
                return False
            del self._entries[payment_id]
            if record is not None:
                self._log.append(record)
        return True

    def release(self, claim: Claim, delay: float = 0.0) -> None:
        """Give back the ids this claim still holds, claimable again after `delay` seconds."""
        at = self._clock.now() + timedelta(seconds=delay)
        with self._mutex:
            for payment_id in claim.ids:
                if self._holds(claim, payment_id):
                    self._entries[payment_id] = _Entry(self._entries[payment_id].seq, at)

    def claims(self) -> dict[str, str]:
        """Who holds each claimed payment (leases live or run out), by payment id."""
        with self._mutex:
            return {
                pid: entry.claimed_by
                for pid, entry in self._entries.items()
                if entry.claimed_by is not None
            }

    def pending(self) -> int:
        """How many payments wait, claimed or not."""
        with self._mutex:
            return len(self._entries)

    def record(self, payment_id: str, worker: str, action: str, state: str, at: datetime) -> None:
        """Log that a worker moved a payment on."""
        with self._mutex:
            self._log.append(WorkRecord(payment_id, worker, action, state, at))

    def work_log(self) -> list[WorkRecord]:
        """Everything logged, oldest first."""
        with self._mutex:
            return list(self._log)

    def _holds(self, claim: Claim, payment_id: str) -> bool:
        entry = self._entries.get(payment_id)
        return entry is not None and entry.token == claim.token
