"""The `aegispay` command: a demo story, seeded runs over durable stores, and an audit."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rich.progress import Progress, TimeElapsedColumn

from aegispay.app import AegisPay
from aegispay.domain.errors import AegisPayError, IdempotencyKeyConflict, InvalidRequest
from aegispay.domain.payment import Payment
from aegispay.infra.clock import VirtualClock
from aegispay.infra.urls import parse_store_url
from aegispay.sim.chaos import run_chaos
from aegispay.sim.crashpoints import Crossing
from aegispay.sim.enumeration import enumerate_crashes
from aegispay.sim.faults import FAULT_KINDS, FailureConfig
from aegispay.sim.invariants import INVARIANTS, check_invariants
from aegispay.sim.workload import resume_clock, run_workload, settle


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run one subcommand; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        status: int = args.handler(args)
    except AegisPayError as error:
        print(f"aegispay: {error}", file=sys.stderr)
        return 2
    return status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aegispay", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="tell the story of one payment, in plain words")
    demo.add_argument("--seed", type=int, default=7)
    demo.set_defaults(handler=demo_command)

    run = commands.add_parser("run", help="create and process N seeded payments (resumable)")
    _add_store_options(run)
    run.add_argument("--payments", type=_positive_int, default=100)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND=RATE",
        help=f"inject a gateway fault (repeatable); kinds: {', '.join(FAULT_KINDS)}",
    )
    run.add_argument(
        "--progress", action="store_true", help="print a line per payment as it settles"
    )
    run.add_argument("--trace", action="store_true", help="print a line at every boundary crossing")
    run.add_argument("--json", action="store_true", help="print a JSON summary")
    run.set_defaults(handler=run_command)

    recover = commands.add_parser("recover", help="settle payments left in flight on durable state")
    _add_store_options(recover)
    recover.add_argument("--json", action="store_true", help="print JSON")
    recover.set_defaults(handler=recover_command)

    crashpoints = commands.add_parser(
        "crashpoints", help="crash at every boundary of every scenario, recover, check"
    )
    crashpoints.add_argument("--seed", type=int, default=0)
    crashpoints.add_argument("--json", action="store_true", help="print JSON")
    crashpoints.set_defaults(handler=crashpoints_command)

    chaos = commands.add_parser("chaos", help="a seeded soak of every fault, then the invariants")
    chaos.add_argument("--payments", type=_positive_int, default=1000)
    chaos.add_argument("--seed", type=int, default=0)
    chaos.add_argument("--store", default=None, help="event store URL (default: in memory)")
    chaos.add_argument("--gateway", default=None, help="gateway ledger URL (default: in memory)")
    chaos.add_argument("--json", action="store_true", help="print JSON (and no progress bar)")
    chaos.set_defaults(handler=chaos_command)

    audit = commands.add_parser("audit", help="check the invariants on durable state")
    _add_store_options(audit)
    audit.add_argument("--json", action="store_true", help="print JSON")
    audit.set_defaults(handler=audit_command)
    return parser


def _add_store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", default="sqlite:///aegispay.db", help="event store URL")
    parser.add_argument(
        "--gateway", default="sqlite:///aegispay-gateway.db", help="gateway ledger URL"
    )


def _positive_int(text: str) -> int:
    value = int(text)
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
    for version, event in enumerate(pay.events(first.id), start=1):
        say(f"   v{version} {event.occurred_at:%H:%M:%S} {event.type}")
    charges = pay.gateway.charges()
    say(f"\nThe gateway's ledger holds {len(charges)} charge(s) for {done.amount}.")
    say(f"Final state: {pay.get_payment(first.id).state}.")
    return 0


def run_command(args: argparse.Namespace) -> int:
    """Create and process N payments with keys from the seed; a rerun resumes, creating nothing."""
    faults = FailureConfig.from_pairs(args.fault)
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
        counters = pay.metrics.snapshot()
    summary = {
        **result.as_dict(),
        "faults": {k[len("faults.") :]: v for k, v in counters.items() if k.startswith("faults.")},
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


def _print_crossing(crossing: Crossing) -> None:
    print(f"cross {crossing.side} {crossing.boundary}", flush=True)


def _print_progress(index: int, payment: Payment) -> None:
    print(f"payment {index} {payment.id} {payment.state}", flush=True)


def _require_existing(args: argparse.Namespace) -> None:
    """A command that reads durable state must not create empty files and call them healthy."""
    for name in ("store", "gateway"):
        url = parse_store_url(name, getattr(args, name))
        if url.scheme == "sqlite" and not Path(url.path).is_file():
            raise InvalidRequest(name, "no such database file", url.path)


def recover_command(args: argparse.Namespace) -> int:
    """Repair the projection and settle every in-flight payment; exit 1 if any is unresolved."""
    _require_existing(args)
    with AegisPay.open(store=args.store, gateway=args.gateway, clock=VirtualClock()) as pay:
        resume_clock(pay)
        report, passes = settle(pay)
    result = {**report.as_dict(), "passes": passes, "unresolved_ids": report.unresolved_ids}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(", ".join(f"{name} {value}" for name, value in report.as_dict().items()))
    return 1 if report.unresolved or report.streams_halted else 0


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
        print(f"faults: {dict(report.faults)}")
        print(f"recovery: {dict(report.recovery)}")
        print(f"digest: {report.digest}")
    return 1 if report.violations else 0


def audit_command(args: argparse.Namespace) -> int:
    """Check the invariants on durable state; exit 1 when any is violated."""
    _require_existing(args)
    with AegisPay.open(store=args.store, gateway=args.gateway) as pay:
        report = check_invariants(pay.event_store, pay.projections, pay.charges())
    result = report.as_dict()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"audited {report.payments} payments, {report.charges} charges")
        for name, text in INVARIANTS.items():
            mark = "ok " if report.counts[name] == 0 else "FAIL"
            print(f"  [{mark}] {name}: {report.counts[name]} violation(s). {text}")
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
