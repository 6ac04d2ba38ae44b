"""A Redis lease lock manager: SET NX PX to take, Lua compare-and-delete / compare-and-extend.

The lease's expiry is Redis's own clock (PX), so every process on every machine agrees on it;
the injected clock only paces a waiting acquire. As with every lock here, a lease is for
efficiency: a holder paused past its TTL can still try to write, and the event store's
expected version is what refuses it (redis-py's own Lock issues no fencing token either).

So a worker goes on while Redis is down (`on_outage=`): every lease it asks for is granted in
this process alone, saying so in one line when Redis is lost and one when it is back, and
Redis is tried again after a backoff that doubles up to a few seconds. Two workers may then do
one payment's work at once; the store refuses the loser's stale writes and the gateway's key
and cancel fence keep the charge single, as the labs' attack without the lock shows. Every call
to Redis is bounded by a socket timeout, so a paused server costs seconds, never a hang.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Self

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

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
# Seconds a command waits on a silent server (paused, or cut off) before it counts as down.
SOCKET_TIMEOUT = 1.0
# Backoff between tries of a Redis found down: doubling from the first to the last.
FIRST_RETRY, LAST_RETRY = 0.25, 4.0
# What a call answers while Redis is down and that is tolerated.
DOWN = object()


class RedisLockManager:
    """Leases as Redis keys `<prefix>:lock:<resource>` holding the owner, expiring by PX."""

    # What a worker waits out rather than dies of, when Redis's errors reach it at all.
    outage_errors: tuple[type[Exception], ...] = (redis.RedisError,)

    def __init__(
        self,
        client: redis.Redis,
        clock: Clock,
        prefix: str = "aegispay",
        poll_interval: float = 0.01,
        on_outage: Callable[[str], None] | None = None,
    ) -> None:
        self._client = client
        self._clock = clock
        self._prefix = prefix
        self._poll = poll_interval
        self._release = client.register_script(RELEASE)
        self._extend = client.register_script(EXTEND)
        # Going on while Redis is down: where to say so; None raises Redis's errors instead.
        self._on_outage = on_outage
        self._down_since: datetime | None = None
        self._retry_at: datetime | None = None
        self._retries = 0
        # Leases granted in this process alone while Redis was down: (resource, owner).
        self._local: set[tuple[str, str]] = set()

    @classmethod
    def from_url(
        cls,
        url: str,
        clock: Clock,
        prefix: str = "aegispay",
        on_outage: Callable[[str], None] | None = None,
    ) -> Self:
        """Connect to the server a 'redis://host:port/db' URL names; InvalidRequest saying why
        when it cannot be used (down, refusing, no such database number)."""
        client = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=SOCKET_TIMEOUT,
            # One quick retry on a fresh connection (a server restarted since the last command);
            # the backoff between outages is this class's, not redis-py's ten tries.
            retry=Retry(NoBackoff(), 1),
        )
        try:
            client.ping()
        except redis.RedisError as error:
            client.close()
            raise InvalidRequest("locks", f"cannot connect: {error}", url) from None
        return cls(client, clock, prefix, on_outage=on_outage)

    def acquire(self, resource: str, owner: str, ttl: float, wait: float = 0.0) -> bool:
        """Take the lease if free (not re-entrant); poll on the clock up to `wait` seconds.
        While Redis is down and `on_outage` was given, grant it in this process alone."""
        lease = _milliseconds(ttl)
        deadline = self._clock.now() + timedelta(seconds=wait)
        while True:
            taken = self._ask(
                lambda: self._client.set(self._key(resource), owner, nx=True, px=lease)
            )
            if taken is DOWN:
                self._local.add((resource, owner))
                return True
            if taken:
                return True
            if self._clock.now() >= deadline:
                return False
            self._clock.sleep(self._poll)

    def release(self, resource: str, owner: str) -> None:
        """Free the lease; only its live owner may."""
        if (resource, owner) in self._local:
            self._local.discard((resource, owner))
            return
        released = self._ask(lambda: self._release(keys=[self._key(resource)], args=[owner]))
        # Redis down: the lease, if Redis still has it, runs out on its own.
        if released is not DOWN and not released:
            raise self._not_held(resource, owner)

    def extend(self, resource: str, owner: str, ttl: float) -> None:
        """Renew the lease to now + ttl (Redis's now); only its live owner may."""
        if (resource, owner) in self._local:
            return
        args: list[str | int] = [owner, _milliseconds(ttl)]
        extended = self._ask(lambda: self._extend(keys=[self._key(resource)], args=args))
        if extended is not DOWN and not extended:
            raise self._not_held(resource, owner)

    def holder(self, resource: str) -> str | None:
        """Return the live owner, or None (also while Redis is down and that is tolerated)."""
        owner = self._ask(lambda: self._client.get(self._key(resource)))
        return None if owner is None or owner is DOWN else str(owner)

    @property
    def down(self) -> bool:
        """Whether Redis was found down and has not answered since."""
        return self._down_since is not None

    def _ask(self, call: Callable[[], object]) -> object:
        """Run one Redis call; DOWN when Redis is down (found so now, or not yet due for its
        next try) and that is tolerated; Redis's error when it is not."""
        if self._retry_at is not None and self._clock.now() < self._retry_at:
            return DOWN
        try:
            answer = call()
        except redis.RedisError as error:
            if self._on_outage is None:
                raise
            self._lost(error)
            return DOWN
        if self._down_since is not None and self._on_outage is not None:
            seconds = (self._clock.now() - self._down_since).total_seconds()
            self._on_outage(
                f"locks: Redis is back after {seconds:.1f} s; leases are taken there again"
            )
            self._down_since = self._retry_at = None
            self._retries = 0
        return answer

    def _lost(self, error: redis.RedisError) -> None:
        """Say that Redis is down (once per outage) and when to try it again."""
        assert self._on_outage is not None
        now = self._clock.now()
        if self._down_since is None:
            self._down_since = now
            self._on_outage(
                f"locks: Redis cannot be reached ({' '.join(str(error).split())}): going on "
                "without leases; the event store's expected version is the fence"
            )
        backoff = min(LAST_RETRY, FIRST_RETRY * 2**self._retries)
        self._retries += 1
        self._retry_at = now + timedelta(seconds=backoff)

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
