"""Tamper evidence on PostgreSQL: verify and recover find every kind of damage, and a keyed
chain stops an edit whose hashes were recomputed without the key before anything is charged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from aegispay import AegisPay, EventIntegrityError, PaymentState, VirtualClock
from aegispay.cli import main
from aegispay.domain.events import PaymentInitiated, event_from_json, event_to_json
from aegispay.domain.money import Money
from aegispay.infra.clock import SystemClock
from aegispay.infra.events.chain import GENESIS, Chain, chain_hash
from aegispay.infra.events.postgres import PostgresEventStore
from aegispay.infra.urls import parse_store_url
from tests.contracts.event_store_contract import EventStoreContract
from tests.factories import opening
from tests.test_postgres import OnPostgres, database, execute
from tests.test_postgres import TestPostgresEventStore as UnkeyedPostgres
from tests.test_tamper_keyed import KEY, OTHER_KEY, KeyedChainContract

pytestmark = pytest.mark.postgres

REQUEST = {"currency": "EUR", "customer_id": "cus_t", "payment_method": "tok_visa"}


class TestKeyedPostgresEventStore(OnPostgres, KeyedChainContract, EventStoreContract):
    """The whole EventStore contract on a keyed PostgreSQL chain."""

    tamper = UnkeyedPostgres.tamper
    tamper_delete = UnkeyedPostgres.tamper_delete

    def make_store(self, tmp_path: Path, clock: VirtualClock) -> PostgresEventStore:
        return PostgresEventStore(database(self.url), clock, key=KEY)

    def reopen(self, tmp_path: Path, key: bytes | None) -> PostgresEventStore:
        return PostgresEventStore(database(self.url), VirtualClock(), key=key)

    def drop_key_record(self, tmp_path: Path) -> None:
        execute(self.url, "DELETE FROM chain_key")


def stream_ids(url: str) -> list[str]:
    return [str(row[0]) for row in execute(url, "SELECT stream_id FROM streams ORDER BY seq")]


def rechain_without_the_key(url: str, stream_id: str) -> None:
    """Recompute a stream's hashes over its rows as they are now, as an intruder who knows the
    scheme but not the key would."""
    previous = GENESIS
    rows = execute(url, "SELECT version, type, data FROM events WHERE stream_id = %s "
                        "ORDER BY version", stream_id)  # fmt: skip
    for version, type_, data in rows:
        previous = chain_hash(previous, stream_id, int(version), str(type_), str(data))
        execute(url, "UPDATE events SET hash = %s WHERE stream_id = %s AND version = %s",
                previous, stream_id, version)  # fmt: skip


def raise_amount(url: str, stream_id: str, times: int) -> None:
    """Multiply the amount a stream's PaymentInitiated records, keeping its JSON as ours is."""
    [(data,)] = execute(url, "SELECT data FROM events WHERE stream_id = %s AND version = 1",
                        stream_id)  # fmt: skip
    event = event_from_json(str(data))
    assert isinstance(event, PaymentInitiated)
    amount = event.amount.model_copy(update={"minor": event.amount.minor * times})
    raised = event.model_copy(update={"amount": amount})
    execute(url, "UPDATE events SET data = %s WHERE stream_id = %s AND version = 1",
            event_to_json(raised), stream_id)  # fmt: skip


@pytest.fixture
def settled(postgres_url: str, capsys: pytest.CaptureFixture[str]) -> tuple[str, list[str]]:
    """Three payments settled by the CLI on PostgreSQL (the gateway's ledger in the same
    schema); the URL and the stream ids in order of creation."""
    assert main(["run", "--store", postgres_url, "--gateway", postgres_url,
                 "--payments", "3"]) == 0  # fmt: skip
    capsys.readouterr()
    ids = stream_ids(postgres_url)
    assert len(ids) == 3
    return postgres_url, ids


def verify(url: str, capsys: pytest.CaptureFixture[str], *options: str) -> tuple[int, Any]:
    status = main(["verify", "--store", url, "--json", *options])
    return status, json.loads(capsys.readouterr().out)


