"""The crash theatre's clicks redraw every picture, in the simulated and the real-process mode."""

from __future__ import annotations

import functools
import html
import json
import os
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aegispay import labs
from aegispay.labs import Verdict
from aegispay.viz.theatre import CrashTheatre
from aegispay.viz.theatre_app import APP, NOTEBOOK, free_port, voila_command
from aegispay.viz.theatre_attack import DEFENSE_WORDS, PLAY_SECONDS
from aegispay.viz.theatre_stage import CRASH_CHOICES, CrashChoice, KilledStage
from tests.test_viz_widgets import lit, texts


def choice(words: str) -> CrashChoice:
    return next(c for c in CRASH_CHOICES if c.words == words)


AFTER_CHARGE = choice("after the gateway charged, before we recorded it")


@pytest.fixture
def theatre() -> Iterator[CrashTheatre]:
    stage = CrashTheatre(seed=12)
    yield stage
    stage.close()


def svg_of(theatre: CrashTheatre) -> str:
    return theatre.pictures["state"].value


def plain(theatre: CrashTheatre, name: str) -> str:
    """A panel's words without its markup."""
    return re.sub(r"<[^>]+>", " ", theatre.pictures[name].value.split("</style>")[-1])


def test_crash_choices_name_the_boundaries_the_engine_crosses() -> None:
    assert [c.crossing for c in CRASH_CHOICES] == [
        "after gateway.charge #1",
        "before gateway.charge #1",
        "inside gateway.charge #1",
        "after events.append #1",
        "after events.append #2",
        "no crash",
    ]


def test_a_clean_stage_offers_only_pay_and_draws_no_payment(theatre: CrashTheatre) -> None:
    assert not theatre.pay_button.disabled
    assert theatre.restart_button.disabled
    assert theatre.recover_button.disabled
    assert lit(svg_of(theatre)) == []
    assert "no stream yet" in theatre.pictures["store"].value


def test_pay_crash_after_the_charge_kills_the_process_and_leaves_the_ledgers_apart(
    theatre: CrashTheatre,
) -> None:
    theatre.crash.value = AFTER_CHARGE
    before = svg_of(theatre)
    theatre.pay_button.click()
    assert svg_of(theatre) != before
    assert lit(svg_of(theatre)) == ["PROCESSING"]
    assert "dead" in plain(theatre, "process")
    assert "no answer" in plain(theatre, "client")
    assert "charged 25.00 EUR" in plain(theatre, "ledgers")
    assert "PROCESSING 25.00 EUR" in plain(theatre, "ledgers")
    assert "… unsettled" in plain(theatre, "ledgers")
    assert "the gateway took money that our records do not call paid" in plain(theatre, "story")
    assert theatre.verdict == (
        "After the crash the gateway holds: charged 25.00 EUR. We hold: PROCESSING."
    )


def test_buttons_refuse_what_makes_no_sense(theatre: CrashTheatre) -> None:
    """No paying on a dead process, no recovery before the restart, no second recovery."""
    theatre.pay_button.click()
    assert theatre.pay_button.disabled
    assert theatre.recover_button.disabled
    assert not theatre.restart_button.disabled
    assert theatre.crash.disabled and theatre.real.disabled
    theatre.restart_button.click()
    assert theatre.restart_button.disabled
    assert not theatre.recover_button.disabled
    assert theatre.pay_button.disabled
    theatre.recover_button.click()
    assert theatre.recover_button.disabled


def test_restart_then_recover_settles_the_payment_and_the_ledgers_agree(
    theatre: CrashTheatre,
) -> None:
    theatre.pay_button.click()
    crashed = svg_of(theatre)
    theatre.restart_button.click()
    assert "process 2: new, alive" in plain(theatre, "process")
    assert theatre.verdict == (
        "The next process, its memory empty: it knows only what the disk holds."
    )
    theatre.recover_button.click()
    assert svg_of(theatre) != crashed
    assert lit(svg_of(theatre)) == ["SUCCESS"]
    assert "v4: ChargeConfirmed" in texts(svg_of(theatre))
    ledgers = plain(theatre, "ledgers")
    assert "SUCCESS 25.00 EUR" in ledgers
    assert "✔ agree" in ledgers
    assert "nothing wrong: every check holds" in plain(theatre, "story")
    assert theatre.verdict == "Recovered. Charged once, our records agree."


