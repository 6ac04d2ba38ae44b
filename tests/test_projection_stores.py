"""The ProjectionStore contract run against each adapter, plus what only SQLite can show."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from aegispay.domain.states import IN_FLIGHT, PaymentState
from aegispay.infra.clock import VirtualClock
from aegispay.infra.events.sqlite import SQLiteEventStore
from aegispay.infra.projections.memory import InMemoryProjectionStore
from aegispay.infra.projections.sqlite import SQLiteProjectionStore
from aegispay.orchestration.ports import ProjectionStore
from tests.contracts.projection_store_contract import ProjectionStoreContract
from tests.factories import initiated, payment

FILE = "projections.db"


class TestInMemoryProjectionStore(ProjectionStoreContract):
    def make_store(self, tmp_path: Path) -> ProjectionStore:
        return InMemoryProjectionStore()


class TestSQLiteProjectionStore(ProjectionStoreContract):
    def make_store(self, tmp_path: Path) -> ProjectionStore:
        return SQLiteProjectionStore(str(tmp_path / FILE))

    def test_ids_in_states_searches_the_state_index(self, tmp_path: Path) -> None:
        store = SQLiteProjectionStore(str(tmp_path / FILE))
        try:
            plan = store.explain_ids_in_states(IN_FLIGHT)
        finally:
            store.close()
        assert any("USING INDEX payments_by_state" in step for step in plan), plan
        assert not any(step.startswith("SCAN") for step in plan), plan

    def test_ids_in_states_comes_out_in_creation_order(self, tmp_path: Path) -> None:
        store = SQLiteProjectionStore(str(tmp_path / FILE))
        try:
            store.save(payment("pay_a", PaymentState.UNKNOWN, version=4))
            store.save(payment("pay_b", PaymentState.PROCESSING, version=3))
            store.save(payment("pay_a", PaymentState.PROCESSING, version=5))
            assert store.ids_in_states(IN_FLIGHT) == ["pay_a", "pay_b"]
        finally:
            store.close()

    def test_the_file_is_in_wal_mode(self, store: ProjectionStore, tmp_path: Path) -> None:
        conn = sqlite3.connect(tmp_path / FILE)
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        finally:
            conn.close()

    def test_rows_survive_closing_and_reopening_the_file(self, tmp_path: Path) -> None:
        first = SQLiteProjectionStore(str(tmp_path / FILE))
        for payment_id in ("pay_b", "pay_a"):
            first.save(payment(payment_id, PaymentState.PROCESSING, version=3))
        first.close()
        reopened = SQLiteProjectionStore(str(tmp_path / FILE))
        try:
            assert reopened.list() == [
                payment("pay_b", PaymentState.PROCESSING, version=3),
                payment("pay_a", PaymentState.PROCESSING, version=3),
            ]
            reopened.save(payment("pay_c"))
            assert [p.id for p in reopened.list()] == ["pay_b", "pay_a", "pay_c"]
        finally:
            reopened.close()

    def test_shares_a_file_with_the_event_store(self, tmp_path: Path) -> None:
        """The composition root opens both stores on one file; their tables must not collide."""
        events = SQLiteEventStore(str(tmp_path / FILE), VirtualClock())
        projections = SQLiteProjectionStore(str(tmp_path / FILE))
        try:
            events.append("pay_1", [initiated("pay_1")], expected_version=0)
            projections.save(payment("pay_1"))
            assert len(events.read("pay_1")) == 1
            assert projections.get("pay_1") == payment("pay_1")
        finally:
            events.close()
            projections.close()
