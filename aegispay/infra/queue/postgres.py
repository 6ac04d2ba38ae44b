"""A payment queue in PostgreSQL: workers on many machines take rows with SKIP LOCKED.

A claim is a transaction holding row locks on the ids it took: other workers skip them, and
when the claiming process dies its connection drops, the transaction rolls back and the ids are
free again. Nothing else marks a claim, so nothing has to expire or be cleaned up.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from aegispay.infra.postgres import PostgresDatabase
from aegispay.infra.queue import WorkRecord

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS payment_queue (
        seq BIGSERIAL PRIMARY KEY,
        payment_id TEXT NOT NULL UNIQUE
    )""",
    """CREATE TABLE IF NOT EXISTS work_log (
        seq BIGSERIAL PRIMARY KEY,
        payment_id TEXT NOT NULL,
        worker TEXT NOT NULL,
        action TEXT NOT NULL,
        state TEXT NOT NULL,
        at TIMESTAMPTZ NOT NULL
    )""",
)
CLAIM = "SELECT payment_id FROM payment_queue ORDER BY seq FOR UPDATE SKIP LOCKED LIMIT %s"


class PostgresPaymentQueue:
    """Payment ids in a table in arrival order, claimed with `FOR UPDATE SKIP LOCKED`."""

    def __init__(self, database: PostgresDatabase) -> None:
        self.database = database
        database.create(SCHEMA)

    def enqueue(self, payment_id: str) -> None:
        """Add a payment unless it is already waiting."""
        with self.database.connection() as conn:
            conn.execute(
                "INSERT INTO payment_queue (payment_id) VALUES (%s) ON CONFLICT DO NOTHING",
                (payment_id,),
            )

    @contextmanager
    def claim(self, limit: int) -> Iterator[list[str]]:
        """Take up to `limit` waiting ids nobody else holds; they leave the queue when the block
        ends normally and go back when it raises or the process dies."""
        with self.database.transaction() as conn:
            ids = [str(pid) for (pid,) in conn.execute(CLAIM, (limit,)).fetchall()]
            yield ids
            if ids:
                conn.execute("DELETE FROM payment_queue WHERE payment_id = ANY(%s)", (ids,))

    def pending(self) -> int:
        """How many payments wait, claimed or not."""
        with self.database.connection() as conn:
            row = conn.execute("SELECT COUNT(*) FROM payment_queue").fetchone()
        return 0 if row is None else int(row[0])

    def record(self, payment_id: str, worker: str, action: str, state: str, at: datetime) -> None:
        """Log that a worker moved a payment on."""
        with self.database.connection() as conn:
            conn.execute(
                "INSERT INTO work_log (payment_id, worker, action, state, at)"
                " VALUES (%s, %s, %s, %s, %s)",
                (payment_id, worker, action, state, at),
            )

    def work_log(self) -> list[WorkRecord]:
        """Everything logged, oldest first."""
        with self.database.connection() as conn:
            rows = conn.execute(
                "SELECT payment_id, worker, action, state, at FROM work_log ORDER BY seq"
            ).fetchall()
        return [WorkRecord(str(p), str(w), str(a), str(s), at) for p, w, a, s, at in rows]

    def close(self) -> None:
        """Close the pool (the database is this queue's alone when opened by URL)."""
        self.database.close()
