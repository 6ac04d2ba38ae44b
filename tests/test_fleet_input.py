"""The fleet's inputs: URLs, numbers and keys are refused in one line, naming the real cause,
before anything is created."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from aegispay import AegisPay, payment_id_for
from aegispay.cli import main
from aegispay.domain.errors import InvalidRequest
from aegispay.infra.urls import parse_locks_url, parse_store_url
from aegispay.worker import WorkerSummary
from tests.conftest import POSTGRES

ORDER = {"amount": "12.00", "currency": "EUR", "customer_id": "cus_1", "payment_method": "tok_1"}


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The `aegispay` command as a user runs it, in its own process."""
    return subprocess.run(
        [sys.executable, "-m", "aegispay.cli", *args], cwd=cwd, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("schema", ["information_schema", "pg_catalog", "pg_toast", "pg_mine"])
def test_a_postgresql_system_schema_is_refused(schema: str) -> None:
    with pytest.raises(InvalidRequest, match="belongs to PostgreSQL itself"):
        parse_store_url("store", f"postgresql://127.0.0.1/test?schema={schema}")


def test_a_query_option_given_twice_is_refused_naming_it() -> None:
    with pytest.raises(InvalidRequest, match="gives schema more than once"):
        parse_store_url("store", "postgresql://127.0.0.1/test?schema=a&schema=b")
    with pytest.raises(InvalidRequest, match="gives prefix more than once"):
        parse_locks_url("redis://127.0.0.1:6379/0?prefix=a&prefix=a")


@pytest.mark.parametrize("url", ["redis://127.0.0.1:port/0", "redis://127.0.0.1:70000/0"])
def test_a_redis_url_whose_port_is_no_port_is_refused(url: str) -> None:
    with pytest.raises(InvalidRequest, match="the port must be a number"):
        parse_locks_url(url)


def test_a_redis_url_whose_database_is_no_number_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="must be a number such as 0, not 'one'"):
        parse_locks_url("redis://127.0.0.1:6379/one")


@pytest.mark.postgres
def test_a_system_schema_on_the_command_line_is_one_line_and_creates_nothing(
    tmp_path: Path,
) -> None:
    done = run_cli(
        "submit", "--store", f"{POSTGRES}?schema=information_schema", "--gateway", "memory://",
        "--payments", "1", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "belongs to PostgreSQL itself" in done.stderr
    with psycopg.connect(POSTGRES) as conn:
        found = conn.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = 'information_schema' AND table_name IN ('events', 'payments')"
        ).fetchone()
    assert found == (0,)


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("part", "cause"),
    [("/aegispay_no_such_database", 'database "aegispay_no_such_database" does not exist'),
     ("aegispay_no_such_role@", 'role "aegispay_no_such_role" does not exist')],
)  # fmt: skip
def test_a_wrong_database_or_user_is_named_as_such(part: str, cause: str, tmp_path: Path) -> None:
    url = (
        POSTGRES.replace("/test", part)
        if part.startswith("/")
        else POSTGRES.replace("postgres@", part)
    )
    done = run_cli(
        "submit", "--store", url, "--gateway", "memory://", "--payments", "1", cwd=tmp_path
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"aegispay: store: cannot connect: {cause} (got {url!r})"]


def test_a_redis_server_that_is_down_is_one_line_with_exit_2(tmp_path: Path) -> None:
    url = "redis://127.0.0.1:1/0"
    done = run_cli(
        "submit", "--store", "memory://", "--gateway", "memory://", "--locks", url, cwd=tmp_path
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"aegispay: locks: cannot connect: Error 111 connecting to 127.0.0.1:1. "
        f"Connection refused. (got {url!r})"
    ]


@pytest.mark.redis
def test_a_redis_database_the_server_does_not_have_is_named(tmp_path: Path) -> None:
    done = run_cli(
        "submit", "--store", "memory://", "--gateway", "memory://",
        "--locks", "redis://127.0.0.1:6379/9999", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert "DB index is out of range" in done.stderr
    assert done.stderr.count("\n") == 1


@pytest.mark.parametrize("option", ["--lock-ttl", "--backoff", "--timeout-wait"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400", "-1", "soon"])
def test_a_worker_refuses_a_time_that_is_not_a_finite_number_of_seconds(
    option: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["worker", "--store", "memory://", "--gateway", "memory://", f"{option}={value}"])
    assert stopped.value.code == 2
    assert f"argument {option}: must be a number of seconds" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option", ["--lock-ttl", "--backoff"])
def test_a_lease_or_backoff_of_zero_seconds_is_refused(
    option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["worker", "--store", "memory://", "--gateway", "memory://", option, "0"])
    assert "must be more than 0 seconds" in capsys.readouterr().err


def test_worker_help_names_postgresql_and_shows_each_default_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["worker", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "postgresql://host/db?schema=name" in shown
    assert "(default: None)" not in shown
    assert "--timeout-wait" in shown


def test_until_empty_exits_1_when_its_last_janitor_left_payments_unresolved(
    tmp_path: Path,
) -> None:
    store = ["--store", f"sqlite:///{tmp_path / 's.db'}", "--gateway", f"sqlite:///{tmp_path}/g.db"]
    assert run_cli("submit", *store, "--payments", "2", cwd=tmp_path).returncode == 0
    # Every charge times out after it was sent: the payments stay UNKNOWN until a later run.
    done = run_cli(
        "worker", *store, "--until-empty", "--backoff", "0.001", "--sync", "0.1",
        "--fault", "timeout_after=1.0", "--timeout-wait", "0", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "aegispay: the queue is empty but 2 payments are left unresolved"
    )
    healed = run_cli("worker", *store, "--until-empty", "--backoff", "0.001", cwd=tmp_path)
    assert healed.returncode == 0, healed.stderr


def test_a_worker_summary_knows_nothing_unresolved_before_its_janitor_ran() -> None:
    assert WorkerSummary("w").unresolved is None


def test_a_key_typed_composed_or_decomposed_is_one_payment() -> None:
    pay = AegisPay.in_memory(seed=1)
    composed = pay.create_payment(idempotency_key="caf\u00e9-1", **ORDER)
    decomposed = pay.create_payment(idempotency_key="cafe\u0301-1", **ORDER)
    assert decomposed.id == composed.id == payment_id_for("cafe\u0301-1")
    assert decomposed.idempotency_key == "caf\u00e9-1"
    assert len(pay.event_store.stream_ids()) == 1


@pytest.mark.parametrize("space", ["\u00a0", "\u2007", "\u202f", "\u3000"])
def test_a_key_holding_a_space_that_is_not_a_space_is_refused_naming_it(space: str) -> None:
    pay = AegisPay.in_memory(seed=1)
    with pytest.raises(
        InvalidRequest, match=f"must not contain a space other than ' ': found U\\+{ord(space):04X}"
    ):
        pay.create_payment(idempotency_key=f"order{space}1", **ORDER)
    assert pay.event_store.stream_ids() == []
