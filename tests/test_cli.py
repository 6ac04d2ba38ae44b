"""The `aegispay` command: refusing the wrong files, reporting errors in one line, its output."""

from __future__ import annotations

import io
import json
import os
import pwd
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from aegispay.cli import main
from aegispay.sim.faults import FAULT_KINDS

COMMANDS = ("demo", "run", "recover", "crashpoints", "chaos", "audit", "verify", "attack")
# The soak's own disturbances, reported beside the gateway's fault kinds.
CHAOS_EXTRAS = (
    "crash_point", "duplicate_request", "racing_duplicate", "paused_holder",
    "concurrent_recovery", "restart",
)  # fmt: skip
CRASHED = "aegispay: the process crashed (simulated): run the same command again to resume\n"


def store_options(tmp_path: Path, store: str = "store.db", gateway: str = "gw.db") -> list[str]:
    return [
        "--store",
        f"sqlite:///{tmp_path / store}",
        "--gateway",
        f"sqlite:///{tmp_path / gateway}",
    ]


def files(directory: Path) -> dict[str, bytes]:
    """Every file in a directory with its bytes: what a refused command must leave as it was."""
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


@pytest.fixture
def durable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A directory holding a store and a gateway ledger after a small clean run."""
    assert main(["run", *store_options(tmp_path), "--payments", "3"]) == 0
    capsys.readouterr()
    return tmp_path


# Refusing the wrong files, without writing to them


@pytest.mark.parametrize("command", ["audit", "recover"])
def test_reading_commands_refuse_swapped_store_and_gateway_and_write_nothing(
    durable: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    before = files(durable)
    assert main([command, *store_options(durable, store="gw.db", gateway="store.db")]) == 2
    assert capsys.readouterr().err.startswith(
        "aegispay: store: is not an AegisPay store database (missing tables events, payments)"
    )
    assert files(durable) == before


def test_audit_refuses_a_store_given_as_the_gateway_ledger(
    durable: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (durable / "store-copy.db").write_bytes((durable / "store.db").read_bytes())
    assert main(["audit", *store_options(durable, gateway="store-copy.db")]) == 2
    assert "gateway: is not an AegisPay gateway database (missing tables charges)" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("content", "rule"),
    [(b"not a database at all, just some text\n" * 4, "(file is not a database)"),
     (b"", "(missing tables events, payments)")],
    ids=["a text file", "an empty file"],
)  # fmt: skip
@pytest.mark.parametrize("command", ["audit", "recover"])
def test_reading_commands_refuse_a_store_that_is_not_an_aegispay_database(
    durable: Path, capsys: pytest.CaptureFixture[str], command: str, content: bytes, rule: str
) -> None:
    (durable / "junk.db").write_bytes(content)
    before = files(durable)
    assert main([command, *store_options(durable, store="junk.db")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"aegispay: store: is not an AegisPay store database {rule}")
    assert "Traceback" not in err
    assert files(durable) == before


@pytest.mark.parametrize("command", ["audit", "recover", "run"])
def test_commands_refuse_one_file_for_store_and_gateway_and_create_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    assert main([command, *store_options(tmp_path, store="one.db", gateway="./one.db")]) == 2
    assert capsys.readouterr().err.startswith(
        "aegispay: gateway: must be a different file from the store"
    )
    assert files(tmp_path) == {}


def test_run_refuses_a_gateway_ledger_given_as_the_store_and_writes_nothing(
    durable: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = files(durable)
    assert main(["run", *store_options(durable, store="gw.db", gateway="store.db")]) == 2
    assert "store: is not an AegisPay store database" in capsys.readouterr().err
    assert files(durable) == before


def test_run_starts_on_an_empty_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "store.db").touch()
    assert main(["run", *store_options(tmp_path), "--payments", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["created"] == 2


# Paths this user may not use: refused in one line naming the path, exit status 2


@pytest.mark.parametrize("field", ["store", "gateway"])
@pytest.mark.parametrize("command", ["run", "audit"])
def test_a_url_naming_a_directory_is_refused_in_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, field: str
) -> None:
    (tmp_path / "db").mkdir()
    options = {"store": f"sqlite:///{tmp_path}/s.db", "gateway": f"sqlite:///{tmp_path}/g.db"}
    options[field] = f"sqlite:///{tmp_path}/db"
    assert main([command, "--store", options["store"], "--gateway", options["gateway"]]) == 2
    assert capsys.readouterr().err == (
        f"aegispay: {field}: is a directory: name a database file (got '{tmp_path}/db')\n"
    )
    assert [path.name for path in tmp_path.iterdir()] == ["db"]


@pytest.mark.parametrize("field", ["store", "gateway"])
def test_a_path_below_a_file_is_refused_in_one_line_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str
) -> None:
    (tmp_path / "notes.txt").write_text("a file, not a directory\n")
    options = {"store": f"sqlite:///{tmp_path}/s.db", "gateway": f"sqlite:///{tmp_path}/g.db"}
    options[field] = f"sqlite:///{tmp_path}/notes.txt/x.db"
    assert main(["run", "--store", options["store"], "--gateway", options["gateway"]]) == 2
    assert capsys.readouterr().err == (
        f"aegispay: {field}: '{tmp_path}/notes.txt' is not a directory"
        f" (got '{tmp_path}/notes.txt/x.db')\n"
    )
    assert list(files(tmp_path)) == ["notes.txt"]


class Sandbox:
    """A directory an unprivileged user owns, and the aegispay command run as that user."""

    def __init__(self, root: Path, prefix: list[str] | None, owner: tuple[int, int] | None) -> None:
        self.root = root
        self.prefix = prefix
        self.owner = owner
        self._modes: dict[Path, int] = {}

    def hand_over(self) -> None:
        """Give every file to the unprivileged user, so that their mode bits are its own."""
        if self.owner is not None:
            for path in [self.root, *self.root.rglob("*")]:
                os.chown(path, *self.owner)

    def chmod(self, relative: str, mode: int) -> None:
        """Set a mode, remembering the old one for restore()."""
        path = self.root / relative
        self._modes.setdefault(path, path.stat().st_mode)
        path.chmod(mode)

    def restore(self) -> None:
        """Put back every mode chmod() changed, so the files can be read and removed."""
        for path, mode in self._modes.items():
            path.chmod(mode)

    def files(self) -> dict[str, bytes]:
        """Every file below the root with its bytes."""
        return {
            str(path.relative_to(self.root)): path.read_bytes()
            for path in sorted(self.root.rglob("*"))
            if path.is_file()
        }

    def aegispay(self, *args: str) -> tuple[int, str, str]:
        """Run the command as the unprivileged user; return its exit status, stdout and stderr."""
        if self.prefix is None:
            # Not root: mode bits already apply to this process, so the command runs in it.
            out, err = io.StringIO(), io.StringIO()
            with redirect_stdout(out), redirect_stderr(err):
                status = main(list(args))
            return status, out.getvalue(), err.getvalue()
        done = subprocess.run(
            [*self.prefix, sys.executable, "-m", "aegispay.cli", *args],
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return done.returncode, done.stdout, done.stderr


@pytest.fixture(scope="module")
def unprivileged() -> tuple[list[str] | None, tuple[int, int] | None]:
    """The prefix that drops root and the user it drops to; None, None when not root."""
    if os.geteuid() != 0:
        return None, None
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("root ignores mode bits, and there is no 'nobody' user to run as instead")
    if shutil.which("setpriv"):
        ids = [f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups"]
        prefix = ["setpriv", *ids]
    elif shutil.which("runuser"):
        prefix = ["runuser", "-u", "nobody", "--"]
    else:
        pytest.skip("root ignores mode bits, and neither setpriv nor runuser is here to drop root")
    probe = [*prefix, sys.executable, "-c", "import aegispay"]
    tried = subprocess.run(probe, cwd="/", capture_output=True, text=True, check=False)
    if tried.returncode != 0:
        pytest.skip(f"user nobody cannot run this Python with aegispay: {tried.stderr[-200:]}")
    return prefix, (nobody.pw_uid, nobody.pw_gid)


@pytest.fixture
def sandbox(
    unprivileged: tuple[list[str] | None, tuple[int, int] | None],
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Sandbox]:
    """A store in data/ and a gateway ledger in ledger/ after a small run, owned by the user."""
    # Not tmp_path: pytest's base directory is private to its user, so nobody could reach it.
    with tempfile.TemporaryDirectory(prefix="aegispay-") as directory:
        box = Sandbox(Path(directory), *unprivileged)
        box.root.chmod(0o755)
        for name in ("data", "ledger"):
            (box.root / name).mkdir()
        store, gateway = f"sqlite:///{box.root}/data/store.db", f"sqlite:///{box.root}/ledger/gw.db"
        assert main(["run", "--store", store, "--gateway", gateway, "--payments", "2"]) == 0
        capsys.readouterr()
        box.hand_over()
        try:
            yield box
        finally:
            box.restore()


UNUSABLE = {
    "a store in a directory without permission":
        ("audit", "data/store.db", {"data": 0o000},
         "store: directory '{root}/data' cannot be entered"),
    "a store below a directory without permission":
        ("run", "data/old/store.db", {"data": 0o000},
         "store: '{root}/data/old' cannot be reached (Permission denied)"),
    "a store file in an unwritable directory":
        ("recover", "data/store.db", {"data": 0o555},
         "store: directory '{root}/data' is not writable"),
    "a new store file in an unwritable directory":
        ("run", "data/new.db", {"data": 0o555},
         "store: directory '{root}/data' is not writable"),
    "a read-only store file":
        ("run", "data/store.db", {"data/store.db": 0o444},
         "store: is read-only: AegisPay writes to it"),
    "an unreadable store file":
        ("audit", "data/store.db", {"data/store.db": 0o200},
         "store: cannot be read (permission denied)"),
    "a gateway in a directory without permission":
        ("recover", "data/store.db", {"ledger": 0o000},
         "gateway: directory '{root}/ledger' cannot be entered"),
    "a gateway file in an unwritable directory":
        ("audit", "data/store.db", {"ledger": 0o555},
         "gateway: directory '{root}/ledger' is not writable"),
    "a read-only gateway file":
        ("run", "data/store.db", {"ledger/gw.db": 0o444},
         "gateway: is read-only: AegisPay writes to it"),
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("command", "store", "modes", "rule"), UNUSABLE.values(), ids=UNUSABLE)
def test_a_path_the_user_may_not_use_is_refused_in_one_line_and_nothing_changes(
    sandbox: Sandbox, command: str, store: str, modes: dict[str, int], rule: str
) -> None:
    """Run as an unprivileged user when root: root reads and writes whatever the modes say."""
    root = sandbox.root
    refused = f"{root}/ledger/gw.db" if rule.startswith("gateway") else f"{root}/{store}"
    before = sandbox.files()
    for path, mode in modes.items():
        sandbox.chmod(path, mode)
    status, out, err = sandbox.aegispay(
        command,
        "--store",
        f"sqlite:///{root}/{store}",
        "--gateway",
        f"sqlite:///{root}/ledger/gw.db",
    )
    assert (status, out) == (2, "")
    assert err == f"aegispay: {rule.format(root=root)} (got '{refused}')\n"
    sandbox.restore()
    assert sandbox.files() == before


# Errors in one line, with an exit status


def test_chaos_on_a_text_file_is_refused_in_one_line_with_exit_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "junk.db").write_text("this is not a database, it is a shopping list\n" * 4)
    before = files(tmp_path)
    assert main(["chaos", "--payments", "5", *store_options(tmp_path, store="junk.db")]) == 2
    err = capsys.readouterr().err
    assert err == (
        "aegispay: store: is not an AegisPay store database (file is not a database)"
        f" (got '{tmp_path / 'junk.db'}')\n"
    )
    assert files(tmp_path) == before


def test_a_database_error_inside_a_command_is_reported_in_one_line_with_exit_status_2(
    durable: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tables with the right names but the wrong columns pass the check, then fail to read."""
    with sqlite3.connect(durable / "odd.db") as db:
        db.execute("CREATE TABLE events (x)")
        db.execute("CREATE TABLE payments (y)")
    assert main(["audit", *store_options(durable, store="odd.db")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("aegispay: database: no such column")
    assert err.count("\n") == 1


@pytest.mark.parametrize(("given", "missing"), [("store", "gateway"), ("gateway", "store")])
def test_chaos_takes_store_and_gateway_together_and_names_the_missing_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], given: str, missing: str
) -> None:
    assert main(["chaos", f"--{given}", f"sqlite:///{tmp_path}/x.db"]) == 2
    assert capsys.readouterr().err.startswith(f"aegispay: {missing}: must be given with --{given}")
    assert files(tmp_path) == {}


