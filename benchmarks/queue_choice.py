"""The payment queue against Procrastinate's, on the same PostgreSQL, in one run: what issue 18's
choice between keeping our queue and adopting a well-kept one rests on.

- cost: claim and complete jobs one at a time, as a worker does, in rounds that alternate the
  two queues; the figure is Procrastinate's seconds per job over ours. Ours runs as the worker
  runs it (synchronous psycopg, a work-log line with each completion); Procrastinate's as its
  workers run it (asyncio, `fetch_job` then `finish_job`, its events table kept by triggers).
- takeover: worker A claims a job and stops (its heartbeat or lease ends); worker B takes the job
  over; then A wakes and completes it. Measured: how B gets the job (ours: its next claim, once
  the lease ran out; Procrastinate: only after someone prunes stalled workers and retries their
  jobs), and whether A's late completion is refused (the fence the worker's item 7 needs: a
  worker taken over writes nothing that claims the work) or accepted over B's.

Each queue lives in a schema of its own, dropped afterwards. Needs `make bench` (it installs
procrastinate); skipped, with the reason, without it or without PostgreSQL.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from aegispay.engine import Engine
from aegispay.infra.clock import SystemClock
from aegispay.infra.queue import WorkRecord
from aegispay.worker import PaymentQueue, open_queue
from benchmarks.fleet_faults import POSTGRES, postgres_problem

JOBS, ROUNDS = 300, 4
# Seconds a stopped worker's hold lasts: our claim's lease; Procrastinate's heartbeat age after
# which a worker counts as stalled.
HOLD = 1.0


@contextmanager
def schema() -> Iterator[str]:
    """A schema of this benchmark's own, dropped afterwards."""
    name = f"bench_queue_{uuid.uuid4().hex[:10]}"
    try:
        yield name
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@contextmanager
def ours(name: str) -> Iterator[PaymentQueue]:
    """Our queue on a fresh schema (the engine's store creates it)."""
    with Engine.open(store=f"{POSTGRES}?schema={name}", clock=SystemClock()) as engine:
        yield open_queue(engine)


def ours_round(queue: PaymentQueue, jobs: int) -> float:
    """Seconds to claim and complete `jobs` queued ids one at a time."""
    queue.requeue([f"pay_{uuid.uuid4().hex}" for _ in range(jobs)])
    started = time.perf_counter()
    while (claim := queue.claim("bench", 1, 30.0)).ids:
        record = WorkRecord(claim.ids[0], "bench", "processed", "SUCCESS", datetime.now(UTC))
        queue.complete(claim, claim.ids[0], record)
    return time.perf_counter() - started


class Theirs:
    """Procrastinate's job manager on a fresh schema, driven the way its workers drive it."""

    def __init__(self, name: str) -> None:
        import procrastinate  # noqa: PLC0415 - installed by `make bench` only

        # Its advice on where an application module should build its App is not a figure.
        logging.getLogger("procrastinate").setLevel(logging.ERROR)

        self.procrastinate = procrastinate
        connector = procrastinate.PsycopgConnector(
            conninfo=POSTGRES, kwargs={"options": f"-c search_path={name}"}
        )
        self.app = procrastinate.App(connector=connector)
        self.name = name

    async def open(self) -> None:
        await self.app.open_async()
        async with await psycopg.AsyncConnection.connect(POSTGRES, autocommit=True) as conn:
            await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.name)))
        await self.app.schema_manager.apply_schema_async()

    async def defer(self, jobs: int) -> None:
        job = self.procrastinate.jobs.Job
        batch = [
            job(id=None, queue="payments", lock=None, queueing_lock=None,
                task_name="process_payment", task_kwargs={"n": n})
            for n in range(jobs)
        ]  # fmt: skip
        await self.app.job_manager.batch_defer_jobs_async(batch)

    async def round(self, jobs: int) -> float:
        """Seconds to fetch and finish `jobs` deferred jobs one at a time."""
        await self.defer(jobs)
        manager = self.app.job_manager
        worker = await manager.register_worker()
        succeeded = self.procrastinate.jobs.Status.SUCCEEDED
        started = time.perf_counter()
        while (job := await manager.fetch_job(queues=None, worker_id=worker)) is not None:
            await manager.finish_job(job, status=succeeded, delete_job=True)
        seconds = time.perf_counter() - started
        await manager.unregister_worker(worker)
        return seconds

    async def takeover(self) -> dict[str, str]:
        """A claims a job and stops beating; B takes it over; A finishes it late."""
        manager = self.app.job_manager
        await self.defer(1)
        a = await manager.register_worker()
        job = await manager.fetch_job(queues=None, worker_id=a)
        assert job is not None
        b = await manager.register_worker()
        await asyncio.sleep(HOLD * 1.2)
        waiting = await manager.fetch_job(queues=None, worker_id=b)
        await manager.update_heartbeat(b)
        # What a periodic task of the application's must do: find stalled workers' jobs and
        # put them back (Procrastinate's worker prunes stalled workers only at its start).
        stalled = list(await manager.get_stalled_jobs(seconds_since_heartbeat=HOLD))
        for each in stalled:
            await manager.retry_job(each)
        again = await manager.fetch_job(queues=None, worker_id=b)
        succeeded = self.procrastinate.jobs.Status.SUCCEEDED
        late = await _outcome(manager.finish_job(job, status=succeeded, delete_job=False))
        own = "not taken" if again is None else await _outcome(
            manager.finish_job(again, status=succeeded, delete_job=False)
        )  # fmt: skip
        return {
            "B's claim once the hold ran out": "nothing" if waiting is None else "the job",
            "B's claim after stalled jobs were retried": "nothing" if again is None else "the job",
            "A's late completion": late,
            "B's completion": own,
        }

    async def close(self) -> None:
        await self.app.close_async()


