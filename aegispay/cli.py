"""The `aegispay` command: demo, run, migrate, submit, worker, audit, recover, verify, crashpoints,
chaos, attack."""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress, TimeElapsedColumn

from aegispay.domain.charges import ChargeRecord
from aegispay.domain.errors import AegisPayError, IdempotencyKeyConflict, InvalidRequest
from aegispay.domain.payment import Payment
from aegispay.engine import Engine, Storage, open_locks
from aegispay.infra.clock import SystemClock, VirtualClock
from aegispay.infra.events.chain import key_from_environment
from aegispay.infra.gateway.ledger import Ledger
from aegispay.infra.urls import check_database, check_databases, parse_store_url
from aegispay.labs import DEFENSES, DEPTH, LABS, SOLUTION_NAMES, attack, check, solution_from_file
from aegispay.recovery.scrub import ChargeLookup, ScrubReport, scrub
from aegispay.resilience.breaker import BreakerConfig
from aegispay.resilience.retry import RetryPolicy
from aegispay.sim.chaos import run_chaos
from aegispay.sim.crashpoints import Crossing, ProcessCrash
from aegispay.sim.enumeration import enumerate_crashes
from aegispay.sim.faults import FAULT_KINDS, FailureConfig
from aegispay.sim.harness import AegisPay
from aegispay.sim.invariants import INVARIANTS
from aegispay.sim.reconciliation import MEANING
from aegispay.sim.workload import resume_clock, run_workload, seeded_request
from aegispay.worker import DEFAULT_SYNC, GIVE_UP_AFTER, GaveUp, SyncSchedule, Worker, open_queue

