"""A Redis lease lock manager: SET NX PX to take, Lua compare-and-delete / compare-and-extend.

The lease's expiry is Redis's own clock (PX), so every process on every machine agrees on it;
the injected clock only paces a waiting acquire. As with every lock here, a lease is for
efficiency: a holder paused past its TTL can still try to write, and the event store's
expected version is what refuses it (redis-py's own Lock issues no fencing token either).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Self

import redis

from aegispay.domain.errors import InvalidRequest, LockNotHeld
from aegispay.orchestration.ports import Clock

# Delete the key only if it still holds our owner: a lease that expired and passed to another
# owner is theirs, and must survive our late release.
RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""
# Push the expiry only if the key still holds our owner: an expired lease is never revived.
EXTEND = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""


class RedisLockManager:
    """Leases as Redis keys `<prefix>:lock:<resource>` holding the owner, expiring by PX."""

    def __init__(
        self,
        client: redis.Redis,
        clock: Clock,
        prefix: str = "aegispay",
        poll_interval: float = 0.01,
    ) -> None:
        self._client = client
        self._clock = clock
        self._prefix = prefix
        self._poll = poll_interval
        self._release = client.register_script(RELEASE)
        self._extend = client.register_script(EXTEND)

    @classmethod
    def from_url(cls, url: str, clock: Clock, prefix: str = "aegispay") -> Self:
        """Connect to the server a 'redis://host:port/db' URL names; InvalidRequest saying why
        when it cannot be used (down, refusing, no such database number)."""
        client = redis.Redis.from_url(url, decode_responses=True)
        try:
            client.ping()
        except redis.RedisError as error:
            client.close()
            raise InvalidRequest("locks", f"cannot connect: {error}", url) from None
        return cls(client, clock, prefix)

    def acquire(self, resource: str, owner: str, ttl: float, wait: float = 0.0) -> bool:
        """Take the lease if free (not re-entrant); poll on the clock up to `wait` seconds."""
        lease = _milliseconds(ttl)
        deadline = self._clock.now() + timedelta(seconds=wait)
        while True:
            if self._client.set(self._key(resource), owner, nx=True, px=lease):
                return True
            if self._clock.now() >= deadline:
                return False
            self._clock.sleep(self._poll)

    def release(self, resource: str, owner: str) -> None:
        """Free the lease; only its live owner may."""
        if not self._release(keys=[self._key(resource)], args=[owner]):
            raise self._not_held(resource, owner)

    def extend(self, resource: str, owner: str, ttl: float) -> None:
        """Renew the lease to now + ttl (Redis's now); only its live owner may."""
        if not self._extend(keys=[self._key(resource)], args=[owner, _milliseconds(ttl)]):
            raise self._not_held(resource, owner)

    def holder(self, resource: str) -> str | None:
        """Return the live owner, or None."""
        owner = self._client.get(self._key(resource))
        return None if owner is None else str(owner)

    def close(self) -> None:
        """Close the connections to the server."""
        self._client.close()

    def _key(self, resource: str) -> str:
        return f"{self._prefix}:lock:{resource}"

    def _not_held(self, resource: str, owner: str) -> LockNotHeld:
        holder = self.holder(resource)
        if holder is None:
            return LockNotHeld(f"lock {resource!r}: not held (never taken, released or expired)")
        return LockNotHeld(f"lock {resource!r}: held by {holder!r}, not {owner!r}")


def _milliseconds(ttl: float) -> int:
    if not ttl > 0:
        raise ValueError(f"ttl: must be greater than zero seconds (got {ttl})")
    return max(1, round(ttl * 1000))
