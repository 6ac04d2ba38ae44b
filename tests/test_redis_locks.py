"""RedisLockManager passes the LockManager contract, on Redis's own clock at a fast pace.

Leases expire by Redis's clock, so time must really pass: one contract second is UNIT real
seconds here (TTLs are scaled by a thin wrapper), and the test clock sleeps for real.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from aegispay.engine import Engine, open_locks
from aegispay.infra.clock import VirtualClock
from aegispay.infra.locks.redis import RedisLockManager
from aegispay.infra.urls import parse_locks_url
from aegispay.orchestration.ports import LockManager
from tests.contracts.lock_manager_contract import RESOURCE, LockManagerContract

pytestmark = pytest.mark.redis

# One contract second lasts 50 ms: a 10 s lease is 500 ms, the whole suite a few seconds, and a
# process descheduled for tens of ms on a loaded machine does not overrun the margin (one unit).
UNIT = 0.05
# Redis counts expiry in whole milliseconds and keeps a key up to its last one: step past it.
PAST_THE_MILLISECOND = 0.002


class WallClock(VirtualClock):
    """Real time at the contract's pace: `advance` and `sleep` wait for real, `now` reads it."""

    def __init__(self) -> None:
        super().__init__()
        self._started = time.monotonic()

    def now(self) -> datetime:
        elapsed = (time.monotonic() - self._started) / UNIT
        return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=elapsed)

    def advance(self, seconds: float) -> None:
        time.sleep(seconds * UNIT + PAST_THE_MILLISECOND)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds * UNIT)


class PacedLocks:
    """The manager under test with every TTL scaled to the contract's pace."""

    def __init__(self, locks: RedisLockManager) -> None:
        self.locks = locks

    def acquire(self, resource: str, owner: str, ttl: float, wait: float = 0.0) -> bool:
        return self.locks.acquire(resource, owner, ttl * UNIT if ttl > 0 else ttl, wait)

    def release(self, resource: str, owner: str) -> None:
        self.locks.release(resource, owner)

    def extend(self, resource: str, owner: str, ttl: float) -> None:
        self.locks.extend(resource, owner, ttl * UNIT if ttl > 0 else ttl)

    def holder(self, resource: str) -> str | None:
        return self.locks.holder(resource)


class TestRedisLockManager(LockManagerContract):
    # One contract second either side of an expiry: 50 ms for round trips and scheduling.
    margin = 1.0
    url: str

    @pytest.fixture(autouse=True)
    def _prefix(self, redis_url: str) -> None:
        self.url = redis_url

    @pytest.fixture
    def clock(self) -> VirtualClock:
        return WallClock()

    @pytest.fixture
    def locks(self, clock: VirtualClock) -> Iterator[LockManager]:
        manager = self.make_locks(clock)
        yield manager
        manager.locks.close()

    def make_locks(self, clock: VirtualClock) -> PacedLocks:
        parsed = parse_locks_url(self.url)
        manager = RedisLockManager.from_url(parsed.url, clock, prefix=parsed.prefix)
        return PacedLocks(manager)

    def test_two_managers_on_one_server_see_one_lease(self, clock: VirtualClock) -> None:
        """Two processes' managers are two clients: a lease taken by one is refused to the other."""
        first, second = self.make_locks(clock), self.make_locks(clock)
        try:
            assert first.acquire(RESOURCE, "a", ttl=10)
            assert not second.acquire(RESOURCE, "b", ttl=10)
            assert second.holder(RESOURCE) == "a"
        finally:
            first.locks.close()
            second.locks.close()


def test_an_engine_opened_with_a_redis_url_takes_its_locks_there(redis_url: str) -> None:
    with Engine.open("memory://", "memory://", locks=redis_url) as engine:
        assert isinstance(engine.locks, RedisLockManager)
        assert engine.locks.acquire(RESOURCE, "a", ttl=1)
        assert engine.locks.holder(RESOURCE) == "a"


def test_a_memory_url_gives_the_in_process_lock_manager() -> None:
    assert not isinstance(open_locks("memory://", VirtualClock()), RedisLockManager)


@pytest.mark.parametrize("url", ["http://localhost", "redis://h:6379/0?prefix=Bad Name", 7])
def test_a_bad_locks_url_is_refused(url: object) -> None:
    from aegispay import InvalidRequest  # noqa: PLC0415 - the public error, as a user meets it

    with pytest.raises(InvalidRequest, match="locks"):
        parse_locks_url(url)
