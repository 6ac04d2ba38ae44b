"""The crash theatre's engine process: pays once on SQLite files, stops at a boundary, is killed.

    python -m aegispay.viz.theatre_worker --store sqlite:///s.db --gateway sqlite:///g.db \
        --key order-1 --crash gateway.charge:after:1

It prints one line per fact, flushed at once, for the theatre to read:
`created <payment id>`, then either `stopped <side> <boundary> #<nth>` (it then waits there,
holding whatever it holds, until the theatre kills it with SIGKILL) or `settled <id> <state>`.
The crossing is counted from after the payment's creation, as `AegisPay.crash_at` counts.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from aegispay.sim.crashpoints import SIDES, Side
from aegispay.sim.harness import AegisPay

# How long the stopped worker waits for its SIGKILL before it gives up and exits by itself.
WAIT_FOR_KILL_SECONDS = 600.0


def parse_crash(text: str) -> tuple[str, Side, int]:
    """'gateway.charge:after:1' as (boundary, side, nth)."""
    boundary, side, nth = text.split(":")
    if side not in SIDES:
        raise argparse.ArgumentTypeError(f"side must be one of {', '.join(SIDES)} (got {side!r})")
    return boundary, side, int(nth)


def say(line: str) -> None:
    """Tell the theatre one fact, at once."""
    print(line, flush=True)


def stop_here(crossing: str) -> None:
    """Say where the process stopped, then wait there to be killed."""
    say(f"stopped {crossing}")
    deadline = time.monotonic() + WAIT_FOR_KILL_SECONDS
    while time.monotonic() < deadline:
        time.sleep(0.05)
    sys.exit("nobody killed this worker; it gave up waiting")


def main(argv: Sequence[str] | None = None) -> int:
    """Create one payment, arm the stop, process it; return 0 when it settles on its own."""
    parser = argparse.ArgumentParser(prog="theatre_worker", description=__doc__)
    parser.add_argument("--store", required=True, help="event store URL (sqlite:///...)")
    parser.add_argument("--gateway", required=True, help="gateway ledger URL (sqlite:///...)")
    parser.add_argument("--key", required=True, help="the payment's idempotency key")
    parser.add_argument("--amount", default="25.00", help="the amount, exact")
    parser.add_argument("--currency", default="EUR", help="ISO 4217 code")
    parser.add_argument("--crash", type=parse_crash, help="boundary:side:nth to stop at")
    args = parser.parse_args(argv)
    with AegisPay.open(store=args.store, gateway=args.gateway, crash_points=True) as pay:
        payment = pay.create_payment(
            idempotency_key=args.key, amount=args.amount, currency=args.currency,
            customer_id="cus_theatre", payment_method="tok_visa",
        )  # fmt: skip
        say(f"created {payment.id}")
        if args.crash is not None:
            boundary, side, nth = args.crash
            pay.crashpoints.arm(boundary, side, nth, lambda: stop_here(f"{side} {boundary} #{nth}"))
        done = pay.process_payment(payment.id)
        say(f"settled {done.id} {done.state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
