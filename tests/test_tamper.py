"""A damaged event log through the public API: halted, reported, never read as another payment."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from aegispay import AegisPay, EventIntegrityError, PaymentState, ProcessCrash, VirtualClock
from aegispay.infra.events.chain import GENESIS, chain_hash

REQUEST = {"currency": "USD", "customer_id": "cus_t", "payment_method": "tok_visa"}


def durable(tmp_path: Path) -> dict[str, str]:
    return {"store": f"sqlite:///{tmp_path}/s.db", "gateway": f"sqlite:///{tmp_path}/g.db"}


def sql(tmp_path: Path, statement: str, *params: object) -> list[tuple[object, ...]]:
    """Run one statement on the store's file behind the engine's back."""
    with sqlite3.connect(tmp_path / "s.db") as conn:
        return conn.execute(statement, params).fetchall()


def rechain(tmp_path: Path, stream_id: str) -> None:
    """Recompute a stream's hashes over its rows as they are now, as an informed intruder would."""
    previous = GENESIS
    rows = sql(tmp_path, "SELECT version, type, data FROM events WHERE stream_id = ? "
                         "ORDER BY version", stream_id)  # fmt: skip
    for version, type_, data in rows:
        previous = chain_hash(previous, stream_id, int(str(version)), str(type_), str(data))
        sql(tmp_path, "UPDATE events SET hash = ? WHERE stream_id = ? AND version = ?",
            previous, stream_id, version)  # fmt: skip


@pytest.mark.parametrize("rechained", [False, True])
def test_a_row_copied_from_another_payment_is_never_read_or_charged_as_this_one(
    tmp_path: Path, rechained: bool
) -> None:
    pay = AegisPay.open(**durable(tmp_path), clock=VirtualClock())
    x = pay.create_payment(idempotency_key="x", amount="1.00", **REQUEST)
    y = pay.create_payment(idempotency_key="y", amount="500.00", **REQUEST)
    (y_data, y_hash), *_ = sql(
        tmp_path, "SELECT data, hash FROM events WHERE stream_id = ? AND version = 1", y.id
    )
    sql(tmp_path, "UPDATE events SET data = ?, hash = ? WHERE stream_id = ? AND version = 1",
        y_data, y_hash, x.id)  # fmt: skip
    if rechained:
        rechain(tmp_path, x.id)
    for call in (pay.get_payment, pay.process_payment, pay.events):
        with pytest.raises(EventIntegrityError, match="belongs to stream") as raised:
            call(x.id)
        assert (raised.value.stream_id, raised.value.version) == (x.id, 1)
    assert pay.charges() == []
    assert pay.process_payment(y.id).state is PaymentState.SUCCESS
    assert [c.merchant_reference for c in pay.charges()] == [y.id]
    pay.close()


def test_recovery_halts_a_tampered_stream_alone_raises_the_alert_and_settles_the_others(
    tmp_path: Path,
) -> None:
    pay = AegisPay.open(**durable(tmp_path), clock=VirtualClock())
    ids = []
    for key in ("tampered", "healthy"):
        payment = pay.create_payment(idempotency_key=key, amount="3.00", **REQUEST)
        pay.crash_at("gateway.charge", "after")
        with pytest.raises(ProcessCrash):
            pay.process_payment(payment.id)
        pay = pay.restart()
        ids.append(payment.id)
    tampered, healthy = ids
    sql(tmp_path, """UPDATE events SET data = replace(data, '"minor":300', '"minor":3')"""
                  " WHERE stream_id = ? AND version = 1", tampered)  # fmt: skip
    report = pay.recover()
    assert list(report.halted) == [tampered]
    assert "version 1: hash mismatch" in report.halted[tampered]
    assert report.succeeded == 1
    assert pay.get_payment(healthy).state is PaymentState.SUCCESS
    assert pay.metrics.get("alerts.tampered") == 1
    assert pay.metrics.get("alerts.stream_halted") == 1
    pay.close()
