"""Recovery of 100 in-flight payments costs the same over 1,000 or 100,000 settled payments.

Each store is built on SQLite files: the settled history is written in bulk, rows exactly as
the adapters write them, then the engine starts (its start-up recovery moves the checkpoint).
Then, repeatedly, 100 payments are left in flight (the charge landed, the process died) and
one recovery run settles them. A full-history operation, rebuilding the projection, is timed
on the same stores as the contrast: that one does follow history.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from statistics import median

from aegispay import AegisPay, Money, VirtualClock
from aegispay.domain import decisions
from aegispay.domain.charges import ChargeRecord, ChargeStatus
from aegispay.domain.commands import CreatePayment
from aegispay.domain.events import PaymentEvent, event_to_json
from aegispay.domain.payment import replay
from aegispay.infra.events.chain import GENESIS, chain_hash
from aegispay.infra.gateway.simulated import transaction_id_for
from aegispay.infra.sqlite import connect, immediate
from aegispay.sim import ProcessCrash
from aegispay.sim.invariants import check_invariants

SIZES = (1_000, 100_000)
IN_FLIGHT = 100
REPEATS = 5
GATEWAY = "primary"
# Settled payments encoded per executemany, so the whole history never sits in memory.
BUILD_BATCH = 10_000

EventRow = tuple[str, int, str, str, str, str]
PaymentRow = tuple[str, int, str, int, str]
ChargeRow = tuple[str, str, str, str, str]


@dataclass
class Store:
    """One benchmarked store: its files, its running engine, and what was measured on it."""

    settled: int
    directory: Path
    clock: VirtualClock = field(default_factory=VirtualClock)
    engine: AegisPay | None = None
    build_seconds: float = 0.0
    start_up_seconds: float = 0.0
    recover_seconds: list[float] = field(default_factory=list)
    scan_seconds: list[float] = field(default_factory=list)
    rebuild_seconds: float = 0.0
    rebuilt_payments: int = 0
    batches: int = 0

    @property
    def store_url(self) -> str:
        """The event store and projection file, as a URL."""
        return f"sqlite:///{self.directory / 'store.db'}"

    @property
    def gateway_url(self) -> str:
        """The gateways' ledger file, as a URL."""
        return f"sqlite:///{self.directory / 'gateway.db'}"

    @property
    def pay(self) -> AegisPay:
        """The running engine."""
        assert self.engine is not None, "the store is started before it is used"
        return self.engine


def settled_payment(index: int, clock: VirtualClock) -> tuple[list[PaymentEvent], ChargeRecord]:
    """The events and gateway charge of one successful payment, decided as the engine decides."""
    command = CreatePayment(
        idempotency_key=f"history-{index}",
        amount=Money(minor=100 + index % 10_000, currency="USD"),
        customer_id=f"cus_{index % 5_000}",
        payment_method="tok_visa",
    )
    clock.advance(1)
    at = clock.now()
    initiated = decisions.initiate(command, at)
    payment = replay([initiated])
    assert payment is not None
    authenticated = decisions.authenticate(payment, at)
    started = decisions.start_processing(payment, GATEWAY, at)
    charge = ChargeRecord(
        transaction_id=transaction_id_for(payment.gateway_idempotency_key),
        merchant_reference=payment.id,
        idempotency_key=payment.gateway_idempotency_key,
        amount=payment.amount,
        payment_method=payment.payment_method,
        status=ChargeStatus.SUCCEEDED,
        created_at=at,
    )
    succeeded = decisions.charge_outcome(payment, charge, at)
    return [initiated, authenticated, started, succeeded], charge


def history_rows(
    indexes: range, clock: VirtualClock
) -> tuple[list[EventRow], list[PaymentRow], list[ChargeRow]]:
    """The event, projection and ledger rows of settled payments, as the adapters encode them."""
    events: list[EventRow] = []
    payments: list[PaymentRow] = []
    charges: list[ChargeRow] = []
    for index in indexes:
        stream, charge = settled_payment(index, clock)
        payment = replay(stream)
        assert payment is not None
        events += chained_rows(payment.id, stream, clock.now().isoformat())
        payments.append(
            (payment.id, index + 1, payment.state.value, payment.version, payment.model_dump_json())
        )
        charges.append(
            (
                GATEWAY,
                charge.idempotency_key,
                charge.transaction_id,
                charge.merchant_reference,
                charge.model_dump_json(),
            )
        )
    return events, payments, charges


def chained_rows(stream_id: str, stream: list[PaymentEvent], recorded_at: str) -> list[EventRow]:
    """A stream's event rows as SQLiteEventStore writes them: time of writing and hash chain."""
    rows: list[EventRow] = []
    previous = GENESIS
    for version, event in enumerate(stream, start=1):
        data = event_to_json(event)
        previous = chain_hash(previous, stream_id, version, event.type, data)
        rows.append((stream_id, version, event.type, data, recorded_at, previous))
    return rows


def build_history(store: Store) -> None:
    """Write the settled history straight into the tables, one transaction per file."""
    # Opening the engine once lets the adapters create their own tables and indexes.
    AegisPay.open(store.store_url, store.gateway_url, clock=store.clock).close()
    events_db = connect(str(store.directory / "store.db"))
    gateway_db = connect(str(store.directory / "gateway.db"))
    with immediate(events_db), immediate(gateway_db):
        for first in range(0, store.settled, BUILD_BATCH):
            indexes = range(first, min(first + BUILD_BATCH, store.settled))
            events, payments, charges = history_rows(indexes, store.clock)
            events_db.executemany(
                "INSERT INTO streams (stream_id) VALUES (?)", [(row[0],) for row in payments]
            )
            events_db.executemany(
                "INSERT INTO events (stream_id, version, type, data, recorded_at, hash)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                events,
            )
            events_db.executemany(
                "INSERT INTO payments (id, seq, state, version, data) VALUES (?, ?, ?, ?, ?)",
                payments,
            )
            gateway_db.executemany(
                "INSERT INTO charges"
                " (gateway, idempotency_key, transaction_id, merchant_reference, data)"
                " VALUES (?, ?, ?, ?, ?)",
                charges,
            )
    events_db.close()
    gateway_db.close()


