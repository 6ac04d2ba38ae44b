"""A keyed chain (HMAC-SHA256): the EventStore contract on keyed memory and SQLite stores, how a
store records that it is keyed, where the key comes from, and an edit whose chain was recomputed
without the key stopped before any charge."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from aegispay import AegisPay, EventIntegrityError, InvalidRequest, VirtualClock
from aegispay.cli import main
from aegispay.domain.events import PaymentInitiated, event_from_json, event_to_json
from aegispay.engine import Engine, Storage
from aegispay.infra.events.chain import (
    GENESIS,
    Chain,
    ChainKeyRefused,
    chain_hash,
    key_from_environment,
)
from aegispay.infra.events.memory import InMemoryEventStore
from aegispay.infra.events.sqlite import SQLiteEventStore
from aegispay.orchestration.ports import EventStore
from tests.contracts.event_store_contract import EventStoreContract
from tests.factories import initiated, opening
from tests.test_event_stores import (
    FILE,
    TestInMemoryEventStore,
    TestSQLiteEventStore,
    write_pre_chain_file,
    write_raw,
)

KEY = b"a test key of thirty-two bytes!!"
OTHER_KEY = b"another test key, also 32 bytes!"
REQUEST = {"currency": "EUR", "customer_id": "cus_t", "payment_method": "tok_visa"}


class KeyedChainContract:
    """What a keyed store adds to the EventStore contract; mixed in before it.

    Subclasses give `reopen` (the same store opened again with a key, or None) and
    `drop_key_record` (delete what records the key, as an intruder would), or leave them to skip
    the tests that need them (memory records nothing).
    """

    # Under a key, an intruder's recomputed chain no longer reads cleanly: the contract's test
    # of that is replaced by the one below.
    test_an_edit_with_its_chain_recomputed_reads_cleanly_so_reconciliation_must_catch_it = None
    # The same for a copy whose chain was recomputed: the first hash recomputed is found first.
    test_an_event_copied_from_another_stream_halts_naming_the_version_and_its_owner = None

    def reopen(self, tmp_path: Path, key: bytes | None) -> EventStore:
        pytest.skip("this store records nothing of its key")

    def drop_key_record(self, tmp_path: Path) -> None:
        pytest.skip("this store records nothing of its key")

    def test_each_event_is_recorded_at_the_clocks_time_with_a_hash_chained_to_the_one_before(
        self, store: EventStore, clock: VirtualClock
    ) -> None:
        """The contract's test, with each hash the HMAC under the store's key."""
        store.append("pay_1", opening("pay_1"), expected_version=0)
        previous, keyed = GENESIS, Chain(KEY)
        for r in store.read("pay_1"):
            unkeyed = chain_hash(previous, "pay_1", r.version, r.event.type, event_to_json(r.event))
            previous = keyed.hash(
                previous, "pay_1", r.version, r.event.type, event_to_json(r.event)
            )
            assert (r.hash, r.hash != unkeyed) == (previous, True)

    def test_an_edit_with_its_chain_recomputed_without_the_key_halts_the_stream(
        self, store: EventStore, tmp_path: Path
    ) -> None:
        events = [*opening("pay_a"), *opening("pay_b")[1:2]]
        self.fill(store)  # type: ignore[attr-defined]
        edited = initiated("pay_a", minor=199_900)
        self.tamper(store, tmp_path, "pay_a", 1, data=event_to_json(edited))  # type: ignore[attr-defined]
        self.rechain(store, tmp_path, "pay_a", [edited, *events[1:]])  # type: ignore[attr-defined]
        self.assert_damaged(store, 1, "hash mismatch")  # type: ignore[attr-defined]

    def test_an_event_copied_from_another_stream_halts_at_it_or_at_the_first_rehashed_version(
        self, store: EventStore, tmp_path: Path
    ) -> None:
        events, _ = self.fill(store)  # type: ignore[attr-defined]
        copied = store.read("pay_b")[1]
        self.tamper(store, tmp_path, "pay_a", 2, data=event_to_json(copied.event), hash=copied.hash)  # type: ignore[attr-defined]
        self.assert_damaged(store, 2, "belongs to stream 'pay_b'")  # type: ignore[attr-defined]
        self.rechain(store, tmp_path, "pay_a", [events[0], copied.event, *events[2:]])  # type: ignore[attr-defined]
        self.assert_damaged(store, 1, "hash mismatch")  # type: ignore[attr-defined]

    def test_opening_without_the_key_is_refused_in_one_line(
        self, store: EventStore, tmp_path: Path
    ) -> None:
        store.append("pay_1", opening("pay_1"), 0)
        with pytest.raises(ChainKeyRefused, match="its events are chained with a secret key"):
            self.reopen(tmp_path, None)

    def test_opening_with_another_key_is_refused(self, store: EventStore, tmp_path: Path) -> None:
        with pytest.raises(ChainKeyRefused, match="is not the key its events are chained with"):
            self.reopen(tmp_path, OTHER_KEY)

    def test_the_same_key_reads_what_it_wrote_after_reopening(
        self, store: EventStore, tmp_path: Path
    ) -> None:
        store.append("pay_1", opening("pay_1"), 0)
        again = self.reopen(tmp_path, KEY)
        assert [r.event for r in again.read("pay_1")] == opening("pay_1")
        getattr(again, "close", lambda: None)()

    def test_a_removed_key_record_refuses_the_key_and_halts_every_stream_without_it(
        self, store: EventStore, tmp_path: Path
    ) -> None:
        store.append("pay_1", opening("pay_1"), 0)
        self.drop_key_record(tmp_path)
        with pytest.raises(ChainKeyRefused, match="its record of the key was removed"):
            self.reopen(tmp_path, KEY)
        unkeyed = self.reopen(tmp_path, None)
        with pytest.raises(EventIntegrityError, match="hash mismatch"):
            unkeyed.read("pay_1")
        getattr(unkeyed, "close", lambda: None)()


class TestKeyedInMemoryEventStore(KeyedChainContract, EventStoreContract):
    tamper = TestInMemoryEventStore.tamper
    tamper_delete = TestInMemoryEventStore.tamper_delete

    def make_store(self, tmp_path: Path, clock: VirtualClock) -> EventStore:
        return InMemoryEventStore(clock, key=KEY)


class TestKeyedSQLiteEventStore(KeyedChainContract, EventStoreContract):
    tamper = TestSQLiteEventStore.tamper
    tamper_delete = TestSQLiteEventStore.tamper_delete

    def make_store(self, tmp_path: Path, clock: VirtualClock) -> EventStore:
        return SQLiteEventStore(str(tmp_path / FILE), clock, key=KEY)

    def reopen(self, tmp_path: Path, key: bytes | None) -> EventStore:
        return SQLiteEventStore(str(tmp_path / FILE), VirtualClock(), key=key)

    def drop_key_record(self, tmp_path: Path) -> None:
        write_raw(tmp_path / FILE, "DELETE FROM chain_key")


def stored(path: Path) -> list[str]:
    """Everything a SQLite file holds, as SQL: what a refused open must leave as it was."""
    with sqlite3.connect(path) as conn:
        return list(conn.iterdump())


def test_a_refused_key_writes_nothing_to_the_file(tmp_path: Path) -> None:
    SQLiteEventStore(str(tmp_path / FILE), VirtualClock(), key=KEY).close()
    before = stored(tmp_path / FILE)
    for key in (None, OTHER_KEY):
        with pytest.raises(ChainKeyRefused):
            SQLiteEventStore(str(tmp_path / FILE), VirtualClock(), key=key)
    assert stored(tmp_path / FILE) == before


def test_an_unkeyed_file_stays_readable_without_a_key_and_refuses_one(tmp_path: Path) -> None:
    unkeyed = SQLiteEventStore(str(tmp_path / FILE), VirtualClock())
    unkeyed.append("pay_1", opening("pay_1"), 0)
    unkeyed.close()
    with pytest.raises(ChainKeyRefused, match="chained without a key, but a chain key is set"):
        SQLiteEventStore(str(tmp_path / FILE), VirtualClock(), key=KEY)
    reopened = SQLiteEventStore(str(tmp_path / FILE), VirtualClock())
    assert [r.event for r in reopened.read("pay_1")] == opening("pay_1")
    reopened.close()


def test_a_file_made_before_the_chain_is_refused_with_a_key_and_not_upgraded(
    tmp_path: Path,
) -> None:
    write_pre_chain_file(tmp_path / FILE, {"pay_a": opening("pay_a")})
    with pytest.raises(ChainKeyRefused, match="chained without a key"):
        SQLiteEventStore(str(tmp_path / FILE), VirtualClock(), key=KEY)
    with sqlite3.connect(tmp_path / FILE) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
    assert "hash" not in columns


def test_a_keyed_file_whose_hash_column_was_dropped_is_refused_not_chained_again(
    tmp_path: Path,
) -> None:
    store = SQLiteEventStore(str(tmp_path / FILE), VirtualClock(), key=KEY)
    store.append("pay_a", opening("pay_a"), 0)
    store.close()
    write_raw(tmp_path / FILE, "UPDATE events SET data = ? WHERE version = 1",
              event_to_json(initiated("pay_a", minor=1)))  # fmt: skip
    write_raw(tmp_path / FILE, "ALTER TABLE events DROP COLUMN hash")
    with pytest.raises(ChainKeyRefused, match="has lost its hash column"):
        SQLiteEventStore(str(tmp_path / FILE), VirtualClock(), key=KEY)
    with sqlite3.connect(tmp_path / FILE) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
    assert "hash" not in columns


def test_recorded_at_is_not_under_the_hash_so_an_edit_of_it_reads_cleanly(tmp_path: Path) -> None:
    """Documented: recorded_at is the writer's clock, for people; nothing is decided by it."""
    store = SQLiteEventStore(str(tmp_path / FILE), VirtualClock(), key=KEY)
    store.append("pay_a", opening("pay_a"), 0)
    write_raw(tmp_path / FILE, "UPDATE events SET recorded_at = '2001-01-01T00:00:00+00:00'")
    assert {r.recorded_at.year for r in store.read("pay_a")} == {2001}
    store.close()


