"""The crash theatre: one screen on which a presenter crashes a payment and a room sees it recover.

Every component is on the screen at once, as in RaftScope: the client, the engine process (alive
or dead, and what its memory holds), the event store's stream with its versions, the projection
row, our ledger beside the gateways', and the payment state machine with the path taken drawn
large. Above them one verdict line, the biggest thing on the screen, says where the story
stands. Clicks tell the story: Pay (crashing where chosen), Restart, Recover, then Pay again with
the same key; each redraws every picture, and recovery's steps appear one by one, the verdict
with the last. A slider travels back through the event log: the state at version k is
`replay(events[:k])`. A switch runs the payment in a real worker process killed with SIGKILL
(`theatre_stage.KilledStage`). Given `attacks` (the app notebook passes `aegispay.labs.attack`),
a dropdown removes a defense and the stage plays the shortest counterexample without it as lanes
(`theatre_attack`). The panels are drawn by `theatre_panels`; `make demo` serves it.

    theatre = CrashTheatre()
    theatre.pay_button.click(); theatre.restart_button.click(); theatre.recover_button.click()
    theatre.again_button.click()
    theatre.widget   # the screen
    CrashTheatre(attacks=aegispay.labs.attack).attack.defense.value = "fence"
"""

from __future__ import annotations

from typing import Any

import ipywidgets as w

from aegispay.domain.errors import AegisPayError
from aegispay.orchestration.ports import RecordedEvent
from aegispay.sim.invariants import InvariantReport
from aegispay.viz.diagrams import state_machine_diagram
from aegispay.viz.explorer import Snapshot
from aegispay.viz.ledgers import LedgerRow, ledger_rows
from aegispay.viz.theatre_attack import CSS as LANES_CSS
from aegispay.viz.theatre_attack import AttackPlayer, Attacks, Later, event_loop_later
from aegispay.viz.theatre_panels import (
    CSS,
    STEP_SECONDS,
    audit_html,
    card,
    client_html,
    held,
    ledgers_html,
    memory_html,
    process_html,
    replay_html,
    row_html,
    settled,
    steps_html,
    store_html,
    verdict_html,
)
from aegispay.viz.theatre_stage import (
    CRASH_CHOICES,
    CrashChoice,
    KilledStage,
    SimulatedStage,
    Stage,
    order,
    recovery_steps,
)

PANELS = ("verdict", "client", "process", "ledgers", "state", "story", "store", "row", "replay")


def share(grow: int, basis: str) -> w.Layout:
    """A box's share of its row: it grows by `grow` parts from `basis` (rem: the page's type,
    not the widget's own smaller one) and wraps below that."""
    return w.Layout(flex=f"{grow} 1 {basis}", min_width=f"min({basis}, 100%)", width="auto")


def fitting() -> w.Layout:
    """A control as wide as its words, and never wider than its row."""
    return w.Layout(width="auto", max_width="100%")