EXIT_STATUS = """exit status:
  0  done: no invariant violated, no payment left unresolved
  1  an invariant was violated, payments are left unresolved, stored events are damaged,
     or an attack broke a promise
  2  bad input: an option, a URL or a database file was refused
  3  the process crashed (simulated by a `crash` fault): run the same command again to resume
  4  a worker gave up: PostgreSQL or Redis stayed down past --give-up-after; start it again
     once the server is back (nothing is lost: its claims run out and others take them)
"""
GAVE_UP = 4
# A day: longer leases, backoffs or waits are a typing mistake, not a setting.
MAX_SECONDS = 86_400.0
CRASHED = "aegispay: the process crashed (simulated): run the same command again to resume"


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run one subcommand; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        status: int = args.handler(args)
    except AegisPayError as error:
        print(f"aegispay: {error}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as error:
        print(f"aegispay: database: {error}", file=sys.stderr)
        return 2
    except ProcessCrash:
        # A simulated death: what was committed stays, and the same command resumes from it.
        print(CRASHED, file=sys.stderr)
        return 3
    return status


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show every option's default, and the exit status table as it is written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        # An option without a default says in its own words, "(default: ...)", what happens
        # when it is not given; argparse would add a second, "(default: None)".
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aegispay", description=__doc__, epilog=EXIT_STATUS, formatter_class=HelpFormatter
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    for name, (summary, handler, options) in _commands().items():
        command = commands.add_parser(
            name, help=summary, description=summary, epilog=EXIT_STATUS,
            formatter_class=HelpFormatter,
        )  # fmt: skip
        for flags, settings in options:
            command.add_argument(*flags, **settings)
        command.set_defaults(handler=handler)
    return parser


Option = tuple[tuple[str, ...], dict[str, Any]]


def _commands() -> dict[str, tuple[str, Callable[[argparse.Namespace], int], list[Option]]]:
    """Each command: its summary, its handler and its options, in the order `--help` lists them."""
    store: Option = (
        ("--store",),
        {
            "default": "sqlite:///aegispay.db",
            "help": "event store URL: sqlite:///file.db, postgresql://host/db?schema=name "
            "or memory://",
        },
    )
    gateway: Option = (
        ("--gateway",),
        {
            "default": "sqlite:///aegispay-gateway.db",
            "help": "gateway ledger URL (sqlite:///file.db, postgresql://host/db?schema=name "
            "or memory://), a different file from the store",
        },
    )
    as_json: Option = (("--json",), {"action": "store_true", "help": "print JSON"})
    locks: Option = (
        ("--locks",),
        {"default": "memory://", "help": "lock URL (memory:// or redis://)"},
    )

    def seed(default: int, meaning: str) -> Option:
        return (("--seed",), {"type": int, "default": default, "help": meaning})

    def count(default: int, meaning: str) -> Option:
        return (("--payments",), {"type": _positive_int, "default": default, "help": meaning})

    def flag(name: str, meaning: str) -> Option:
        return ((name,), {"action": "store_true", "help": meaning})

    fault: Option = (
        ("--fault",),
        {
            "action": "append",
            "default": [],
            "metavar": "KIND=RATE",
            "help": f"inject a gateway fault (repeatable); kinds: {', '.join(FAULT_KINDS)}",
        },
    )
    return {
        "demo": ("tell the story of one payment, in plain words", demo_command,
                 [seed(7, "seed of the demo's ids and timings")]),
        "run": ("create and process N seeded payments (resumable)", run_command, [
            store, gateway, count(100, "how many payments to make"),
            seed(0, "seed of the payments and faults: a rerun resumes"), fault,
            flag("--progress", "print a line per payment as it settles"),
            flag("--trace", "print a line at every boundary crossing"),
            flag("--json", "print a JSON summary"),
        ]),
        "recover": ("check every stored event, then settle payments left in flight on "
                    "durable state", recover_command, [store, gateway, as_json]),
        "crashpoints": ("crash at every boundary of every scenario, recover, check",
                        crashpoints_command, [seed(0, "seed of the scenarios"), as_json]),
        "chaos": ("a seeded soak of every fault, then the invariants", chaos_command, [
            count(1000, "how many payments to soak"),
            seed(0, "seed of the soak: the same seed, the same digest"),
            (("--store",), {"help": "event store URL, given with --gateway "
                                    "(default: with neither, all is in memory)"}),
            (("--gateway",), {"help": "gateway ledger URL, given with --store "
                                      "(default: with neither, all is in memory)"}),
            flag("--json", "print JSON (and no progress bar)"),
        ]),
        "migrate": ("create or update the tables of the store and gateway, once for a fleet",
                    migrate_command, [store, gateway]),
        "submit": ("create N seeded payments and queue them for workers", submit_command, [
            store, gateway, count(100, "how many payments"),
            seed(0, "seed of the payments (their keys)"), locks,
            flag("--json", "print a JSON summary"),
        ]),
        "worker": ("process queued payments; run the janitor on a schedule", worker_command, [
            store, gateway, locks,
            (("--name",), {"help": "this worker's name in the work log (default: worker-PID)"}),
            (("--sync",), {"default": DEFAULT_SYNC,
                           "help": "janitor schedule: seconds between runs, 'Sx3' repeats"}),
            (("--batch",), {"type": _positive_int, "default": 1, "help": "payments per claim"}),
            fault,
            (("--seed",), {"type": int, "help": "seed of the faults (default: the process id)"}),
            (("--lock-ttl",), {"type": _positive_seconds, "default": 30.0,
                               "help": "seconds a payment's lease lasts"}),
            (("--backoff",), {"type": _positive_seconds, "default": 1.0,
                              "help": "first retry backoff in seconds (longest 10x, "
                                      "breaker cool-down 60x)"}),
            (("--timeout-wait",), {"type": _seconds, "default": 5.0, "help": "seconds a "
                                   "simulated gateway timeout (a --fault) really waits"}),
            (("--give-up-after",), {"type": _positive_seconds, "default": GIVE_UP_AFTER,
                                    "help": "seconds PostgreSQL or Redis may stay down before "
                                            "the worker gives up (exit 4); it retries until then"}),
            flag("--once", "take one batch, then stop"),
            flag("--until-empty", "stop once the queue is empty, after a last janitor run "
                 "(it waits for a janitor lock another holds)"),
            flag("--json", "print a JSON summary at the end"),
        ]),
        "audit": ("check the invariants on durable state and reconcile with the gateway's ledger",
                  audit_command, [store, gateway, as_json]),
        "attack": ("attack the engine with defenses switched off, or your solution to a lab",
                   attack_command, [
            (("--without",), {"action": "append", "default": [], "metavar": "DEFENSE",
                              "help": f"switch a defense off (repeatable): {', '.join(DEFENSES)}"}),
            (("--lab",), {"help": f"the lab your solution is for: {', '.join(LABS)} "
                                  "(default: none, the engine itself is attacked)"}),
            (("--solution",), {"metavar": "FILE.py", "help": "your solution, a Python file "
                               "defining " + ", ".join(f"{n} ({lab})"
                                                       for lab, n in SOLUTION_NAMES.items())
                               + " (default: none; required with --lab)"}),
            seed(0, "seed of the attack: the same seed, the same counterexample"),
            (("--depth",), {"type": _positive_int, "default": DEPTH,
                            "help": "most moves per schedule tried exhaustively (3 is deeper)"}),
        ]),
        "verify": ("check every stored event's hash chain, and each stream's last event "
                   "against its projection row and the gateway; a keyed store needs "
                   "AEGISPAY_CHAIN_KEY or AEGISPAY_CHAIN_KEY_FILE",
                   verify_command, [
            (("--store",), {"default": "sqlite:///aegispay.db",
                            "help": "event store URL: sqlite:///file.db or "
                                    "postgresql://host/db?schema=name"}),
            (("--gateway",), {"help": "gateway ledger URL, to compare each payment with what "
                                      "the gateway holds (default: none, not compared)"}),
            as_json,
        ]),
    }  # fmt: skip


def _seconds(text: str) -> float:
    """A finite, non-negative number of seconds from the command line."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds (got {text!r})") from None
    if not math.isfinite(value) or value < 0 or value > MAX_SECONDS:
        raise argparse.ArgumentTypeError(
            f"must be a number of seconds from 0 to {MAX_SECONDS:g} (got {text!r})"
        )
    return value


def _positive_seconds(text: str) -> float:
    """A finite number of seconds above zero from the command line."""
    value = _seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds (got {text!r})")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number (got {text!r})") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def demo_command(args: argparse.Namespace) -> int:
    """Walk one payment through creation, duplicates, a conflict and processing."""
    pay = AegisPay.in_memory(seed=args.seed)
    say = print
    say("AegisPay demo: one customer, one order, every request made twice.\n")
    request = {
        "idempotency_key": "order-1001",
        "amount": "19.99",
        "currency": "USD",
        "customer_id": "cus_ada",
        "payment_method": "tok_visa",
    }
    first = pay.create_payment(**request)
    say(f"1. The shop asks to charge {first.amount} under key 'order-1001'.")
    say(f"   AegisPay records payment {first.id} in state {first.state}.")
    again = pay.create_payment(**request)
    say("2. The shop's request times out on its side, so it sends the same request again.")
    say(f"   Same key, same parameters: the same payment comes back ({again.id}), nothing new.")
    try:
        pay.create_payment(**{**request, "amount": "29.99"})
    except IdempotencyKeyConflict as conflict:
        say("3. A buggy client reuses the key for a different amount.")
        say(f"   Refused, nothing written: {conflict}")
    done = pay.process_payment(first.id)
    say(f"4. Processing: the gateway charges once; the payment ends {done.state}.")
    say(f"   Gateway transaction: {done.transaction_id}")
    pay.process_payment(first.id)
    say("5. Processing again is harmless: it is already terminal, the gateway is not called.")
    say("\nThe event log, the source of truth for this payment:")
    for recorded in pay.events(first.id):
        say(f"   v{recorded.version} {recorded.recorded_at:%H:%M:%S} {recorded.event.type}")
    charges = pay.charges()
    say(f"\nThe gateway's ledger holds {len(charges)} charge(s) for {done.amount}.")
    say(f"Final state: {pay.get_payment(first.id).state}.")
    return 0


def run_command(args: argparse.Namespace) -> int:
    """Create and process N payments with keys from the seed; a rerun resumes, creating nothing."""
    faults = FailureConfig.from_pairs(args.fault)
    check_databases(args.store, args.gateway, existing=False)
    # Simulated time: backoffs, timeouts and breaker cool-downs pass at once, reproducibly.
    with AegisPay.open(
        store=args.store, gateway=args.gateway, seed=args.seed, faults=faults, clock=VirtualClock()
    ) as pay:
        resume_clock(pay)
        if args.trace:
            pay.crashpoints.listeners.append(_print_crossing)
        started = time.perf_counter()
        result = run_workload(
            pay, args.payments, args.seed, on_payment=_print_progress if args.progress else None
        )
        struck = pay.metrics.counts("faults.")
    summary = {
        **result.as_dict(),
        "faults": {**dict.fromkeys(FAULT_KINDS, 0), **struck},
        "seconds": round(time.perf_counter() - started, 3),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"{result.payments} payments: {result.created} newly created; "
            f"final states {summary['states']}; {result.unresolved} unresolved"
        )
    return 0 if result.unresolved == 0 else 1


def submit_command(args: argparse.Namespace) -> int:
    """Create the seeded payments (once per key) and queue each for a worker."""
    check_databases(args.store, args.gateway, existing=False)
    created = 0
    with Engine.open(
        store=args.store, gateway=args.gateway, locks=args.locks, clock=SystemClock()
    ) as engine:
        queue = open_queue(engine)
        before = engine.metrics.get("payments.created")
        for index in range(args.payments):
            payment = engine.create_payment(**seeded_request(args.seed, index))
            queue.enqueue(payment.id)
        created = engine.metrics.get("payments.created") - before
        pending = queue.pending()
    summary = {"payments": args.payments, "created": created, "queued": pending}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{args.payments} payments submitted: {created} new; {pending} waiting in the queue")
    return 0


def migrate_command(args: argparse.Namespace) -> int:
    """Create or update the tables, once, before a fleet starts (workers then take no lock)."""
    check_databases(args.store, args.gateway, existing=False)
    with Engine.open(store=args.store, gateway=args.gateway, clock=SystemClock()) as engine:
        open_queue(engine)
        parts = [engine.event_store, *engine.storage.ledgers.values()]
        databases = {id(db): db for db in (getattr(p, "database", None) for p in parts) if db}
        ran = sum(getattr(db, "migrations_run", 0) for db in databases.values())
    print(f"schema current: {ran} set(s) of tables created or updated")
    return 0


def worker_command(args: argparse.Namespace) -> int:
    """Process queued payments until stopped (SIGTERM), once, or until the queue is empty."""
    if args.once and args.until_empty:
        raise InvalidRequest("worker", "give --once or --until-empty, not both")
    schedule = SyncSchedule.parse(args.sync)
    faults = None
    if args.fault:
        wait = {"timeout_delay_ms": round(args.timeout_wait * 1000)}
        faults = FailureConfig.from_pairs(args.fault).model_copy(update=wait)
    check_databases(args.store, args.gateway, existing=False)
    name = args.name or f"worker-{os.getpid()}"
    stop = threading.Event()
    # A worker stops between payments: the one in hand is finished, its claim committed.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    backoff = args.backoff
    clock = SystemClock()
    # Redis lost is said, then worked through without leases (the store's version is the fence).
    locks = open_locks(args.locks, clock, on_outage=_warn)
    try:
        with AegisPay.open(
            store=args.store, gateway=args.gateway, locks=locks, clock=clock,
            seed=os.getpid() if args.seed is None else args.seed, faults=faults,
            lock_ttl=args.lock_ttl,
            retry=RetryPolicy(initial=backoff, max=backoff * 10, jitter=backoff / 2),
            breaker=BreakerConfig(timeout=backoff * 60),
        ) as pay:  # fmt: skip
            say = (lambda line: None) if args.json else _say
            worker = Worker(
                pay, open_queue(pay), name, schedule, args.batch, say,
                give_up_after=args.give_up_after, sleep=lambda seconds: _wait(stop, seconds),
                warn=_warn,
            )  # fmt: skip
            summary = worker.run(stop, once=args.once, until_empty=args.until_empty)
    except GaveUp as error:
        print(f"aegispay: {error}", file=sys.stderr)
        return GAVE_UP
    finally:
        close = getattr(locks, "close", None)
        if close is not None:
            close()
    if args.json:
        print(json.dumps(summary.__dict__))
    else:
        print(f"worker {name} stopped: processed {summary.processed} {summary.states}")
    if not args.until_empty or summary.unresolved == 0:
        return 0
    left = "its last janitor run could not take the janitor lock"
    if summary.unresolved is not None:
        left = f"{summary.unresolved} payments are left unresolved"
    print(f"aegispay: the queue is empty but {left}", file=sys.stderr)
    return 1


def _wait(stop: threading.Event, seconds: float) -> None:
    """A backoff that a SIGTERM cuts short."""
    stop.wait(seconds)


def _warn(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _say(line: str) -> None:
    print(line, flush=True)


def _print_crossing(crossing: Crossing) -> None:
    print(f"cross {crossing.side} {crossing.boundary}", flush=True)


def _print_progress(index: int, payment: Payment) -> None:
    print(f"payment {index} {payment.id} {payment.state}", flush=True)


def recover_command(args: argparse.Namespace) -> int:
    """Scrub every stored event, then repair the projection and settle every in-flight payment;
    exit 1 if any stream is damaged or any payment is unresolved."""
    check_databases(args.store, args.gateway, existing=True)
    with Engine.open(store=args.store, gateway=args.gateway, clock=VirtualClock()) as engine:
        # Before recovery: it rebuilds a projection row that is ahead of its events, which is
        # the only trace a cut-off stream leaves.
        scrubbed = scrub(
            engine.event_store, engine.projections, _charge_lookup(engine.storage.ledgers)
        )
        resume_clock(engine)
        report = engine.recover(until_quiet=True)
    result = {
        **report.as_dict(),
        "unresolved_ids": report.unresolved_ids,
        "halted": report.halted,
        "damaged": scrubbed.as_dict()["damaged"],
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(", ".join(f"{name} {value}" for name, value in report.as_dict().items()))
        for stream_id, reason in report.halted.items():
            print(f"  halted {stream_id}: {reason}")
        for payment_id in report.unresolved_ids:
            print(f"  unresolved {payment_id}")
        _print_damage(scrubbed)
    return 1 if report.unresolved or report.streams_halted or scrubbed.damaged else 0


def crashpoints_command(args: argparse.Namespace) -> int:
    """Enumerate every crash point of every scenario; exit 1 on any violation."""
    report = enumerate_crashes(seed=args.seed)
    result = report.as_dict()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for scenario, crossings in report.scenarios.items():
            boundaries = len(report.boundaries[scenario])
            print(f"{scenario}: {crossings} crash points over {boundaries} boundaries")
        print(f"{result['cases']} cases, {result['violations']} violations")
        for case in report.failures:
            print(f"  FAIL {case.name}: {case.violations}")
    return 1 if result["violations"] else 0


def chaos_command(args: argparse.Namespace) -> int:
    """Run the chaos soak; a progress bar on a terminal; exit 1 on any violation."""
    if (args.store is None) != (args.gateway is None):
        missing, given = ("store", "gateway") if args.store is None else ("gateway", "store")
        raise InvalidRequest(missing, f"must be given with --{given} (or neither, in memory)")
    if args.store is not None:
        check_databases(args.store, args.gateway, existing=False)
    if args.json or not sys.stdout.isatty():
        report = run_chaos(args.payments, args.seed, args.store, args.gateway)
    else:
        with Progress(*Progress.get_default_columns(), TimeElapsedColumn()) as progress:
            task = progress.add_task("chaos", total=args.payments)
            report = run_chaos(
                args.payments, args.seed, args.store, args.gateway,
                advance=lambda: progress.advance(task),
            )  # fmt: skip
    result = report.as_dict()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{report.payments} payments, seed {report.seed}: {report.violations} violations")
        print(f"faults: {result['faults']}")
        print(f"recovery: {dict(report.recovery)}")
        print(f"digest: {report.digest}")
    return 1 if report.violations else 0


def audit_command(args: argparse.Namespace) -> int:
    """Check the invariants and reconcile with the gateway's ledger; exit 1 on any violation."""
    check_databases(args.store, args.gateway, existing=True)
    with AegisPay.open(store=args.store, gateway=args.gateway) as pay:
        report = pay.check_invariants()
    result = report.as_dict()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"audited {report.payments} payments, {report.charges} charges")
        for name, text in INVARIANTS.items():
            mark = "ok " if report.counts[name] == 0 else "FAIL"
            print(f"  [{mark}] {name}: {report.counts[name]} violation(s). {text}")
        print("reconciliation with the gateways' ledgers:")
        counts = report.reconciliation.counts()
        for outcome, meaning in MEANING.items():
            print(f"  {outcome.value}: {counts[outcome.value]} ({meaning})")
        for finding in report.reconciliation.breaks():
            print(f"  {finding}")
    return 1 if report.violations else 0