def test_a_run_that_crashes_exits_3_and_running_it_again_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = ["run", *store_options(tmp_path), "--payments", "4", "--seed", "2"]
    assert main([*run, "--fault", "crash=1"]) == 3
    assert capsys.readouterr().err == CRASHED
    assert main([*run, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["unresolved"] == 0
    assert main(["audit", *store_options(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["payments"] == 4


def test_a_payment_count_that_is_not_a_number_is_refused_with_exit_status_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["chaos", "--payments", "many"])
    assert exited.value.code == 2
    assert "--payments: must be a whole number (got 'many')" in capsys.readouterr().err


# Help


def help_of(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_of_every_command_has_a_help_text_showing_its_default(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """argparse shows a default only beside a help text, so each entry must end with one."""
    text = help_of(command, capsys)
    options = text.split("options:\n")[1].split("\n\n")[0]
    entries = re.split(r"\n(?=  -)", options)
    assert entries[0].strip().startswith("-h, --help")
    assert len(entries) == 1 + len(re.findall(r"\[--", text.split("\n\n")[0]))
    for entry in entries[1:]:
        assert entry.count("(default:") == 1, entry


@pytest.mark.parametrize("command", COMMANDS)
def test_the_help_of_every_command_lists_the_exit_statuses(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text = help_of(command, capsys)
    for status in ("0  done", "1  an invariant was violated", "2  bad input", "3  the process"):
        assert status in text


# What the commands print


def crash_then_damage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """Leave one payment in flight (a crash after the charge), then delete its second event."""
    assert main(["run", *store_options(tmp_path), "--payments", "1", "--fault", "crash=1"]) == 3
    capsys.readouterr()
    with sqlite3.connect(tmp_path / "store.db") as db:
        (stream_id,) = db.execute("SELECT DISTINCT stream_id FROM events").fetchone()
        db.execute("DELETE FROM events WHERE version = 2")
    return str(stream_id)


def test_recover_json_names_each_halted_stream_with_its_reason_and_the_unresolved_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    damaged = crash_then_damage(tmp_path, capsys)
    assert main(["recover", *store_options(tmp_path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert list(report["halted"]) == [damaged]
    assert "version 2: missing" in report["halted"][damaged]
    assert report["unresolved_ids"] == []


def test_recover_text_names_each_halted_stream(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    damaged = crash_then_damage(tmp_path, capsys)
    assert main(["recover", *store_options(tmp_path)]) == 1
    assert f"halted {damaged}: " in capsys.readouterr().out


def test_recover_json_on_healthy_state_has_no_halted_stream_and_no_unresolved_id(
    durable: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["recover", *store_options(durable), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["halted"], report["unresolved_ids"]) == ({}, [])


def test_chaos_json_lists_every_fault_kind_with_zero_when_it_never_struck(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["chaos", "--payments", "3", "--json"]) == 0
    faults = json.loads(capsys.readouterr().out)["faults"]
    assert list(faults)[: len(FAULT_KINDS) + len(CHAOS_EXTRAS)] == [*FAULT_KINDS, *CHAOS_EXTRAS]
    assert 0 in faults.values()


def test_run_json_lists_every_fault_kind_with_zero_when_it_never_struck(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", *store_options(tmp_path), "--payments", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["faults"] == dict.fromkeys(FAULT_KINDS, 0)


# The attack command


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    """What a refused command wrote: nothing on stdout, one line on stderr, no traceback."""
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert "Traceback" not in err
    return err


def test_attack_with_every_defense_on_prints_that_it_holds_and_exits_0(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["attack", "--depth", "1"]) == 0
    out = capsys.readouterr().out
    assert re.fullmatch(r"every defense on: holds over \d+ schedules\n  note: .*\n", out)


def test_attack_without_a_defense_prints_the_steps_and_exits_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["attack", "--without", "intent_first"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("without intent_first: broke after ")
    assert "  1. the client pays order-1 (42.00 EUR)\n" in out
    assert out.count("<- the promise breaks here") == 1


@pytest.mark.parametrize(
    "argv, named",
    [
        (["--without", "fences"], "lock, idempotency_key, fence, expected_version"),
        (["--lab", "raft", "--solution", "x.py"], "recovery, create_once, retry, breaker, lock"),
        (["--lab", "recovery"], "--lab and --solution go together"),
    ],
)
def test_attack_refuses_an_unknown_name_in_one_line_listing_the_known_ones(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["attack", *argv]) == 2
    assert named in one_line_error(capsys)


@pytest.mark.parametrize(
    "source, says",
    [
        (None, "must be a Python file that exists"),
        ("def decide(seen) return 1\n", "did not load: SyntaxError"),
        ("def choose(seen):\n    return 'wait'\n", "must define `decide` for the recovery lab"),
        ("def decide(seen):\n    return seen.nothing\n", "raised AttributeError"),
        ("def decide(seen):\n    return 'retry'\n", "must answer one of succeed"),
    ],
    ids=["missing", "syntax error", "wrong name", "raises", "nonsense"],
)
def test_a_solution_that_cannot_be_graded_is_refused_in_one_line(
    tmp_path: Path, source: str | None, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    solution = tmp_path / "solution.py"
    if source is not None:
        solution.write_text(source)
    assert main(["attack", "--lab", "recovery", "--solution", str(solution)]) == 2
    assert says in one_line_error(capsys)


def test_attack_grades_a_solution_file_exit_0_when_it_holds_and_1_when_it_breaks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    right = tmp_path / "right.py"
    right.write_text(
        "def step(breaker, event, now, config):\n"
        "    from aegispay.resilience.breaker import step\n"
        "    return step(breaker, event, now, config)\n"
    )
    wrong = tmp_path / "wrong.py"
    wrong.write_text(
        "from aegispay.resilience.breaker import Decision\n"
        "def step(breaker, event, now, config):\n"
        "    return Decision(breaker, True, '')\n"
    )
    assert main(["attack", "--lab", "breaker", "--solution", str(right)]) == 0
    assert capsys.readouterr().out.startswith("breaker lab: holds over 21844 schedules")
    assert main(["attack", "--lab", "breaker", "--solution", str(wrong)]) == 1
    assert "it opens after 3 consecutive failures" in capsys.readouterr().out


def test_attack_refuses_defenses_switched_off_beside_a_lab(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["attack", "--lab", "lock", "--solution", str(tmp_path / "x.py"), "--without", "lock"]
    assert main(argv) == 2
    assert "a lab attacks yours" in one_line_error(capsys)
