"""The durable path near the disk's limit: every figure a ratio to a baseline run beside it.

Each round runs every contender once, in turn, on fresh files in one temporary directory (so
on one disk), and each ratio is taken within a round: drift in the machine's speed falls on
both sides of it. Rounds are interleaved, and the table shows min, median and max over them.

- append: single-event appends by SQLiteEventStore, against raw sqlite3 single-row commits
  (BEGIN IMMEDIATE, INSERT, COMMIT) and against eventsourcing 9.5.6's SQLite recorder; all
  three in WAL with synchronous=FULL.
- durable: create + process on AegisPay.open over SQLite files (no faults, VirtualClock),
  against a quarter of the raw commit rate (a payment needs four commits at least).
- ceiling: raw sqlite3 against eventsourcing. No store that makes one durable commit per
  append can run faster than raw single-row commits, so this is the most any of them can reach
  against eventsourcing on this disk: where an fsync costs far more than either's CPU, it is
  near 1.
- chaos: the in-memory chaos soak with every fault, this tree against the base commit (the
  engine as it stood when these targets were set, unpacked by `git archive`), each in its own
  subprocess, the faster of two soaks each per round, in CPU seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

from aegispay import AegisPay, VirtualClock
from aegispay.domain.commands import CreatePayment
from aegispay.domain.decisions import initiate
from aegispay.domain.events import PaymentEvent, event_to_json
from aegispay.domain.money import Money
from aegispay.infra.events.sqlite import SQLiteEventStore
from aegispay.infra.sqlite import connect

ROUNDS = 5
APPENDS = 400
PAYMENTS = 150
# Each round takes its contenders in turns, this many slices of the work each.
SLICES = 10
CHAOS_PAYMENTS = 1000
CHAOS_SOAKS = 2
ROOT = Path(__file__).resolve().parent.parent
# The engine as it stood when the durable-path and chaos targets were set (2026-11-25): the
# chaos soak is compared with it. AEGISPAY_BENCH_BASE names another commit.
BASE_COMMIT = "2ab01c34dd1abd2438bb7a2c75d1a6b6294a66d3"
CHAOS_SCRIPT = """
import sys, time
from aegispay.sim.chaos import run_chaos
started = time.process_time()
report = run_chaos(int(sys.argv[1]), 0)
print(time.process_time() - started, report.violations)
"""


@dataclass
class Ratio:
    """One figure of the table: its ratio per round and the target it must reach (None for a
    bound that other figures are read against)."""

    name: str
    target: float | None
    rounds: list[float] = field(default_factory=list)

    def row(self) -> str:
        """The table row: min, median, max, target, and whether the median meets it."""
        low, middle, high = min(self.rounds), median(self.rounds), max(self.rounds)
        if self.target is None:
            judged = "   (a bound, no target)"
        else:
            verdict = "met" if middle >= self.target else "NOT met"
            judged = f"   >= {self.target:.2f}x  {verdict}"
        return f"{self.name:<52} {low:>6.2f}x {middle:>6.2f}x {high:>6.2f}x{judged}"


def events(count: int) -> list[PaymentEvent]:
    """One PaymentInitiated per new stream, as a create appends it."""
    at = VirtualClock().now()
    return [
        initiate(
            CreatePayment(
                idempotency_key=f"bench-{uuid.uuid4().hex}",
                amount=Money(minor=1999, currency="USD"),
                customer_id="cus_bench",
                payment_method="tok_visa",
            ),
            at,
        )
        for _ in range(count)
    ]


Run = Callable[[int], float]
"""Do the next `count` operations of a contender and return the seconds they took."""


def raw_commits(path: Path, rows: list[PaymentEvent]) -> Run:
    """Single-row commits with the adapters' settings (WAL, synchronous=FULL)."""
    conn = connect(str(path))
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, stream TEXT, data TEXT)")
    payloads = iter([(event.payment_id, event_to_json(event)) for event in rows])

    def run(count: int) -> float:
        started = time.perf_counter()
        for _, payload in zip(range(count), payloads, strict=False):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t (stream, data) VALUES (?, ?)", payload)
            conn.execute("COMMIT")
        return time.perf_counter() - started

    return run