def test_recovery_steps_come_from_the_report_and_the_appended_events(
    theatre: CrashTheatre,
) -> None:
    theatre.pay_button.click()
    theatre.restart_button.click()
    theatre.recover_button.click()
    assert [step for step, _ in theatre.steps] == [
        "found", "replayed", "asked the gateway", "settled",
    ]  # fmt: skip
    said = dict(theatre.steps)
    assert said["found"].startswith("1 payment(s) in flight")
    assert said["replayed"] == "v1..v3 folded into PROCESSING"
    assert said["asked the gateway"].startswith("primary, by our reference: charged")
    assert said["settled"] == "appended v4 ChargeConfirmed → SUCCESS"
    # They appear one after another on screen.
    delays = re.findall(r"animation-delay:([\d.]+)s", theatre.pictures["story"].value)
    assert delays == ["0.0", "0.6", "1.2", "1.8", "1.8"]  # the last is the audit after recovery


def test_the_verdicts_arrive_with_the_last_recovery_step_not_before(
    theatre: CrashTheatre,
) -> None:
    theatre.pay_button.click()
    theatre.restart_button.click()
    theatre.recover_button.click()
    for name in ("verdict", "ledgers"):
        assert re.findall(r"animation-delay:([\d.]+)s", theatre.pictures[name].value) == ["1.8"]


def test_the_narration_uses_the_dropdowns_words_not_the_engines(theatre: CrashTheatre) -> None:
    theatre.pay_button.click()
    said = plain(theatre, "verdict") + plain(theatre, "process")
    assert "after the gateway charged, before we recorded it" in said
    assert "gateway.charge" not in said
    assert "generation" not in said


def test_simulated_times_read_as_time_since_the_first_event(theatre: CrashTheatre) -> None:
    """The gateway answers 0.35 s after the request and the restart takes 2 s, on the virtual
    clock, so recovery's confirmation is recorded at +2.70 s."""
    theatre.pay_button.click()
    theatre.restart_button.click()
    theatre.recover_button.click()
    store = plain(theatre, "store")
    assert re.findall(r"\+[\d.]+ s", store) == ["+0.00 s", "+0.00 s", "+0.00 s", "+2.70 s"]
    assert "00:00:00" not in store
    assert "charged 25.00 EUR  at +0.35 s" in plain(theatre, "ledgers")


def test_pay_again_after_recovery_returns_the_same_payment_and_charges_nothing_new(
    theatre: CrashTheatre,
) -> None:
    theatre.pay_button.click()
    theatre.restart_button.click()
    assert theatre.again_button.disabled
    theatre.recover_button.click()
    assert not theatre.again_button.disabled
    first = theatre.payment_id
    theatre.again_button.click()
    assert theatre.payment_id == first
    assert len(theatre.stage.engine.charges()) == 1
    assert theatre.said == "same key, the same payment back: SUCCESS"
    assert theatre.verdict == (
        "Same key, the same payment back: no new charge. Charged once, our records agree."
    )
    assert plain(theatre, "ledgers").count("charged 25.00 EUR") == 1


def test_a_crash_before_the_charge_is_redriven_with_the_same_key(theatre: CrashTheatre) -> None:
    theatre.crash.value = choice("before the charge was sent")
    theatre.pay_button.click()
    assert "no charge" in plain(theatre, "ledgers")
    theatre.restart_button.click()
    theatre.recover_button.click()
    said = dict(theatre.steps)
    assert "sent it again with the same idempotency key" in said["asked the gateway"]
    assert said["settled"] == "appended v4 ChargeNotFound, v5 PaymentSucceeded → SUCCESS"


def test_a_crash_after_the_success_event_finds_the_row_written_in_the_same_transaction(
    theatre: CrashTheatre,
) -> None:
    """The projection row commits with its events, so a crash after the append leaves no drift."""
    theatre.crash.value = choice("after PaymentSucceeded was written")
    theatre.pay_button.click()
    assert not theatre.stage.process.alive
    assert "SUCCESS" in plain(theatre, "row")
    assert "the same as the events say" in plain(theatre, "row")
    theatre.restart_button.click()
    theatre.recover_button.click()
    assert "the same as the events say" in plain(theatre, "row")
    assert dict(theatre.steps)["asked the gateway"] == (
        "not asked: the events already hold the outcome"
    )


