"""Run every benchmark and print its results: `python -m benchmarks`."""

from __future__ import annotations

import sys
import time

from benchmarks import (
    audit_memory,
    durable_path,
    fleet_faults,
    labs,
    queue_choice,
    recovery_scaling,
    worker_scaling,
)

BENCHMARKS = (
    durable_path.run,
    audit_memory.run,
    recovery_scaling.run,
    worker_scaling.run,
    fleet_faults.run,
    queue_choice.run,
    labs.run,
)


def main() -> int:
    """Run each benchmark in turn and say how long the whole run took."""
    started = time.perf_counter()
    try:
        for run in BENCHMARKS:
            run()
            print()
    except durable_path.SetupError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    print(f"benchmarks finished in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