async def _outcome(call: Any) -> str:
    try:
        await call
    except Exception as error:  # the refusal is the figure
        return f"refused ({type(error).__name__})"
    return "accepted"


def ours_takeover(queue: PaymentQueue) -> dict[str, str]:
    """The same story on our queue."""
    payment = f"pay_{uuid.uuid4().hex}"
    queue.requeue([payment])
    a = queue.claim("A", 1, HOLD)
    waiting = queue.claim("B", 1, 30.0)
    time.sleep(HOLD * 1.2)
    again = queue.claim("B", 1, 30.0)
    now = datetime.now(UTC)
    late = queue.complete(a, payment, WorkRecord(payment, "A", "processed", "SUCCESS", now))
    own = queue.complete(again, payment, WorkRecord(payment, "B", "processed", "SUCCESS", now))
    return {
        "B's claim while A's lease runs": "the job" if waiting.ids else "nothing",
        "B's claim once the lease ran out": "the job" if again.ids else "nothing",
        "A's late completion": "accepted" if late else "refused (its token is no longer the row's)",
        "B's completion": "accepted" if own else "refused",
    }


def reachable() -> str | None:
    """Why the benchmark cannot run here, or None."""
    if importlib.util.find_spec("procrastinate") is None:
        return "procrastinate is not installed (make bench installs it)"
    return postgres_problem()


def run() -> None:
    """Measure both queues and print the figures."""
    print("Queue choice: our payment queue against Procrastinate's, on the same PostgreSQL")
    problem = reachable()
    if problem is not None:
        print(f"  skipped: {problem}")
        return
    loop = asyncio.new_event_loop()
    with schema() as mine, schema() as their_schema, ours(mine) as queue:
        theirs = Theirs(their_schema)
        loop.run_until_complete(theirs.open())
        try:
            ours_round(queue, 20)  # warm both
            loop.run_until_complete(theirs.round(20))
            ours_s = theirs_s = 0.0
            for turn in range(ROUNDS):
                # Each goes first in every other round: an order effect (autovacuum after the
                # deletes, a warm cache) weighs on both alike.
                if turn % 2 == 0:
                    ours_s += ours_round(queue, JOBS)
                theirs_s += loop.run_until_complete(theirs.round(JOBS))
                if turn % 2 == 1:
                    ours_s += ours_round(queue, JOBS)
            ours_story = ours_takeover(queue)
            their_story = loop.run_until_complete(theirs.takeover())
        finally:
            loop.run_until_complete(theirs.close())
            loop.close()
    jobs = JOBS * ROUNDS
    print(f"  claim + complete, {jobs} jobs one at a time, {ROUNDS} alternating rounds:")
    print(f"    ours {ours_s / jobs * 1e3:.2f} ms/job, Procrastinate {theirs_s / jobs * 1e3:.2f} "
          f"ms/job: ratio (theirs / ours) {theirs_s / ours_s:.2f}")  # fmt: skip
    print(f"  takeover of a stopped worker's job (hold {HOLD:g} s):")
    for who, story in (("ours", ours_story), ("Procrastinate", their_story)):
        for what, outcome in story.items():
            print(f"    {who}: {what}: {outcome}")


if __name__ == "__main__":
    run()
