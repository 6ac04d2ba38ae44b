"""A fleet that outlives its infrastructure: outages waited out with backoff and said in a line,
transactions bounded so a stalled process cannot hold the others, a schema migrated once, and
claims that are leases.

The first tests drive a worker's outage handling on a virtual clock; the PostgreSQL ones run on
a schema of their own; the slow ones start real `aegispay worker` processes and break what
they depend on: a redis-server of the test's own (killed and started again), the worker's own
PostgreSQL connections (pg_terminate_backend by its application name), the worker itself
(SIGSTOP). Waits on real processes are bounded, and no timing is asserted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import typing
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
import redis

from aegispay import AegisPay, PaymentState
from aegispay.infra.clock import VirtualClock
from aegispay.infra.events.postgres import PostgresEventStore
from aegispay.infra.postgres import PostgresDatabase, Timeouts
from aegispay.infra.queue.memory import InMemoryPaymentQueue
from aegispay.infra.queue.postgres import PostgresPaymentQueue
from aegispay.infra.urls import parse_store_url
from aegispay.worker import GaveUp, Outages, Worker, open_queue
from tests.factories import authenticated, initiated

REQUEST = {"amount": "12.50", "currency": "EUR", "customer_id": "cus_1", "payment_method": "tok_1"}


class Down(ConnectionError):
    """A server that does not answer, as a fake's outage."""


class FlakyQueue(InMemoryPaymentQueue):
    """An in-memory queue whose first `outage` claims fail as a server that is down would."""

    outage_errors = (Down,)

    def __init__(self, clock: VirtualClock, outage: int) -> None:
        super().__init__(clock)
        self.outage = outage

    def claim(self, worker: str, limit: int, lease: float) -> typing.Any:
        if self.outage > 0:
            self.outage -= 1
            raise Down("connection refused")
        return super().claim(worker, limit, lease)


def test_a_step_that_meets_an_outage_is_retried_with_backoff_and_said_in_two_lines() -> None:
    clock = VirtualClock()
    lines: list[str] = []
    failures = iter([Down("refused"), Down("refused"), Down("refused")])

    def step() -> str:
        error = next(failures, None)
        if error is not None:
            raise error
        return "done"

    outages = Outages("w1", clock, clock.sleep, 60.0, (Down,), lines.append)
    started = clock.now()
    assert outages.call(step) == "done"
    assert len(lines) == 2
    assert lines[0].startswith("worker w1: a server cannot be reached (refused); retrying")
    assert lines[1].startswith("worker w1: a server is back after ")
    assert clock.now() > started  # the backoff slept, on the injected clock
    assert outages.count == 1


def test_a_worker_gives_up_only_after_an_outage_lasts_its_give_up_time() -> None:
    clock = VirtualClock()
    lines: list[str] = []

    def down() -> None:
        raise Down("refused")

    outages = Outages("w1", clock, clock.sleep, 30.0, (Down,), lines.append)
    started = clock.now()
    with pytest.raises(GaveUp, match="past --give-up-after 30 s"):
        outages.call(down)
    assert (clock.now() - started).total_seconds() >= 30.0
    assert len(lines) == 1


def test_a_worker_waits_out_its_queues_outage_and_then_processes_everything() -> None:
    pay = AegisPay.in_memory()
    queue = FlakyQueue(typing.cast(VirtualClock, pay.clock), outage=3)
    ids = [pay.create_payment(idempotency_key=f"order-{n}", **REQUEST).id for n in range(2)]
    for payment_id in ids:
        queue.enqueue(payment_id)
    lines: list[str] = []
    summary = Worker(pay, queue, "w1", say=lines.append).run(until_empty=True)
    assert summary.processed == 2
    assert summary.outages == 1
    assert sum("cannot be reached" in line for line in lines) == 1
    assert {pay.get_payment(pid).state for pid in ids} == {PaymentState.SUCCESS}


# --- PostgreSQL: bounded transactions, migrations once, leases -----------------------------------


def database(url: str, timeouts: Timeouts | None = None) -> PostgresDatabase:
    parsed = parse_store_url("store", url)
    return PostgresDatabase(parsed.path, parsed.schema, timeouts=timeouts or Timeouts())


def raw(url: str, autocommit: bool = False) -> psycopg.Connection[tuple[typing.Any, ...]]:
    """A connection of the test's own on the test's schema, behind the adapters' backs."""
    parsed = parse_store_url("store", url)
    return psycopg.connect(
        parsed.path, autocommit=autocommit, options=f"-c search_path={parsed.schema}"
    )


