"""Three `aegispay worker` processes on PostgreSQL and a redis-server this benchmark starts, kills
and starts again, under the faults an operator meets first:

- stall: one worker SIGSTOPped for 15 s at the worst moment, holding the events table lock that
  every append waits on (caught in pg_locks, and checked still held once stopped); the rate of
  the other two while it is stopped, against theirs before;
- kills: a worker SIGKILLed every 2 s and replaced at once; the fleet's rate against the same
  fleet's without kills;
- servers: Redis killed for 5 s and started again, then every worker's PostgreSQL connections
  terminated (pg_terminate_backend by their application names, never another's); every worker
  must be alive after, the queue drained, and the audit clean.

Rates count work-log lines (a payment processed, or settled by a janitor) by their time stamps.
Each scenario has a schema of its own, dropped afterwards. Skipped, with the reason, when
PostgreSQL or redis-server is missing.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import typing
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
import redis
from psycopg import sql

from aegispay import AegisPay
from aegispay.sim.workload import seeded_request
from aegispay.worker import open_queue

POSTGRES = os.environ.get("AEGISPAY_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
WORKERS = 3
STALL_SECONDS = 15.0
KILL_EVERY = 2.0
# Phases of this many seconds, calm and killing in turn.
KILL_PHASE_SECONDS, KILL_PHASES = 8.0, 4
# Seconds left unmeasured after a killing phase, so that a calm phase is calm.
SETTLE_SECONDS = 3.0
# A lease of 2 s: a dead or stopped worker's payments are free again within 2 s.
PACE = ("--lock-ttl", "2", "--backoff", "0.01", "--sync", "2,5x3")
BASELINE_SECONDS = 5.0
# Enough work for each scenario's measured window at up to about 350 payments/s (3 workers on 2
# cores did 55-280 on different days); what is left after it, the fleet drains. A window that
# ends with the queue empty measured idleness, not the fault, and stops the benchmark (`dry`).
STALL_PAYMENTS, KILL_PAYMENTS, SERVER_PAYMENTS = 8000, 15000, 6000
DRAIN_SECONDS = 600.0


def aegispay(*args: str) -> list[str]:
    return [sys.executable, "-m", "aegispay.cli", *args]


class OwnRedis:
    """A redis-server of this benchmark's own on a free port."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.RedisError:
                time.sleep(0.02)
        client.close()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class Fleet:
    """Worker processes on one schema, each with an application name of its own."""

    def __init__(self, schema: str, locks: str) -> None:
        self.schema, self.locks = schema, locks
        self.store = f"{POSTGRES}?schema={schema}"
        self.workers: dict[str, subprocess.Popen[str]] = {}
        self.errors: dict[str, typing.IO[str]] = {}
        self.lines: dict[str, typing.IO[str]] = {}
        self.started = 0

    def start(self, slot: str) -> str:
        """Start a worker in a slot; return its name (the slot and how many came before)."""
        self.started += 1
        name = f"{slot}.{self.started}"
        lines, errors = tempfile.TemporaryFile("a+"), tempfile.TemporaryFile("a+")  # noqa: SIM115
        self.workers[slot] = subprocess.Popen(
            aegispay("worker", "--store", self.store, "--gateway", self.store, "--locks",
                     self.locks, "--name", name, *PACE),
            stdout=lines, stderr=errors, text=True,
            env={**os.environ, "PGAPPNAME": self.application(slot)},
        )  # fmt: skip
        self.lines[name], self.errors[name] = lines, errors
        return name

    def application(self, slot: str) -> str:
        return f"{self.schema}-{slot}"

    def wait_ready(self) -> None:
        """Wait for every worker's first line (its start-up janitor's report)."""
        for name, lines in self.lines.items():
            while os.fstat(lines.fileno()).st_size == 0:
                assert self.workers[name.split(".")[0]].poll() is None, f"{name} died"
                time.sleep(0.05)

    def stop(self) -> dict[str, int]:
        """SIGTERM every worker; return their exit statuses by slot."""
        for process in self.workers.values():
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.send_signal(signal.SIGTERM)
        statuses = {}
        for slot, process in self.workers.items():
            try:
                statuses[slot] = process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                statuses[slot] = process.wait()
        return statuses

    def stderr(self) -> str:
        text = []
        for errors in self.errors.values():
            errors.seek(0)
            text.append(errors.read())
        return "".join(text)

    def terminate_connections(self) -> int:
        """pg_terminate_backend every connection of this fleet's workers; how many."""
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name LIKE %s",
                (f"{self.schema}-%",),
            ).fetchall()
        return len(rows)


