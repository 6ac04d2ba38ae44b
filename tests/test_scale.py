"""Workers on many processes: a shared queue, a janitor on a schedule, SIGKILLs, one truth.

The in-memory tests show a worker and its janitor in one process; the slow ones start real
`aegispay worker` processes on PostgreSQL and Redis, kill them at random while others go on,
restart them, and audit every invariant.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import typing

import pytest

from aegispay import AegisPay, InvalidRequest, PaymentState
from aegispay.engine import Storage
from aegispay.infra.clock import VirtualClock
from aegispay.infra.queue import WorkRecord
from aegispay.infra.queue.memory import InMemoryPaymentQueue
from aegispay.worker import (
    JANITOR_LEASE,
    JANITOR_LOCK,
    SyncSchedule,
    Worker,
    open_queue,
    work_counts,
)

REQUEST = {
    "amount": "12.50",
    "currency": "EUR",
    "customer_id": "cus_1",
    "payment_method": "tok_visa",
}


def submit(pay: AegisPay, queue: InMemoryPaymentQueue, count: int) -> list[str]:
    ids = []
    for n in range(count):
        payment = pay.create_payment(idempotency_key=f"order-{n}", **REQUEST)
        queue.enqueue(payment.id)
        ids.append(payment.id)
    return ids


def test_the_sync_schedule_reads_like_hyperswitchs() -> None:
    schedule = SyncSchedule.parse("60,300x5")
    assert schedule.intervals == (60, 300, 300, 300, 300, 300)
    assert schedule.span == 1560
    assert schedule.after(0) == 60
    assert schedule.after(99) == 300


@pytest.mark.parametrize("text", ["", "0", "60,x5", "60,300x0", "-1", "a,b"])
def test_a_bad_sync_schedule_is_refused(text: str) -> None:
    with pytest.raises(InvalidRequest, match="sync"):
        SyncSchedule.parse(text)


def test_a_worker_processes_every_queued_payment_and_logs_them_as_its_own() -> None:
    pay, queue = AegisPay.in_memory(), InMemoryPaymentQueue()
    ids = submit(pay, queue, 3)
    summary = Worker(pay, queue, "w1").run(until_empty=True)
    assert summary.processed == 3
    assert {pay.get_payment(pid).state for pid in ids} == {PaymentState.SUCCESS}
    assert queue.pending() == 0
    assert list(work_counts(queue.work_log())) == [("w1", "processed", 3)]


def test_two_workers_never_claim_the_same_payment_at_once() -> None:
    queue = InMemoryPaymentQueue(VirtualClock())
    for n in range(3):
        queue.enqueue(f"pay_{n}")
    first, second = queue.claim("w1", 2, lease=30), queue.claim("w2", 2, lease=30)
    assert (first.ids, second.ids) == (("pay_0", "pay_1"), ("pay_2",))
    assert queue.claims() == {"pay_0": "w1", "pay_1": "w1", "pay_2": "w2"}


def test_a_claim_is_committed_at_once_and_taken_by_another_worker_when_its_lease_runs_out() -> None:
    clock = VirtualClock()
    queue = InMemoryPaymentQueue(clock)
    queue.enqueue("pay_1")
    stalled = queue.claim("stalled", 1, lease=5)
    assert queue.claim("other", 1, lease=5).ids == ()
    clock.advance(5)
    taken = queue.claim("other", 1, lease=5)
    assert taken.ids == ("pay_1",)
    assert queue.renew(stalled, lease=5) == set()
    assert queue.claims() == {"pay_1": "other"}


def test_a_renewed_claim_outlives_its_first_lease() -> None:
    clock = VirtualClock()
    queue = InMemoryPaymentQueue(clock)
    queue.enqueue("pay_1")
    working = queue.claim("w1", 1, lease=5)
    clock.advance(4)
    assert queue.renew(working, lease=5) == {"pay_1"}
    clock.advance(4)
    assert queue.claim("w2", 1, lease=5).ids == ()


def test_a_worker_woken_after_it_was_taken_over_logs_nothing_and_leaves_the_queue_alone() -> None:
    clock = VirtualClock()
    queue = InMemoryPaymentQueue(clock)
    queue.enqueue("pay_1")
    woken = queue.claim("woken", 1, lease=5)
    clock.advance(6)
    taker = queue.claim("taker", 1, lease=5)
    late = WorkRecord("pay_1", "woken", "processed", "SUCCESS", clock.now())
    assert not queue.complete(woken, "pay_1", late)
    assert queue.pending() == 1
    assert queue.complete(taker, "pay_1", WorkRecord("pay_1", "taker", "processed", "SUCCESS",
                                                     clock.now()))  # fmt: skip
    assert [(r.worker, r.action) for r in queue.work_log()] == [("taker", "processed")]
    assert queue.pending() == 0


def test_the_janitors_requeue_makes_a_payment_whose_claim_ran_out_claimable_at_once() -> None:
    clock = VirtualClock()
    queue = InMemoryPaymentQueue(clock)
    queue.enqueue("pay_1")
    queue.claim("dead", 1, lease=30)
    assert not queue.enqueue("pay_1")  # held by a live lease: left to its holder
    clock.advance(30)
    assert queue.enqueue("pay_1")
    assert queue.claims() == {}
    assert queue.claim("w2", 1, lease=30).ids == ("pay_1",)


def test_a_dead_workers_payment_goes_behind_the_work_that_was_waiting() -> None:
    clock = VirtualClock()
    queue = InMemoryPaymentQueue(clock)
    for n in range(3):
        queue.enqueue(f"pay_{n}")
    queue.claim("dead", 1, lease=5)
    clock.advance(10)
    assert queue.claim("w2", 3, lease=5).ids == ("pay_1", "pay_2", "pay_0")


def test_a_claim_that_raises_puts_its_payments_back() -> None:
    pay = AegisPay.in_memory()
    queue = InMemoryPaymentQueue(pay.clock)
    [payment_id] = submit(pay, queue, 1)
    pay.crash_at("gateway.charge", "before")
    with pytest.raises(BaseException, match="crash"):
        Worker(pay, queue, "w1").work_once()
    assert queue.claims() == {}
    assert queue.claim("w2", 1, lease=30).ids == (payment_id,)


def test_the_janitor_of_a_survivor_settles_a_payment_a_dead_worker_left_in_flight() -> None:
    pay, queue = AegisPay.in_memory(), InMemoryPaymentQueue()
    [payment_id] = submit(pay, queue, 1)
    dead = pay.sibling()
    dead.crash_at("gateway.charge", "after")
    queue.claim("dead", 1, lease=30)
    with pytest.raises(BaseException, match="crash"):
        dead.process_payment(payment_id)
    assert pay.get_payment(payment_id).state is PaymentState.PROCESSING
    survivor = Worker(pay, queue, "survivor")
    survivor.janitor_run()
    assert pay.get_payment(payment_id).state is PaymentState.SUCCESS
    assert ("survivor", "settled", 1) in list(work_counts(queue.work_log()))
    assert pay.check_invariants().violations == 0


def left_in_flight(pay: AegisPay) -> str:
    """A payment, not queued, that a worker left PROCESSING when it died."""
    payment_id = pay.create_payment(idempotency_key="order-0", **REQUEST).id
    dead = pay.sibling()
    dead.crash_at("gateway.charge", "after")
    with pytest.raises(BaseException, match="crash"):
        dead.process_payment(payment_id)
    return payment_id


def in_flight_under_a_dead_holders_lock(pay: AegisPay) -> str:
    """A payment a worker left PROCESSING when it died, its lock held for the rest of a lease."""
    payment_id = left_in_flight(pay)
    assert pay.locks.acquire(f"payment:{payment_id}", "dead-worker", ttl=30.0)
    return payment_id


def test_a_scheduled_janitor_run_leaves_a_payment_another_holds_without_waiting() -> None:
    """A worker started beside a dead one's payment starts working at once: its janitor counts
    the payment unresolved and leaves it to the lease running out."""
    pay, queue = AegisPay.in_memory(), InMemoryPaymentQueue()
    payment_id = in_flight_under_a_dead_holders_lock(pay)
    started = pay.clock.now()
    worker = Worker(pay, queue, "w1")
    worker.janitor_run()
    assert pay.clock.now() == started
    assert worker.summary.unresolved == 1
    assert pay.get_payment(payment_id).state is PaymentState.PROCESSING


def test_the_last_janitor_run_waits_for_a_dead_holders_lock_and_settles_the_payment() -> None:
    pay, queue = AegisPay.in_memory(), InMemoryPaymentQueue()
    payment_id = in_flight_under_a_dead_holders_lock(pay)
    started = pay.clock.now()
    summary = Worker(pay, queue, "last").run(until_empty=True)
    assert (pay.clock.now() - started).total_seconds() >= 30.0  # the dead holder's lease
    assert summary.unresolved == 0
    assert pay.get_payment(payment_id).state is PaymentState.SUCCESS
    assert pay.check_invariants().violations == 0


def test_a_worker_until_empty_waits_out_a_dead_janitors_lock_and_settles_what_is_left() -> None:
    pay, queue = AegisPay.in_memory(), InMemoryPaymentQueue()
    # Not queued: a worker took it and died with it, so only a janitor can settle it now.
    payment_id = left_in_flight(pay)
    # A janitor killed mid-sweep: its lock stays held for the rest of its lease.
    assert pay.locks.acquire(JANITOR_LOCK, "dead-janitor", ttl=JANITOR_LEASE)
    lines: list[str] = []
    summary = Worker(pay, queue, "last", say=lines.append).run(until_empty=True)
    assert lines[0] == "janitor last: another janitor holds the lock; skipped"
    assert summary.settled_by_janitor == 1
    assert pay.get_payment(payment_id).state is PaymentState.SUCCESS
    assert pay.check_invariants().violations == 0


def test_a_stopped_worker_does_not_wait_out_another_janitors_lock() -> None:
    pay, queue = AegisPay.in_memory(), InMemoryPaymentQueue()
    assert pay.locks.acquire(JANITOR_LOCK, "dead-janitor", ttl=30.0)
    stop = threading.Event()
    stop.set()  # SIGTERM arrived
    started = pay.clock.now()
    lines: list[str] = []
    Worker(pay, queue, "w1", say=lines.append).janitor_run(wait=35.0, stop=stop)
    assert lines == ["janitor w1: another janitor holds the lock; skipped"]
    assert (pay.clock.now() - started).total_seconds() <= 1.0


def test_a_janitor_that_does_not_wait_skips_while_another_holds_the_lock() -> None:
    pay, queue = AegisPay.in_memory(), InMemoryPaymentQueue()
    assert pay.locks.acquire(JANITOR_LOCK, "other", ttl=30.0)
    started = pay.clock.now()
    lines: list[str] = []
    Worker(pay, queue, "w1", say=lines.append).janitor_run()
    assert lines == ["janitor w1: another janitor holds the lock; skipped"]
    assert pay.clock.now() == started


def test_an_unresolved_payment_older_than_the_schedule_is_an_alert_line() -> None:
    pay, queue = AegisPay.in_memory(), InMemoryPaymentQueue()
    [payment_id] = submit(pay, queue, 1)
    pay.set_faults(gateway=None)
    stuck = pay.sibling()
    stuck.crash_at("gateway.charge", "before")
    with pytest.raises(BaseException, match="crash"):
        stuck.process_payment(payment_id)
    for name in pay.gateways:
        pay.set_faults(pay.faults_config.model_copy(update={"network_rate": 1.0}), name)
    pay.clock.advance(2000)  # type: ignore[attr-defined]
    lines: list[str] = []
    Worker(pay, queue, "w1", SyncSchedule.parse("60,300x5"), say=lines.append).janitor_run()
    assert any(line.startswith(f"ALERT payment {payment_id} unresolved") for line in lines)
    assert any("'past schedule': 1" in line for line in lines)


def test_a_store_without_a_server_queues_in_this_process() -> None:
    pay = AegisPay.in_memory()
    assert isinstance(open_queue(pay), InMemoryPaymentQueue)
    assert isinstance(Storage.in_memory(pay.clock).events, type(pay.event_store))


# --- real processes on PostgreSQL and Redis ---------------------------------------------------

WORKERS = 3
KILLS = 6
PAYMENTS = 120
FAULTS = ("--fault", "network=0.1", "--fault", "partial=0.1")
# Fast retries and a one-second lease: a killed worker's payment is free again within a second.
PACE = ("--backoff", "0.005", "--lock-ttl", "1", "--sync", "0.5,1x5")
DEADLINE = 90.0  # a bound for a stuck run; a healthy one drains in about 15 s


def aegispay(*args: str) -> list[str]:
    return [sys.executable, "-m", "aegispay.cli", *args]


def urls(postgres_url: str, redis_url: str) -> tuple[str, ...]:
    return ("--store", postgres_url, "--gateway", postgres_url, "--locks", redis_url)


# Each worker's lines, by process id: a file, so that no pipe fills up and `wait_started`
# can look for the first line.
WORKER_LINES: dict[int, typing.IO[str]] = {}


def start_worker(servers: tuple[str, ...], name: str, *extra: str) -> subprocess.Popen[str]:
    lines = tempfile.TemporaryFile("w+")  # noqa: SIM115 - open while the worker lives
    process = subprocess.Popen(
        aegispay("worker", *servers, "--name", name, *FAULTS, *PACE, *extra),
        stdout=lines,
        stderr=subprocess.PIPE,
        text=True,
    )
    WORKER_LINES[process.pid] = lines
    return process


def wait_started(process: subprocess.Popen[str], deadline: float = 60.0) -> None:
    """Wait for a worker's first line (its start-up janitor's report): by then it stops on
    SIGTERM between payments. Before, a SIGTERM meets Python still importing, and kills it."""
    lines = WORKER_LINES[process.pid]
    started = time.monotonic()
    while os.fstat(lines.fileno()).st_size == 0:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() - started < deadline, "the worker never reported"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_workers_killed_at_random_while_others_go_on_leave_no_violation(
    postgres_url: str, redis_url: str
) -> None:
    """Three workers with network and lost-response faults; six SIGKILLs at random moments,
    each victim restarted; the queue drains; a last worker settles the rest: 0 violations."""
    servers = urls(postgres_url, redis_url)
    subprocess.run(
        aegispay("submit", *servers, "--payments", str(PAYMENTS), "--seed", "11"), check=True
    )
    rng = random.Random(11)
    names = {f"w{n}": f"w{n}" for n in range(WORKERS)}
    workers = {slot: start_worker(servers, slot) for slot in names}
    killed = 0
    started = time.monotonic()
    with AegisPay.open(store=postgres_url, gateway=postgres_url) as pay:
        queue = open_queue(pay)
        while killed < KILLS and queue.pending() > 0:
            time.sleep(rng.uniform(0.02, 0.1))
            # The kills are spread over the run by its progress, not by the clock: the k-th
            # once k/(KILLS+2) of the queue is taken, however fast this machine drains it.
            if PAYMENTS - queue.pending() < PAYMENTS * (killed + 1) // (KILLS + 2):
                continue
            # A victim is a worker that has started working, so it dies with payments in hand.
            working = {record.worker for record in queue.work_log()}
            alive = sorted(slot for slot, name in names.items() if name in working)
            if not alive:
                continue
            slot = rng.choice(alive)
            workers[slot].kill()
            workers[slot].wait()
            killed += 1
            names[slot] = f"{slot}.{killed}"
            workers[slot] = start_worker(servers, names[slot])
        while queue.pending() > 0:
            assert time.monotonic() - started < DEADLINE, f"{queue.pending()} still queued"
            time.sleep(0.2)
        for process in workers.values():
            wait_started(process)
            process.send_signal(signal.SIGTERM)
        for process in workers.values():
            _, errors = process.communicate(timeout=30)
            assert process.returncode == 0, errors
        # The last word: a worker without faults, whose start-up janitor settles what is left.
        final = subprocess.run(
            aegispay("worker", *servers, "--name", "final", *PACE, "--until-empty", "--json"),
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        summary = json.loads(final.stdout)
        report = pay.check_invariants()
        log = queue.work_log()
        states = {p.state for p in pay.list_payments()}
    assert killed == KILLS
    assert report.violations == 0, report.details
    assert report.payments == PAYMENTS
    assert states <= {PaymentState.SUCCESS, PaymentState.FAILURE}
    # Killed workers had done work, and the survivors and successors did the rest.
    assert len({record.worker for record in log}) >= WORKERS + KILLS // 2
    print(f"workers {WORKERS}, kills {killed}, payments {report.payments}, "
          f"violations {report.violations}, by worker {list(work_counts(log))}")  # fmt: skip
    assert summary["alerts"] == 0


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_the_same_keys_sent_by_four_processes_at_once_make_one_payment_each(
    postgres_url: str, redis_url: str
) -> None:
    servers = urls(postgres_url, redis_url)
    senders = [
        subprocess.Popen(
            aegispay("submit", *servers, "--payments", "5", "--seed", "3", "--json"),
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    created = [json.loads(sender.communicate(timeout=60)[0])["created"] for sender in senders]
    assert sum(created) == 5
    with AegisPay.open(store=postgres_url, gateway=postgres_url) as pay:
        assert len(pay.list_payments()) == 5
        assert open_queue(pay).pending() == 5
        assert pay.check_invariants().violations == 0
