"""A damaged event log through the public API: halted, reported, never read as another payment."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from aegispay import AegisPay, EventIntegrityError, PaymentState, VirtualClock
from aegispay.cli import main
from aegispay.infra.events.chain import GENESIS, chain_hash
from aegispay.sim import ProcessCrash

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


# Four kinds of damage to a settled payment's stream, each as raw SQL on the store's file, with
# the version that reading must name.
DAMAGE = {
    "amount_edited": (
        1,
        ["UPDATE events SET data = json_set(data, '$.amount.minor', 1)"
         " WHERE stream_id = :x AND version = 1"],
    ),
    "row_copied_from_another_stream": (
        2,
        ["UPDATE events SET (data, hash) = (SELECT data, hash FROM events"
         " WHERE stream_id = :y AND version = 2) WHERE stream_id = :x AND version = 2"],
    ),
    "middle_version_deleted": (2, ["DELETE FROM events WHERE stream_id = :x AND version = 2"]),
    "versions_swapped": (
        2,
        ["UPDATE events SET version = 99 WHERE stream_id = :x AND version = 2",
         "UPDATE events SET version = 2 WHERE stream_id = :x AND version = 3",
         "UPDATE events SET version = 3 WHERE stream_id = :x AND version = 99"],
    ),
}  # fmt: skip


def settled_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """Settle three payments with the CLI; return the ids of the first two."""
    urls = durable(tmp_path)
    assert main(["run", "--store", urls["store"], "--gateway", urls["gateway"],
                 "--payments", "3"]) == 0  # fmt: skip
    capsys.readouterr()
    first, second, _ = (str(row[0]) for row in sql(tmp_path, "SELECT stream_id FROM streams"))
    return first, second


def damage(tmp_path: Path, kind: str, x: str, y: str) -> int:
    """Damage stream x (y is another stream) as `kind` says; return the version to be named."""
    version, statements = DAMAGE[kind]
    with sqlite3.connect(tmp_path / "s.db") as conn:
        for statement in statements:
            conn.execute(statement, {"x": x, "y": y})
    return version


def verify(tmp_path: Path, capsys: pytest.CaptureFixture[str], *options: str) -> tuple[int, str]:
    status = main(["verify", "--store", durable(tmp_path)["store"], *options])
    return status, capsys.readouterr().out


@pytest.mark.parametrize("kind", DAMAGE)
def test_each_kind_of_damage_is_caught_on_read_and_by_verify_naming_stream_and_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    x, y = settled_store(tmp_path, capsys)
    version = damage(tmp_path, kind, x, y)
    with AegisPay.open(**durable(tmp_path), clock=VirtualClock()) as pay:
        with pytest.raises(EventIntegrityError) as raised:
            pay.events(x)
        assert (raised.value.stream_id, raised.value.version) == (x, version)
        assert len(pay.events(y)) == 4
    status, out = verify(tmp_path, capsys, "--json")
    assert status == 1
    report = json.loads(out)
    assert report["damaged_streams"] == 1
    [found] = report["damaged"]
    assert (found["stream_id"], found["version"]) == (x, version)
    assert found["problem"] == raised.value.problem


def test_verify_finds_damage_in_a_settled_stream_that_recovery_never_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x, y = settled_store(tmp_path, capsys)
    damage(tmp_path, "amount_edited", x, y)
    with AegisPay.open(**durable(tmp_path), clock=VirtualClock()) as pay:
        assert pay.recover().halted == {}
    status, out = verify(tmp_path, capsys)
    assert status == 1
    assert out.splitlines() == [
        "checked 12 events in 3 streams: 1 damaged stream(s)",
        f"  damaged {x} at version 1: hash mismatch at position 1: the event was edited or "
        "moved, or the one before it changed",
    ]


def test_verify_of_a_clean_store_exits_zero_and_draws_no_progress_bar_off_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settled_store(tmp_path, capsys)
    status = main(["verify", "--store", durable(tmp_path)["store"]])
    out, err = capsys.readouterr()
    assert (status, out, err) == (0, "checked 12 events in 3 streams: no damage\n", "")


@pytest.mark.parametrize(
    ("store", "message"),
    [("missing.db", "store: no such database file"),
     ("g.db", "store: is not an AegisPay store database"),
     ("memory://", "store: must be a sqlite:/// file")],
)  # fmt: skip
def test_verify_refuses_a_missing_file_a_wrong_file_and_memory_with_status_two(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], store: str, message: str
) -> None:
    settled_store(tmp_path, capsys)
    url = store if store == "memory://" else f"sqlite:///{tmp_path / store}"
    assert main(["verify", "--store", url]) == 2
    assert capsys.readouterr().err.startswith(f"aegispay: {message}")


def audit(tmp_path: Path, capsys: pytest.CaptureFixture[str], *options: str) -> tuple[int, str]:
    urls = durable(tmp_path)
    status = main(["audit", "--store", urls["store"], "--gateway", urls["gateway"], *options])
    return status, capsys.readouterr().out


def test_an_amount_edited_with_its_chain_recomputed_reads_cleanly_and_audit_reports_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x, y = settled_store(tmp_path, capsys)
    damage(tmp_path, "amount_edited", x, y)
    rechain(tmp_path, x)
    with AegisPay.open(**durable(tmp_path), clock=VirtualClock()) as pay:
        pay.rebuild_projections()  # the projection now agrees with the edited events
        assert pay.get_payment(x).amount.minor == 1
    assert verify(tmp_path, capsys)[0] == 0
    status, out = audit(tmp_path, capsys, "--json")
    report = json.loads(out)
    assert status == 1
    assert report["reconciliation"] == {
        "matched": 2,
        "missing_at_gateway": 0,
        "missing_in_our_records": 0,
        "amount_mismatch": 1,
        "currency_mismatch": 0,
    }
    assert {k: v for k, v in report["invariants"].items() if v} == {"amounts_match_gateway": 1}
    [line] = report["reconciliation_breaks"]
    assert line == f"amount_mismatch {x}: ours 0.001 BHD, gateway 37558.860 BHD"


def test_an_amount_edited_in_place_is_damage_to_verify_and_still_a_mismatch_to_audit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x, y = settled_store(tmp_path, capsys)
    damage(tmp_path, "amount_edited", x, y)
    status, out = verify(tmp_path, capsys, "--json")
    assert (status, json.loads(out)["damaged"][0]["version"]) == (1, 1)
    status, out = audit(tmp_path, capsys)
    assert status == 1
    lines = out.splitlines()
    assert any(line.startswith("  [FAIL] stream_continuity: 1 violation(s)") for line in lines)
    assert "  amount_mismatch: 1 (both sides hold it, for different amounts)" in lines
    assert "  matched: 2 (SUCCESS here, a charge of the same amount and currency there)" in lines
    [damaged] = [line for line in lines if line.startswith(f"  amount_mismatch {x}: ")]
    assert damaged.endswith("[damaged stream, read without the chain check]")