def test_every_crash_choice_but_no_crash_kills_the_process_where_its_words_say(
    theatre: CrashTheatre,
) -> None:
    """Each choice stops the process with the events its words promise already stored."""
    stored = {}
    for crash in CRASH_CHOICES:
        theatre.reset_button.click()
        theatre.crash.value = crash
        theatre.pay_button.click()
        assert theatre.stage.process.alive is (crash.boundary is None), crash.words
        stored[crash.words] = [r.event.type for r in theatre.recorded][-1]
    assert stored == {
        "after the gateway charged, before we recorded it": "ProcessingStarted",
        "before the charge was sent": "ProcessingStarted",
        "while the charge is on the wire": "ProcessingStarted",
        "after ProcessingStarted was written": "ProcessingStarted",
        "after PaymentSucceeded was written": "PaymentSucceeded",
        "no crash": "PaymentSucceeded",
    }


def test_a_crash_before_the_charge_is_told_as_nobody_charged_and_the_payment_stuck(
    theatre: CrashTheatre,
) -> None:
    theatre.crash.value = choice("before the charge was sent")
    theatre.pay_button.click()
    assert theatre.verdict == "After the crash the gateway holds: no charge. We hold: PROCESSING."
    story = plain(theatre, "story")
    assert "nobody was charged, but the payment is stuck half-way, unfinished" in story
    assert "settled_matches_gateway" not in story


def test_no_crash_pays_at_once_and_recovery_finds_nothing(theatre: CrashTheatre) -> None:
    theatre.crash.value = choice("no crash")
    theatre.pay_button.click()
    assert "200 OK: SUCCESS" in plain(theatre, "client")
    assert theatre.restart_button.disabled
    theatre.recover_button.click()
    assert dict(theatre.steps)["found"] == "0 payment(s) in flight, by the projection's state index"


def test_the_slider_travels_back_to_replay_of_the_first_k_events(theatre: CrashTheatre) -> None:
    theatre.pay_button.click()
    theatre.restart_button.click()
    theatre.recover_button.click()
    assert theatre.time.max == theatre.time.value == 4
    theatre.time.value = 2
    assert lit(svg_of(theatre)) == ["AUTHENTICATED"]
    assert "replay(events[:2])" in plain(theatre, "replay")
    assert "AUTHENTICATED" in plain(theatre, "replay")
    assert plain(theatre, "store").count("later") == 0  # a class, not a word on screen
    assert theatre.pictures["store"].value.count('class="later"') == 2
    theatre.time.value = 0
    assert lit(svg_of(theatre)) == []
    assert "no payment yet" in plain(theatre, "replay")


def test_reset_returns_to_a_clean_stage_with_a_new_order(theatre: CrashTheatre) -> None:
    theatre.pay_button.click()
    theatre.reset_button.click()
    assert theatre.payment_id is None
    assert theatre.key == "order-2"
    assert not theatre.pay_button.disabled
    assert "alive" in plain(theatre, "process")


@pytest.mark.slow
def test_real_mode_kills_a_worker_with_sigkill_and_recovers_over_its_files() -> None:
    theatre = CrashTheatre(real=True)
    try:
        stage = theatre.stage
        assert isinstance(stage, KilledStage)
        theatre.pay_button.click()
        assert stage.worker is not None and stage.worker.returncode == -9
        process = plain(theatre, "process")
        assert f"worker pid {stage.worker.pid}: killed" in process
        assert "stopped after the gateway charged, before we recorded it, and was killed" in process
        assert "killed with SIGKILL (exit status -9)" in process
        assert lit(svg_of(theatre)) == ["PROCESSING"]
        assert "charged 25.00 EUR" in plain(theatre, "ledgers")
        assert "the gateway took money" in plain(theatre, "story")
        theatre.restart_button.click()
        process = plain(theatre, "process")
        assert f"next process: this app, pid {os.getpid()}" in process
        assert f"not the killed worker (pid {stage.worker.pid})" in process
        theatre.recover_button.click()
        assert lit(svg_of(theatre)) == ["SUCCESS"]
        assert "✔ agree" in plain(theatre, "ledgers")
        assert "every check holds" in plain(theatre, "story")
        theatre.again_button.click()
        assert theatre.said == "same key, the same payment back: SUCCESS"
        folder = Path(stage.store.removeprefix("sqlite:///")).parent
    finally:
        theatre.close()
    assert not folder.exists()


def test_switching_to_real_mode_resets_the_stage_onto_files(theatre: CrashTheatre) -> None:
    theatre.real.value = True
    assert isinstance(theatre.stage, KilledStage)
    assert "new worker process" in plain(theatre, "process")


