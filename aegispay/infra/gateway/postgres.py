"""A gateway ledger in PostgreSQL: every process on every machine sees one provider."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import psycopg

from aegispay.domain.charges import ChargeRecord
from aegispay.infra.gateway.ledger import LEDGER_PAGE, cancellation, same_request, stored_key
from aegispay.infra.postgres import Connection, PostgresDatabase

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS charges (
        seq BIGSERIAL PRIMARY KEY,
        gateway TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        transaction_id TEXT NOT NULL,
        merchant_reference TEXT NOT NULL,
        data TEXT NOT NULL,
        UNIQUE (gateway, idempotency_key),
        UNIQUE (gateway, transaction_id)
    )""",
    "CREATE INDEX IF NOT EXISTS charges_by_reference ON charges (gateway, merchant_reference)",
)
# A charge and a cancel of one reference must not interleave: each takes this transaction-scoped
# lock on (gateway, reference) first, as SQLite's BEGIN IMMEDIATE serialises them by locking all.
LOCK_REFERENCE = "SELECT pg_advisory_xact_lock(hashtext(%s), hashtext(%s))"
# Two racing charges of one key both find nothing and one insert fails; the retry finds the row.
ATTEMPTS = 3


class PostgresLedger:
    """The provider's charges in one table, deduplicated by key and fenced by reference."""

    def __init__(self, database: PostgresDatabase, gateway: str = "primary") -> None:
        self.database = database
        self._gateway = gateway
        database.create(SCHEMA)

    def record(self, charge: ChargeRecord) -> ChargeRecord:
        """Insert the charge unless its key is held or its reference cancelled, atomically."""
        for attempt in range(ATTEMPTS):
            try:
                with self.database.transaction() as conn:
                    conn.execute(LOCK_REFERENCE, (self._gateway, charge.merchant_reference))
                    held = self._one(conn, "idempotency_key", charge.idempotency_key or "")
                    if held is None:
                        first = self._one(conn, "merchant_reference", charge.merchant_reference)
                        held = first if first is not None and first.cancelled else None
                    if held is None:
                        self._insert(conn, charge)
                        return charge
                return same_request(held, charge)
            except psycopg.errors.UniqueViolation:
                if attempt == ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    def cancel(self, merchant_reference: str, at: datetime) -> ChargeRecord:
        """Cancel the reference unless a record is held for it, under the reference's lock."""
        with self.database.transaction() as conn:
            conn.execute(LOCK_REFERENCE, (self._gateway, merchant_reference))
            held = self._one(conn, "merchant_reference", merchant_reference)
            if held is None:
                held = cancellation(merchant_reference, at)
                self._insert(conn, held)
        return held

    def _insert(self, conn: Connection, record: ChargeRecord) -> None:
        key = stored_key(record)
        conn.execute(
            "INSERT INTO charges"
            " (gateway, idempotency_key, transaction_id, merchant_reference, data)"
            " VALUES (%s, %s, %s, %s, %s)",
            (
                self._gateway,
                key,
                record.transaction_id,
                record.merchant_reference,
                record.model_dump_json(),
            ),
        )

    def by_reference(self, merchant_reference: str) -> ChargeRecord | None:
        """Find a charge by our payment id, through an index."""
        with self.database.connection() as conn:
            return self._one(conn, "merchant_reference", merchant_reference)

    def by_transaction(self, transaction_id: str) -> ChargeRecord | None:
        """Find a charge by its transaction id."""
        with self.database.connection() as conn:
            return self._one(conn, "transaction_id", transaction_id)

    def all(self) -> list[ChargeRecord]:
        """Every record (charges and cancellations) in insertion order."""
        with self.database.connection() as conn:
            rows = conn.execute(
                "SELECT data FROM charges WHERE gateway = %s ORDER BY seq", (self._gateway,)
            ).fetchall()
        return [ChargeRecord.model_validate_json(str(data)) for (data,) in rows]

    def in_reference_order(self) -> Iterator[ChargeRecord]:
        """Every record by merchant reference, then in insertion order, a page per query."""
        after: tuple[str, int] = ("", 0)
        while True:
            with self.database.connection() as conn:
                rows = conn.execute(
                    "SELECT merchant_reference, seq, data FROM charges"
                    " WHERE gateway = %s AND (merchant_reference, seq) > (%s, %s)"
                    " ORDER BY merchant_reference, seq LIMIT %s",
                    (self._gateway, *after, LEDGER_PAGE),
                ).fetchall()
            for _, _, data in rows:
                yield ChargeRecord.model_validate_json(str(data))
            if len(rows) < LEDGER_PAGE:
                return
            after = (str(rows[-1][0]), int(rows[-1][1]))

    def close(self) -> None:
        """Close the pool (the database is this ledger's alone when opened by URL)."""
        self.database.close()

    def _one(self, conn: Connection, column: str, value: str) -> ChargeRecord | None:
        # `column` is one of three names fixed in this module, never input.
        row = conn.execute(
            f"SELECT data FROM charges WHERE gateway = %s AND {column} = %s ORDER BY seq LIMIT 1",
            (self._gateway, value),
        ).fetchone()
        return None if row is None else ChargeRecord.model_validate_json(str(row[0]))
