"""The PostgreSQL adapters pass the same contracts as SQLite and memory, plus what only a server
shared by many writers can show: positions that readers never skip, one provider for all."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import psycopg
import pytest

from aegispay import AegisPay, InvalidRequest
from aegispay.domain.charges import ChargeStatus
from aegispay.infra.clock import VirtualClock
from aegispay.infra.events.postgres import PostgresEventStore
from aegispay.infra.gateway.postgres import PostgresLedger
from aegispay.infra.gateway.simulated import SimulatedGateway
from aegispay.infra.postgres import PostgresDatabase
from aegispay.infra.projections.postgres import PostgresProjectionStore
from aegispay.infra.urls import parse_store_url
from aegispay.orchestration.ports import EventStore, ProjectionStore
from tests.contracts.event_store_contract import EventStoreContract
from tests.contracts.projection_store_contract import ProjectionStoreContract
from tests.factories import authenticated, initiated, opening
from tests.test_gateway import GatewayContract, request

pytestmark = pytest.mark.postgres


def database(url: str) -> PostgresDatabase:
    parsed = parse_store_url("store", url)
    return PostgresDatabase(parsed.path, parsed.schema)


def execute(url: str, statement: str, *params: object) -> list[tuple[Any, ...]]:
    """Run one statement on the test's schema behind the adapters' backs."""
    parsed = parse_store_url("store", url)
    with psycopg.connect(
        parsed.path, autocommit=True, options=f"-c search_path={parsed.schema}"
    ) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


class OnPostgres:
    """Hands each test a URL on its own schema (dropped afterwards) as `self.url`."""

    url: str

    @pytest.fixture(autouse=True)
    def _schema(self, postgres_url: str) -> None:
        self.url = postgres_url


class TestPostgresEventStore(OnPostgres, EventStoreContract):
    def make_store(self, tmp_path: Path, clock: VirtualClock) -> EventStore:
        return PostgresEventStore(database(self.url), clock)

    def tamper(
        self, store: EventStore, tmp_path: Path, stream_id: str, version: int, /, **columns: object
    ) -> None:
        assignments = ", ".join(f"{column} = %s" for column in columns)
        execute(
            self.url,
            f"UPDATE events SET {assignments} WHERE stream_id = %s AND version = %s",
            *columns.values(),
            stream_id,
            version,
        )

    def tamper_delete(
        self, store: EventStore, tmp_path: Path, stream_id: str, version: int
    ) -> None:
        execute(
            self.url, "DELETE FROM events WHERE stream_id = %s AND version = %s", stream_id, version
        )

    def test_read_all_fetches_in_batches_without_losing_or_repeating_events(self) -> None:
        store = PostgresEventStore(database(self.url), VirtualClock(), read_all_batch=2)
        try:
            for n in range(4):
                store.append(f"pay_{n}", opening(f"pay_{n}"), expected_version=0)
            assert [r.position for r in store.read_all()] == list(range(1, 13))
            assert [r.position for r in store.read_all(after_position=5)] == list(range(6, 13))
        finally:
            store.close()

    @pytest.mark.parametrize("batch", [0, -1, True, 2.5, "500", None])
    def test_a_read_all_batch_that_is_not_a_positive_int_is_refused_before_the_schema_is_made(
        self, batch: object
    ) -> None:
        server = database(self.url)
        try:
            with pytest.raises(ValueError, match=r"read_all_batch: must be a positive int \(got "):
                PostgresEventStore(server, VirtualClock(), read_all_batch=cast(Any, batch))
        finally:
            server.close()
        assert execute(self.url, "SELECT to_regclass('events')") == [(None,)]

    def test_a_reader_following_the_log_never_skips_a_position_that_commits_late(
        self, store: EventStore
    ) -> None:
        """Two writers append at once while a reader tails read_all from its last position: what
        the reader collected is every event, none skipped (the table lock orders commits)."""
        writers, appends = 2, 60
        done = threading.Event()
        seen: list[int] = []

        def write(writer: int) -> None:
            for n in range(appends):
                stream = f"pay_{writer}_{n}"
                store.append(stream, [initiated(stream)], expected_version=0)

        def tail() -> None:
            cursor = 0
            while True:
                finished = done.is_set()
                for recorded in store.read_all(after_position=cursor):
                    seen.append(recorded.position)
                    cursor = recorded.position
                if finished:
                    return

        with ThreadPoolExecutor(max_workers=writers + 1) as pool:
            reader = pool.submit(tail)
            for future in [pool.submit(write, n) for n in range(writers)]:
                future.result()
            done.set()
            reader.result()
        assert seen == [recorded.position for recorded in store.read_all()]
        assert len(seen) == writers * appends

    def test_an_append_waits_for_an_earlier_writer_to_commit_before_taking_a_position(
        self, store: EventStore
    ) -> None:
        store.append("pay_a", [initiated("pay_a")], expected_version=0)
        parsed = parse_store_url("store", self.url)
        slow = psycopg.connect(parsed.path, options=f"-c search_path={parsed.schema}")
        slow.execute("LOCK TABLE events IN EXCLUSIVE MODE")  # a writer mid-append
        appended = threading.Event()

        def append() -> None:
            store.append("pay_a", [authenticated("pay_a")], expected_version=1)
            appended.set()

        thread = threading.Thread(target=append)
        thread.start()
        assert not appended.wait(0.3)
        slow.commit()
        slow.close()
        thread.join(timeout=10)
        assert appended.is_set()
        assert [r.version for r in store.read("pay_a")] == [1, 2]


class TestPostgresProjectionStore(OnPostgres, ProjectionStoreContract):
    def make_store(self, tmp_path: Path) -> ProjectionStore:
        return PostgresProjectionStore(database(self.url))

    def test_ids_in_states_searches_the_state_index(self) -> None:
        store = PostgresProjectionStore(database(self.url))
        try:
            execute(self.url, "SET enable_seqscan = off")
            plan = execute(
                self.url,
                "EXPLAIN SELECT id FROM payments WHERE state = ANY(%s) ORDER BY seq",
                ["PROCESSING"],
            )
        finally:
            store.close()
        assert "payments_by_state" in " ".join(str(row[0]) for row in plan)


class TestPostgresGateway(OnPostgres, GatewayContract):
    @pytest.fixture
    def gateway(self, tmp_path: Path) -> Iterator[SimulatedGateway]:
        ledger = PostgresLedger(database(self.url))
        yield SimulatedGateway("primary", ledger, VirtualClock())
        ledger.close()

    def test_a_cancellation_fences_the_reference_for_every_other_process(self) -> None:
        first, second = PostgresLedger(database(self.url)), PostgresLedger(database(self.url))
        try:
            cancelled = SimulatedGateway("primary", first, VirtualClock()).cancel("pay_1")
            late = SimulatedGateway("primary", second, VirtualClock()).charge(request("pay_1"))
        finally:
            first.close()
            second.close()
        assert cancelled.status is late.status is ChargeStatus.CANCELLED

    def test_racing_charges_and_cancels_of_one_reference_leave_one_record(self) -> None:
        ledgers = [PostgresLedger(database(self.url)) for _ in range(4)]
        gateways = [SimulatedGateway("primary", ledger, VirtualClock()) for ledger in ledgers]
        barrier = threading.Barrier(len(gateways), timeout=30)

        def race(n: int) -> ChargeStatus:
            barrier.wait()
            gateway = gateways[n]
            record = gateway.cancel("pay_1") if n % 2 else gateway.charge(request("pay_1"))
            return record.status

        try:
            with ThreadPoolExecutor(max_workers=len(gateways)) as pool:
                answers = set(pool.map(race, range(len(gateways))))
            records = ledgers[0].all()
        finally:
            for ledger in ledgers:
                ledger.close()
        assert len(records) == 1
        assert answers == {records[0].status}


def test_an_engine_on_postgres_urls_pays_and_a_second_process_sees_the_same_payment(
    postgres_url: str,
) -> None:
    with AegisPay.open(store=postgres_url, gateway=postgres_url) as first:
        created = first.create_payment(
            idempotency_key="order-1", amount="10.00", currency="USD",
            customer_id="cus_1", payment_method="tok_visa",
        )  # fmt: skip
        first.process_payment(created.id)
    with AegisPay.open(store=postgres_url, gateway=postgres_url) as second:
        assert second.get_payment(created.id).state.value == "SUCCESS"
        assert [charge.merchant_reference for charge in second.charges()] == [created.id]
        assert second.check_invariants().violations == 0


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgresql://postgres@127.0.0.1/test?schema=Bad-Name", "schema must be a lowercase"),
        ("postgresql://", "must name a host or a database"),
        ("mysql://localhost/test", "postgresql://"),
    ],
)
def test_a_bad_postgres_url_is_refused_naming_the_problem(url: str, problem: str) -> None:
    with pytest.raises(InvalidRequest, match=problem):
        parse_store_url("store", url)


def test_the_schema_option_is_taken_off_the_connection_url() -> None:
    parsed = parse_store_url("store", "postgresql://u@h:5433/db?sslmode=disable&schema=shop_1")
    assert (parsed.scheme, parsed.path, parsed.schema) == (
        "postgresql",
        "postgresql://u@h:5433/db?sslmode=disable",
        "shop_1",
    )