def test_the_app_notebook_builds_the_theatre_and_nothing_else() -> None:
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    assert [cell["cell_type"] for cell in cells] == ["code"]
    source = "".join(cells[0]["source"])
    assert "CrashTheatre(attacks=attack)" in source
    assert "from aegispay.labs import attack" in source
    assert (APP / "share" / "voila" / "templates" / "theatre" / "index.html.j2").is_file()


def test_voila_serves_on_localhost_without_a_browser() -> None:
    command = voila_command(8866)
    assert "--no-browser" in command
    assert "--Voila.ip=127.0.0.1" in command
    assert "--port=8866" in command


def test_free_port_moves_off_a_port_in_use() -> None:
    port = free_port(0)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        assert free_port(port) != port


def test_pay_again_keeps_recoverys_steps_on_screen_without_unfolding_them_again(
    theatre: CrashTheatre,
) -> None:
    theatre.pay_button.click()
    theatre.restart_button.click()
    theatre.recover_button.click()
    theatre.again_button.click()
    assert "settled" in plain(theatre, "story")
    for name in ("verdict", "story", "ledgers"):
        assert "animation-delay" not in theatre.pictures[name].value


# "Remove a defense": the theatre is handed the labs' attack (each defense attacked once here),
# and Play's steps are called back by a clock the test turns by hand.


@functools.cache
def attack(name: str) -> Verdict:
    return labs.attack(without=name)


class Clock:
    """Play's timer: what it was asked to call back, and after how long; `turn` calls the next."""

    def __init__(self) -> None:
        self.waiting: list[tuple[float, Callable[[], None]]] = []

    def __call__(self, seconds: float, callback: Callable[[], None]) -> Clock:
        self.waiting.append((seconds, callback))
        return self

    def cancel(self) -> None:
        self.waiting.clear()

    def turn(self) -> None:
        _, callback = self.waiting.pop(0)
        callback()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def attacked(clock: Clock) -> Iterator[CrashTheatre]:
    stage = CrashTheatre(seed=12, attacks=attack, later=clock)
    yield stage
    stage.close()


def choose(theatre: CrashTheatre, words: str) -> None:
    assert theatre.attack is not None
    label = dict(theatre.attack.defense.options)
    theatre.attack.defense.value = label[words]


def lanes(theatre: CrashTheatre) -> str:
    assert theatre.attack is not None
    return html.unescape(re.sub(r"<[^>]+>", " ", theatre.attack.lanes.value))


def said(theatre: CrashTheatre) -> str:
    """The verdict line and the narration below it, as read."""
    return html.unescape(plain(theatre, "verdict"))


def steps_shown(theatre: CrashTheatre) -> list[str]:
    assert theatre.attack is not None
    return re.findall(
        r'class="(?:lane-say|lane-note)[^"]*"[^>]*>(\d+)\.', theatre.attack.lanes.value
    )


def test_the_defense_dropdown_names_every_defense_the_labs_know_in_plain_words(
    attacked: CrashTheatre,
) -> None:
    assert attacked.attack is not None
    assert set(DEFENSE_WORDS) == set(labs.DEFENSES)
    assert [words for words, _ in attacked.attack.defense.options] == [
        "none",
        "the payment lease (lock)",
        "the gateway's idempotency key",
        "the gateway's cancel fence",
        "the store's expected version",
        "asking the gateway before writing FAILURE",
        "writing the intent before the charge",
    ]


def test_without_the_theatre_being_handed_an_attack_there_is_no_defense_choice(
    theatre: CrashTheatre,
) -> None:
    assert theatre.attack is None


def test_choosing_a_defense_puts_the_lanes_in_place_of_the_crash_story_until_none(
    attacked: CrashTheatre,
) -> None:
    assert attacked.attack is not None
    choose(attacked, "the gateway's idempotency key")
    assert [row.layout.display for row in attacked.story_rows] == ["none"] * 3
    assert attacked.attack.lanes.layout.display is None
    assert attacked.pay_button.layout.display == attacked.crash.layout.display == "none"
    assert "What breaks without the gateway's idempotency key?" in said(attacked)
    choose(attacked, "none")
    assert [row.layout.display for row in attacked.story_rows] == [None] * 3
    assert attacked.attack.lanes.layout.display == "none"
    assert attacked.pay_button.layout.display is None and not attacked.pay_button.disabled
    assert attacked.verdict in said(attacked)


