"""An in-memory lease lock manager: TTL, owner, extend and waiting acquire, on an injected clock."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import NamedTuple

from aegispay.domain.errors import LockNotHeld
from aegispay.orchestration.ports import Clock


class Lease(NamedTuple):
    """Who holds a resource, and until when (a tuple: immutable, and cheap to make on every
    acquire)."""

    owner: str
    expires_at: datetime


class InMemoryLockManager:
    """Leases in a dict; an expired lease counts as free. Waiting polls on the clock."""

    def __init__(self, clock: Clock, poll_interval: float = 0.05) -> None:
        self._clock = clock
        self._poll = poll_interval
        self._leases: dict[str, Lease] = {}
        self._mutex = threading.Lock()

    def acquire(self, resource: str, owner: str, ttl: float, wait: float = 0.0) -> bool:
        """Take the lease if free or expired (not re-entrant); poll on the clock up to `wait` s."""
        _check_ttl(ttl)
        if self._try_acquire(resource, owner, ttl):
            return True  # free: most acquires end here, with no deadline to work out
        # Held: wait for it, counting the deadline from the first try (a try sleeps no time).
        deadline = self._clock.now() + timedelta(seconds=wait)
        while True:
            if self._clock.now() >= deadline:
                return False
            self._clock.sleep(self._poll)
            if self._try_acquire(resource, owner, ttl):
                return True

    def release(self, resource: str, owner: str) -> None:
        """Free the lease; only its live owner may."""
        with self._mutex:
            self._live_lease_of(resource, owner)
            del self._leases[resource]

    def extend(self, resource: str, owner: str, ttl: float) -> None:
        """Renew the lease to now + ttl; only its live owner may."""
        _check_ttl(ttl)
        with self._mutex:
            self._live_lease_of(resource, owner)
            self._leases[resource] = Lease(owner, self._clock.now() + timedelta(seconds=ttl))

    def holder(self, resource: str) -> str | None:
        """Return the live owner, or None."""
        with self._mutex:
            lease = self._leases.get(resource)
            return lease.owner if lease and lease.expires_at > self._clock.now() else None

    def _try_acquire(self, resource: str, owner: str, ttl: float) -> bool:
        with self._mutex:
            now = self._clock.now()
            lease = self._leases.get(resource)
            if lease is not None and lease.expires_at > now:
                return False
            self._leases[resource] = Lease(owner, now + timedelta(seconds=ttl))
            return True

    def _live_lease_of(self, resource: str, owner: str) -> Lease:
        lease = self._leases.get(resource)
        if lease is None or lease.expires_at <= self._clock.now():
            raise LockNotHeld(f"lock {resource!r}: not held (never taken, released or expired)")
        if lease.owner != owner:
            raise LockNotHeld(f"lock {resource!r}: held by {lease.owner!r}, not {owner!r}")
        return lease


def _check_ttl(ttl: float) -> None:
    if not ttl > 0:
        raise ValueError(f"ttl: must be greater than zero seconds (got {ttl})")