def until(condition: Callable[[], bool], deadline: float = 30.0, what: str = "") -> None:
    """Poll `condition` until it holds; fail the test past `deadline` seconds."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < deadline, f"never happened: {what}"
        time.sleep(0.02)


@pytest.mark.postgres
def test_every_connection_carries_the_timeouts_and_keepalives(postgres_url: str) -> None:
    db = database(postgres_url)
    try:
        with db.connection() as conn:
            shown = {
                name: conn.execute(f"SHOW {name}").fetchone()
                for name in ("idle_in_transaction_session_timeout", "lock_timeout")
            }
            parameters = conn.info.get_parameters()
        with db.transaction() as conn:
            statement = conn.execute("SHOW statement_timeout").fetchone()
    finally:
        db.close()
    assert shown == {"idle_in_transaction_session_timeout": ("3s",), "lock_timeout": ("3s",)}
    assert statement == ("10s",)
    assert parameters["keepalives"] == "1"
    assert parameters["keepalives_idle"] == "5"


@pytest.mark.postgres
def test_a_stalled_holder_of_the_events_lock_is_cut_off_and_the_next_append_goes_through(
    postgres_url: str,
) -> None:
    """A transaction that took the events table lock and then went silent (a process stopped
    mid-append) is ended by the server after idle_in_transaction_session_timeout; another
    writer's append then commits while the stalled one is still asleep."""
    quick = Timeouts(idle_in_transaction=0.5, lock=0.3)
    stalled_db, writer_db = database(postgres_url, quick), database(postgres_url, quick)
    writer = PostgresEventStore(writer_db, VirtualClock())
    writer.append("pay_a", [initiated("pay_a")], expected_version=0)
    holding, appended = threading.Event(), threading.Event()
    outcome: list[BaseException] = []

    def stall() -> None:
        try:
            with stalled_db.transaction() as conn:
                conn.execute("LOCK TABLE events IN EXCLUSIVE MODE")
                holding.set()
                appended.wait(30)  # silent, as a stopped process is
                conn.execute("SELECT 1")
        except psycopg.Error as error:
            outcome.append(error)

    staller = threading.Thread(target=stall)
    staller.start()
    try:
        assert holding.wait(10)
        writer.append("pay_a", [authenticated("pay_a")], expected_version=1)
        appended.set()
    finally:
        appended.set()
        staller.join()
        stalled_db.close()
    assert [r.version for r in writer.read("pay_a")] == [1, 2]
    assert len(outcome) == 1  # the stalled transaction's session was ended, not committed
    writer.close()


class HolderFinishesDuringBackoff(VirtualClock):
    """A clock whose first backoff sleep is when the lock's holder commits."""

    def __init__(self, holder: psycopg.Connection[tuple[typing.Any, ...]]) -> None:
        super().__init__()
        self.holder, self.sleeps = holder, 0

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        if self.sleeps == 1:
            self.holder.commit()
        super().sleep(seconds)


@pytest.mark.postgres
def test_an_append_that_hits_the_lock_timeout_is_retried_and_commits(postgres_url: str) -> None:
    quick = Timeouts(lock=0.2)
    store = PostgresEventStore(database(postgres_url, quick), VirtualClock())
    store.append("pay_a", [initiated("pay_a")], expected_version=0)
    holder = raw(postgres_url)
    holder.execute("LOCK TABLE events IN EXCLUSIVE MODE")  # a writer mid-append
    clock = HolderFinishesDuringBackoff(holder)
    waiter = PostgresEventStore(database(postgres_url, quick), clock)
    try:
        waiter.append("pay_a", [authenticated("pay_a")], expected_version=1)
    finally:
        holder.close()
    assert clock.sleeps == 1  # one lock timeout, one backoff, then the append went through
    assert [r.version for r in store.read("pay_a")] == [1, 2]
    store.close()
    waiter.close()