def aegispay_appends(path: Path, rows: list[PaymentEvent]) -> Run:
    """Single-event appends, each to a new stream, by SQLiteEventStore."""
    store = SQLiteEventStore(str(path), VirtualClock())
    pending = iter(rows)

    def run(count: int) -> float:
        started = time.perf_counter()
        for _, event in zip(range(count), pending, strict=False):
            store.append(event.payment_id, [event], 0)
        return time.perf_counter() - started

    return run


def eventsourcing_appends(path: Path, rows: list[PaymentEvent]) -> Run:
    """Single-event saves by eventsourcing's SQLite recorder, WAL and synchronous=FULL."""
    from eventsourcing.persistence import StoredEvent  # noqa: PLC0415 - the bench extra only
    from eventsourcing.sqlite import (  # noqa: PLC0415 - the bench extra only
        SQLiteAggregateRecorder,
        SQLiteDatastore,
    )

    recorder = SQLiteAggregateRecorder(SQLiteDatastore(str(path)))
    recorder.create_table()
    with recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute("PRAGMA synchronous")
        setting = cursor.fetchone()[0]
    expect(setting == 2, f"eventsourcing's connection runs synchronous={setting}, not FULL (2)")
    pending = iter(
        [
            StoredEvent(uuid.uuid4(), 1, f"aegispay.{event.type}", event_to_json(event).encode())
            for event in rows
        ]
    )

    def run(count: int) -> float:
        started = time.perf_counter()
        for _, event in zip(range(count), pending, strict=False):
            recorder.insert_events([event])
        return time.perf_counter() - started

    return run


def durable_payments(directory: Path) -> tuple[Run, AegisPay]:
    """Payments created and processed on SQLite files, no faults, virtual time."""
    pay = AegisPay.open(
        f"sqlite:///{directory / 'store.db'}",
        f"sqlite:///{directory / 'gateway.db'}",
        clock=VirtualClock(),
    )
    numbers = iter(range(1_000_000))

    def run(count: int) -> float:
        started = time.perf_counter()
        for _, number in zip(range(count), numbers, strict=False):
            payment = pay.create_payment(
                idempotency_key=f"durable-{number}",
                amount="19.99",
                currency="USD",
                customer_id="cus_bench",
                payment_method="tok_visa",
            )
            pay.process_payment(payment.id)
        return time.perf_counter() - started

    return run, pay


def base_commit() -> str:
    """The commit chaos is compared with: AEGISPAY_BENCH_BASE, or BASE_COMMIT."""
    return os.environ.get("AEGISPAY_BENCH_BASE") or BASE_COMMIT