@contextmanager
def scenario(locks: str, payments: int) -> Iterator[tuple[Fleet, AegisPay]]:
    """A fresh schema with `payments` created (not yet queued), and a fleet on it."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    store = f"{POSTGRES}?schema={schema}"
    fleet = Fleet(schema, f"{locks}?prefix={schema}")
    try:
        with AegisPay.open(store=store, gateway=store) as pay:
            open_queue(pay)
            with ThreadPoolExecutor(max_workers=4) as pool:
                list(
                    pool.map(lambda n: pay.create_payment(**seeded_request(3, n)), range(payments))
                )
            yield fleet, pay
    finally:
        fleet.stop()
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def queue_all(fleet: Fleet) -> datetime:
    """Queue every created payment in one statement; return when (the server's time)."""
    with psycopg.connect(POSTGRES, options=f"-c search_path={fleet.schema}") as conn:
        conn.execute(
            "INSERT INTO payment_queue (payment_id) SELECT id FROM payments ON CONFLICT DO NOTHING"
        )
        row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    return typing.cast(datetime, row[0])


def done_between(pay: AegisPay, start: datetime, end: datetime, who: Callable[[str], bool]) -> int:
    """Work-log lines stamped in [start, end) by workers `who` accepts."""
    return sum(start <= r.at < end and who(r.worker) for r in open_queue(pay).work_log())


def first_work(pay: AegisPay) -> dict[str, datetime]:
    """When each worker's first work-log line was stamped."""
    first: dict[str, datetime] = {}
    for record in open_queue(pay).work_log():
        first.setdefault(record.worker, record.at)
    return first


def server_now() -> datetime:
    with psycopg.connect(POSTGRES) as conn:
        row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    return typing.cast(datetime, row[0])


def holding_events_lock(fleet: Fleet, slot: str) -> bool:
    """Whether a connection of that worker holds the events table lock right now."""
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
            " WHERE l.granted AND l.mode = 'ExclusiveLock' AND a.application_name = %s"
            " AND l.relation = to_regclass(%s)",
            (fleet.application(slot), f"{fleet.schema}.events"),
        ).fetchone()
    return row is not None and row[0] > 0


@dataclass
class Figures:
    """What one run found, printed as a table."""

    rows: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, what: str, value: str, bar: str) -> None:
        self.rows.append((what, value, bar))


class RanDry(Exception):
    """A measured window ended with nothing left to claim: its rate measured idleness."""


def dry(fleet: Fleet, window: str) -> None:
    """Stop the scenario if no payment was left to claim when a measured window ended (claimed
    rows do not count: a killed worker's leased row is not work for the others)."""
    with psycopg.connect(POSTGRES, options=f"-c search_path={fleet.schema}") as conn:
        row = conn.execute(
            "SELECT count(*) FROM payment_queue WHERE claim_token IS NULL AND available_at <= now()"
        ).fetchone()
    if row is None or row[0] == 0:
        raise RanDry(
            f"the queue ran dry during {window}, so the rate measured idleness: raise the "
            "scenario's payment count for a machine this fast"
        )


def drain(pay: AegisPay) -> None:
    """Wait (bounded) for the fleet to empty the queue."""
    queue, deadline = open_queue(pay), time.monotonic() + DRAIN_SECONDS
    while queue.pending() and time.monotonic() < deadline:
        time.sleep(0.2)


