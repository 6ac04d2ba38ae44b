"""The crash theatre: one screen on which an interviewer crashes a payment and watches it recover.

Every component is on the screen at once, as in RaftScope: the client, the engine process (alive
or dead), the event store's stream with its versions, the projection row, our ledger beside the
gateways', the payment state machine with the current state lit, and each gateway's breaker.
Three clicks tell the story: Pay (crashing where chosen), Restart, Recover; each redraws every
picture, and recovery's steps appear one by one. A slider travels back through the event log:
the state at version k is `replay(events[:k])`. A switch runs the payment in a real worker
process killed with SIGKILL (`theatre_stage.KilledStage`). `make demo` serves it with Voila.

    theatre = CrashTheatre()
    theatre.pay_button.click(); theatre.restart_button.click(); theatre.recover_button.click()
    theatre.widget   # the screen
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import ipywidgets as w

from aegispay.domain.errors import AegisPayError
from aegispay.domain.payment import Payment, replay
from aegispay.orchestration.ports import RecordedEvent
from aegispay.sim.invariants import INVARIANTS, InvariantReport
from aegispay.viz.diagrams import STATE_FILL, breaker_diagram, state_machine_diagram
from aegispay.viz.explorer import Snapshot
from aegispay.viz.ledgers import MARK, LedgerRow, ledger_rows
from aegispay.viz.theatre_stage import (
    CRASH_CHOICES,
    CrashChoice,
    KilledStage,
    ProcessView,
    SimulatedStage,
    Stage,
    order,
    recovery_steps,
)

# One stylesheet for the whole screen: small type and tight cards, so it fits 1,366 x 768.
CSS = """<style>
.theatre{font-family:Helvetica,Arial,sans-serif;font-size:12px;line-height:1.35;color:#111}
.theatre h3{margin:0 0 2px 0;font-size:12px;text-transform:uppercase;color:#555;letter-spacing:.5px}
.theatre .card{border:1px solid #d1d5db;border-radius:6px;padding:6px 8px;background:#fff;
  min-height:150px;box-sizing:border-box}
.theatre table{border-collapse:collapse;font-size:11.5px}
.theatre td,.theatre th{padding:1px 5px;text-align:left;vertical-align:top}
.theatre .later{opacity:.3}
.theatre .now{outline:2px solid #1d4ed8}
.theatre .alive{background:#dcfce7}.theatre .dead{background:#fecaca}
.theatre .big{font-size:16px;font-weight:bold;margin:6px 0}
.theatre .ok{color:#15803d;font-weight:bold}.theatre .bad{color:#b91c1c;font-weight:bold}
.theatre-state svg{width:100%;height:auto;max-height:250px}
.theatre-breakers svg{width:100%;height:auto;max-height:114px}
.theatre .gone{opacity:.35}
.theatre.widget-vbox,.theatre .widget-hbox{gap:6px}
.theatre ol{margin:2px 0;padding-left:18px}
.theatre li.step{opacity:0;animation:theatre-step .35s ease-out forwards}
@keyframes theatre-step{from{opacity:0;transform:translateX(-8px)}to{opacity:1;transform:none}}
</style>"""
# How long apart recovery's steps appear on screen.
STEP_SECONDS = 0.6


def card(title: str, body: str, extra: str = "") -> str:
    """A titled box of the screen."""
    return f'<div class="theatre card {extra}"><h3>{html.escape(title)}</h3>{body}</div>'


def client_html(key: str, said: str) -> str:
    """The shop: what it asked for and what it heard back."""
    request = order(key)
    return card(
        "client (the shop)",
        f"<div>POST /payments</div><div>key <code>{html.escape(key)}</code></div>"
        f"<div>{request['amount']} {request['currency']}, {request['payment_method']}</div>"
        f'<div class="big">{html.escape(said)}</div>',
    )


def process_html(view: ProcessView) -> str:
    """The engine process: alive (green) or dead (red), and why."""
    mark = "●" if view.alive else "✖"
    return card(
        "engine process",
        f'<div class="big">{mark} {html.escape(view.headline)}</div>'
        f"<div>{html.escape(view.detail)}</div>",
        "alive" if view.alive else "dead",
    )


def store_html(payment_id: str | None, recorded: Sequence[RecordedEvent], shown: int) -> str:
    """The payment's stream in the event store, version by version; versions past the slider's
    `shown` are faded and version `shown` is outlined."""
    if payment_id is None:
        return card("event store", "<i>no stream yet</i>")
    rows = "".join(
        f'<tr class="{"later" if r.version > shown else "now" if r.version == shown else ""}">'
        f"<td>v{r.version}</td><td>#{r.position}</td><td>{r.recorded_at:%H:%M:%S}</td>"
        f"<td>{html.escape(r.event.type)}</td></tr>"
        for r in recorded
    )
    return card(
        "event store",
        f"<div>stream <code>{html.escape(payment_id)}</code> · version {len(recorded)}</div>"
        f"<table><tr><th>ver</th><th>pos</th><th>time</th><th>event</th></tr>{rows}</table>",
    )


def row_html(row: Payment | None, recorded: Sequence[RecordedEvent]) -> str:
    """The projection's row beside what the events say: in step, or behind them."""
    told = replay(r.event for r in recorded)
    if row is None and told is None:
        return card("projection row", "<i>no row yet</i>")
    fields = (
        f"<tr><td>state</td><td><b>{row.state}</b></td></tr>"
        f"<tr><td>version</td><td>{row.version}</td></tr>"
        f"<tr><td>transaction</td><td>{html.escape(row.transaction_id or '-')}</td></tr>"
        if row is not None
        else "<tr><td colspan=2><i>missing</i></td></tr>"
    )
    if told is not None and row == told:
        verdict = '<span class="ok">✔ equals replay(events)</span>'
    else:
        events_say = f"{told.state} v{told.version}" if told else "nothing"
        verdict = f'<span class="bad">✘ behind the events ({html.escape(events_say)})</span>'
    return card("projection row", f"<table>{fields}</table><div>{verdict}</div>")


def ledgers_html(rows: Sequence[LedgerRow], gateways: Sequence[str]) -> str:
    """Our record beside each gateway's ledger, and whether they agree."""
    if not rows:
        return card("two ledgers", "<i>no payments, no charges</i>")
    body = ""
    for row in rows:
        ours = f"{row.payment.state} {row.payment.amount}" if row.payment else "none"
        theirs = "".join(
            f"<tr><td>{html.escape(name)}'s ledger</td><td>{_record(row, name)}</td></tr>"
            for name in gateways
        )
        verdict = "ok" if row.verdict == "agree" else "bad"
        body += (
            f"<table><tr><td>our record</td><td><b>{html.escape(ours)}</b></td></tr>{theirs}"
            f"</table><div class='{verdict}'>{MARK[row.verdict]}</div>"
            f"<div>{html.escape(row.reason)}</div>"
        )
    return card("two ledgers", body)


def _record(row: LedgerRow, gateway: str) -> str:
    record = row.records.get(gateway)
    if record is None:
        return "none"
    if record.charged:
        return f"<b>charged {html.escape(str(record.amount))}</b>"
    return (
        "cancelled" if record.cancelled else f"declined ({html.escape(str(record.decline_reason))})"
    )


def steps_html(steps: Sequence[tuple[str, str]]) -> str:
    """Recovery's steps as a list whose items appear one after another."""
    if not steps:
        return "<div><i>recovery has not run</i></div>"
    items = "".join(
        f'<li class="step" style="animation-delay:{index * STEP_SECONDS:.1f}s">'
        f"<b>{html.escape(step)}</b>: {html.escape(text)}</li>"
        for index, (step, text) in enumerate(steps)
    )
    return f'<ol class="theatre-steps">{items}</ol>'


def audit_line(when: str, report: InvariantReport | None) -> str:
    """One audit, as `aegispay audit` computes it: broken invariants and reconciliation."""
    if report is None:
        return f"<div>{when}: <i>not yet</i></div>"
    broken = [name for name in INVARIANTS if report.counts[name]]
    reconciled = ", ".join(f"{k} {v}" for k, v in report.reconciliation.counts().items() if v)
    verdict = (
        f'<span class="bad">✘ {report.violations} violation(s): {", ".join(broken)}</span>'
        if broken
        else '<span class="ok">✔ every invariant holds</span>'
    )
    return f"<div>{when}: {verdict}; reconciliation: {reconciled or 'nothing to match'}</div>"


def replay_html(recorded: Sequence[RecordedEvent], shown: int) -> str:
    """What the fold of the first `shown` events gives."""
    payment = replay(r.event for r in recorded[:shown])
    if payment is None:
        return "<code>replay(events[:0])</code> = no payment yet"
    colour = STATE_FILL.get(payment.state, "#fde047")
    return (
        f"<code>replay(events[:{shown}])</code> = "
        f'<b style="background:{colour};padding:0 4px">{payment.state}</b> v{payment.version}'
        f"{' · ' + html.escape(payment.transaction_id) if payment.transaction_id else ''}"
    )


class CrashTheatre(Snapshot):
    """The one-screen app: controls on top, every component below, redrawn after each click.

    Its state is plain attributes and its logic plain methods, so tests click its buttons with
    `button.click()`. `real=True` starts with the real-process switch on.
    """

    def __init__(self, seed: int = 12, real: bool = False) -> None:
        self.seed = seed
        self.crash = w.Dropdown(
            options=[(choice.words, choice) for choice in CRASH_CHOICES],
            value=CRASH_CHOICES[0], description="crash", layout=w.Layout(width="420px"),
        )  # fmt: skip
        self.real = w.Checkbox(value=real, description="real process, killed with SIGKILL",
                               indent=False, layout=w.Layout(width="250px"))  # fmt: skip
        self.pay_button = w.Button(description="Pay", icon="credit-card", button_style="primary")
        self.restart_button = w.Button(description="Restart", icon="refresh")
        self.recover_button = w.Button(description="Recover", icon="wrench")
        self.reset_button = w.Button(description="Reset", icon="undo")
        self.time = w.IntSlider(description="version", min=0, max=0, continuous_update=True,
                                layout=w.Layout(width="420px"))  # fmt: skip
        panels = ("status", "client", "process", "store", "row", "ledgers", "state", "breakers",
                  "story", "replay")  # fmt: skip
        self.pictures = {name: w.HTML().add_class(f"theatre-{name}") for name in panels}
        for button, action in (
            (self.pay_button, self.pay), (self.restart_button, self.restart),
            (self.recover_button, self.recover), (self.reset_button, self.reset),
        ):  # fmt: skip
            button.on_click(lambda _button, act=action: self._guarded(act))
            button.add_class(f"theatre-{button.description.lower()}")
        self.real.observe(lambda _change: self.reset(), names="value")
        self.time.observe(lambda _change: self.travel(), names="value")
        self.widget = self._layout()
        self.stage: Stage = SimulatedStage(seed)
        self.payments = 0
        self.key = ""
        self.payment_id: str | None = None
        self.said = ""
        self.steps: list[tuple[str, str]] = []
        self.recovered = False
        self.audit_before: InvariantReport | None = None
        self.audit_after: InvariantReport | None = None
        self.reset()

    def _layout(self) -> w.Box:
        p = self.pictures
        cell = w.Layout(flex="1 1 0", min_width="0")
        for name in ("client", "process", "store", "row", "ledgers"):
            p[name].layout = cell
        p["state"].layout = w.Layout(width="700px")
        p["breakers"].layout = w.Layout(width="250px")
        p["story"].layout = w.Layout(flex="1 1 0", min_width="0")
        title = w.HTML(
            CSS + '<b style="font-size:15px;white-space:nowrap">AegisPay crash theatre</b>'
        )
        controls = w.HBox([title, self.crash, self.pay_button, self.restart_button,
                           self.recover_button, self.reset_button, self.real],
                          layout=w.Layout(align_items="center"))  # fmt: skip
        row = w.Layout(align_items="stretch")
        return w.VBox([
            controls, p["status"],
            w.HBox([p[n] for n in ("client", "process", "store", "row", "ledgers")], layout=row),
            w.HBox([p["state"], p["breakers"], p["story"]], layout=row),
            w.HBox([self.time, p["replay"]], layout=w.Layout(align_items="center")),
        ], layout=w.Layout(width="100%", max_width="1350px")).add_class("theatre")  # fmt: skip

    # The three clicks and the reset.

    def pay(self) -> None:
        """Create the payment and process it, crashing where chosen; audit what was left."""
        choice: CrashChoice = self.crash.value
        self.said = "waiting for an answer…"
        self.payment_id = self.stage.pay(self.key, choice)
        if self.stage.process.alive:
            done = self.stage.engine.get_payment(self.payment_id)
            self.said = f"200 OK: {done.state}"
            self.say(f"paid with no crash on the way ({choice.crossing} was not chosen or crossed)")
        else:
            self.said = "no answer: the connection dropped"
            self.say(f"the process died {choice.crossing}: restart it, then recover")
        self.audit_before = self.stage.engine.check_invariants()
        self.redraw()

    def restart(self) -> None:
        """Start the next process over the same storage."""
        self.stage.restart()
        self.recovered = False
        in_flight = len(self.stage.engine.list_payments("PROCESSING"))
        self.say(f"restarted: the projection lists {in_flight} payment(s) PROCESSING; recover them")
        self.redraw()

    def recover(self) -> None:
        """Run recovery, tell its steps, audit again; the client asks again with its key."""
        engine = self.stage.engine
        before = engine.event_store.read(self.payment_id) if self.payment_id else []
        report = self.stage.recover()
        after = engine.event_store.read(self.payment_id) if self.payment_id else []
        self.steps = recovery_steps(report, before, after)
        self.recovered = True
        self.audit_after = engine.check_invariants()
        again = engine.create_payment(**order(self.key))
        self.said = f"asked again with the same key: {again.state}"
        self.say(f"recovered: {report.found} found, {report.succeeded} succeeded, "
                 f"{report.projections_repaired} row(s) repaired")  # fmt: skip
        self.redraw()

    def reset(self) -> None:
        """A clean stage in the chosen mode: no payment, nothing crashed."""
        self.stage.close()
        self.stage = KilledStage() if self.real.value else SimulatedStage(self.seed)
        self.payments += 1
        self.key = f"order-{self.payments}"
        self.payment_id = None
        self.said = "about to pay"
        self.steps = []
        self.recovered = False
        self.audit_before = self.audit_after = None
        self.say("choose where to crash, then Pay")
        self.redraw()

    def _guarded(self, action: Any) -> None:
        """Run a click; an error the engine raises is shown, not lost in a log."""
        try:
            action()
        except (AegisPayError, RuntimeError, OSError) as error:
            self.say(f"that click failed: {type(error).__name__}: {error}")
            self.redraw()

    def say(self, line: str) -> None:
        """Put one line above the pictures: what the last click did."""
        self.pictures["status"].value = f'<div class="theatre">{html.escape(line)}</div>'

    # Pictures.

    @property
    def recorded(self) -> list[RecordedEvent]:
        """The payment's stream as stored now."""
        return self.stage.engine.event_store.read(self.payment_id) if self.payment_id else []

    def redraw(self) -> None:
        """Redraw every picture from the stores, follow the slider to the present, set buttons."""
        engine, recorded, p = self.stage.engine, self.recorded, self.pictures
        p["client"].value = client_html(self.key, self.said)
        p["process"].value = process_html(self.stage.process)
        row = engine.projections.get(self.payment_id) if self.payment_id else None
        p["row"].value = row_html(row, recorded)
        ledgers = [r for r in ledger_rows(engine) if r.reference == self.payment_id]
        p["ledgers"].value = ledgers_html(ledgers, list(engine.gateways))
        gone = "" if self.stage.process.alive else " gone"
        p["breakers"].value = card(
            "breakers (process memory)",
            "".join(breaker_diagram(engine.circuit_breaker(name)).as_html()
                    for name in engine.gateways),
            gone,
        )  # fmt: skip
        p["story"].value = card(
            "recovery",
            steps_html(self.steps)
            + audit_line("audit before recovery", self.audit_before)
            + audit_line("audit after recovery", self.audit_after),
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
            f"payment state machine at v{shown}", state_machine_diagram(recorded[:shown]).as_html()
        )
        self.pictures["store"].value = store_html(self.payment_id, recorded, shown)
        self.pictures["replay"].value = f'<div class="theatre">{replay_html(recorded, shown)}</div>'

    def _enable(self) -> None:
        """Buttons only when they make sense: no paying on a dead process, no recovery before
        the restart, no changing the crash once paid."""
        alive, paid = self.stage.process.alive, self.payment_id is not None
        self.pay_button.disabled = not alive or paid
        self.restart_button.disabled = alive
        self.recover_button.disabled = not alive or not paid or self.recovered
        self.crash.disabled = self.real.disabled = paid
        self.time.disabled = not paid

    def close(self) -> None:
        """Let go of the stage's processes and files."""
        self.stage.close()

    def snapshot_html(self) -> str:
        """Every picture as it is now, as static HTML."""
        return "".join(picture.value for picture in self.pictures.values())

    def summary(self) -> str:
        """The payment on stage and its process."""
        return (
            f"<CrashTheatre: {self.payment_id or 'no payment yet'}, {self.stage.process.headline}>"
        )