def unpack(commit: str, into: Path) -> Path:
    """Write a commit's files into a directory (git archive: the repository is not touched)."""
    into.mkdir()
    archive = subprocess.run(
        ["git", "archive", commit, "aegispay"], cwd=ROOT, capture_output=True, check=False
    )
    expect(
        archive.returncode == 0,
        f"the base commit {commit[:12]} is not in this checkout (a shallow clone?): "
        "`git fetch --unshallow`, or name another with AEGISPAY_BENCH_BASE "
        f"({archive.stderr.decode(errors='replace').strip()})",
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def chaos_seconds(source: Path) -> float:
    """CPU seconds of one in-memory chaos soak of the package found under `source`.

    CPU time, not wall time: VirtualClock.sleep yields the processor (time.sleep(0)), and on a
    busy machine each yield can wait out another process's time slice, which would measure
    the machine's load rather than the soak.
    """
    environment = {**os.environ, "PYTHONPATH": str(source)}
    done = subprocess.run(
        [sys.executable, "-c", CHAOS_SCRIPT, str(CHAOS_PAYMENTS)],
        # `python -c` puts its working directory first on the path: run it in the source.
        cwd=source,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    seconds, violations = done.stdout.split()
    expect(violations == "0", f"chaos under {source} found {violations} violations")
    return float(seconds)


def imported_from(source: Path) -> str:
    """The file `import aegispay` loads with `source` first on the path (checks the setup)."""
    done = subprocess.run(
        [sys.executable, "-c", "import aegispay; print(aegispay.__file__)"],
        cwd=source,
        env={**os.environ, "PYTHONPATH": str(source)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


class SetupError(RuntimeError):
    """The benchmark cannot measure what it says: a missing base commit, a wrong setting."""


def expect(condition: bool, problem: str) -> None:
    """Stop the benchmark when it would measure the wrong thing."""
    if not condition:
        raise SetupError(problem)


def run() -> dict[str, Ratio]:
    """Run every round and print the table of ratios."""
    ratios = {
        "raw": Ratio("append / raw sqlite3 single-row commits", 0.8),
        "eventsourcing": Ratio("append / eventsourcing 9.5.6 SQLite recorder", 1.5),
        "ceiling": Ratio("  bound: raw sqlite3 / eventsourcing 9.5.6", None),
        "durable": Ratio("durable create+process / (raw commits per s / 4)", 0.5),
        "chaos": Ratio("in-memory chaos, base CPU s / this tree CPU s", 2.0),
    }
    base = base_commit()
    with tempfile.TemporaryDirectory(prefix="aegispay-durable-") as tmp:
        root = Path(tmp)
        print(f"Durable path: {ROUNDS} interleaved rounds, files in {root} (one disk)")
        base_source = unpack(base, root / "base")
        expect(
            imported_from(base_source).startswith(str(base_source)),
            "the base commit's package is not the one imported",
        )
        print(f"chaos baseline: base commit {base[:12]}, {CHAOS_PAYMENTS} payments per soak")
        for number in range(ROUNDS):
            run_round(root / f"round-{number}", base_source, ratios)
        print(f"{'ratio (higher is better)':<52} {'min':>7} {'median':>7} {'max':>7}   target")
        for ratio in ratios.values():
            print(ratio.row())
    return ratios


def run_round(directory: Path, base_source: Path, ratios: dict[str, Ratio]) -> None:
    """One round: raw commits, AegisPay and eventsourcing appends and durable payments, taken
    in turns a slice at a time (so that each sees the disk as busy as the others); then both
    chaos soaks."""
    directory.mkdir()
    rows = events(APPENDS)
    durable, pay = durable_payments(directory)
    contenders = {
        "raw": raw_commits(directory / "raw.db", rows),
        "aegispay": aegispay_appends(directory / "aegispay.db", rows),
        "eventsourcing": eventsourcing_appends(directory / "eventsourcing.db", rows),
    }
    seconds = dict.fromkeys([*contenders, "durable"], 0.0)
    for _ in range(SLICES):
        for name, contender in contenders.items():
            seconds[name] += contender(APPENDS // SLICES)
        seconds["durable"] += durable(PAYMENTS // SLICES)
    expect(pay.check_invariants().violations == 0, "the durable run broke an invariant")
    pay.close()
    rates = {name: APPENDS / spent for name, spent in seconds.items()}
    payments = PAYMENTS / seconds["durable"]
    # The faster of two soaks each, taken in turns: other work on the machine shows as noise.
    soaks = [(chaos_seconds(ROOT), chaos_seconds(base_source)) for _ in range(CHAOS_SOAKS)]
    ours, theirs = min(o for o, _ in soaks), min(t for _, t in soaks)
    ratios["raw"].rounds.append(rates["aegispay"] / rates["raw"])
    ratios["eventsourcing"].rounds.append(rates["aegispay"] / rates["eventsourcing"])
    ratios["ceiling"].rounds.append(rates["raw"] / rates["eventsourcing"])
    ratios["durable"].rounds.append(payments / (rates["raw"] / 4))
    ratios["chaos"].rounds.append(theirs / ours)
    figures = {
        "raw commits/s": round(rates["raw"]),
        "aegispay appends/s": round(rates["aegispay"]),
        "eventsourcing saves/s": round(rates["eventsourcing"]),
        "durable payments/s": round(payments),
        "chaos cpu s (ours, base)": [round(ours, 2), round(theirs, 2)],
    }
    print(f"  round: {json.dumps(figures)}")


if __name__ == "__main__":
    run()