def verify_command(args: argparse.Namespace) -> int:
    """Check every stored event and every stream's last event, streaming in constant memory;
    exit 1 if any stream is damaged."""
    url = parse_store_url("store", args.store)
    if url.scheme == "memory":
        raise InvalidRequest(
            "store",
            "must be a sqlite:/// file or a postgresql:// database (memory:// holds nothing here)",
        )
    if args.gateway is not None:
        check_databases(args.store, args.gateway, existing=True)
    elif url.scheme == "sqlite":
        check_database("store", Path(url.path), existing=True)
    # Read first, so that a bad key refuses before any database is opened.
    key = key_from_environment(os.environ)
    # The scrub appends nothing, so the clock that would stamp new events is never read.
    storage = Storage.open(args.store, args.gateway or "memory://", SystemClock(), key)
    try:
        lookup = None if args.gateway is None else _charge_lookup(storage.ledgers)
        report = _scrub_with_progress(storage, lookup)
    finally:
        storage.close()
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        _print_damage(report)
    return 1 if report.damaged else 0


def _print_damage(report: ScrubReport) -> None:
    """The scrub's verdict, then a line per damaged stream and per lagging projection row."""
    verdict = f"{len(report.damaged)} damaged stream(s)" if report.damaged else "no damage"
    print(f"checked {report.events} events in {report.streams} streams: {verdict}")
    for damage in report.damaged:
        print(f"  damaged {damage.stream_id} at version {damage.version}: {damage.problem}")
    for lag in report.behind:
        print(f"  drift {lag.stream_id} at version {lag.version}: {lag.problem}")