@pytest.mark.postgres
def test_opening_a_current_schema_takes_no_lock_and_creates_nothing(postgres_url: str) -> None:
    """With the schema current, a process starts while another holds the migration lock and a
    ledger insert is stuck open: it neither waits for them nor runs any DDL."""
    with AegisPay.open(store=postgres_url, gateway=postgres_url) as first:
        open_queue(first)
    schema = parse_store_url("store", postgres_url).schema
    blocker = raw(postgres_url)
    blocker.execute("SELECT pg_advisory_xact_lock(hashtext('aegispay'), hashtext(%s))", (schema,))
    blocker.execute("LOCK TABLE charges IN ROW EXCLUSIVE MODE")
    try:
        with AegisPay.open(store=postgres_url, gateway=postgres_url) as second:
            open_queue(second)
            databases = [second.event_store.database]  # type: ignore[attr-defined]
            databases += [ledger.database for ledger in second.storage.ledgers.values()]  # type: ignore[attr-defined]
            assert [db.migrations_run for db in databases] == [0, 0, 0]
    finally:
        blocker.rollback()
        blocker.close()


@pytest.mark.postgres
def test_migrate_creates_the_tables_once_and_then_finds_them_current(postgres_url: str) -> None:
    command = [sys.executable, "-m", "aegispay.cli", "migrate", "--store", postgres_url]
    command += ["--gateway", postgres_url]
    first = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    again = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert (first.returncode, again.returncode) == (0, 0), first.stderr + again.stderr
    assert first.stdout != again.stdout
    assert again.stdout == "schema current: 0 set(s) of tables created or updated\n"
    with raw(postgres_url, autocommit=True) as conn:
        tables = {row[0] for row in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema ="
            " current_schema()").fetchall()}  # fmt: skip
    assert {"events", "payments", "payment_queue", "work_log", "charges"} <= tables


@pytest.fixture
def queue(postgres_url: str) -> Iterator[PostgresPaymentQueue]:
    made = PostgresPaymentQueue(database(postgres_url))
    yield made
    made.close()


@pytest.mark.postgres
def test_a_claim_is_committed_at_once_and_held_until_its_lease_runs_out(
    queue: PostgresPaymentQueue,
) -> None:
    queue.enqueue("pay_1")
    held = queue.claim("w1", 1, lease=60)
    assert held.ids == ("pay_1",)
    assert queue.claims() == {"pay_1": "w1"}  # seen by every other connection: committed
    assert queue.claim("w2", 1, lease=60).ids == ()
    assert queue.renew(held, lease=60) == {"pay_1"}


@pytest.mark.postgres
def test_a_payment_whose_lease_ran_out_is_taken_and_the_late_worker_writes_nothing(
    queue: PostgresPaymentQueue,
) -> None:
    queue.enqueue("pay_1")
    stalled = queue.claim("stalled", 1, lease=0)  # a lease that has already run out
    taker = queue.claim("taker", 1, lease=60)
    assert taker.ids == ("pay_1",)
    record = _record("pay_1", "stalled")
    assert not queue.complete(stalled, "pay_1", record)
    assert queue.renew(stalled, lease=60) == set()
    assert queue.complete(taker, "pay_1", _record("pay_1", "taker"))
    assert [(r.worker, r.action) for r in queue.work_log()] == [("taker", "processed")]
    assert queue.pending() == 0


@pytest.mark.postgres
def test_the_janitors_requeue_frees_a_payment_whose_claim_ran_out(
    queue: PostgresPaymentQueue,
) -> None:
    queue.enqueue("pay_1")
    assert not queue.enqueue("pay_1")  # waiting already: nothing to requeue
    queue.claim("live", 1, lease=60)
    assert not queue.enqueue("pay_1")  # held by a live lease: left to its holder
    queue.enqueue("pay_2")
    queue.claim("dead", 1, lease=0)
    assert queue.enqueue("pay_2")
    assert queue.claims() == {"pay_1": "live"}
    assert queue.claim("w3", 1, lease=60).ids == ("pay_2",)


@pytest.mark.postgres
def test_a_dead_workers_payment_waits_behind_the_work_queued_before_it_ran_out(
    queue: PostgresPaymentQueue,
) -> None:
    for n in range(3):
        queue.enqueue(f"pay_{n}")
    queue.claim("dead", 1, lease=0)
    assert queue.claim("w2", 3, lease=60).ids == ("pay_1", "pay_2", "pay_0")


def _record(payment_id: str, worker: str) -> typing.Any:
    from aegispay.infra.queue import WorkRecord  # noqa: PLC0415 - only these two tests

    return WorkRecord(payment_id, worker, "processed", "SUCCESS", VirtualClock().now())


# --- real worker processes --------------------------------------------------------------------

PACE = ("--backoff", "0.005", "--lock-ttl", "1", "--sync", "0.5,1x5")
DEADLINE = 60.0


