"""A payment queue in PostgreSQL: workers on many machines take leases on rows.

A claim is one statement, committed at once: it marks up to n rows whose time has come
(`available_at <= now()`, oldest first, skipping rows another claim is marking right now) with
the worker, a token and a new `available_at`, the lease's expiry, which the worker's heartbeat
pushes on while it works. No transaction stays open while a payment is processed, so a worker
that is stopped, frozen or cut off holds nothing but rows whose lease runs out; a dead worker's
rows are then claimable again, behind the work that was already waiting. Completing a payment
deletes its row and writes its work-log line in one transaction, only while the token is still
the row's: a worker whose lease passed to another writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from aegispay.infra.postgres import PostgresDatabase
from aegispay.infra.queue import Claim, WorkRecord

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS payment_queue (
        seq BIGSERIAL PRIMARY KEY,
        payment_id TEXT NOT NULL UNIQUE,
        available_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        claimed_by TEXT,
        claim_token TEXT
    )""",
    # Queues made before claims were leases: the same columns, added.
    "ALTER TABLE payment_queue ADD COLUMN IF NOT EXISTS available_at TIMESTAMPTZ NOT NULL"
    " DEFAULT now()",
    "ALTER TABLE payment_queue ADD COLUMN IF NOT EXISTS claimed_by TEXT",
    "ALTER TABLE payment_queue ADD COLUMN IF NOT EXISTS claim_token TEXT",
    "CREATE INDEX IF NOT EXISTS payment_queue_by_time ON payment_queue (available_at, seq)",
    """CREATE TABLE IF NOT EXISTS work_log (
        seq BIGSERIAL PRIMARY KEY,
        payment_id TEXT NOT NULL,
        worker TEXT NOT NULL,
        action TEXT NOT NULL,
        state TEXT NOT NULL,
        at TIMESTAMPTZ NOT NULL
    )""",
)
CLAIM = """
    UPDATE payment_queue AS q
    SET claimed_by = %(worker)s, claim_token = %(token)s,
        available_at = now() + make_interval(secs => %(lease)s)
    FROM (SELECT seq, available_at FROM payment_queue WHERE available_at <= now()
          ORDER BY available_at, seq LIMIT %(limit)s FOR UPDATE SKIP LOCKED) AS due
    WHERE q.seq = due.seq
    RETURNING due.available_at, q.seq, q.payment_id
"""
# Missing ids are queued and ids whose claim ran out made free now; ids waiting or held by a
# live lease are left be, without a write (so without a commit to wait for).
REQUEUE = """
    WITH inserted AS (
        INSERT INTO payment_queue (payment_id) SELECT unnest(%(ids)s::text[])
        ON CONFLICT (payment_id) DO NOTHING RETURNING payment_id
    ), freed AS (
        UPDATE payment_queue SET claimed_by = NULL, claim_token = NULL, available_at = now()
        WHERE payment_id = ANY(%(ids)s) AND claim_token IS NOT NULL AND available_at <= now()
        RETURNING payment_id
    )
    SELECT (SELECT count(*) FROM inserted) + (SELECT count(*) FROM freed)
"""
DELETE = "DELETE FROM payment_queue WHERE payment_id = %s AND claim_token = %s RETURNING payment_id"
# One statement, so one commit: the row goes and the line is written only if the token held.
COMPLETE = f"""
    WITH done AS ({DELETE})
    INSERT INTO work_log (payment_id, worker, action, state, at)
    SELECT payment_id, %s, %s, %s, %s FROM done
    RETURNING payment_id
"""
INSERT_RECORD = (
    "INSERT INTO work_log (payment_id, worker, action, state, at) VALUES (%s, %s, %s, %s, %s)"
)


class PostgresPaymentQueue:
    """Payment ids in a table, in order of the time each may be claimed; claims are leases."""

    def __init__(self, database: PostgresDatabase) -> None:
        self.database = database
        database.create(SCHEMA)

    def enqueue(self, payment_id: str) -> bool:
        """Add a payment unless it waits already; True when this made it claimable (new, or
        its claim's lease had run out)."""
        return self.requeue([payment_id]) == 1

    def requeue(self, payment_ids: Sequence[str]) -> int:
        """Make payments claimable in one statement (new ones, or ones whose claim's lease ran
        out), leaving those waiting or held; return how many it changed."""
        if not payment_ids:
            return 0
        with self.database.connection() as conn:
            row = conn.execute(REQUEUE, {"ids": list(payment_ids)}).fetchone()
        return 0 if row is None else int(row[0])

    def claim(self, worker: str, limit: int, lease: float) -> Claim:
        """Take up to `limit` ids whose time has come, oldest first, for `lease` seconds."""
        claim = Claim(worker, ())
        with self.database.connection() as conn:
            rows = conn.execute(
                CLAIM, {"worker": worker, "token": claim.token, "lease": lease, "limit": limit}
            ).fetchall()
        # In the order they were due (RETURNING keeps none of its own).
        return Claim(worker, tuple(str(pid) for _, _, pid in sorted(rows)), claim.token)

    def renew(self, claim: Claim, lease: float, ids: Sequence[str] | None = None) -> set[str]:
        """Push the lease of the claim's ids (or of `ids` among them) to now + `lease`; return
        those still held by this claim (the others passed to another worker)."""
        with self.database.connection() as conn:
            rows = conn.execute(
                "UPDATE payment_queue SET available_at = now() + make_interval(secs => %s)"
                " WHERE claim_token = %s AND payment_id = ANY(%s) RETURNING payment_id",
                (lease, claim.token, list(claim.ids if ids is None else ids)),
            ).fetchall()
        return {str(pid) for (pid,) in rows}

    def complete(self, claim: Claim, payment_id: str, record: WorkRecord | None = None) -> bool:
        """Take a payment off the queue and log `record` (if any), if this claim still holds
        it; False, writing nothing, if its lease passed to another worker."""
        params: tuple[object, ...] = (payment_id, claim.token)
        statement = DELETE
        if record is not None:
            statement, params = COMPLETE, (*params, *_values(record)[1:])
        with self.database.connection() as conn:
            return conn.execute(statement, params).fetchone() is not None

    def release(self, claim: Claim, delay: float = 0.0) -> None:
        """Give back the ids this claim still holds, claimable again after `delay` seconds."""
        with self.database.connection() as conn:
            conn.execute(
                "UPDATE payment_queue SET claimed_by = NULL, claim_token = NULL,"
                " available_at = now() + make_interval(secs => %s) WHERE claim_token = %s",
                (delay, claim.token),
            )

    def claims(self) -> dict[str, str]:
        """Who holds each claimed payment (leases live or run out), by payment id."""
        with self.database.connection() as conn:
            rows = conn.execute(
                "SELECT payment_id, claimed_by FROM payment_queue WHERE claimed_by IS NOT NULL"
            ).fetchall()
        return {str(pid): str(worker) for pid, worker in rows}

    def pending(self) -> int:
        """How many payments wait, claimed or not."""
        with self.database.connection() as conn:
            row = conn.execute("SELECT COUNT(*) FROM payment_queue").fetchone()
        return 0 if row is None else int(row[0])

    def record(self, payment_id: str, worker: str, action: str, state: str, at: datetime) -> None:
        """Log that a worker moved a payment on."""
        with self.database.connection() as conn:
            conn.execute(INSERT_RECORD, (payment_id, worker, action, state, at))

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


def _values(record: WorkRecord) -> tuple[object, ...]:
    return (record.payment_id, record.worker, record.action, record.state, record.at)
