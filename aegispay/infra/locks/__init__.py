"""Lock managers: leases with TTL and owner, and `with_lock` that always releases."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

from aegispay.domain.errors import LockNotHeld, LockTimeout
from aegispay.orchestration.ports import LockManager


@contextmanager
def with_lock(
    locks: LockManager, resource: str, owner: str, ttl: float = 30.0, wait: float = 10.0
) -> Iterator[None]:
    """Hold `resource` for the block; raise LockTimeout if it cannot be had within `wait`."""
    if not locks.acquire(resource, owner, ttl=ttl, wait=wait):
        raise LockTimeout(
            f"lock {resource!r}: still held by {locks.holder(resource)!r} after {wait}s"
        )
    try:
        yield
    finally:
        # The lease may have expired and passed to someone else: that is theirs now.
        with suppress(LockNotHeld):
            locks.release(resource, owner)