def _charge_lookup(ledgers: dict[str, Ledger]) -> ChargeLookup:
    """What any of the gateways holds for a merchant reference (None when none holds it)."""

    def charge_of(merchant_reference: str) -> ChargeRecord | None:
        held = (ledger.by_reference(merchant_reference) for ledger in ledgers.values())
        return next((record for record in held if record is not None), None)

    return charge_of


def attack_command(args: argparse.Namespace) -> int:
    """Print the verdict and its steps; exit 0 when the promise holds, 1 when it broke."""
    if (args.lab is None) != (args.solution is None):
        raise InvalidRequest("lab", "--lab and --solution go together")
    if args.lab is not None and args.without:
        raise InvalidRequest("without", "switches the engine's defenses off; a lab attacks yours")
    if args.lab is None:
        verdict = attack(args.without, seed=args.seed, depth=args.depth)
    else:
        solution = solution_from_file(args.lab, args.solution)
        try:
            verdict = check(args.lab, solution, seed=args.seed, depth=args.depth)
        except AegisPayError:
            raise
        except Exception as error:  # the learner's code failed: said in a line, not a traceback
            raise InvalidRequest("solution", f"raised {type(error).__name__}: {error}") from None
    print(verdict)
    return 0 if verdict.holds else 1


def _scrub_with_progress(storage: Storage, charge_of: ChargeLookup | None) -> ScrubReport:
    """Scrub the log and the heads, with a progress bar on stderr when stderr is a terminal."""
    events, projections = storage.events, storage.projections
    if not sys.stderr.isatty():
        return scrub(events, projections, charge_of)
    with Progress(
        *Progress.get_default_columns(), TimeElapsedColumn(), console=Console(stderr=True)
    ) as progress:
        task = progress.add_task("verify", total=events.last_position())
        return scrub(
            events,
            projections,
            charge_of,
            lambda position: progress.update(task, completed=position),
        )


if __name__ == "__main__":
    sys.exit(main())