def aegispay(*args: str) -> list[str]:
    return [sys.executable, "-m", "aegispay.cli", *args]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class OwnRedis:
    """A redis-server of this test's own on a free port, to kill and start again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        until(lambda: _pings(client), what="redis-server answers")
        client.close()

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def pause(self, paused: bool) -> None:
        """SIGSTOP the server (its port stays open and answers nothing) or SIGCONT it."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP if paused else signal.SIGCONT)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH")
    server = OwnRedis()
    server.start()
    yield server
    if server.process is not None and server.process.poll() is None:
        server.kill()


class WorkerProcess:
    """An `aegispay worker` subprocess; its output goes to files (no pipe fills up)."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        # Appending: the child writes at the end whatever offset the test's reads leave.
        self.out, self.err = tempfile.TemporaryFile("a+"), tempfile.TemporaryFile("a+")  # noqa: SIM115
        self.process = subprocess.Popen(
            aegispay("worker", *args), stdout=self.out, stderr=self.err, text=True,
            env={**os.environ, **(env or {})},
        )  # fmt: skip

    def text(self, stream: typing.IO[str]) -> str:
        stream.seek(0)
        return stream.read()

    def stop(self) -> tuple[int, str, str]:
        """SIGTERM, wait, and return (exit status, stdout, stderr)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.process.returncode, self.text(self.out), self.text(self.err)