def start_up(store: Store) -> None:
    """Open the engine and run the recovery a start-up runs: it checks history once."""
    store.engine = AegisPay.open(store.store_url, store.gateway_url, clock=store.clock)
    report = store.pay.recover()
    expect(report.found == 0, f"start-up recovery found {report.found} payments in flight")


def leave_in_flight(store: Store, count: int) -> None:
    """Leave payments whose charge landed in PROCESSING: each process dies after the charge."""
    for number in range(count):
        pay = store.pay
        payment = pay.create_payment(
            idempotency_key=f"in-flight-{store.batches}-{number}",
            amount="12.34",
            currency="USD",
            customer_id="cus_in_flight",
            payment_method="tok_visa",
        )
        pay.crash_at("gateway.charge", "after")
        try:
            pay.process_payment(payment.id)
        except ProcessCrash:
            store.engine = pay.restart()
        else:
            raise RuntimeError("the armed crash after gateway.charge did not fire")
    store.batches += 1


def time_recovery(store: Store) -> None:
    """Leave IN_FLIGHT payments in flight, then time the one recovery run that settles them."""
    leave_in_flight(store, IN_FLIGHT)
    pay = store.pay
    checkpoint = pay.projections.checkpoint()
    started = time.perf_counter()
    report = pay.recover()
    store.recover_seconds.append(time.perf_counter() - started)
    expect(
        report.found == report.succeeded == IN_FLIGHT and report.redriven == 0,
        f"recovery settled {report.succeeded} of {report.found} (re-driven {report.redriven}),"
        f" expected {IN_FLIGHT} charges confirmed",
    )
    # Recovery's first query on its own, timed after the run so that it warms nothing for it.
    store.scan_seconds.append(timed(lambda: pay.event_store.streams_since(checkpoint)))


def rebuild(store: Store) -> None:
    """Time rebuilding every projection row: a full-history operation, the contrast."""
    pay = store.pay
    store.rebuilt_payments = len(pay.event_store.stream_ids())
    started = time.perf_counter()
    report = pay.rebuild_projections()
    store.rebuild_seconds = time.perf_counter() - started
    # Nothing to repair: the bulk-written rows equal what replaying their events gives.
    expect(report.projections_repaired == 0, f"rebuild repaired {report.projections_repaired}")


def timed(action: Callable[[], object]) -> float:
    """Run an action once and return its wall-clock seconds."""
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def expect(condition: bool, problem: str) -> None:
    """Stop the benchmark when it would measure the wrong thing."""
    if not condition:
        raise RuntimeError(problem)


def stores(root: Path) -> Iterator[Store]:
    """A store per size, each in its own directory."""
    for settled in SIZES:
        directory = root / f"settled-{settled}"
        directory.mkdir()
        yield Store(settled, directory)


def measures(store: Store) -> dict[str, float]:
    """What was measured on one store, under the name the table shows."""
    best, middle = f"best of {REPEATS}", f"median of {REPEATS}"
    return {
        "bulk build of the settled history (s)": store.build_seconds,
        "start-up recovery, from checkpoint 0 (s)": store.start_up_seconds,
        f"recover {IN_FLIGHT} in flight, {best} (s)": min(store.recover_seconds),
        f"recover {IN_FLIGHT} in flight, {middle} (s)": median(store.recover_seconds),
        f"  its streams_since(checkpoint) query, {best} (s)": min(store.scan_seconds),
        "contrast: payments in the store when rebuilt": store.rebuilt_payments,
        "contrast: rebuild_projections, full history (s)": store.rebuild_seconds,
    }


def report_table(small: Store, large: Store) -> None:
    """Print the measurements of both stores side by side, with the large-to-small ratio."""

    def cell(value: float) -> str:
        return f"{value:>10,}" if isinstance(value, int) else f"{value:>10.4f}"

    print(f"{'settled payments':<52} {small.settled:>10,} {large.settled:>10,} {'ratio':>9}")
    for (name, a), b in zip(measures(small).items(), measures(large).values(), strict=True):
        print(f"{name:<52} {cell(a)} {cell(b)} {b / a:>8.1f}x")


def run() -> None:
    """Build both stores, time recovery of in-flight payments on each, and print the table."""
    sizes = " and ".join(f"{size:,}" for size in SIZES)
    print(f"Recovery of {IN_FLIGHT} in-flight payments, over {sizes} settled payments")
    with tempfile.TemporaryDirectory(prefix="aegispay-bench-") as root:
        small, large = built = list(stores(Path(root)))
        for store in built:
            store.build_seconds = timed(partial(build_history, store))
            store.start_up_seconds = timed(partial(start_up, store))
        # Interleaved, so that drift in the machine's speed falls on both sizes alike.
        for _ in range(REPEATS):
            for store in built:
                time_recovery(store)
        for store in built:
            rebuild(store)
        report_table(small, large)
        pay = large.pay
        invariants = check_invariants(pay.event_store, pay.projections, pay.charges())
        print(
            f"invariants on the {large.settled:,} store: {invariants.payments:,} payments, "
            f"{invariants.charges:,} charges, {invariants.violations} violations"
        )
        for detail in invariants.details[:10]:
            print(f"  {detail}")
        for store in built:
            store.pay.close()
