"""The LockManager contract: every adapter (in-memory, Redis ...) must pass this suite."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import timedelta

import pytest

from aegispay.domain.errors import LockNotHeld, LockTimeout
from aegispay.infra.clock import VirtualClock
from aegispay.infra.locks import with_lock
from aegispay.orchestration.ports import LockManager

RESOURCE = "payment:pay_1"


class LockManagerContract(ABC):
    """Subclass per adapter as `Test<Adapter>` and implement `make_locks`."""

    @abstractmethod
    def make_locks(self, clock: VirtualClock) -> LockManager:
        """Return a fresh, empty lock manager that reads time from `clock`."""

    # How close to an expiry the suite looks, in seconds: a server's clock and its round trips
    # need more room than a virtual clock.
    margin = 0.1

    def advance(self, clock: VirtualClock, seconds: float) -> None:
        """Let `seconds` pass for the leases; an adapter with its own time source overrides this."""
        clock.advance(seconds)

    @pytest.fixture
    def clock(self) -> VirtualClock:
        return VirtualClock()

    @pytest.fixture
    def locks(self, clock: VirtualClock) -> LockManager:
        return self.make_locks(clock)

    # --- acquire and release ------------------------------------------------------------------

    def test_a_free_lock_is_acquired_and_held_by_its_owner(self, locks: LockManager) -> None:
        assert locks.acquire(RESOURCE, "a", ttl=10)
        assert locks.holder(RESOURCE) == "a"

    def test_a_lock_nobody_took_has_no_holder(self, locks: LockManager) -> None:
        assert locks.holder(RESOURCE) is None

    def test_a_released_lock_is_free_for_another_owner(self, locks: LockManager) -> None:
        locks.acquire(RESOURCE, "a", ttl=10)
        locks.release(RESOURCE, "a")
        assert locks.holder(RESOURCE) is None
        assert locks.acquire(RESOURCE, "b", ttl=10)

    def test_a_second_owner_cannot_acquire_a_held_lock(self, locks: LockManager) -> None:
        locks.acquire(RESOURCE, "a", ttl=10)
        assert not locks.acquire(RESOURCE, "b", ttl=10)
        assert locks.holder(RESOURCE) == "a"

    def test_the_owner_cannot_acquire_its_own_held_lock_again(self, locks: LockManager) -> None:
        """Locks are not re-entrant: a second acquire by the same owner is refused."""
        locks.acquire(RESOURCE, "a", ttl=10)
        assert not locks.acquire(RESOURCE, "a", ttl=10)

    def test_locks_on_different_resources_are_independent(self, locks: LockManager) -> None:
        locks.acquire(RESOURCE, "a", ttl=10)
        assert locks.acquire("payment:pay_2", "b", ttl=10)
        assert (locks.holder(RESOURCE), locks.holder("payment:pay_2")) == ("a", "b")

    # --- leases and TTL -----------------------------------------------------------------------

    def test_a_lease_is_held_until_just_before_its_ttl_runs_out(
        self, locks: LockManager, clock: VirtualClock
    ) -> None:
        locks.acquire(RESOURCE, "a", ttl=10)
        self.advance(clock, 10 - self.margin)
        assert locks.holder(RESOURCE) == "a"
        assert not locks.acquire(RESOURCE, "b", ttl=10)

    def test_a_lease_expires_after_its_ttl_and_another_owner_can_take_it(
        self, locks: LockManager, clock: VirtualClock
    ) -> None:
        locks.acquire(RESOURCE, "a", ttl=10)
        self.advance(clock, 10)
        assert locks.holder(RESOURCE) is None
        assert locks.acquire(RESOURCE, "b", ttl=10)
        assert locks.holder(RESOURCE) == "b"

    def test_release_by_a_non_owner_raises_lock_not_held_and_keeps_the_lease(
        self, locks: LockManager
    ) -> None:
        locks.acquire(RESOURCE, "a", ttl=10)
        with pytest.raises(LockNotHeld):
            locks.release(RESOURCE, "b")
        assert locks.holder(RESOURCE) == "a"

    def test_release_of_a_lock_nobody_holds_raises_lock_not_held(self, locks: LockManager) -> None:
        with pytest.raises(LockNotHeld):
            locks.release(RESOURCE, "a")

    def test_release_of_an_expired_lease_raises_lock_not_held(
        self, locks: LockManager, clock: VirtualClock
    ) -> None:
        locks.acquire(RESOURCE, "a", ttl=10)
        self.advance(clock, 11)
        with pytest.raises(LockNotHeld):
            locks.release(RESOURCE, "a")

    def test_a_stale_owner_cannot_release_the_lease_of_the_owner_after_it(
        self, locks: LockManager, clock: VirtualClock
    ) -> None:
        locks.acquire(RESOURCE, "a", ttl=10)
        self.advance(clock, 11)
        locks.acquire(RESOURCE, "b", ttl=10)
        with pytest.raises(LockNotHeld):
            locks.release(RESOURCE, "a")
        assert locks.holder(RESOURCE) == "b"

    # --- extend -------------------------------------------------------------------------------

    def test_extend_pushes_the_expiry_to_now_plus_the_new_ttl(
        self, locks: LockManager, clock: VirtualClock
    ) -> None:
        locks.acquire(RESOURCE, "a", ttl=10)
        self.advance(clock, 8)
        locks.extend(RESOURCE, "a", ttl=10)
        self.advance(clock, 9)  # 17s after acquire: past the first TTL, within the extension
        assert locks.holder(RESOURCE) == "a"
        self.advance(clock, 1)  # 18s: the extension ends
        assert locks.holder(RESOURCE) is None

    def test_extend_by_a_non_owner_raises_lock_not_held(self, locks: LockManager) -> None:
        locks.acquire(RESOURCE, "a", ttl=10)
        with pytest.raises(LockNotHeld):
            locks.extend(RESOURCE, "b", ttl=10)
        assert locks.holder(RESOURCE) == "a"

    def test_extend_of_an_expired_lease_raises_lock_not_held(
        self, locks: LockManager, clock: VirtualClock
    ) -> None:
        """An expired lease cannot be revived: someone else may already have acted on it."""
        locks.acquire(RESOURCE, "a", ttl=10)
        self.advance(clock, 10)
        with pytest.raises(LockNotHeld):
            locks.extend(RESOURCE, "a", ttl=10)
        assert locks.holder(RESOURCE) is None

    # --- waiting acquire ----------------------------------------------------------------------

    def test_a_waiting_acquire_returns_false_once_the_wait_has_elapsed_on_the_clock(
        self, locks: LockManager, clock: VirtualClock
    ) -> None:
        locks.acquire(RESOURCE, "a", ttl=60)
        started = clock.now()
        assert not locks.acquire(RESOURCE, "b", ttl=10, wait=5)
        waited = clock.now() - started
        assert timedelta(seconds=5) <= waited < timedelta(seconds=5 + max(1.0, self.margin))
        assert locks.holder(RESOURCE) == "a"

    def test_a_waiting_acquire_succeeds_when_the_holders_ttl_runs_out_during_the_wait(
        self, locks: LockManager, clock: VirtualClock
    ) -> None:
        locks.acquire(RESOURCE, "a", ttl=2)
        started = clock.now()
        assert locks.acquire(RESOURCE, "b", ttl=10, wait=5)
        waited = clock.now() - started
        assert timedelta(seconds=2) <= waited < timedelta(seconds=5)
        assert locks.holder(RESOURCE) == "b"

    # --- with_lock ----------------------------------------------------------------------------

    def test_with_lock_holds_the_lock_inside_the_block_and_releases_it_on_exit(
        self, locks: LockManager
    ) -> None:
        with with_lock(locks, RESOURCE, "a", ttl=10, wait=0):
            assert locks.holder(RESOURCE) == "a"
        assert locks.holder(RESOURCE) is None

    def test_with_lock_releases_the_lock_when_the_block_raises(self, locks: LockManager) -> None:
        with (
            pytest.raises(RuntimeError, match="inside the block"),
            with_lock(locks, RESOURCE, "a", ttl=10, wait=0),
        ):
            raise RuntimeError("inside the block")
        assert locks.holder(RESOURCE) is None

    def test_with_lock_raises_lock_timeout_while_another_owner_holds_the_lock(
        self, locks: LockManager, clock: VirtualClock
    ) -> None:
        entered: list[str] = []
        locks.acquire(RESOURCE, "a", ttl=60)
        with pytest.raises(LockTimeout), with_lock(locks, RESOURCE, "b", ttl=10, wait=1):
            entered.append("b")
        assert entered == []
        assert locks.holder(RESOURCE) == "a"

    def test_with_lock_leaves_alone_a_lease_that_expired_and_passed_to_another_owner(
        self, locks: LockManager, clock: VirtualClock
    ) -> None:
        with with_lock(locks, RESOURCE, "a", ttl=10, wait=0):
            self.advance(clock, 11)
            assert locks.acquire(RESOURCE, "b", ttl=10)
        assert locks.holder(RESOURCE) == "b"

    # --- arguments ----------------------------------------------------------------------------

    @pytest.mark.parametrize("ttl", [0, -1])
    def test_acquire_with_a_ttl_of_zero_or_less_is_a_value_error_naming_ttl(
        self, locks: LockManager, ttl: float
    ) -> None:
        with pytest.raises(ValueError, match="ttl"):
            locks.acquire(RESOURCE, "a", ttl=ttl)
        assert locks.holder(RESOURCE) is None

    @pytest.mark.parametrize("ttl", [0, -1])
    def test_extend_with_a_ttl_of_zero_or_less_is_a_value_error_naming_ttl(
        self, locks: LockManager, ttl: float
    ) -> None:
        locks.acquire(RESOURCE, "a", ttl=10)
        with pytest.raises(ValueError, match="ttl"):
            locks.extend(RESOURCE, "a", ttl=ttl)
        assert locks.holder(RESOURCE) == "a"
