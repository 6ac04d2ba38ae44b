"""Run every benchmark and print its results: `python -m benchmarks`."""

from __future__ import annotations

import time

from benchmarks import audit_memory, durable_path, recovery_scaling, worker_scaling

BENCHMARKS = (durable_path.run, audit_memory.run, recovery_scaling.run, worker_scaling.run)


def main() -> None:
    """Run each benchmark in turn and say how long the whole run took."""
    started = time.perf_counter()
    for run in BENCHMARKS:
        run()
        print()
    print(f"benchmarks finished in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