def submit(store: str, locks: str, payments: int) -> None:
    subprocess.run(
        aegispay("submit", "--store", store, "--gateway", store, "--locks", locks,
                 "--payments", str(payments), "--seed", "5"),
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip


def processed(pay: AegisPay) -> int:
    return sum(r.action == "processed" for r in open_queue(pay).work_log())


def settled_and_clean(store: str) -> None:
    """A fault-free worker's last janitor run, then the audit: nothing left, nothing violated."""
    with AegisPay.open(store=store, gateway=store) as pay:
        report = pay.check_invariants()
        states = {p.state for p in pay.list_payments()}
        assert open_queue(pay).pending() == 0
    assert report.violations == 0, report.details
    assert states <= {PaymentState.SUCCESS, PaymentState.FAILURE}


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_a_worker_outlives_its_redis_killed_and_started_again_and_drains_the_queue(
    postgres_url: str, own_redis: OwnRedis
) -> None:
    submit(postgres_url, own_redis.url, 60)
    worker = WorkerProcess("--store", postgres_url, "--gateway", postgres_url,
                           "--locks", own_redis.url, "--name", "w1", *PACE)  # fmt: skip
    try:
        with AegisPay.open(store=postgres_url, gateway=postgres_url) as pay:
            until(lambda: processed(pay) >= 5, DEADLINE, "w1 processes with Redis up")
            own_redis.kill()
            before = processed(pay)
            until(lambda: processed(pay) > before + 5, DEADLINE, "w1 processes with Redis down")
            own_redis.start()
            until(lambda: open_queue(pay).pending() == 0, DEADLINE, "the queue drains")
            until(lambda: "Redis is back" in worker.text(worker.err), DEADLINE, "w1 sees Redis")
    finally:
        status, _, errors = worker.stop()
    assert status == 0, errors
    assert errors.count("Redis cannot be reached") == 1, errors
    assert "Traceback" not in errors
    settled_and_clean(postgres_url)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_a_worker_outlives_its_redis_paused_and_resumed_and_drains_the_queue(
    postgres_url: str, own_redis: OwnRedis
) -> None:
    """A paused Redis keeps its connections open and answers nothing: the worker's commands time
    out, it says so once, goes on without leases, and takes them there again once resumed."""
    submit(postgres_url, own_redis.url, 60)
    worker = WorkerProcess("--store", postgres_url, "--gateway", postgres_url,
                           "--locks", own_redis.url, "--name", "w1", *PACE)  # fmt: skip
    try:
        with AegisPay.open(store=postgres_url, gateway=postgres_url) as pay:
            until(lambda: processed(pay) >= 5, DEADLINE, "w1 processes with Redis up")
            own_redis.pause(True)
            until(lambda: "Redis cannot be reached" in worker.text(worker.err), DEADLINE,
                  "w1 says Redis is lost")  # fmt: skip
            before = processed(pay)
            until(lambda: processed(pay) > before + 5, DEADLINE, "w1 processes, Redis paused")
            own_redis.pause(False)
            until(lambda: "Redis is back" in worker.text(worker.err), DEADLINE, "w1 sees Redis")
            until(lambda: open_queue(pay).pending() == 0, DEADLINE, "the queue drains")
    finally:
        own_redis.pause(False)
        status, _, errors = worker.stop()
    assert status == 0, errors
    assert errors.count("Redis cannot be reached") == 1, errors
    assert "Traceback" not in errors
    settled_and_clean(postgres_url)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_a_worker_outlives_its_postgresql_connections_cut_and_drains_the_queue(
    postgres_url: str, redis_url: str
) -> None:
    name = f"cut_{uuid.uuid4().hex[:10]}"
    submit(postgres_url, redis_url, 60)
    worker = WorkerProcess("--store", postgres_url, "--gateway", postgres_url,
                           "--locks", redis_url, "--name", "w1", *PACE,
                           env={"PGAPPNAME": name})  # fmt: skip
    try:
        with AegisPay.open(store=postgres_url, gateway=postgres_url) as pay:
            for enough in (5, 15):
                until(lambda n=enough: processed(pay) >= n, DEADLINE, "w1 processes")
                with raw(postgres_url, autocommit=True) as conn:
                    conn.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE application_name = %s",
                        (name,),
                    )
            until(lambda: open_queue(pay).pending() == 0, DEADLINE, "the queue drains")
    finally:
        status, _, errors = worker.stop()
    assert status == 0, errors
    assert "PostgreSQL cannot be reached" in errors
    assert "Traceback" not in errors
    settled_and_clean(postgres_url)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_a_stopped_workers_payment_is_taken_after_its_lease_and_the_woken_one_logs_nothing(
    postgres_url: str, redis_url: str
) -> None:
    """w1's every gateway call is slow; it is SIGSTOPped holding its claim. w2 takes the payment
    once the lease runs out and processes it. w1, woken, finds the store moved on and its
    claim gone: it writes no work-log line."""
    submit(postgres_url, redis_url, 1)
    servers = ("--store", postgres_url, "--gateway", postgres_url, "--locks", redis_url)
    with AegisPay.open(store=postgres_url, gateway=postgres_url) as pay:
        queue = open_queue(pay)
        [payment_id] = [p.id for p in pay.list_payments()]
        stopped = WorkerProcess(*servers, "--name", "w1", *PACE, "--fault", "slow=1")
        try:
            until(lambda: queue.claims() == {payment_id: "w1"}, DEADLINE, "w1 claims")  # type: ignore[attr-defined]
            stopped.process.send_signal(signal.SIGSTOP)
            taker = WorkerProcess(*servers, "--name", "w2", *PACE)
            # w2's worker or its start-up janitor: whichever takes it first.
            until(lambda: len(queue.work_log()) == 1, DEADLINE, "w2 settles the payment")
            stopped.process.send_signal(signal.SIGCONT)
            until(lambda: "taken over" in stopped.text(stopped.out), DEADLINE, "w1 wakes")
        finally:
            stopped_status, stopped_out, stopped_err = stopped.stop()
            taker_status, _, taker_err = taker.stop()
        log = [(r.payment_id, r.worker, r.action) for r in queue.work_log()]
        charges = [c for c in pay.charges() if c.charged]
    assert (stopped_status, taker_status) == (0, 0), stopped_err + taker_err
    assert [(pid, worker) for pid, worker, _ in log] == [(payment_id, "w2")]
    assert f"processed {payment_id}" not in stopped_out
    assert len(charges) == 1
    settled_and_clean(postgres_url)


@pytest.mark.postgres
def test_a_requeue_of_many_changes_only_the_missing_and_the_run_out(
    queue: PostgresPaymentQueue,
) -> None:
    for payment_id in ("held", "waiting", "ran_out_1", "ran_out_2"):
        queue.enqueue(payment_id)
    assert queue.claim("live", 1, lease=60).ids == ("held",)
    assert queue.claim("dead", 2, lease=0).ids == ("waiting", "ran_out_1")
    assert queue.requeue(["held", "waiting", "ran_out_1", "ran_out_2", "missing"]) == 3
    assert queue.claims() == {"held": "live"}


