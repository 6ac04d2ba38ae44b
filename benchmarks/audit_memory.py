"""Peak memory of `audit` and `rebuild_projections` over 10,000 and 100,000 settled payments.

The histories are written straight into SQLite files (rows as the adapters write them, see
recovery_scaling). Each operation then runs in a fresh subprocess that reports its resident
set size once the engine is open and its peak during the operation (the kernel's high-water
mark, reset after the open), so the growth is the operation's own. The base commit (see
durable_path.BASE_COMMIT) runs the same operations on the same files, as the contrast.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import durable_path
from benchmarks.recovery_scaling import Store, build_history

SIZES = (10_000, 100_000)
OPERATIONS = ("audit", "rebuild")
# Linux: writing 5 to /proc/self/clear_refs resets the peak (VmHWM) to the current RSS, so the
# peak measured is the operation's own, not one reached while importing or opening.
MEASURE = """
import sys, time
from pathlib import Path
from aegispay import AegisPay, VirtualClock

def kib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)

store, gateway, operation = sys.argv[1:4]
pay = AegisPay.open(store, gateway, clock=VirtualClock())
Path("/proc/self/clear_refs").write_text("5")
floor = kib("VmRSS")
started = time.perf_counter()
if operation == "audit":
    report = pay.check_invariants()
    assert report.violations == 0, report.details[:5]
else:
    report = pay.rebuild_projections()
    assert report.projections_repaired == 0, report
seconds = time.perf_counter() - started
print(floor, kib("VmHWM"), seconds)
"""


def measure(source: Path, store: Store, operation: str) -> tuple[float, float, float]:
    """Run one operation of the package under `source`: (MiB at open, MiB at peak, seconds)."""
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, store.store_url, store.gateway_url, operation],
        cwd=source,
        env={"PYTHONPATH": str(source), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    )
    floor, peak, seconds = done.stdout.split()
    # /proc/self/status counts in KiB.
    return int(floor) / 1024, int(peak) / 1024, float(seconds)


def run() -> None:
    """Build both histories, measure each operation of both trees, and print the table."""
    base = durable_path.base_commit()
    print("Peak memory (RSS, MiB) of audit and rebuild_projections, each in a fresh process")
    with tempfile.TemporaryDirectory(prefix="aegispay-memory-") as tmp:
        root = Path(tmp)
        base_source = durable_path.unpack(base, root / "base")
        trees = {"this tree": durable_path.ROOT, f"base {base[:12]}": base_source}
        print(f"{'operation':<10} {'payments':>9} {'tree':<20} {'open':>8} {'peak':>8} "
              f"{'growth':>8} {'seconds':>8}")  # fmt: skip
        for size in SIZES:
            directory = root / f"history-{size}"
            directory.mkdir()
            store = Store(size, directory)
            build_history(store)
            for operation in OPERATIONS:
                for tree, source in trees.items():
                    floor, peak, seconds = measure(source, store, operation)
                    print(
                        f"{operation:<10} {size:>9,} {tree:<20} {floor:>8.1f} {peak:>8.1f} "
                        f"{peak - floor:>8.1f} {seconds:>8.2f}"
                    )


if __name__ == "__main__":
    run()