# Where the key comes from


def test_no_key_variable_means_an_unkeyed_chain() -> None:
    assert key_from_environment({}) is None


def test_the_key_variable_is_the_key_itself() -> None:
    assert key_from_environment({"AEGISPAY_CHAIN_KEY": KEY.decode()}) == KEY


def test_a_key_file_is_read_without_its_final_newline(tmp_path: Path) -> None:
    (tmp_path / "key").write_bytes(KEY + b"\n")
    assert key_from_environment({"AEGISPAY_CHAIN_KEY_FILE": str(tmp_path / "key")}) == KEY


@pytest.mark.parametrize(
    ("environ", "message"),
    [({"AEGISPAY_CHAIN_KEY": ""}, "AEGISPAY_CHAIN_KEY: the chain key is empty"),
     ({"AEGISPAY_CHAIN_KEY": "   "}, "AEGISPAY_CHAIN_KEY: the chain key is empty"),
     ({"AEGISPAY_CHAIN_KEY": "short"}, "AEGISPAY_CHAIN_KEY: the chain key must be at least 16"),
     ({"AEGISPAY_CHAIN_KEY": KEY.decode(), "AEGISPAY_CHAIN_KEY_FILE": "k"},
      "AEGISPAY_CHAIN_KEY: give it or AEGISPAY_CHAIN_KEY_FILE, not both"),
     ({"AEGISPAY_CHAIN_KEY_FILE": ""}, "AEGISPAY_CHAIN_KEY_FILE: is empty"),
     ({"AEGISPAY_CHAIN_KEY_FILE": "/no/such/key"},
      "AEGISPAY_CHAIN_KEY_FILE: cannot be read (No such file or directory)"),
     ({"AEGISPAY_CHAIN_KEY_FILE": "/"},
      "AEGISPAY_CHAIN_KEY_FILE: cannot be read (Is a directory)")],
)  # fmt: skip
def test_a_bad_key_setting_is_refused_naming_it(environ: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        key_from_environment(environ)
    assert str(raised.value).startswith(message)


def test_an_empty_key_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "key").write_bytes(b"\n")
    with pytest.raises(InvalidRequest, match="the chain key is empty"):
        key_from_environment({"AEGISPAY_CHAIN_KEY_FILE": str(tmp_path / "key")})