class Proxy:
    """A TCP relay in front of the shared PostgreSQL: stopping it is, for the worker behind
    it, the server going away (the shared server itself is never touched)."""

    def __init__(self, upstream: tuple[str, int] = ("127.0.0.1", 5432)) -> None:
        self.upstream, self.port = upstream, free_port()
        self.sockets: list[socket.socket] = []
        self.listener: socket.socket | None = None

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        """Refuse new connections and cut every open one."""
        for sock in [self.listener, *self.sockets]:
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
        self.listener, self.sockets = None, []

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self.sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    relay = Proxy()
    relay.start()
    yield relay
    relay.stop()


def through(proxy: Proxy, url: str) -> str:
    """The same database and schema, reached through the proxy."""
    return url.replace("@127.0.0.1:5432/", f"@127.0.0.1:{proxy.port}/", 1)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_a_worker_waits_out_postgresql_going_away_and_coming_back(
    postgres_url: str, redis_url: str, proxy: Proxy
) -> None:
    submit(postgres_url, redis_url, 40)
    relayed = through(proxy, postgres_url)
    worker = WorkerProcess("--store", relayed, "--gateway", relayed, "--locks", redis_url,
                           "--name", "w1", *PACE)  # fmt: skip
    try:
        with AegisPay.open(store=postgres_url, gateway=postgres_url) as pay:
            until(lambda: processed(pay) >= 3, DEADLINE, "w1 processes")
            proxy.stop()
            until(lambda: "cannot be reached" in worker.text(worker.err), DEADLINE, "w1 says so")
            proxy.start()
            until(lambda: open_queue(pay).pending() == 0, DEADLINE, "the queue drains")
    finally:
        status, _, errors = worker.stop()
    assert status == 0, errors
    assert "back after" in errors
    assert "Traceback" not in errors
    settled_and_clean(postgres_url)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_a_worker_gives_up_after_its_give_up_time_with_exit_status_4(
    postgres_url: str, redis_url: str, proxy: Proxy
) -> None:
    submit(postgres_url, redis_url, 40)
    relayed = through(proxy, postgres_url)
    worker = WorkerProcess("--store", relayed, "--gateway", relayed, "--locks", redis_url,
                           "--name", "w1", *PACE, "--give-up-after", "2")  # fmt: skip
    with AegisPay.open(store=postgres_url, gateway=postgres_url) as pay:
        until(lambda: processed(pay) >= 3, DEADLINE, "w1 processes")
    proxy.stop()
    try:
        worker.process.wait(timeout=DEADLINE)
    finally:
        status, _, errors = worker.stop()
    assert status == 4, errors
    lines = errors.splitlines()
    assert sum("PostgreSQL cannot be reached" in line for line in lines) == 1, errors
    assert lines[-1].startswith("aegispay: worker w1: PostgreSQL has been down for ")
    assert "past --give-up-after 2 s: giving up" in lines[-1]
    assert "Traceback" not in errors


STOPPED_MID_APPEND = """
import os, signal, sys
from aegispay.infra.clock import VirtualClock
from aegispay.infra.events.postgres import PostgresEventStore
from aegispay.infra.postgres import PostgresDatabase
from tests.factories import authenticated
database = PostgresDatabase(sys.argv[1], sys.argv[2])
store = PostgresEventStore(database, VirtualClock())
stop = lambda: os.kill(os.getpid(), signal.SIGSTOP)
store.append("pay_a", [authenticated("pay_a")], expected_version=1, project=stop)
"""


@pytest.mark.slow
@pytest.mark.postgres
def test_a_process_stopped_mid_append_holds_the_events_lock_no_longer_than_the_bound(
    postgres_url: str,
) -> None:
    """A real process SIGSTOPped inside its append (the rows inserted, the table lock held):
    another writer's append goes through once the server ends the stopped one's session."""
    store = PostgresEventStore(database(postgres_url), VirtualClock())
    store.append("pay_a", [initiated("pay_a")], expected_version=0)
    store.append("pay_b", [initiated("pay_b")], expected_version=0)
    parsed = parse_store_url("store", postgres_url)
    stopped = subprocess.Popen([sys.executable, "-c", STOPPED_MID_APPEND, parsed.path,
                                parsed.schema], cwd=os.getcwd())  # fmt: skip
    try:
        until(lambda: _is_stopped(stopped.pid), DEADLINE, "the appender stops itself")
        store.append("pay_b", [authenticated("pay_b")], expected_version=1)
    finally:
        stopped.kill()
        stopped.wait()
    assert [r.version for r in store.read("pay_b")] == [1, 2]
    assert [r.version for r in store.read("pay_a")] == [1]  # the stopped append never committed
    store.close()


def _is_stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "T"