def recover(url: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
    status = main(["recover", "--store", url, "--gateway", url, "--json"])
    return status, json.loads(capsys.readouterr().out)


# Each kind of damage as SQL on the settled streams: x is damaged, y is another stream. The
# version that verify must name, and the words of its problem.
DAMAGE = {
    "amount_edited": (1, "hash mismatch", [
        "UPDATE events SET data = jsonb_set(data::jsonb, '{amount,minor}', '1')::text"
        " WHERE stream_id = %(x)s AND version = 1"]),
    "customer_id_edited": (1, "hash mismatch", [
        "UPDATE events SET data = jsonb_set(data::jsonb, '{customer_id}', '\"cus_evil\"')::text"
        " WHERE stream_id = %(x)s AND version = 1"]),
    "payment_method_edited": (1, "hash mismatch", [
        "UPDATE events SET data = jsonb_set(data::jsonb, '{payment_method}', '\"tok_evil\"')"
        "::text WHERE stream_id = %(x)s AND version = 1"]),
    "row_copied_from_another_stream": (2, "belongs to stream", [
        "UPDATE events SET (data, hash) = (SELECT data, hash FROM events"
        " WHERE stream_id = %(y)s AND version = 2) WHERE stream_id = %(x)s AND version = 2"]),
    "middle_version_deleted": (2, "missing", [
        "DELETE FROM events WHERE stream_id = %(x)s AND version = 2"]),
    "final_event_deleted": (4, "missing: the stream ends at version 3 (PROCESSING) but its "
                               "projection row is at version 4 (SUCCESS)", [
        "DELETE FROM events WHERE stream_id = %(x)s AND version = 4"]),
    "projection_customer_id_edited": (4, "the projection row says otherwise than the events: "
                                         "customer_id (row 'cus_evil', events ", [
        "UPDATE payments SET data = jsonb_set(data::jsonb, '{customer_id}', '\"cus_evil\"')"
        "::text WHERE id = %(x)s"]),
}  # fmt: skip


def damage(url: str, kind: str, x: str, y: str) -> tuple[int, str]:
    """Damage stream x (y is another) as `kind` says; return the version and problem to name."""
    version, problem, statements = DAMAGE[kind]
    parsed = parse_store_url("store", url)
    options = f"-c search_path={parsed.schema}"
    with psycopg.connect(parsed.path, autocommit=True, options=options) as conn:
        for statement in statements:
            conn.execute(statement, {"x": x, "y": y})
    return version, problem


@pytest.mark.parametrize("kind", DAMAGE)
def test_verify_names_the_stream_and_version_of_each_kind_of_damage_and_exits_one(
    settled: tuple[str, list[str]], capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    url, (x, y, _) = settled
    version, problem = damage(url, kind, x, y)
    status, report = verify(url, capsys)
    assert status == 1
    [found] = report["damaged"]
    assert (found["stream_id"], found["version"]) == (x, version)
    assert problem in found["problem"]


@pytest.mark.parametrize("kind", DAMAGE)
def test_recover_lists_each_damaged_stream_and_exits_one(
    settled: tuple[str, list[str]], capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    url, (x, y, _) = settled
    damage(url, kind, x, y)
    status, report = recover(url, capsys)
    assert status == 1
    assert [found["stream_id"] for found in report["damaged"]] == [x]


def test_verify_of_a_clean_postgresql_store_exits_zero_with_every_stream_checked(
    settled: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = settled
    assert main(["verify", "--store", url, "--gateway", url]) == 0
    assert capsys.readouterr().out == "checked 12 events in 3 streams: no damage\n"
    status, report = recover(url, capsys)
    assert (status, report["damaged"], report["halted"]) == (0, [], {})


def test_a_deleted_final_event_is_named_with_what_the_gateway_holds(
    settled: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, (x, y, _) = settled
    damage(url, "final_event_deleted", x, y)
    status, report = verify(url, capsys, "--gateway", url)
    [found] = report["damaged"]
    with AegisPay.open(store=url, gateway=url, clock=VirtualClock()) as pay:
        [charge] = [c for c in pay.charges() if c.merchant_reference == x]
    assert status == 1
    assert found["problem"].endswith(f"; the gateway holds its charge ({charge.transaction_id})")


def test_an_amount_edited_with_an_unkeyed_chain_recomputed_is_damage_against_the_gateway(
    settled: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, (x, y, _) = settled
    damage(url, "amount_edited", x, y)
    rechain_without_the_key(url, x)
    with AegisPay.open(store=url, gateway=url, clock=VirtualClock()) as pay:
        pay.rebuild_projections()  # the projection now agrees with the edited events
        [charge] = [c for c in pay.charges() if c.merchant_reference == x]
        ours = pay.get_payment(x).amount
    assert verify(url, capsys)[0] == 0  # the chain and the projection agree with each other
    status, report = verify(url, capsys, "--gateway", url)
    assert status == 1
    assert report["damaged"] == [
        {"stream_id": x, "version": 1,
         "problem": f"the gateway charged {charge.amount}, the events say {ours}"},
    ]  # fmt: skip
    assert ours.minor == 1


def test_a_raised_amount_with_an_unkeyed_chain_recomputed_is_charged_as_raised(
    postgres_url: str,
) -> None:
    """Why the key matters: without it, a recomputed chain reads cleanly and is acted on."""
    with AegisPay.open(store=postgres_url, gateway=postgres_url, clock=VirtualClock()) as pay:
        payment = pay.create_payment(idempotency_key="k", amount="20476.97", **REQUEST)
        raise_amount(postgres_url, payment.id, 100)
        rechain_without_the_key(postgres_url, payment.id)
        assert pay.process_payment(payment.id).state is PaymentState.SUCCESS
        [charge] = pay.charges()
    assert charge.amount == Money.parse("2047697.00", "EUR")


def test_with_a_key_a_raised_amount_with_the_chain_recomputed_is_refused_before_any_charge(
    postgres_url: str,
) -> None:
    with AegisPay.open(
        store=postgres_url, gateway=postgres_url, clock=VirtualClock(), chain_key=KEY
    ) as pay:
        payment = pay.create_payment(idempotency_key="k", amount="20476.97", **REQUEST)
        raise_amount(postgres_url, payment.id, 100)
        rechain_without_the_key(postgres_url, payment.id)
        with pytest.raises(EventIntegrityError, match="hash mismatch") as raised:
            pay.process_payment(payment.id)
        assert (raised.value.stream_id, raised.value.version) == (payment.id, 1)
        report = pay.recover()
        assert pay.charges() == []
    assert execute(postgres_url, "SELECT count(*) FROM charges") == [(0,)]
    assert report.succeeded == 0


def test_with_a_key_in_the_environment_verify_finds_a_recomputed_chain_and_worker_charges_nothing(
    postgres_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AEGISPAY_CHAIN_KEY", KEY.decode())
    args = ["--store", postgres_url, "--gateway", postgres_url]
    assert main(["submit", *args, "--payments", "2"]) == 0
    x, y = stream_ids(postgres_url)
    raise_amount(postgres_url, x, 100)
    rechain_without_the_key(postgres_url, x)
    capsys.readouterr()
    status, report = verify(postgres_url, capsys)
    assert status == 1
    assert [(d["stream_id"], d["version"]) for d in report["damaged"]] == [(x, 1)]
    main(["worker", *args, "--until-empty", "--json"])
    assert execute(postgres_url, "SELECT merchant_reference FROM charges") == [(y,)]


def test_a_keyed_postgresql_store_refuses_verify_without_the_key_in_one_line(
    postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    PostgresEventStore(database(postgres_url), SystemClock(), key=KEY).close()
    assert main(["verify", "--store", postgres_url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("aegispay: store: its events are chained with a secret key: set ")
    assert len(err.splitlines()) == 1


def test_a_postgresql_store_made_with_one_key_refuses_another(postgres_url: str) -> None:
    PostgresEventStore(database(postgres_url), SystemClock(), key=KEY).close()
    with pytest.raises(Exception, match="is not the key its events are chained with"):
        PostgresEventStore(database(postgres_url), SystemClock(), key=OTHER_KEY)
    assert execute(postgres_url, "SELECT fingerprint FROM chain_key") == [(Chain(KEY).fingerprint,)]


@pytest.mark.parametrize("key", [KEY, None])
def test_a_dropped_chain_key_table_is_refused_in_one_line_with_or_without_a_key(
    postgres_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    key: bytes | None,
) -> None:
    store = PostgresEventStore(database(postgres_url), SystemClock(), key=KEY)
    store.append("pay_1", opening("pay_1"), 0)
    store.close()
    execute(postgres_url, "DROP TABLE chain_key")
    if key is not None:
        monkeypatch.setenv("AEGISPAY_CHAIN_KEY", key.decode())
    assert main(["verify", "--store", postgres_url]) == 2
    err = capsys.readouterr().err
    assert err == (
        "aegispay: store: its chain_key table was dropped or altered: its record of the key is "
        "gone\n"
    )
    assert execute(postgres_url, "SELECT count(*) FROM events") == [(3,)]


@pytest.mark.parametrize(
    ("alteration", "message"),
    [("ALTER TABLE events DROP COLUMN hash",
      'aegispay: store: its events table was altered (column "hash" does not exist)\n'),
     ("ALTER TABLE chain_key DROP COLUMN fingerprint",
      "aegispay: store: its chain_key table was dropped or altered: its record of the key is "
      "gone\n")],
)  # fmt: skip
@pytest.mark.parametrize("command", ["verify", "recover"])
def test_a_table_altered_by_hand_is_refused_in_one_line_not_a_traceback(
    settled: tuple[str, list[str]], capsys: pytest.CaptureFixture[str], command: str,
    alteration: str, message: str,
) -> None:  # fmt: skip
    url, _ = settled
    execute(url, alteration)
    assert main([command, "--store", url, "--gateway", url]) == 2
    assert capsys.readouterr().err == message
