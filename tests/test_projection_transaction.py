"""SQLite writes a projection row in the transaction of its events, inside a savepoint."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aegispay import AegisPay
from aegispay.domain.payment import Payment, replay
from aegispay.infra.clock import VirtualClock
from aegispay.infra.events.sqlite import SQLiteEventStore
from aegispay.infra.projections.sqlite import SQLiteProjectionStore
from aegispay.sim import ProcessCrash
from tests.factories import authenticated, initiated, opening


@dataclass
class Files:
    """An event store and a projection store on one file, sharing its connections."""

    path: Path
    events: SQLiteEventStore
    rows: SQLiteProjectionStore


@pytest.fixture
def files(tmp_path: Path) -> Iterator[Files]:
    path = tmp_path / "store.db"
    events = SQLiteEventStore(str(path), VirtualClock())
    rows = SQLiteProjectionStore(str(path), connections=events.connections)
    yield Files(path, events, rows)
    events.close()


def opened(payment_id: str) -> Payment:
    payment = replay(opening(payment_id))
    assert payment is not None
    return payment


def statements_of(files: Files) -> list[str]:
    """Every statement the thread's connection runs from now on."""
    statements: list[str] = []
    files.events.connections.get().set_trace_callback(statements.append)
    return statements


def test_a_row_and_its_events_commit_together_in_one_transaction(files: Files) -> None:
    statements = statements_of(files)
    files.events.append("pay_1", opening("pay_1"), 0, lambda: files.rows.save(opened("pay_1")))
    assert statements.count("COMMIT") == 1
    with sqlite3.connect(files.path) as other:
        assert other.execute("SELECT version FROM payments WHERE id = 'pay_1'").fetchone() == (3,)


def test_a_row_write_that_fails_half_way_is_undone_and_the_events_kept(files: Files) -> None:
    def write_then_fail() -> None:
        files.rows.save(opened("pay_1"))
        raise RuntimeError("the projection write failed after its upsert")

    files.events.append("pay_1", opening("pay_1"), 0, write_then_fail)
    assert files.rows.get("pay_1") is None
    assert len(files.events.read("pay_1")) == 3


def test_a_crash_inside_the_row_write_rolls_its_events_back_too(files: Files) -> None:
    def write_then_crash() -> None:
        files.rows.save(opened("pay_1"))
        raise ProcessCrash("died before the commit")

    with pytest.raises(ProcessCrash):
        files.events.append("pay_1", opening("pay_1"), 0, write_then_crash)
    assert files.events.read("pay_1") == []
    assert files.rows.get("pay_1") is None
    assert files.events.append("pay_1", opening("pay_1"), 0) == 3


def test_an_append_to_an_existing_stream_leaves_the_streams_table_alone(files: Files) -> None:
    files.events.append("pay_1", [initiated("pay_1")], 0)
    statements = statements_of(files)
    files.events.append("pay_1", [authenticated("pay_1")], 1)
    assert not [sql for sql in statements if "streams" in sql]


def test_a_durable_payment_commits_four_times_with_its_rows(tmp_path: Path) -> None:
    """Create, authenticate and start, the outcome, and the gateway's ledger: four commits."""
    pay = AegisPay.open(
        f"sqlite:///{tmp_path / 's.db'}", f"sqlite:///{tmp_path / 'g.db'}", clock=VirtualClock()
    )
    commits: list[str] = []

    def count(sql: str) -> None:
        if sql == "COMMIT":
            commits.append(sql)

    pay.storage.events.connections.get().set_trace_callback(count)  # type: ignore[attr-defined]
    for ledger in pay.storage.ledgers.values():
        ledger._connections.get().set_trace_callback(count)  # type: ignore[attr-defined]
    payment = pay.create_payment(
        idempotency_key="k", amount="1.00", currency="USD", customer_id="c", payment_method="m"
    )
    settled = pay.process_payment(payment.id)
    assert (len(commits), pay.projections.get(payment.id)) == (4, settled)
    pay.close()
