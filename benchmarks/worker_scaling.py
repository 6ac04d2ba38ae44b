"""Throughput of 1, 2 and 4 worker processes sharing PostgreSQL and Redis, with p99 latency.

The workers start first and wait on an empty queue. Then the payments are created and queued
in one statement, so every worker sees the work at once; the clock runs from that moment to the
last payment a worker logged. A payment's latency is from the first event a worker wrote for it
to its last. Skipped, with the reason, when PostgreSQL or Redis cannot be reached.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis
from psycopg import sql

from aegispay import Engine, SystemClock
from aegispay.sim.workload import seeded_request
from aegispay.worker import open_queue

POSTGRES = os.environ.get("AEGISPAY_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("AEGISPAY_BENCH_REDIS", "redis://127.0.0.1:6379/0")
WORKERS = (1, 2, 4)
PAYMENTS = 200
PLOT = Path(__file__).resolve().parent.parent / "docs" / "scaling.png"


@dataclass
class Result:
    """One run's figures."""

    workers: int
    per_second: float
    p50_ms: float
    p99_ms: float


def reachable() -> str | None:
    """Why the servers cannot be used, or None."""
    try:
        psycopg.connect(POSTGRES, connect_timeout=3).close()
        redis.Redis.from_url(REDIS, socket_connect_timeout=3).ping()
    except (psycopg.Error, redis.RedisError) as error:
        return str(error).strip()
    return None


def measure(workers: int) -> Result:
    """Run `workers` worker processes over PAYMENTS payments on a fresh schema."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    store = f"{POSTGRES}?schema={schema}"
    servers = ["--store", store, "--gateway", store, "--locks", f"{REDIS}?prefix={schema}"]
    command = [sys.executable, "-m", "aegispay.cli", "worker", *servers, "--sync", "600"]
    processes: list[subprocess.Popen[str]] = []
    try:
        with Engine.open(store, store, clock=SystemClock()) as engine:
            open_queue(engine)  # the queue's tables, before any worker polls them
            processes += [
                subprocess.Popen([*command, "--name", f"w{n}"], stdout=subprocess.PIPE, text=True)
                for n in range(workers)
            ]
            for process in processes:
                assert process.stdout is not None
                process.stdout.readline()  # the start-up janitor's line: this worker is ready
            for index in range(PAYMENTS):
                engine.create_payment(**seeded_request(1, index))
            started = time.time()
            with psycopg.connect(POSTGRES, options=f"-c search_path={schema}") as conn:
                conn.execute("INSERT INTO payment_queue (payment_id) SELECT id FROM payments")
            while any(p.state.value in ("INITIATED", "AUTHENTICATED", "PROCESSING")
                      for p in engine.list_payments()):  # fmt: skip
                time.sleep(0.1)
            for process in processes:
                process.send_signal(signal.SIGTERM)
                process.communicate(timeout=60)
            latencies = sorted(_latency(engine, p.id) for p in engine.list_payments())
            finished = max(r.at.timestamp() for r in open_queue(engine).work_log())
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    return Result(
        workers,
        PAYMENTS / (finished - started),
        1000 * latencies[len(latencies) // 2],
        1000 * latencies[int(len(latencies) * 0.99) - 1],
    )


def _latency(engine: Engine, payment_id: str) -> float:
    events = engine.events(payment_id)
    return (events[-1].recorded_at - events[1].recorded_at).total_seconds()


def plot(results: list[Result]) -> None:
    """Save payments/s and p99 against workers as docs/scaling.png."""
    import matplotlib  # noqa: PLC0415 - only the benchmark draws

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, rate = plt.subplots(figsize=(6, 3.5))
    counts = [r.workers for r in results]
    rate.plot(counts, [r.per_second for r in results], "o-", color="tab:blue")
    rate.set_xlabel("worker processes (2 CPU cores, PostgreSQL and Redis on the same machine)")
    rate.set_ylabel("payments / s", color="tab:blue")
    rate.set_xticks(counts)
    p99 = rate.twinx()
    p99.plot(counts, [r.p99_ms for r in results], "s--", color="tab:red")
    p99.set_ylabel("p99 latency, ms", color="tab:red")
    figure.suptitle("AegisPay workers on PostgreSQL + Redis")
    figure.tight_layout()
    figure.savefig(PLOT, dpi=100)


def run() -> None:
    """Measure each worker count, print the table, save the plot."""
    print(f"Worker scaling on PostgreSQL + Redis: {PAYMENTS} payments per run")
    problem = reachable()
    if problem is not None:
        print(f"  skipped: PostgreSQL or Redis not reachable ({problem})")
        return
    results = [measure(workers) for workers in WORKERS]
    print("| workers | payments/s | p50 ms | p99 ms |")
    print("| ---: | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r.workers} | {r.per_second:.1f} | {r.p50_ms:.0f} | {r.p99_ms:.0f} |")
    plot(results)
    print(f"  plot saved to {PLOT}")


if __name__ == "__main__":
    run()