def settle_and_audit(fleet: Fleet, pay: AegisPay) -> tuple[int, bool]:
    """A fault-free worker's last janitor run, then the audit: (violations, all terminal)."""
    subprocess.run(
        aegispay("worker", "--store", fleet.store, "--gateway", fleet.store, "--locks",
                 fleet.locks, "--name", "final", *PACE, "--until-empty"),
        capture_output=True, timeout=300, check=False,
    )  # fmt: skip
    report = pay.check_invariants()
    return report.violations, all(p.state.is_terminal for p in pay.list_payments())


def stall(locks: str, figures: Figures) -> None:
    """One worker SIGSTOPped for 15 s while it holds the events table lock."""
    with scenario(locks, STALL_PAYMENTS) as (fleet, pay):
        for n in range(WORKERS):
            fleet.start(f"w{n}")
        fleet.wait_ready()
        queue_all(fleet)
        time.sleep(1.0)  # past the start, into the steady state
        others = lambda name: not name.startswith("w0")  # noqa: E731
        start = server_now()
        time.sleep(BASELINE_SECONDS)
        before = done_between(pay, start, server_now(), others) / BASELINE_SECONDS
        victim, caught, tries = fleet.workers["w0"], False, 0
        while not caught and tries < 2000:
            tries += 1
            if holding_events_lock(fleet, "w0"):
                victim.send_signal(signal.SIGSTOP)
                caught = holding_events_lock(fleet, "w0")
                if not caught:
                    victim.send_signal(signal.SIGCONT)
        if not caught:
            victim.send_signal(signal.SIGSTOP)
        stopped = server_now()
        time.sleep(STALL_SECONDS)
        during = done_between(pay, stopped, server_now(), others) / STALL_SECONDS
        dry(fleet, "the stall")
        victim.send_signal(signal.SIGCONT)
        drain(pay)
        alive = victim.poll() is None
        statuses = fleet.stop()
        violations, terminal = settle_and_audit(fleet, pay)
    moment = "holding the events table lock" if caught else "not caught holding the lock"
    figures.add("stall: others' rate before, payments/s", f"{before:.1f}", "")
    figures.add(f"stall: others' rate while w0 stopped 15 s ({moment})", f"{during:.1f}", "")
    figures.add("stall: ratio (during / before)", f"{during / before:.2f}", ">= 0.50")
    figures.add(
        "stall: stopped worker alive after SIGCONT, exits 0",
        str(alive and statuses["w0"] == 0),
        "True",
    )
    figures.add("stall: violations, all terminal", f"{violations}, {terminal}", "0, True")


def kills(locks: str, figures: Figures) -> None:
    """The fleet's rate in phases without kills and with a worker SIGKILLed every 2 s (and
    replaced at once), alternating on one fleet so that a machine whose load drifts weighs
    on both alike."""
    seconds = {False: 0.0, True: 0.0}
    done = {False: 0, True: 0}
    killed = 0
    spawned: dict[str, datetime] = {}
    with scenario(locks, KILL_PAYMENTS) as (fleet, pay):
        for n in range(WORKERS):
            fleet.start(f"w{n}")
        fleet.wait_ready()
        queue_all(fleet)
        time.sleep(1.0)
        rng = random.Random(7)
        for phase in range(KILL_PHASES):
            killing = phase % 2 == 1
            start, began, kills_here = server_now(), time.monotonic(), 0
            # Kills at 0, 2, 4 and 6 s of a killing phase: what each costs (a replacement's
            # start, the dead worker's payment waiting out its lease) falls inside the phase.
            while (elapsed := time.monotonic() - began) < KILL_PHASE_SECONDS:
                if killing and elapsed >= kills_here * KILL_EVERY:
                    slot = rng.choice(sorted(fleet.workers))
                    fleet.workers[slot].kill()
                    fleet.workers[slot].wait()
                    killed += 1
                    kills_here += 1
                    at = server_now()
                    spawned[fleet.start(slot)] = at
                time.sleep(0.05)
            end, ended = server_now(), time.monotonic()
            done[killing] += done_between(pay, start, end, lambda _: True)
            seconds[killing] += ended - began
            dry(fleet, f"phase {phase + 1} of the kills")
            if killing:
                # Out of the next calm phase: the last replacement's start and lease.
                time.sleep(SETTLE_SECONDS)
        first = first_work(pay)
        drain(pay)
        fleet.stop()
        violations, terminal = settle_and_audit(fleet, pay)
    starts = sorted(
        (first[name] - at).total_seconds() for name, at in spawned.items() if name in first
    )
    calm, storm = done[False] / seconds[False], done[True] / seconds[True]
    figures.add("kills: fleet rate without kills, payments/s", f"{calm:.1f}", "")
    figures.add(f"kills: fleet rate with a SIGKILL every 2 s ({killed} kills), payments/s",
                f"{storm:.1f}", "")  # fmt: skip
    figures.add("kills: ratio (with / without)", f"{storm / calm:.2f}", ">= 0.70")
    figures.add(
        "kills: replacements' seconds from start to first work-log line (median, max; of those"
        " that wrote one)",
        f"{statistics.median(starts):.2f}, {starts[-1]:.2f}; {len(starts)} of {len(spawned)}"
        if starts
        else f"none of {len(spawned)}",
        "",
    )
    figures.add("kills: violations, all terminal", f"{violations}, {terminal}", "0, True")


