"""InMemoryLockManager passes the LockManager contract, on a virtual clock."""

from __future__ import annotations

from aegispay.infra.clock import VirtualClock
from aegispay.infra.locks.memory import InMemoryLockManager
from aegispay.orchestration.ports import LockManager
from tests.contracts.lock_manager_contract import RESOURCE, LockManagerContract

POLL_INTERVAL = 0.05


class TestInMemoryLockManager(LockManagerContract):
    def make_locks(self, clock: VirtualClock) -> LockManager:
        return InMemoryLockManager(clock, poll_interval=POLL_INTERVAL)

    def test_a_waiting_acquire_polls_by_sleeping_on_the_injected_clock(
        self, locks: LockManager, clock: VirtualClock
    ) -> None:
        locks.acquire(RESOURCE, "a", ttl=60)
        locks.acquire(RESOURCE, "b", ttl=10, wait=1)
        assert clock.slept
        assert set(clock.slept) == {POLL_INTERVAL}
