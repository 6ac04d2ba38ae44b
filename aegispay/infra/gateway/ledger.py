"""Gateway ledgers: the provider's own record of charges, deduplicated by idempotency key."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Protocol

from aegispay.domain.charges import ChargeRecord, ChargeStatus
from aegispay.domain.errors import AegisPayError
from aegispay.infra.sqlite import ThreadConnections, immediate

# Records fetched per query when the ledger is read in reference order.
LEDGER_PAGE = 1000


class GatewayIdempotencyMismatch(AegisPayError):
    """The gateway already holds this idempotency key for a different charge."""


class Ledger(Protocol):
    """Where a simulated gateway keeps its charges."""

    def record(self, charge: ChargeRecord) -> ChargeRecord:
        """Store a charge unless its key is held or its reference cancelled; return what is held."""
        ...

    def cancel(self, merchant_reference: str, at: datetime) -> ChargeRecord:
        """Cancel a reference with no record yet; return what the ledger holds for it."""
        ...

    def by_reference(self, merchant_reference: str) -> ChargeRecord | None:
        """Return the charge for a merchant reference, or None."""
        ...

    def by_transaction(self, transaction_id: str) -> ChargeRecord | None:
        """Return the charge with a transaction id, or None."""
        ...

    def all(self) -> list[ChargeRecord]:
        """Return every charge in the order it was recorded."""
        ...

    def in_reference_order(self) -> Iterator[ChargeRecord]:
        """Yield every record by merchant reference (then as recorded), a page at a time."""
        ...


def cancellation(merchant_reference: str, at: datetime) -> ChargeRecord:
    """The record of a reference cancelled before any charge: no money, no key."""
    digest = hashlib.sha256(merchant_reference.encode()).hexdigest()[:24]
    return ChargeRecord(
        transaction_id=f"cxl_{digest}",
        merchant_reference=merchant_reference,
        status=ChargeStatus.CANCELLED,
        created_at=at,
    )


def stored_key(record: ChargeRecord) -> str:
    """The key column of a record: a cancellation has no key, so its reference stands in,
    under a prefix our charge keys ('aegispay-...') never use."""
    return record.idempotency_key or f"cancelled:{record.merchant_reference}"


def same_request(held: ChargeRecord, new: ChargeRecord) -> ChargeRecord:
    """Return the record held for a repeated key; refuse a key reused for another charge."""
    if held is new:
        return held  # the first request for the key: nothing to compare it with
    if held.cancelled:
        return held  # the reference is fenced: the charge is refused, no money moves
    if (held.merchant_reference, held.amount, held.payment_method) != (
        new.merchant_reference,
        new.amount,
        new.payment_method,
    ):
        raise GatewayIdempotencyMismatch(
            f"idempotency key {new.idempotency_key!r} was used for another charge"
        )
    return held


class InMemoryLedger:
    """A ledger in dicts, indexed three ways; it lives as long as the process (or the kernel)."""

    def __init__(self) -> None:
        self._records: list[ChargeRecord] = []
        self._by_key: dict[str, ChargeRecord] = {}
        self._by_reference: dict[str, ChargeRecord] = {}
        self._by_transaction: dict[str, ChargeRecord] = {}
        self._lock = threading.Lock()

    def record(self, charge: ChargeRecord) -> ChargeRecord:
        """Store the charge once per idempotency key, unless its reference was cancelled."""
        assert charge.idempotency_key is not None, "a charge carries its idempotency key"
        with self._lock:
            held = self._by_key.get(charge.idempotency_key) or self._cancelled(
                charge.merchant_reference
            )
            if held is None:
                held = charge
                self._keep(charge)
        return same_request(held, charge)

    def _cancelled(self, merchant_reference: str) -> ChargeRecord | None:
        held = self._by_reference.get(merchant_reference)
        return held if held is not None and held.cancelled else None

    def cancel(self, merchant_reference: str, at: datetime) -> ChargeRecord:
        """Cancel the reference unless a record is held for it; return the held record."""
        with self._lock:
            held = self._by_reference.get(merchant_reference)
            if held is None:
                held = cancellation(merchant_reference, at)
                self._keep(held)
            return held

    def _keep(self, record: ChargeRecord) -> None:
        self._records.append(record)
        if record.idempotency_key is not None:
            self._by_key[record.idempotency_key] = record
        self._by_reference.setdefault(record.merchant_reference, record)
        self._by_transaction.setdefault(record.transaction_id, record)

    def by_reference(self, merchant_reference: str) -> ChargeRecord | None:
        """Find a charge by our payment id (the first one, if there were several)."""
        with self._lock:
            return self._by_reference.get(merchant_reference)

    def by_transaction(self, transaction_id: str) -> ChargeRecord | None:
        """Find a charge by its transaction id."""
        with self._lock:
            return self._by_transaction.get(transaction_id)

    def all(self) -> list[ChargeRecord]:
        """Every record (charges and cancellations) in insertion order."""
        with self._lock:
            return list(self._records)

    def in_reference_order(self) -> Iterator[ChargeRecord]:
        """Every record by merchant reference, then in insertion order."""
        with self._lock:
            records = list(self._records)
        # sorted() is stable: one reference's records keep their insertion order.
        yield from sorted(records, key=lambda record: record.merchant_reference)


class SQLiteLedger:
    """A ledger in the gateways' own SQLite file: it outlives our process, as a provider does."""

    def __init__(self, path: str, gateway: str = "primary") -> None:
        self._connections = ThreadConnections(path)
        self._gateway = gateway
        self._connections.get().executescript(
            """
            CREATE TABLE IF NOT EXISTS charges (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                gateway TEXT NOT NULL,
                idempotency_key TEXT NOT NULL,
                transaction_id TEXT NOT NULL,
                merchant_reference TEXT NOT NULL,
                data TEXT NOT NULL,
                UNIQUE (gateway, idempotency_key),
                UNIQUE (gateway, transaction_id)
            );
            CREATE INDEX IF NOT EXISTS charges_by_reference
                ON charges(gateway, merchant_reference);
            """
        )

    def record(self, charge: ChargeRecord) -> ChargeRecord:
        """Insert the charge unless its key is held or its reference cancelled, atomically."""
        conn = self._connections.get()
        with immediate(conn):
            row = conn.execute(
                "SELECT data FROM charges WHERE gateway = ? AND idempotency_key = ?",
                (self._gateway, charge.idempotency_key),
            ).fetchone()
            held = ChargeRecord.model_validate_json(row[0]) if row else None
            if held is None:
                first = self._one("merchant_reference", charge.merchant_reference)
                held = first if first is not None and first.cancelled else None
            if held is None:
                self._insert(charge)
                return charge
        return same_request(held, charge)

    def cancel(self, merchant_reference: str, at: datetime) -> ChargeRecord:
        """Cancel the reference unless a record is held for it, in one immediate transaction."""
        conn = self._connections.get()
        with immediate(conn):
            held = self._one("merchant_reference", merchant_reference)
            if held is None:
                held = cancellation(merchant_reference, at)
                self._insert(held)
        return held

    def _insert(self, record: ChargeRecord) -> None:
        key = stored_key(record)
        self._connections.get().execute(
            "INSERT INTO charges"
            " (gateway, idempotency_key, transaction_id, merchant_reference, data)"
            " VALUES (?, ?, ?, ?, ?)",
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
        return self._one("merchant_reference", merchant_reference)

    def by_transaction(self, transaction_id: str) -> ChargeRecord | None:
        """Find a charge by its transaction id."""
        return self._one("transaction_id", transaction_id)

    def all(self) -> list[ChargeRecord]:
        """Every record (charges and cancellations) in insertion order."""
        rows = self._connections.get().execute(
            "SELECT data FROM charges WHERE gateway = ? ORDER BY seq", (self._gateway,)
        )
        return [ChargeRecord.model_validate_json(data) for (data,) in rows]

    def in_reference_order(self) -> Iterator[ChargeRecord]:
        """Every record by merchant reference, then in insertion order, a page per query."""
        after: tuple[str, int] = ("", 0)
        while True:
            rows = (
                self._connections.get()
                .execute(
                    "SELECT merchant_reference, seq, data FROM charges"
                    " WHERE gateway = ? AND (merchant_reference, seq) > (?, ?)"
                    " ORDER BY merchant_reference, seq LIMIT ?",
                    (self._gateway, *after, LEDGER_PAGE),
                )
                .fetchall()
            )
            for _, _, data in rows:
                yield ChargeRecord.model_validate_json(data)
            if len(rows) < LEDGER_PAGE:
                return
            after = (rows[-1][0], rows[-1][1])

    def close(self) -> None:
        """Close every connection this ledger opened."""
        self._connections.close()

    def _one(self, column: str, value: str) -> ChargeRecord | None:
        row: tuple[str] | None = (
            self._connections.get()
            .execute(
                f"SELECT data FROM charges WHERE gateway = ? AND {column} = ? ORDER BY seq",
                (self._gateway, value),
            )
            .fetchone()
        )
        return None if row is None else ChargeRecord.model_validate_json(row[0])
