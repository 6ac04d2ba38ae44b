"""Lock managers: leases with TTL and owner, and `with_lock` that always releases."""

from __future__ import annotations

from types import TracebackType

from aegispay.domain.errors import LockNotHeld, LockTimeout
from aegispay.orchestration.ports import LockManager


def with_lock(
    locks: LockManager, resource: str, owner: str, ttl: float = 30.0, wait: float = 10.0
) -> Held:
    """Hold `resource` for a `with` block; raise LockTimeout if it cannot be had within `wait`."""
    return Held(locks, resource, owner, ttl, wait)


class Held:
    """The `with` block of `with_lock`: acquire on entry, release on the way out, however the
    block ends. (A class, not a generator: it is entered twice for every payment.)"""

    __slots__ = ("locks", "owner", "resource", "ttl", "wait")

    def __init__(
        self, locks: LockManager, resource: str, owner: str, ttl: float, wait: float
    ) -> None:
        self.locks, self.resource, self.owner = locks, resource, owner
        self.ttl, self.wait = ttl, wait

    def __enter__(self) -> None:
        if not self.locks.acquire(self.resource, self.owner, ttl=self.ttl, wait=self.wait):
            raise LockTimeout(
                f"lock {self.resource!r}: still held by {self.locks.holder(self.resource)!r} "
                f"after {self.wait}s"
            )

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # The lease may have expired and passed to someone else: that is theirs now. (A try
        # statement rather than contextlib.suppress: it costs nothing when nothing is raised,
        # and a lock is released twice for every payment.)
        try:  # noqa: SIM105
            self.locks.release(self.resource, self.owner)
        except LockNotHeld:
            pass
