"""Durable engines on SQLite files: restarts, separate processes, and the CLI as users run it."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from aegispay import AegisPay, PaymentState
from aegispay.cli import main
from aegispay.infra.sqlite import retry_busy

REQUEST = {
    "idempotency_key": "order-42",
    "amount": "5.00",
    "currency": "EUR",
    "customer_id": "cus_42",
    "payment_method": "tok_visa",
}


def urls(tmp_path: Path) -> dict[str, str]:
    return {"store": f"sqlite:///{tmp_path}/store.db", "gateway": f"sqlite:///{tmp_path}/gw.db"}


def test_a_payment_survives_closing_and_reopening_the_files(tmp_path: Path) -> None:
    with AegisPay.open(**urls(tmp_path)) as pay:
        payment = pay.process_payment(pay.create_payment(**REQUEST).id)
    with AegisPay.open(**urls(tmp_path)) as reopened:
        assert reopened.get_payment(payment.id) == payment
        assert reopened.list_payments(PaymentState.SUCCESS) == [payment]
        assert len(reopened.gateway.charges()) == 1
        assert reopened.create_payment(**REQUEST) == payment


def _create_in_child(store_urls: dict[str, str], results: multiprocessing.Queue[str]) -> None:
    with AegisPay.open(**store_urls) as pay:
        results.put(pay.create_payment(**REQUEST).id)


def in_children(
    target: Callable[[dict[str, str], multiprocessing.Queue[str]], None],
    store_urls: dict[str, str],
    count: int,
) -> list[str]:
    """Start `count` processes at once on the same files; return what each put on the queue,
    once every one has exited cleanly."""
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[str] = context.Queue()
    children = [context.Process(target=target, args=(store_urls, results)) for _ in range(count)]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=120) for _ in children]
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    return outcomes


def test_concurrent_creates_from_separate_processes_make_exactly_one_payment(
    tmp_path: Path,
) -> None:
    ids = in_children(_create_in_child, urls(tmp_path), 6)
    assert len(set(ids)) == 1
    with AegisPay.open(**urls(tmp_path)) as pay:
        assert len(pay.list_payments()) == 1
        assert len(pay.events(ids[0])) == 1


def test_run_twice_creates_nothing_new_and_the_audit_is_clean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    u = urls(tmp_path)
    args = ["--store", u["store"], "--gateway", u["gateway"]]
    assert main(["run", *args, "--payments", "40", "--seed", "3", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(["run", *args, "--payments", "40", "--seed", "3", "--json"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert first["created"] == 40
    assert second["created"] == 0
    assert second["states"] == first["states"]
    assert main(["audit", *args, "--json"]) == 0
    audit = json.loads(capsys.readouterr().out)
    assert audit["violations"] == 0
    assert audit["payments"] == 40
    assert set(audit["invariants"]) >= {"at_most_one_charge", "one_payment_per_key"}


def test_the_audit_fails_when_the_projection_has_lost_a_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    u = urls(tmp_path)
    with AegisPay.open(**u) as pay:
        payment = pay.create_payment(**REQUEST)
        pay.process_payment(payment.id)
        pay.projections.delete(payment.id)
    assert main(["audit", "--store", u["store"], "--gateway", u["gateway"], "--json"]) == 1
    audit = json.loads(capsys.readouterr().out)
    assert audit["invariants"]["projection_matches_events"] == 1
    assert audit["violations"] == 1


def test_the_demo_tells_the_story_in_plain_words() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "aegispay.cli", "demo"], capture_output=True, text=True, check=True
    )
    assert "same payment comes back" in done.stdout
    assert "Refused, nothing written" in done.stdout
    assert "Final state: SUCCESS." in done.stdout


def test_the_cli_reports_bad_input_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "--store", "mysql://x", "--gateway", "memory://"]) == 2
    assert "store: must be 'memory://'" in capsys.readouterr().err


def test_run_with_faults_on_sqlite_settles_everything_and_the_audit_is_clean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    u = urls(tmp_path)
    args = ["--store", u["store"], "--gateway", u["gateway"]]
    faults = ["--fault", "partial=0.1", "--fault", "network=0.05", "--fault", "timeout_after=0.05"]
    assert main(["run", *args, "--payments", "150", "--seed", "4", *faults, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["unresolved"] == 0
    assert summary["faults"]["partial"] > 0
    assert set(summary["states"]) <= {"SUCCESS", "FAILURE"}
    assert main(["audit", *args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["violations"] == 0


@pytest.mark.parametrize(
    ("fault", "message"),
    [("melt=0.1", "kind one of timeout_before"), ("partial", "expected kind=rate"),
     ("partial=2", "partial_rate: input should be less than or equal to 1"),
     ("partial=x", "partial_rate: input should be a valid number")],
)  # fmt: skip
def test_a_bad_fault_option_is_refused_with_the_valid_kinds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fault: str, message: str
) -> None:
    u = urls(tmp_path)
    code = main(["run", "--store", u["store"], "--gateway", u["gateway"], "--fault", fault])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "store.db").exists()


def test_a_resumed_run_never_writes_events_dated_before_the_ones_stored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    u = urls(tmp_path)
    args = ["--store", u["store"], "--gateway", u["gateway"]]
    assert main(["run", *args, "--payments", "5", "--seed", "1"]) == 0
    assert main(["run", *args, "--payments", "10", "--seed", "1"]) == 0
    capsys.readouterr()
    with AegisPay.open(**u) as pay:
        times = [recorded.event.occurred_at for recorded in pay.event_store.read_all()]
    assert times == sorted(times)


@pytest.mark.parametrize("command", ["audit", "recover"])
def test_reading_commands_refuse_a_store_that_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    u = urls(tmp_path)
    assert main([command, "--store", u["store"], "--gateway", u["gateway"]]) == 2
    assert "store: no such database file" in capsys.readouterr().err
    assert not (tmp_path / "store.db").exists()


def busy(message: str = "database is locked") -> sqlite3.OperationalError:
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = sqlite3.SQLITE_BUSY  # type: ignore[attr-defined]
    return error


class FakeTime:
    """A monotonic clock that moves only when slept on."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_busy_answer_is_asked_again_until_it_clears() -> None:
    answers: list[object] = [busy(), busy(), "wal"]
    fake = FakeTime()

    def action() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return str(answer)

    assert retry_busy(action, timeout=1.0, pause=0.01, clock=lambda: fake.now,
                      sleep=fake.sleep) == "wal"  # fmt: skip
    assert fake.slept == [0.01, 0.01]