def test_play_without_the_idempotency_key_shows_a_step_a_second_on_the_lanes(
    attacked: CrashTheatre, clock: Clock
) -> None:
    assert attacked.attack is not None
    choose(attacked, "the gateway's idempotency key")
    attacked.attack.play_button.click()
    found = attack("idempotency_key")
    assert steps_shown(attacked) == ["1"]
    assert attacked.attack.play_button.description == "Pause"
    assert [seconds for seconds, _ in clock.waiting] == [PLAY_SECONDS]
    for lane in ("client", "process A", "process B", "recovery", "event store", "gateway"):
        assert lane in lanes(attacked)
    assert "nothing broken yet" in said(attacked)
    breaking = next(n for n, step in enumerate(found.trace, start=1) if step.breaking)
    while clock.waiting:
        clock.turn()
        shown = len(steps_shown(attacked))
        broke = "Without the gateway's idempotency key: charged twice." in said(attacked)
        assert broke == (shown >= breaking), shown
    assert steps_shown(attacked) == [str(n) for n in range(1, len(found.trace) + 1)]
    assert attacked.attack.play_button.description == "Play the attack"
    assert attacked.attack.next_button.disabled
    assert "The end" in said(attacked)


def test_the_breaking_step_alone_is_marked_in_red(attacked: CrashTheatre) -> None:
    assert attacked.attack is not None
    choose(attacked, "writing the intent before the charge")
    for _ in attack("intent_first").trace:
        attacked.attack.next_button.click()
    marked = re.findall(r'class="lane-say breaks[^"]*"[^>]*>([^<]+)<', attacked.attack.lanes.value)
    marked = [html.unescape(m) for m in marked]
    assert marked == ["4. ✘ the gateway charges 42.00 EUR (t1)"]
    assert "charged, but our records never say the charge was sent" in said(attacked)


def test_next_step_goes_one_step_at_a_time_and_stops_playing(
    attacked: CrashTheatre, clock: Clock
) -> None:
    assert attacked.attack is not None
    choose(attacked, "asking the gateway before writing FAILURE")
    attacked.attack.play_button.click()
    attacked.attack.next_button.click()
    assert clock.waiting == []
    assert steps_shown(attacked) == ["1", "2"]
    assert attacked.attack.play_button.description == "Play the attack"
    assert "Step 2 of 9: process A writes PaymentInitiated" in said(attacked)
    for _ in range(5):
        attacked.attack.next_button.click()
    assert "Step 7 breaks the promise: process A writes PaymentFailed" in said(attacked)
    assert "charged but recorded as failed" in said(attacked)


def test_pause_stops_play_and_changing_the_defense_starts_the_lanes_again(
    attacked: CrashTheatre, clock: Clock
) -> None:
    assert attacked.attack is not None
    choose(attacked, "asking the gateway before writing FAILURE")
    attacked.attack.play_button.click()
    clock.turn()
    attacked.attack.play_button.click()
    assert clock.waiting == []
    assert steps_shown(attacked) == ["1", "2"]
    attacked.attack.play_button.click()
    assert steps_shown(attacked) == ["1", "2", "3"]
    choose(attacked, "the gateway's idempotency key")
    assert clock.waiting == []
    assert steps_shown(attacked) == []


@pytest.mark.slow
def test_without_the_lock_nothing_breaks_and_the_verdict_says_why(attacked: CrashTheatre) -> None:
    assert attacked.attack is not None
    choose(attacked, "the payment lease (lock)")
    attacked.attack.play_button.click()
    verdict = re.findall(r'class="verdict">([^<]*)<', attacked.pictures["verdict"].value)
    assert [html.unescape(v) for v in verdict] == [
        "Nothing breaks without the payment lease (lock): the store's expected version is the "
        "fence; the lock only saves duplicate work."
    ]
    assert "every promise held" in said(attacked)
    assert "the promise held over" in lanes(attacked)
    assert "stale writes" in lanes(attacked)
    assert attacked.attack.next_button.disabled


def test_each_defense_is_attacked_once_however_often_it_is_played(clock: Clock) -> None:
    asked: list[str] = []

    def counting(name: str) -> Verdict:
        asked.append(name)
        return attack(name)

    stage = CrashTheatre(seed=12, attacks=counting, later=clock)
    assert stage.attack is not None
    choose(stage, "writing the intent before the charge")
    for _ in range(3):
        stage.attack.play_button.click()
        while clock.waiting:
            clock.turn()
    choose(stage, "none")
    choose(stage, "writing the intent before the charge")
    stage.attack.next_button.click()
    stage.close()
    assert asked == ["intent_first"]
