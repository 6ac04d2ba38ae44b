"""A SQLite projection store: one row per payment, indexed by state for recovery's queries."""

from __future__ import annotations

import builtins
from collections.abc import Sequence

from aegispay.domain.payment import Payment
from aegispay.domain.states import PaymentState
from aegispay.infra.sqlite import ThreadConnections, immediate

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS payments (
        id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL UNIQUE,
        state TEXT NOT NULL,
        version INTEGER NOT NULL,
        data TEXT NOT NULL
    )""",
    # (state, seq): finding in-flight payments costs O(in-flight) and comes out in creation order.
    "CREATE INDEX IF NOT EXISTS payments_by_state ON payments (state, seq)",
    """CREATE TABLE IF NOT EXISTS checkpoints (
        name TEXT PRIMARY KEY,
        position INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS halted_streams (
        stream_id TEXT PRIMARY KEY,
        reason TEXT NOT NULL
    )""",
)

# A new id takes the next creation number; an existing id keeps its own (seq is not updated).
UPSERT = """
    INSERT INTO payments (id, seq, state, version, data)
    VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM payments), ?, ?, ?)
    ON CONFLICT (id) DO UPDATE
    SET state = excluded.state, version = excluded.version, data = excluded.data
    WHERE excluded.version >= payments.version
"""


class SQLiteProjectionStore:
    """Payments as JSON rows with their state and version in columns, in creation order."""

    def __init__(self, path: str, connections: ThreadConnections | None = None) -> None:
        # Pass the SQLiteEventStore's `connections` of the same file: its appends then write
        # rows in their own transaction. A store on connections of its own would wait for that
        # transaction's write lock from inside it.
        self._connections = connections or ThreadConnections(path)
        with immediate(self._connections.get()) as conn:
            for statement in SCHEMA:
                conn.execute(statement)

    def save(self, payment: Payment) -> None:
        """Insert a row, or replace an older one, keeping its place in creation order."""
        self._connections.get().execute(
            UPSERT,
            (payment.id, payment.state.value, payment.version, payment.model_dump_json()),
        )

    def get(self, payment_id: str) -> Payment | None:
        """Return the row, or None."""
        row = (
            self._connections.get()
            .execute("SELECT data FROM payments WHERE id = ?", (payment_id,))
            .fetchone()
        )
        return None if row is None else Payment.model_validate_json(row[0])

    # builtins.list: inside this class, a bare `list` names the method below.
    def list(self, state: PaymentState | None = None) -> builtins.list[Payment]:
        """Return rows in order of creation, optionally of one state."""
        conn = self._connections.get()
        if state is None:
            rows = conn.execute("SELECT data FROM payments ORDER BY seq")
        else:
            rows = conn.execute(
                "SELECT data FROM payments WHERE state = ? ORDER BY seq", (state.value,)
            )
        return [Payment.model_validate_json(data) for (data,) in rows]

    def ids_in_states(self, states: Sequence[PaymentState]) -> builtins.list[str]:
        """Return ids in the given states, in creation order, through the state index."""
        if not states:
            return []
        sql, values = _ids_in_states_query(states)
        return [payment_id for (payment_id,) in self._connections.get().execute(sql, values)]

    def explain_ids_in_states(self, states: Sequence[PaymentState]) -> builtins.list[str]:
        """Return SQLite's query plan for ids_in_states, to show that it searches the index."""
        sql, values = _ids_in_states_query(states)
        rows = self._connections.get().execute(f"EXPLAIN QUERY PLAN {sql}", values)
        return [str(detail) for (_, _, _, detail) in rows]

    def ids_after(self, after: str = "", limit: int = 1000) -> builtins.list[str]:
        """Return a page of row ids greater than `after`, in id order, by the primary key."""
        rows = self._connections.get().execute(
            "SELECT id FROM payments WHERE id > ? ORDER BY id LIMIT ?", (after, limit)
        )
        return [payment_id for (payment_id,) in rows]

    def delete(self, payment_id: str) -> None:
        """Remove a row if present."""
        self._connections.get().execute("DELETE FROM payments WHERE id = ?", (payment_id,))

    def checkpoint(self) -> int:
        """Return the event position recovery has checked every row up to (0 at first)."""
        row = (
            self._connections.get()
            .execute("SELECT position FROM checkpoints WHERE name = 'recovery'")
            .fetchone()
        )
        return 0 if row is None else int(row[0])

    def set_checkpoint(self, position: int) -> None:
        """Record the position recovery has checked every row up to."""
        self._connections.get().execute(
            "INSERT INTO checkpoints (name, position) VALUES ('recovery', ?)"
            " ON CONFLICT (name) DO UPDATE SET position = excluded.position",
            (position,),
        )

    def halted(self) -> dict[str, str]:
        """Return the streams marked unreadable, with their reasons."""
        rows = self._connections.get().execute("SELECT stream_id, reason FROM halted_streams")
        return dict(rows.fetchall())

    def mark_halted(self, stream_id: str, reason: str) -> None:
        """Remember an unreadable stream."""
        self._connections.get().execute(
            "INSERT INTO halted_streams (stream_id, reason) VALUES (?, ?)"
            " ON CONFLICT (stream_id) DO UPDATE SET reason = excluded.reason",
            (stream_id, reason),
        )

    def clear_halted(self, stream_id: str) -> None:
        """Forget a stream that reads cleanly again."""
        self._connections.get().execute(
            "DELETE FROM halted_streams WHERE stream_id = ?", (stream_id,)
        )

    def close(self) -> None:
        """Close every thread's connection to the file."""
        self._connections.close()


def _ids_in_states_query(states: Sequence[PaymentState]) -> tuple[str, list[str]]:
    """Build the query behind ids_in_states, with one placeholder per distinct state."""
    # One statement reads one snapshot: a row moving between two of the states is seen once.
    values = [state.value for state in dict.fromkeys(states)]
    marks = ", ".join("?" * len(values))
    return f"SELECT id FROM payments WHERE state IN ({marks}) ORDER BY seq", values
