"""Real `aegispay run` processes killed with SIGKILL mid-work, restarted, recovered and audited."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from aegispay import AegisPay, PaymentState

PAYMENTS = 200
SEED = 7
KILLS = 20
# Each kill lands 1..8 payments past the furthest one reported: 20 kills stay within 200.
MOST_LINES_PER_KILL = 8
# Boundary crossings in one payment: 10 to create it, about 20 more to process it (more with
# retries and verification), so kills land anywhere in a payment, the charge included.
CROSSINGS_PER_PAYMENT = 32
MAX_ATTEMPTS = 60
FAULTS = ("partial=0.1", "network=0.05", "timeout_after=0.05")
TIMEOUT = 120


def aegispay(*args: str) -> list[str]:
    return [sys.executable, "-m", "aegispay.cli", *args]


def finish(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a command to its end; the caller asserts on its exit status."""
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def progress(line: str) -> tuple[int, str, PaymentState] | None:
    """The (index, payment id, state) of a progress line, None for any other line."""
    words = line.split()
    if len(words) != 4 or words[0] != "payment":
        return None
    return int(words[1]), words[2], PaymentState(words[3])


class Answers:
    """What the runs told customers: a payment keeps its id, and a terminal state for good."""

    def __init__(self) -> None:
        self.ids: dict[int, str] = {}
        self.final: dict[int, PaymentState] = {}

    def record(self, index: int, payment_id: str, state: PaymentState) -> None:
        """Check one progress line against every earlier one, then remember it."""
        assert self.ids.setdefault(index, payment_id) == payment_id, f"payment {index} new id"
        if index in self.final:
            assert state == self.final[index], f"payment {index}: {self.final[index]} -> {state}"
        elif state.is_terminal:
            self.final[index] = state


def kill_after(  # noqa: PLR0917 - one call site, every argument a different thing
    command: list[str], cwd: Path, target: int, crossings: int, answers: Answers, seen: Counter[str]
) -> int:
    """Start a run; once it reports payment `target`, SIGKILL it right after `crossings` more
    boundary crossings, in the middle of the next payment. Return its exit status."""
    with subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, text=True, bufsize=1) as proc:
        assert proc.stdout is not None
        reached = False
        for line in proc.stdout:
            if line.startswith("cross ") and reached:
                crossings -= 1
                if crossings == 0:
                    proc.kill()
                    seen[line.strip()] += 1
                    break
            elif (parsed := progress(line)) is not None:
                answers.record(*parsed)
                reached = reached or parsed[0] >= target
        rest, _ = proc.communicate(timeout=TIMEOUT)
    if proc.returncode != -signal.SIGKILL:
        # The run finished before the signal landed: not a kill, but it must have ended cleanly.
        assert proc.returncode == 0, f"run exited {proc.returncode} before it was killed"
        assert f"{PAYMENTS} payments:" in rest, "run exited 0 without its summary"
    return proc.returncode


@pytest.mark.slow
def test_sigkilled_runs_resume_without_losing_or_double_charging_a_payment(tmp_path: Path) -> None:
    """Twenty SIGKILLs mid-run, a final run, recover: audit clean, files intact, one charge each."""
    store, gateway = f"sqlite:///{tmp_path / 'store.db'}", f"sqlite:///{tmp_path / 'gateway.db'}"
    stores = ["--store", store, "--gateway", gateway]
    faults = [arg for pair in FAULTS for arg in ("--fault", pair)]
    run = aegispay(
        "run", *stores, "--payments", str(PAYMENTS), "--seed", str(SEED), "--progress", "--trace"
    )
    run += faults
    rng, answers, seen = random.Random(SEED), Answers(), Counter[str]()
    # A restarted run reports every payment again from index 0: count past the furthest seen.
    furthest, kills, attempts = -1, 0, 0
    while kills < KILLS:
        assert attempts < MAX_ATTEMPTS, f"only {kills} of {KILLS} kills in {attempts} attempts"
        attempts += 1
        target = furthest + rng.randint(1, MOST_LINES_PER_KILL)
        crossings = rng.randint(1, CROSSINGS_PER_PAYMENT)
        if kill_after(run, tmp_path, target, crossings, answers, seen) == -signal.SIGKILL:
            kills, furthest = kills + 1, target + 1
    # The kills landed at many different moments of a payment, not only between payments.
    assert len(seen) >= 5, seen

    # Recovery alone, straight after the kills: every payment a kill left in flight settles.
    recovered = finish(aegispay("recover", *stores, "--json"), tmp_path)
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    audited = finish(aegispay("audit", *stores, "--json"), tmp_path)
    assert json.loads(audited.stdout)["violations"] == 0, audited.stdout

    final = finish(run, tmp_path)
    assert final.returncode == 0, final.stdout[-2000:] + final.stderr
    for line in final.stdout.splitlines():
        if (parsed := progress(line)) is not None:
            answers.record(*parsed)
    assert sorted(answers.ids) == list(range(PAYMENTS))
    recovered = finish(aegispay("recover", *stores, "--json"), tmp_path)
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    audited = finish(aegispay("audit", *stores, "--json"), tmp_path)
    audit = json.loads(audited.stdout)
    assert audit["violations"] == 0, audit["details"]
    assert audit["payments"] == PAYMENTS
    assert all(count == 0 for count in audit["invariants"].values()), audit["invariants"]
    assert audited.returncode == 0

    for name in ("store.db", "gateway.db"):
        connection = sqlite3.connect(tmp_path / name)
        try:
            assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)], name
        finally:
            connection.close()

    with AegisPay.open(store=store, gateway=gateway) as pay:
        references = [charge.merchant_reference for charge in pay.charges() if charge.charged]
    assert len(references) == len(set(references)), "the gateway charged a payment twice"
    assert set(references) <= set(answers.ids.values())
