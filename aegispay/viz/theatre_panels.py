"""The crash theatre's panels as HTML: each a pure function of what the stores hold now.

The screen is for a room, not a lap: the verdict line is the biggest thing on it, nothing a
viewer must read is under 14 px, and every box takes a fraction of the window (flex and grid,
never a fixed width), so it fills a 1,920 px projector and still fits 1,366 px at 150% zoom.
Times are shown as time since the payment's first event ("+0.35 s"), simulated or real.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime

from aegispay.domain.payment import Payment, replay
from aegispay.orchestration.ports import RecordedEvent
from aegispay.resilience.breaker import CircuitBreaker
from aegispay.sim.invariants import INVARIANTS, InvariantReport
from aegispay.viz.diagrams import BREAKER_FILL, BREAKER_SAYS, STATE_FILL
from aegispay.viz.ledgers import MARK, LedgerRow

# One stylesheet for the whole screen. Type grows with the window between its floor and its
# ceiling (clamp), boxes share the width by flex fractions and wrap when the window narrows.
CSS = """<style>
.theatre{font-family:Helvetica,Arial,sans-serif;font-size:clamp(16px,1.17vw,26px);
  line-height:1.35;color:#111}
.theatre h3{margin:0 0 4px 0;font-size:.95em;text-transform:uppercase;color:#444;
  letter-spacing:.5px}
.theatre .card{border:1px solid #d1d5db;border-radius:8px;padding:8px 12px;background:#fff;
  box-sizing:border-box;height:100%;overflow-wrap:anywhere}
.theatre table{border-collapse:collapse;width:100%}
.theatre td,.theatre th{padding:1px 6px 1px 0;text-align:left;vertical-align:top}
.theatre .later{opacity:.3}
.theatre .now td{background:#dbeafe;font-weight:bold}
.theatre .alive{background:#dcfce7}.theatre .dead{background:#fecaca}
.theatre .big{font-size:clamp(18px,1.5vw,30px);font-weight:bold;margin:4px 0}
.theatre .ok{color:#15803d;font-weight:bold}.theatre .bad{color:#b91c1c;font-weight:bold}
.theatre .wait{color:#92400e;font-weight:bold}
.theatre .title{font-size:clamp(18px,1.4vw,30px);white-space:nowrap}
.theatre .verdict{font-size:clamp(24px,2.4vw,52px);font-weight:bold;line-height:1.2;
  margin:2px 0}
.theatre .said{font-size:clamp(16px,1.2vw,26px);color:#333}
.theatre .ledger-verdict{font-size:clamp(24px,1.8vw,40px);margin:4px 0}
.theatre .audit{font-size:clamp(20px,1.4vw,30px);margin:4px 0}
.theatre .chip{display:inline-block;border-radius:6px;padding:1px 8px;margin:2px 4px 2px 0;
  border:1px solid #9ca3af}
.theatre-state svg{width:100%;height:auto;max-height:max(44vh,300px)}
.theatre .gone{opacity:.35}
.theatre.widget-vbox,.theatre .widget-hbox,.theatre .widget-gridbox{gap:8px}
.theatre .widget-button,.theatre select,.theatre .widget-label,.theatre label,
.theatre .widget-readout{font-size:clamp(16px,1.17vw,26px)}
.theatre .widget-button{width:auto;height:auto;min-height:36px;padding:4px 14px}
.theatre select{height:auto;min-height:36px;max-width:100%}
.theatre .widget-dropdown,.theatre .widget-checkbox,.theatre .widget-slider{width:auto;
  height:auto;max-width:100%}
.theatre ol{margin:2px 0;padding-left:1.4em}
.theatre code{font-size:.95em}
.theatre .step{opacity:0;animation:theatre-step .35s ease-out forwards}
@keyframes theatre-step{from{opacity:0;transform:translateX(-8px)}to{opacity:1;transform:none}}
</style>"""
# How long apart recovery's steps appear on screen.
STEP_SECONDS = 0.6


def card(title: str, body: str, extra: str = "") -> str:
    """A titled box of the screen."""
    return f'<div class="theatre card {extra}"><h3>{html.escape(title)}</h3>{body}</div>'


def appearing(delay: float | None, classes: str = "") -> str:
    """The attributes of a part with `classes` that fades in `delay` seconds after it is drawn,
    or is there at once when `delay` is None."""
    if delay is None:
        return f'class="{classes}"'
    return f'class="{f"step {classes}".strip()}" style="animation-delay:{delay:.1f}s"'


def since(start: datetime | None, moment: datetime) -> str:
    """A moment as time since the start: '+0.35 s'."""
    seconds = (moment - start).total_seconds() if start is not None else 0.0
    return f"+{seconds:.2f} s"


def verdict_html(verdict: str, said: str, delay: float | None = None) -> str:
    """The biggest thing on the screen: where the story stands, and below it what the last
    click did; with `delay`, both arrive together with recovery's last step."""
    return (
        f"<div {appearing(delay, 'theatre verdict-line')}>"
        f'<div class="verdict">{html.escape(verdict)}</div>'
        f'<div class="said">{html.escape(said)}</div></div>'
    )


def client_html(said: str, key: str, amount: str) -> str:
    """The shop: what it asked for and what it heard back."""
    return card(
        "the shop (client)",
        f"<div>pays {html.escape(amount)} with key <code>{html.escape(key)}</code></div>"
        f'<div class="big">{html.escape(said)}</div>',
    )


def process_html(headline: str, detail: str, alive: bool, memory: str) -> str:
    """The engine process: alive (green) or dead (red), why, and what its memory holds."""
    mark = "●" if alive else "✖"
    return card(
        "engine process",
        f'<div class="big">{mark} {html.escape(headline)}</div><div>{html.escape(detail)}</div>'
        f'<div class="{"" if alive else "gone"}">{memory}</div>',
        "alive" if alive else "dead",
    )


def memory_html(breakers: Sequence[CircuitBreaker]) -> str:
    """What lives only in the process's memory: each gateway's breaker, as a coloured chip."""
    chips = "".join(
        f'<span class="chip" style="background:{BREAKER_FILL[b.state]}">'
        f"{html.escape(b.name)} breaker {b.state.value}: {BREAKER_SAYS[b.state]}</span>"
        for b in breakers
    )
    return f"<div>in its memory only: {chips}</div>"


def store_html(payment_id: str | None, recorded: Sequence[RecordedEvent], shown: int) -> str:
    """The payment's stream in the event store, version by version, each at its time since the
    first; versions past the slider's `shown` are faded and version `shown` is marked."""
    if payment_id is None:
        return card("event store (on disk)", "<i>no stream yet</i>")
    start = recorded[0].recorded_at if recorded else None
    rows = "".join(
        f'<tr class="{"later" if r.version > shown else "now" if r.version == shown else ""}">'
        f"<td>v{r.version}</td><td>{since(start, r.recorded_at)}</td>"
        f"<td>{html.escape(r.event.type)}</td></tr>"
        for r in recorded
    )
    return card(
        "event store (on disk)",
        f"<table><tr><th>ver</th><th>time</th><th>event</th></tr>{rows}</table>",
    )


def row_html(row: Payment | None, recorded: Sequence[RecordedEvent]) -> str:
    """The projection's row beside what the events say: in step, or behind them."""
    told = replay(r.event for r in recorded)
    if row is None and told is None:
        return card("projection row (on disk)", "<i>no row yet</i>")
    fields = (
        f"<tr><td>state</td><td><b>{row.state}</b></td></tr>"
        f"<tr><td>version</td><td>{row.version}</td></tr>"
        if row is not None
        else "<tr><td colspan=2><i>missing</i></td></tr>"
    )
    if told is not None and row == told:
        verdict = '<span class="ok">✔ the same as the events say</span>'
    else:
        events_say = f"{told.state} v{told.version}" if told else "nothing"
        verdict = f'<span class="bad">✘ behind the events ({html.escape(events_say)})</span>'
    return card("projection row (on disk)", f"<table>{fields}</table><div>{verdict}</div>")


def ledgers_html(
    rows: Sequence[LedgerRow], gateways: Sequence[str], start: datetime | None, delay: float | None
) -> str:
    """Our record beside each gateway's ledger, and in large type whether they agree."""
    if not rows:
        return card("two ledgers", "<i>no payment, no charge</i>")
    body = ""
    for row in rows:
        ours = f"{row.payment.state} {row.payment.amount}" if row.payment else "none"
        theirs = "".join(
            f"<tr><td>{html.escape(name)} gateway</td><td>{gateway_record(row, name, start)}</td>"
            "</tr>"
            for name in gateways
        )
        tone = {"agree": "ok", "disagree": "bad", "unsettled": "wait"}[row.verdict]
        body += (
            f"<table><tr><td>our record</td><td><b>{html.escape(ours)}</b></td></tr>{theirs}"
            f"</table><div {appearing(delay)}>"
            f'<div class="ledger-verdict {tone}">{MARK[row.verdict]}</div>'
            f"<div>{html.escape(row.reason)}</div></div>"
        )
    return card("two ledgers: ours and the gateways'", body)


def gateway_record(row: LedgerRow, gateway: str, start: datetime | None) -> str:
    """A gateway's record of the payment in words: charged (and when), declined, cancelled."""
    record = row.records.get(gateway)
    if record is None:
        return "no charge"
    if record.charged:
        return (
            f"<b>charged {html.escape(str(record.amount))}</b> at {since(start, record.created_at)}"
        )
    return (
        "cancelled" if record.cancelled else f"declined ({html.escape(str(record.decline_reason))})"
    )


def steps_html(steps: Sequence[tuple[str, str]], unfold: bool = True) -> str:
    """Recovery's steps as a list whose items appear one after another (all at once when not
    `unfold`: recovery ran clicks ago)."""
    if not steps:
        return "<div><i>recovery has not run</i></div>"
    items = "".join(
        f"<li {appearing(index * STEP_SECONDS if unfold else None)}><b>{html.escape(step)}</b>: "
        f"{html.escape(text)}</li>"
        for index, (step, text) in enumerate(steps)
    )
    return f'<ol class="theatre-steps">{items}</ol>'


def audit_html(
    when: str, report: InvariantReport | None, charged: bool, delay: float | None
) -> str:
    """One audit, as `aegispay audit` computes it, said in words: what is wrong, or nothing."""
    if report is None:
        return f'<div class="audit">{html.escape(when)}: <i>not yet</i></div>'
    verdict = (
        f'<span class="bad">✘ {html.escape(broken_in_words(report, charged))}</span>'
        if report.violations
        else '<span class="ok">✔ nothing wrong: every check holds</span>'
    )
    return f"<div {appearing(delay, 'audit')}>{html.escape(when)}: {verdict}</div>"


def broken_in_words(report: InvariantReport, charged: bool) -> str:
    """What an audit found, in a viewer's words: a payment left half-way is told apart by
    whether money moved; other broken rules are said as the rule they break."""
    said = []
    for name in INVARIANTS:
        if not report.counts[name]:
            continue
        if name == "settled_matches_gateway" and charged:
            said.append("the gateway took money that our records do not call paid")
        elif name == "settled_matches_gateway":
            said.append("nobody was charged, but the payment is stuck half-way, unfinished")
        else:
            said.append(INVARIANTS[name].rstrip("."))
    return "; ".join(said)


def held(row: LedgerRow | None) -> tuple[str, str]:
    """What the gateways hold for the payment and what we hold, in words."""
    if row is None or row.payment is None:
        return "no charge", "no payment"
    charges = [r for r in row.records.values() if r.charged]
    theirs = f"charged {charges[0].amount}" if charges else "no charge"
    if len(charges) > 1:
        theirs = f"{len(charges)} charges"
    return theirs, str(row.payment.state)


def settled(opening: str, row: LedgerRow | None, report: InvariantReport) -> str:
    """The verdict once the payment should be settled: charged once and agreeing, or what
    is still wrong."""
    if row is not None and row.verdict == "agree" and not report.violations:
        theirs, _ = held(row)
        done = "charged once" if theirs.startswith("charged") else "not charged"
        return f"{opening} {done.capitalize()}, our records agree.".strip()
    charged = row is not None and held(row)[0] != "no charge"
    reason = broken_in_words(report, charged) or (row.reason if row else "no payment")
    return f"{opening} Not settled yet: {reason}.".strip()


def replay_html(recorded: Sequence[RecordedEvent], shown: int) -> str:
    """What the fold of the first `shown` events gives."""
    payment = replay(r.event for r in recorded[:shown])
    if payment is None:
        return f'<div class="theatre"><code>replay(events[:{shown}])</code> = no payment yet</div>'
    colour = STATE_FILL.get(payment.state, "#fde047")
    return (
        f'<div class="theatre">the state at version {shown}, folded from the first {shown} '
        f"event(s): <code>replay(events[:{shown}])</code> = "
        f'<b style="background:{colour};padding:0 4px">{payment.state}</b></div>'
    )