@pytest.mark.parametrize("key", [b"", b"short"])
def test_a_store_refuses_an_empty_or_short_key_given_in_code(tmp_path: Path, key: bytes) -> None:
    with pytest.raises(InvalidRequest, match="chain_key: the chain key"):
        SQLiteEventStore(str(tmp_path / FILE), VirtualClock(), key=key)
    assert not (tmp_path / FILE).exists()


# The attack the key stops: an amount raised with the chain recomputed without the key


def raise_amount_and_rechain(path: Path, stream_id: str, times: int) -> None:
    """Multiply a stream's amount in its file and recompute its hashes without the key."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT version, type, data FROM events WHERE stream_id = ? "
                            "ORDER BY version", (stream_id,)).fetchall()  # fmt: skip
        previous = GENESIS
        for version, type_, stored_data in rows:
            data, event = stored_data, event_from_json(stored_data)
            if isinstance(event, PaymentInitiated):
                amount = event.amount.model_copy(update={"minor": event.amount.minor * times})
                data = event_to_json(event.model_copy(update={"amount": amount}))
            previous = chain_hash(previous, stream_id, version, type_, data)
            conn.execute("UPDATE events SET data = ?, hash = ? WHERE stream_id = ? AND version = ?",
                         (data, previous, stream_id, version))  # fmt: skip


def test_on_sqlite_a_raised_amount_rechained_without_the_key_is_refused_before_any_charge(
    tmp_path: Path,
) -> None:
    urls = {"store": f"sqlite:///{tmp_path}/s.db", "gateway": f"sqlite:///{tmp_path}/g.db"}
    with AegisPay.open(**urls, clock=VirtualClock(), chain_key=KEY) as pay:
        payment = pay.create_payment(idempotency_key="k", amount="20476.97", **REQUEST)
        raise_amount_and_rechain(tmp_path / "s.db", payment.id, 100)
        with pytest.raises(EventIntegrityError, match="hash mismatch") as raised:
            pay.process_payment(payment.id)
        assert (raised.value.stream_id, raised.value.version) == (payment.id, 1)
        assert pay.charges() == []


def test_in_memory_a_raised_amount_rechained_without_the_key_is_refused_before_any_charge() -> None:
    clock = VirtualClock()
    engine = Engine(storage=Storage.in_memory(clock, chain_key=KEY), clock=clock)
    payment = engine.create_payment(idempotency_key="k", amount="20476.97", **REQUEST)
    memory = engine.event_store
    assert isinstance(memory, InMemoryEventStore)
    raised_events = [r.event for r in memory.read(payment.id)]
    first = raised_events[0]
    assert isinstance(first, PaymentInitiated)
    edited = first.model_copy(
        update={"amount": first.amount.model_copy(update={"minor": 204769700})}
    )
    TestInMemoryEventStore.tamper(None, memory, Path(), payment.id, 1, data=event_to_json(edited),  # type: ignore[arg-type]
                                  hash=chain_hash(GENESIS, payment.id, 1, edited.type,
                                                  event_to_json(edited)))  # fmt: skip
    with pytest.raises(EventIntegrityError, match="hash mismatch"):
        engine.process_payment(payment.id)
    assert engine.charges() == []


# The command line


def run_keyed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> list[str]:
    monkeypatch.setenv("AEGISPAY_CHAIN_KEY", KEY.decode())
    assert main(["run", "--store", f"sqlite:///{tmp_path}/s.db",
                 "--gateway", f"sqlite:///{tmp_path}/g.db", "--payments", "2"]) == 0  # fmt: skip
    capsys.readouterr()
    with sqlite3.connect(tmp_path / "s.db") as conn:
        return [str(row[0]) for row in conn.execute("SELECT stream_id FROM streams ORDER BY seq")]


def test_verify_of_a_keyed_store_with_its_key_from_a_file_finds_a_recomputed_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    x, _ = run_keyed(tmp_path, monkeypatch, capsys)
    monkeypatch.delenv("AEGISPAY_CHAIN_KEY")
    (tmp_path / "key").write_bytes(KEY + b"\n")
    monkeypatch.setenv("AEGISPAY_CHAIN_KEY_FILE", str(tmp_path / "key"))
    assert main(["verify", "--store", f"sqlite:///{tmp_path}/s.db"]) == 0
    capsys.readouterr()
    raise_amount_and_rechain(tmp_path / "s.db", x, 100)
    assert main(["verify", "--store", f"sqlite:///{tmp_path}/s.db", "--json"]) == 1
    [found] = json.loads(capsys.readouterr().out)["damaged"]
    assert (found["stream_id"], found["version"]) == (x, 1)


@pytest.mark.parametrize(
    "case",
    [({}, "aegispay: store: its events are chained with a secret key: set "),
     ({"AEGISPAY_CHAIN_KEY": ""}, "aegispay: AEGISPAY_CHAIN_KEY: the chain key is empty"),
     ({"AEGISPAY_CHAIN_KEY": OTHER_KEY.decode()},
      "aegispay: store: the chain key set is not the key its events are chained with"),
     ({"AEGISPAY_CHAIN_KEY_FILE": "/no/such/key"},
      "aegispay: AEGISPAY_CHAIN_KEY_FILE: cannot be read (No such file or directory)")],
)  # fmt: skip
@pytest.mark.parametrize("command", ["verify", "recover", "audit"])
def test_a_missing_wrong_or_unreadable_key_is_one_line_and_exit_two_writing_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
    case: tuple[dict[str, str], str],
) -> None:
    setting, message = case
    run_keyed(tmp_path, monkeypatch, capsys)
    monkeypatch.delenv("AEGISPAY_CHAIN_KEY")
    for variable, value in setting.items():
        monkeypatch.setenv(variable, value)
    before = stored(tmp_path / "s.db")
    gateway = ["--gateway", f"sqlite:///{tmp_path}/g.db"]
    assert main([command, "--store", f"sqlite:///{tmp_path}/s.db", *gateway]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message)
    assert len(err.splitlines()) == 1
    assert stored(tmp_path / "s.db") == before


def test_a_restarted_engine_reopens_its_store_with_the_same_key(tmp_path: Path) -> None:
    urls = {"store": f"sqlite:///{tmp_path}/s.db", "gateway": f"sqlite:///{tmp_path}/g.db"}
    pay = AegisPay.open(**urls, clock=VirtualClock(), chain_key=KEY)
    payment = pay.create_payment(idempotency_key="k", amount="3.00", **REQUEST)
    pay = pay.restart()
    assert pay.process_payment(payment.id).version == 4
    pay.close()
    with pytest.raises(ChainKeyRefused, match="chained with a secret key"):
        SQLiteEventStore(str(tmp_path / "s.db"), VirtualClock())
