"""The ProjectionStore contract: every adapter, in-memory or durable, must pass these tests."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from aegispay.domain.states import IN_FLIGHT, PaymentState
from aegispay.orchestration.ports import ProjectionStore
from tests.factories import payment

S = PaymentState


class ProjectionStoreContract:
    """Behaviour every ProjectionStore adapter shares; subclass it and implement make_store."""

    def make_store(self, tmp_path: Path) -> ProjectionStore:
        """Return a new, empty store (files, if any, under tmp_path)."""
        raise NotImplementedError

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[ProjectionStore]:
        """A fresh store, closed after the test if the adapter can be closed."""
        store = self.make_store(tmp_path)
        yield store
        close = getattr(store, "close", None)
        if close is not None:
            close()

    def test_get_returns_a_saved_payment_unchanged(self, store: ProjectionStore) -> None:
        saved = payment("pay_1", S.PROCESSING, version=3).model_copy(update={"gateway": "sim"})
        store.save(saved)
        assert store.get("pay_1") == saved

    def test_get_of_an_unknown_id_returns_none(self, store: ProjectionStore) -> None:
        assert store.get("pay_missing") is None

    def test_save_replaces_the_row_with_the_same_id(self, store: ProjectionStore) -> None:
        store.save(payment("pay_1", S.INITIATED, version=1))
        store.save(payment("pay_1", S.AUTHENTICATED, version=2))
        assert store.get("pay_1") == payment("pay_1", S.AUTHENTICATED, version=2)
        assert len(store.list()) == 1

    def test_list_returns_rows_in_creation_order(self, store: ProjectionStore) -> None:
        for payment_id in ("pay_c", "pay_a", "pay_b"):
            store.save(payment(payment_id))
        assert [p.id for p in store.list()] == ["pay_c", "pay_a", "pay_b"]

    def test_an_upsert_keeps_the_original_creation_order(self, store: ProjectionStore) -> None:
        for payment_id in ("pay_a", "pay_b", "pay_c"):
            store.save(payment(payment_id))
        store.save(payment("pay_a", S.AUTHENTICATED, version=2))
        assert [p.id for p in store.list()] == ["pay_a", "pay_b", "pay_c"]

    def test_list_by_state_returns_only_that_state_in_creation_order(
        self, store: ProjectionStore
    ) -> None:
        store.save(payment("pay_1", S.PROCESSING, version=3))
        store.save(payment("pay_2", S.SUCCESS, version=4))
        store.save(payment("pay_3", S.PROCESSING, version=3))
        assert [p.id for p in store.list(S.PROCESSING)] == ["pay_1", "pay_3"]
        assert [p.id for p in store.list(S.SUCCESS)] == ["pay_2"]
        assert store.list(S.UNKNOWN) == []

    def test_ids_in_states_returns_exactly_the_ids_in_those_states(
        self, store: ProjectionStore
    ) -> None:
        states = [S.INITIATED, S.PROCESSING, S.UNKNOWN, S.SUCCESS, S.UNKNOWN, S.FAILURE]
        for n, state in enumerate(states):
            store.save(payment(f"pay_{n}", state, version=3))
        assert store.ids_in_states(IN_FLIGHT) == ["pay_1", "pay_2", "pay_4"]
        assert store.ids_in_states([S.AUTHENTICATED]) == []

    def test_ids_in_states_of_no_states_is_empty(self, store: ProjectionStore) -> None:
        store.save(payment("pay_1"))
        assert store.ids_in_states([]) == []

    def test_ids_in_states_follows_a_row_that_changed_state(self, store: ProjectionStore) -> None:
        store.save(payment("pay_1", S.PROCESSING, version=3))
        store.save(payment("pay_1", S.SUCCESS, version=4))
        assert store.ids_in_states([S.PROCESSING]) == []
        assert store.ids_in_states([S.SUCCESS]) == ["pay_1"]

    def test_delete_removes_the_row_from_get_list_and_the_state_index(
        self, store: ProjectionStore
    ) -> None:
        store.save(payment("pay_1", S.PROCESSING, version=3))
        store.save(payment("pay_2", S.PROCESSING, version=3))
        store.delete("pay_1")
        assert store.get("pay_1") is None
        assert [p.id for p in store.list()] == ["pay_2"]
        assert store.ids_in_states([S.PROCESSING]) == ["pay_2"]

    def test_deleting_an_unknown_id_does_nothing(self, store: ProjectionStore) -> None:
        store.save(payment("pay_1"))
        store.delete("pay_missing")
        assert [p.id for p in store.list()] == ["pay_1"]

    def test_a_row_saved_again_after_delete_counts_as_new(self, store: ProjectionStore) -> None:
        for payment_id in ("pay_a", "pay_b"):
            store.save(payment(payment_id))
        store.delete("pay_a")
        store.save(payment("pay_a"))
        assert [p.id for p in store.list()] == ["pay_b", "pay_a"]

    def test_concurrent_saves_from_threads_are_all_kept(self, store: ProjectionStore) -> None:
        ids = [f"pay_{n}" for n in range(40)]
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda payment_id: store.save(payment(payment_id)), ids))
        assert sorted(p.id for p in store.list()) == sorted(ids)

    def test_an_older_snapshot_never_replaces_a_newer_row(self, store: ProjectionStore) -> None:
        store.save(payment("pay_1", S.SUCCESS, version=4))
        store.save(payment("pay_1", S.PROCESSING, version=3))
        row = store.get("pay_1")
        assert row is not None
        assert (row.state, row.version) == (S.SUCCESS, 4)

    def test_the_checkpoint_starts_at_zero_and_keeps_what_is_set(
        self, store: ProjectionStore
    ) -> None:
        assert store.checkpoint() == 0
        store.set_checkpoint(42)
        assert store.checkpoint() == 42

    def test_halted_streams_are_remembered_until_cleared(self, store: ProjectionStore) -> None:
        assert store.halted() == {}
        store.mark_halted("pay_1", "version gap")
        store.mark_halted("pay_1", "version gap at 3")
        store.mark_halted("pay_2", "bad row")
        assert store.halted() == {"pay_1": "version gap at 3", "pay_2": "bad row"}
        store.clear_halted("pay_1")
        store.clear_halted("pay_unknown")
        assert store.halted() == {"pay_2": "bad row"}

    def test_ids_after_pages_through_the_row_ids_in_id_order(self, store: ProjectionStore) -> None:
        for payment_id in ("pay_c", "pay_a", "pay_b"):
            store.save(payment(payment_id, S.INITIATED))
        assert store.ids_after() == ["pay_a", "pay_b", "pay_c"]
        assert store.ids_after("pay_a", limit=1) == ["pay_b"]
        assert store.ids_after("pay_c") == []
