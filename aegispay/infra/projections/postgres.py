"""A PostgreSQL projection store and recovery log: one row per payment, indexed by state."""

from __future__ import annotations

import builtins
from collections.abc import Sequence

from aegispay.domain.payment import Payment
from aegispay.domain.states import PaymentState
from aegispay.infra.postgres import Connection, PostgresDatabase

SCHEMA = (
    # seq is drawn from a sequence, so concurrent inserts from many processes never collide.
    """CREATE TABLE IF NOT EXISTS payments (
        id TEXT PRIMARY KEY,
        seq BIGSERIAL UNIQUE,
        state TEXT NOT NULL,
        version INTEGER NOT NULL,
        data TEXT NOT NULL
    )""",
    # (state, seq): finding in-flight payments costs O(in-flight) and comes out in creation order.
    "CREATE INDEX IF NOT EXISTS payments_by_state ON payments (state, seq)",
    """CREATE TABLE IF NOT EXISTS checkpoints (
        name TEXT PRIMARY KEY,
        position BIGINT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS halted_streams (
        stream_id TEXT PRIMARY KEY,
        reason TEXT NOT NULL
    )""",
)

# A new id takes the next creation number; an existing id keeps its own (seq is not updated).
UPSERT = """
    INSERT INTO payments (id, state, version, data) VALUES (%s, %s, %s, %s)
    ON CONFLICT (id) DO UPDATE
    SET state = excluded.state, version = excluded.version, data = excluded.data
    WHERE excluded.version >= payments.version
"""


class PostgresProjectionStore:
    """Payments as JSON rows with their state and version in columns, in creation order; also
    recovery's checkpoint and halted streams."""

    def __init__(self, database: PostgresDatabase) -> None:
        self.database = database
        database.create(SCHEMA)

    def save(self, payment: Payment) -> None:
        """Insert a row, or replace an older one, keeping its place in creation order."""
        with self.database.connection() as conn:
            self.save_in(conn, payment)

    @staticmethod
    def save_in(conn: Connection, payment: Payment) -> None:
        """Save the row on `conn`, inside whatever transaction the caller has open."""
        conn.execute(
            UPSERT, (payment.id, payment.state.value, payment.version, payment.model_dump_json())
        )

    def get(self, payment_id: str) -> Payment | None:
        """Return the row, or None."""
        with self.database.connection() as conn:
            row = conn.execute("SELECT data FROM payments WHERE id = %s", (payment_id,)).fetchone()
        return None if row is None else Payment.model_validate_json(str(row[0]))

    # builtins.list: inside this class, a bare `list` names the method below.
    def list(self, state: PaymentState | None = None) -> builtins.list[Payment]:
        """Return rows in order of creation, optionally of one state."""
        with self.database.connection() as conn:
            if state is None:
                rows = conn.execute("SELECT data FROM payments ORDER BY seq").fetchall()
            else:
                rows = conn.execute(
                    "SELECT data FROM payments WHERE state = %s ORDER BY seq", (state.value,)
                ).fetchall()
        return [Payment.model_validate_json(str(data)) for (data,) in rows]

    def ids_in_states(self, states: Sequence[PaymentState]) -> builtins.list[str]:
        """Return ids in the given states, in creation order, through the state index."""
        if not states:
            return []
        values = [state.value for state in dict.fromkeys(states)]
        with self.database.connection() as conn:
            rows = conn.execute(
                "SELECT id FROM payments WHERE state = ANY(%s) ORDER BY seq", (values,)
            ).fetchall()
        return [str(payment_id) for (payment_id,) in rows]

    def ids_after(self, after: str = "", limit: int = 1000) -> builtins.list[str]:
        """Return a page of row ids greater than `after`, in id order, by the primary key."""
        with self.database.connection() as conn:
            rows = conn.execute(
                "SELECT id FROM payments WHERE id > %s ORDER BY id LIMIT %s", (after, limit)
            ).fetchall()
        return [str(payment_id) for (payment_id,) in rows]

    def delete(self, payment_id: str) -> None:
        """Remove a row if present."""
        with self.database.connection() as conn:
            conn.execute("DELETE FROM payments WHERE id = %s", (payment_id,))

    def checkpoint(self) -> int:
        """Return the event position recovery has checked every row up to (0 at first)."""
        with self.database.connection() as conn:
            row = conn.execute(
                "SELECT position FROM checkpoints WHERE name = 'recovery'"
            ).fetchone()
        return 0 if row is None else int(row[0])

    def set_checkpoint(self, position: int) -> None:
        """Record the position recovery has checked every row up to."""
        with self.database.connection() as conn:
            conn.execute(
                "INSERT INTO checkpoints (name, position) VALUES ('recovery', %s)"
                " ON CONFLICT (name) DO UPDATE SET position = excluded.position",
                (position,),
            )

    def halted(self) -> dict[str, str]:
        """Return the streams marked unreadable, with their reasons."""
        with self.database.connection() as conn:
            rows = conn.execute("SELECT stream_id, reason FROM halted_streams").fetchall()
        return {str(stream_id): str(reason) for stream_id, reason in rows}

    def mark_halted(self, stream_id: str, reason: str) -> None:
        """Remember an unreadable stream."""
        with self.database.connection() as conn:
            conn.execute(
                "INSERT INTO halted_streams (stream_id, reason) VALUES (%s, %s)"
                " ON CONFLICT (stream_id) DO UPDATE SET reason = excluded.reason",
                (stream_id, reason),
            )

    def clear_halted(self, stream_id: str) -> None:
        """Forget a stream that reads cleanly again."""
        with self.database.connection() as conn:
            conn.execute("DELETE FROM halted_streams WHERE stream_id = %s", (stream_id,))

    def close(self) -> None:
        """Close the pool (the database is this store's alone when opened by URL)."""
        self.database.close()