def test_a_busy_answer_past_the_timeout_is_raised() -> None:
    fake = FakeTime()

    def action() -> str:
        raise busy()

    with pytest.raises(sqlite3.OperationalError, match="locked"):
        retry_busy(action, timeout=0.05, pause=0.01, clock=lambda: fake.now, sleep=fake.sleep)
    assert 5 <= len(fake.slept) <= 6


def test_any_other_error_is_raised_at_once() -> None:
    fake = FakeTime()
    calls: list[int] = []

    def action() -> str:
        calls.append(1)
        raise sqlite3.OperationalError("disk I/O error")

    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        retry_busy(action, timeout=1.0, clock=lambda: fake.now, sleep=fake.sleep)
    assert (len(calls), fake.slept) == (1, [])


def _open_new_file(store_urls: dict[str, str], results: multiprocessing.Queue[str]) -> None:
    """In a child: open the (maybe new) files, as many workers started at once do."""
    try:
        with AegisPay.open(**store_urls):
            results.put("opened")
    except Exception as error:  # reported, so the parent fails with the child's reason
        results.put(repr(error))


def test_eight_processes_opening_the_same_new_files_at_once_all_open_them(
    tmp_path: Path,
) -> None:
    for attempt in range(3):
        files = tmp_path / str(attempt)
        files.mkdir()
        assert in_children(_open_new_file, urls(files), 8) == ["opened"] * 8