def servers(redis_server: OwnRedis, figures: Figures) -> None:
    """Redis killed for 5 s and started again, then the fleet's PostgreSQL connections cut."""
    with scenario(redis_server.url, SERVER_PAYMENTS) as (fleet, pay):
        for n in range(WORKERS):
            fleet.start(f"w{n}")
        fleet.wait_ready()
        queue_all(fleet)
        time.sleep(2.0)
        redis_server.kill()
        time.sleep(5.0)
        redis_server.start()
        time.sleep(2.0)
        cut = fleet.terminate_connections()
        time.sleep(2.0)
        cut += fleet.terminate_connections()
        # Each fault must have met workers at work, and each worker must have had payments to
        # take leases for once Redis was back.
        time.sleep(2.0)
        dry(fleet, "the server faults")
        drain(pay)
        alive = all(process.poll() is None for process in fleet.workers.values())
        statuses = fleet.stop()
        errors = fleet.stderr()
        violations, terminal = settle_and_audit(fleet, pay)
    figures.add("servers: Redis down 5 s, then connections cut", f"{cut} connections", "")
    figures.add("servers: every worker alive after, exits 0",
                str(alive and set(statuses.values()) == {0}), "True")  # fmt: skip
    figures.add("servers: outage lines (Redis lost / back; PostgreSQL lost / back)",
                f"{errors.count('Redis cannot be reached')} / {errors.count('Redis is back')}; "
                f"{errors.count('PostgreSQL cannot be reached')} / "
                f"{errors.count('PostgreSQL is back after')}",
                "3 / 3; >= 3 / >= 3")  # fmt: skip
    figures.add("servers: tracebacks", str(errors.count("Traceback")), "0")
    figures.add("servers: violations, all terminal", f"{violations}, {terminal}", "0, True")


def postgres_problem() -> str | None:
    """Why the benchmarks' PostgreSQL cannot be reached, or None."""
    try:
        psycopg.connect(POSTGRES, connect_timeout=3).close()
    except psycopg.Error as error:
        return str(error).strip()
    return None


def reachable() -> str | None:
    """Why the benchmark cannot run here, or None."""
    if shutil.which("redis-server") is None:
        return "redis-server is not on PATH"
    return postgres_problem()


def run() -> None:
    """Run the three scenarios and print their figures."""
    print(f"Fleet faults: {WORKERS} worker processes on PostgreSQL and a redis-server of our own")
    problem = reachable()
    if problem is not None:
        print(f"  skipped: {problem}")
        return
    own = OwnRedis()
    own.start()
    figures = Figures()
    try:
        stall(own.url, figures)
        kills(own.url, figures)
        servers(own, figures)
    except RanDry as error:
        # What was measured before is printed; the other benchmarks go on.
        figures.add("stopped", str(error), "")
    finally:
        own.kill()
    print("| measured | figure | bar |")
    print("| --- | ---: | ---: |")
    for what, value, bar in figures.rows:
        print(f"| {what} | {value} | {bar} |")


if __name__ == "__main__":
    run()