class CrashTheatre(Snapshot):
    """The one-screen app: controls on top, the verdict below them, every component below that,
    redrawn after each click.

    Its state is plain attributes and its logic plain methods, so tests click its buttons with
    `button.click()`. `real=True` starts with the real-process switch on. With `attacks`, the
    "remove a defense" controls (`self.attack`) play its counterexamples; `later` schedules Play's
    steps (the kernel's event loop; tests pass their own).
    """

    def __init__(self, seed: int = 12, real: bool = False, attacks: Attacks | None = None,
                 later: Later = event_loop_later) -> None:  # fmt: skip
        self.seed = seed
        self.crash = w.Dropdown(
            options=[(choice.words, choice) for choice in CRASH_CHOICES], value=CRASH_CHOICES[0],
            description="crash", style={"description_width": "initial"}, layout=fitting(),
        ).add_class("theatre-crash")  # fmt: skip
        self.real = w.Checkbox(value=real, description="real process, killed with SIGKILL",
                               indent=False, layout=fitting())  # fmt: skip
        self.pay_button = w.Button(description="Pay", icon="credit-card", button_style="primary")
        self.restart_button = w.Button(description="Restart", icon="refresh")
        self.recover_button = w.Button(description="Recover", icon="wrench")
        self.again_button = w.Button(description="Pay again, same key", icon="repeat")
        self.reset_button = w.Button(description="Reset", icon="undo")
        self.buttons = (self.pay_button, self.restart_button, self.recover_button,
                        self.again_button, self.reset_button)  # fmt: skip
        self.time = w.IntSlider(description="version", min=0, max=0, continuous_update=True,
                                layout=share(1, "12rem"))  # fmt: skip
        self.pictures = {name: w.HTML().add_class(f"theatre-{name}") for name in PANELS}
        for button, action, name in (
            (self.pay_button, self.pay, "pay"), (self.restart_button, self.restart, "restart"),
            (self.recover_button, self.recover, "recover"),
            (self.again_button, self.pay_again, "again"), (self.reset_button, self.reset, "reset"),
        ):  # fmt: skip
            button.on_click(lambda _button, act=action: self._guarded(act))
            button.add_class(f"theatre-{name}")
            button.layout = w.Layout(width="auto", height="auto")
        self.real.observe(lambda _change: self.reset(), names="value")
        self.time.observe(lambda _change: self.travel(), names="value")
        self.widget = self._layout(attacks, later)
        self.stage: Stage = SimulatedStage(seed)
        self.payments = 0
        self.key = ""
        self.payment_id: str | None = None
        self.said = self.verdict = self.narration = ""
        self.steps: list[tuple[str, str]] = []
        self.crashed = self.recovered = self.unfold = False
        self.audit_before: InvariantReport | None = None
        self.audit_after: InvariantReport | None = None
        self.reset()

    def _layout(self, attacks: Attacks | None, later: Later) -> w.Box:
        p = self.pictures
        for name, grow, basis in (("client", 2, "14rem"), ("process", 3, "18rem"),
                                  ("ledgers", 3, "18rem"), ("state", 5, "31rem"),
                                  ("story", 4, "18rem"), ("replay", 3, "16rem")):  # fmt: skip
            p[name].layout = share(grow, basis)
        p["verdict"].layout = w.Layout(width="100%")
        title = w.HTML(CSS + LANES_CSS + '<b class="title">AegisPay crash theatre</b>')
        wraps = w.Layout(flex_flow="row wrap", align_items="stretch", width="100%")
        disk = w.VBox([p["store"], p["row"]], layout=share(3, "16rem"))
        self.story_rows = [
            w.HBox([p["client"], p["process"], p["ledgers"]], layout=wraps),
            w.HBox([p["state"], p["story"], disk], layout=wraps),
            w.HBox([self.time, p["replay"]], layout=w.Layout(flex_flow="row wrap",
                                                            align_items="center", width="100%")),
        ]  # fmt: skip
        self.attack = (AttackPlayer(attacks, p["verdict"], self.story_rows, self.redraw, later)
                       if attacks else None)  # fmt: skip
        attack = [self.attack.controls, p["verdict"], self.attack.lanes] if self.attack else []
        return w.VBox([
            w.HBox([title, self.crash, *self.buttons, self.real],
                   layout=w.Layout(flex_flow="row wrap", align_items="center", width="100%")),
            *(attack or [p["verdict"]]), *self.story_rows,
        ], layout=w.Layout(width="100%")).add_class("theatre")  # fmt: skip

    # The clicks and the reset.

    def pay(self) -> None:
        """Create the payment and process it, crashing where chosen; audit what was left."""
        choice: CrashChoice = self.crash.value
        self.payment_id = self.stage.pay(self.key, choice)
        self.audit_before = self.stage.engine.check_invariants()
        self.crashed = not self.stage.process.alive
        theirs, ours = held(self.ledger())
        if self.crashed:
            self.said = "no answer: the connection dropped"
            self.verdict = f"After the crash the gateway holds: {theirs}. We hold: {ours}."
            self.narration = f"Pay: the process died {choice.words}. Now press Restart."
        else:
            self.said = f"200 OK: {ours}"
            self.verdict = self._settle(f"Paid ({choice.words}).")
            self.narration = "Pay: no crash on the way. Press Pay again to send the same key."
        self.redraw()

    def restart(self) -> None:
        """Start the next process over the same storage."""
        self.stage.restart()
        self.recovered = False
        in_flight = len(self.stage.engine.list_payments("PROCESSING"))
        self.verdict = "The next process, its memory empty: it knows only what the disk holds."
        self.narration = (
            f"Restart: the disk lists {in_flight} payment(s) left PROCESSING. Now press Recover."
        )
        self.redraw()

    def recover(self) -> None:
        """Run recovery, tell its steps, audit again."""
        engine = self.stage.engine
        before = engine.event_store.read(self.payment_id) if self.payment_id else []
        report = self.stage.recover()
        after = engine.event_store.read(self.payment_id) if self.payment_id else []
        self.steps = recovery_steps(report, before, after)
        self.recovered = self.unfold = True
        self.audit_after = engine.check_invariants()
        self.verdict = self._settle("Recovered.")
        self.narration = "Recover: done. Press Pay again: the shop retries with the same key."
        self.redraw()

    def pay_again(self) -> None:
        """The shop sends its order again with the same key: it gets the same payment back, and
        the gateway is not asked to charge again."""
        engine = self.stage.engine
        charges = len(engine.charges())
        again = engine.create_payment(**order(self.key))
        again = engine.process_payment(again.id)
        new = len(engine.charges()) - charges
        same = "the same payment" if again.id == self.payment_id else "a different payment"
        self.said = f"same key, {same} back: {again.state}"
        charged = "no new charge" if new == 0 else f"{new} new charge(s)"
        self.verdict = f"Same key, {same} back: {charged}. {self._settle('')}".strip()
        self.narration = f"Pay again: the shop sent key {self.key} again and got {again.id} back."
        self.unfold = False
        self.redraw()

    def reset(self) -> None:
        """A clean stage in the chosen mode: no payment, nothing crashed."""
        self.stage.close()
        self.stage = KilledStage() if self.real.value else SimulatedStage(self.seed)
        self.payments += 1
        self.key = f"order-{self.payments}"
        self.payment_id = None
        self.said = "about to pay"
        self.verdict = "Choose where to crash, then press Pay."
        self.narration = "The shop will pay 25.00 EUR; the process will die where you choose."
        self.steps = []
        self.crashed = self.recovered = self.unfold = False
        self.audit_before = self.audit_after = None
        self.redraw()

    def _settle(self, opening: str) -> str:
        return settled(opening, self.ledger(), self.stage.engine.check_invariants())

    def _guarded(self, action: Any) -> None:
        """Run a click; an error the engine raises is shown, not lost in a log."""
        try:
            action()
        except (AegisPayError, RuntimeError, OSError) as error:
            self.narration = f"that click failed: {type(error).__name__}: {error}"
            self.redraw()

    # Pictures.

    @property
    def recorded(self) -> list[RecordedEvent]:
        """The payment's stream as stored now."""
        return self.stage.engine.event_store.read(self.payment_id) if self.payment_id else []

    def ledger(self) -> LedgerRow | None:
        """The payment on stage in both ledgers, or None before it exists."""
        rows = [r for r in ledger_rows(self.stage.engine) if r.reference == self.payment_id]
        return rows[0] if rows else None

    @property
    def last_step_delay(self) -> float | None:
        """When recovery's last step appears, for the verdicts that arrive with it; None when
        recovery did not just run (its steps are all shown at once)."""
        return (len(self.steps) - 1) * STEP_SECONDS if self.steps and self.unfold else None

    def redraw(self) -> None:
        """Redraw every picture from the stores, follow the slider to the present, set buttons."""
        engine, recorded, p, delay = (
            self.stage.engine,
            self.recorded,
            self.pictures,
            self.last_step_delay,
        )
        start = recorded[0].recorded_at if recorded else None
        p["verdict"].value = verdict_html(self.verdict, self.narration, delay)
        p["client"].value = client_html(self.said, self.key, order(self.key)["amount"] + " EUR")
        view = self.stage.process
        breakers = [engine.circuit_breaker(name) for name in engine.gateways]
        p["process"].value = process_html(view.headline, view.detail, view.alive,
                                          memory_html(breakers))  # fmt: skip
        row = engine.projections.get(self.payment_id) if self.payment_id else None
        p["row"].value = row_html(row, recorded)
        ledger = self.ledger()
        p["ledgers"].value = ledgers_html([ledger] if ledger else [], list(engine.gateways),
                                          start, delay)  # fmt: skip
        charged = ledger is not None and held(ledger)[0] != "no charge"
        p["story"].value = card(
            "recovery",
            steps_html(self.steps, self.unfold)
            + audit_html("audit after the crash", self.audit_before, charged, None)
            + audit_html("audit after recovery", self.audit_after, charged, delay),
        )
        with self.time.hold_trait_notifications():
            self.time.max = len(recorded)
            self.time.value = len(recorded)
        self.travel()
        self._enable()

    def travel(self) -> None:
        """Show the state at the slider's version: replay of the events up to it, lit."""
        recorded, shown = self.recorded, self.time.value
        self.pictures["state"].value = card(
            f"payment state machine at version {shown}",
            state_machine_diagram(recorded[:shown], focus=True).as_html(),
        )
        self.pictures["store"].value = store_html(self.payment_id, recorded, shown)
        self.pictures["replay"].value = replay_html(recorded, shown)

    def _enable(self) -> None:
        """Buttons only when they make sense: no paying on a dead process, no recovery before
        the restart, paying again once the payment settled, no changing the crash once paid."""
        alive, paid = self.stage.process.alive, self.payment_id is not None
        self.pay_button.disabled = not alive or paid
        self.restart_button.disabled = alive
        self.recover_button.disabled = not alive or not paid or self.recovered
        self.again_button.disabled = not alive or not paid or (self.crashed and not self.recovered)
        self.crash.disabled = self.real.disabled = paid
        self.time.disabled = not paid
        attacking = self.attack is not None and self.attack.name is not None
        for control in (*self.buttons, self.crash, self.real):  # a defense removed: they wait
            control.layout.display = "none" if attacking else None

    def close(self) -> None:
        """Let go of the stage's processes and files."""
        self.stage.close()

    def snapshot_html(self) -> str:
        """Every picture as it is now, as static HTML."""
        return CSS + "".join(picture.value for picture in self.pictures.values())

    def summary(self) -> str:
        """The payment on stage and its process."""
        return (
            f"<CrashTheatre: {self.payment_id or 'no payment yet'}, {self.stage.process.headline}>"
        )
