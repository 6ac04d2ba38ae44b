"""Graphviz diagrams drawn from TRANSITIONS, a payment's recorded events, breakers and leases.

Nothing here is drawn by hand: change the transition table and the picture changes with it.
`graphviz.Digraph` builds the DOT; `render_svg` draws it with whichever engine the machine has.
Each diagram lights what is true now (the payment's state, the breaker's position, the lease's
holder), so a widget that redraws after a click shows what the click changed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import graphviz

# The engine's tables and records these pictures read, in one place.
from aegispay.domain.events import PaymentEvent
from aegispay.domain.states import TRANSITIONS, PaymentState
from aegispay.orchestration.ports import RecordedEvent
from aegispay.resilience.breaker import BreakerState, CircuitBreaker
from aegispay.viz.rendering import Rendered, render_svg

TERMINAL_COLOUR = {PaymentState.SUCCESS: "#d8f3dc", PaymentState.FAILURE: "#ffd6d6"}
VISITED = "#e0e7ff"
# "You are here": the one fill no other node uses, with a bold border.
LIT = "#fde047"
TAKEN = "#1d4ed8"
# The focused picture's type (points) and the grey of what it fades.
FOCUS_FONT = "22"
FADED = "gray80"
# Graphviz scales a larger drawing down to this box (inches): 9.1 in is 655 pt, 873 px, so every
# diagram fits JupyterLab's output column (about 900 px at 1,366 px), however the tables grow.
MAX_SIZE = "9.1,10"


@dataclass(frozen=True)
class Step:
    """One event walked through the transition table: its version and the edge it took."""

    version: int
    source: PaymentState
    event: str
    target: PaymentState


def walk(history: Sequence[PaymentEvent] | Sequence[RecordedEvent]) -> list[Step]:
    """The edges a payment's events take through TRANSITIONS, each with its event's version.

    A plain list of events is taken as a whole stream, so its first event is version 1.
    The walk stops at an event the table does not allow from the state reached.
    """
    steps: list[Step] = []
    state = PaymentState.INITIATED
    for number, item in enumerate(history[1:], start=2):
        version, event = (
            (item.version, item.event) if isinstance(item, RecordedEvent) else (number, item)
        )
        target = TRANSITIONS[state].get(event.type)
        if target is None:
            break
        steps.append(Step(version, state, event.type, target))
        state = target
    return steps


def current_state(history: Sequence[PaymentEvent] | Sequence[RecordedEvent]) -> PaymentState | None:
    """The state the walk ends in; None for an empty history."""
    if not history:
        return None
    steps = walk(history)
    return steps[-1].target if steps else PaymentState.INITIATED


def state_machine_diagram(
    history: Sequence[PaymentEvent] | Sequence[RecordedEvent] = (),
    *,
    focus: bool = False,
) -> Rendered:
    """The payment state machine; with a payment's history its current state is lit (yellow,
    bold border) and the path it took is bold, each taken edge labelled with its versions.

    `focus=True` is for a room: the path taken in large type, every other edge faded and
    unlabelled, and the states not reached faded.
    """
    steps = walk(history)
    now = current_state(history)
    versions: dict[tuple[PaymentState, str, PaymentState], list[int]] = defaultdict(list)
    for step in steps:
        versions[(step.source, step.event, step.target)].append(step.version)
    visited = {PaymentState.INITIATED} if history else set()
    visited |= {step.target for step in steps}
    # Top to bottom: side by side, the edge labels out of PROCESSING push the terminal states
    # past a laptop screen's width.
    graph = graphviz.Digraph(
        "payment", graph_attr={"rankdir": "TB", "fontname": "Helvetica", "size": MAX_SIZE}
    )
    graph.attr("node", shape="box", style="rounded,filled", fillcolor="white", fontname="Helvetica")
    graph.attr("edge", fontname="Helvetica", fontsize="10")
    if focus:
        graph.attr("node", fontsize=FOCUS_FONT)
        graph.attr("edge", fontsize=FOCUS_FONT)
    for state in PaymentState:
        if state is now:
            graph.node(state.value, f"{state.value}\nnow", fillcolor=LIT, penwidth="3")
            continue
        colour = TERMINAL_COLOUR.get(state, VISITED if state in visited else "white")
        if focus and history and state not in visited:
            graph.node(state.value, fillcolor="white", color=FADED, fontcolor=FADED)
            continue
        graph.node(state.value, fillcolor=colour, penwidth="2" if state in visited else "1")
    for source, exits in TRANSITIONS.items():
        for event, target in exits.items():
            seen = versions.get((source, event, target))
            label = f"{', '.join(f'v{v}' for v in seen)}: {event}" if seen else event
            if focus and not seen:
                graph.edge(source.value, target.value, color=FADED, arrowsize="0.6")
                continue
            graph.edge(
                source.value, target.value, label=label,
                color=TAKEN if seen else "gray40", penwidth="2.5" if seen else "1",
                fontcolor=TAKEN if seen else "black",
            )  # fmt: skip
    return render_svg(graph.source)


BREAKER_FILL = {
    BreakerState.CLOSED: "#bbf7d0",
    BreakerState.OPEN: "#f87171",
    BreakerState.HALF_OPEN: "#fde68a",
}
BREAKER_SAYS = {
    BreakerState.CLOSED: "calls pass",
    BreakerState.OPEN: "calls refused",
    BreakerState.HALF_OPEN: "one probe",
}
# How the line from the breaker to its gateway is drawn: label, style, colour, arrowhead.
LINK = {
    BreakerState.CLOSED: ("connected", "solid", "#15803d", "normal"),
    BreakerState.OPEN: ("disconnected", "dashed", "#dc2626", "tee"),
    BreakerState.HALF_OPEN: ("one probe", "dashed", "#b45309", "normal"),
}


def breaker_diagram(
    breaker: CircuitBreaker, now: datetime | None = None, gateway_note: str = ""
) -> Rendered:
    """A breaker's three states, the current one filled and labelled, each edge with how often it
    was taken, and the gateway behind it: connected when CLOSED, disconnected when OPEN.

    Given the clock's `now`, an open breaker also says how long until its probe; a
    `gateway_note` (the faults injected there, say) is written in the gateway's box.
    """
    counts = Counter((t.source, t.target) for t in breaker.transitions)
    graph = graphviz.Digraph(
        f"breaker-{breaker.name}",
        graph_attr={"rankdir": "LR", "size": MAX_SIZE, "label": breaker_title(breaker, now),
                    "labelloc": "t", "fontname": "Helvetica", "fontsize": "14"},
    )  # fmt: skip
    graph.attr("node", shape="circle", style="filled", fontname="Helvetica", fixedsize="true",
               width="1.15", fontsize="11", fillcolor="white")  # fmt: skip
    graph.attr("edge", fontname="Helvetica", fontsize="10")
    for state in BreakerState:
        if state is breaker.state:
            label = f"{state.value}\n{BREAKER_SAYS[state]}"
            graph.node(state.value, label, fillcolor=BREAKER_FILL[state], penwidth="3")
        else:
            graph.node(state.value, penwidth="1")
    threshold = breaker.config.failure_threshold
    for source, target, rule in (
        (BreakerState.CLOSED, BreakerState.OPEN, f"{threshold} failures in a row"),
        (BreakerState.OPEN, BreakerState.HALF_OPEN, f"{breaker.config.timeout:g}s later"),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED, "probe succeeds"),
        (BreakerState.HALF_OPEN, BreakerState.OPEN, "probe fails"),
    ):
        seen = counts[(source, target)]
        graph.edge(source.value, target.value, label=f"{rule}\n{seen} times",
                   color=TAKEN if seen else "gray40", penwidth="2" if seen else "1")  # fmt: skip
    said, style, colour, head = LINK[breaker.state]
    down = breaker.state is BreakerState.OPEN
    graph.node(
        "gateway", "\n".join(filter(None, ("gateway", breaker.name, gateway_note))),
        shape="box", fixedsize="false", style="rounded,filled,dashed" if down else "rounded,filled",
        fillcolor="#f3f4f6" if down else "white", fontcolor="gray40" if down else "black",
    )  # fmt: skip
    graph.edge(breaker.state.value, "gateway", label=said, style=style, color=colour,
               fontcolor=colour, arrowhead=head, penwidth="2")  # fmt: skip
    return render_svg(graph.source)


def breaker_title(breaker: CircuitBreaker, now: datetime | None = None) -> str:
    """The breaker's name and, when it is open and the time is known, how long until its probe."""
    title = f"breaker of {breaker.name}"
    opened = [t.at for t in breaker.transitions if t.target is BreakerState.OPEN]
    if now is None or breaker.state is not BreakerState.OPEN or not opened:
        return title
    left = (opened[-1] + timedelta(seconds=breaker.config.timeout) - now).total_seconds()
    if left > 0:
        return f"{title} · clock {now:%H:%M:%S} · open {left:.0f} s more, then one probe"
    return f"{title} · clock {now:%H:%M:%S} · cool-down over: the next call is the probe"


STATE_FILL = {
    **TERMINAL_COLOUR,
    PaymentState.UNKNOWN: "#fde68a",
    PaymentState.CANCELLING: "#fde68a",
}
SHOWN_FIELDS = ("gateway", "transaction_id", "reason")


def event_timeline(recorded: Sequence[RecordedEvent]) -> Rendered:
    """A payment's stored events top to bottom, each with its version, its global position in the
    store, its time and type, filled by the state it led to; the newest has a bold border."""
    graph = graphviz.Digraph(
        "timeline", graph_attr={"rankdir": "TB", "size": MAX_SIZE, "fontname": "Helvetica"}
    )
    graph.attr("node", shape="box", style="rounded,filled", fillcolor="white", fontname="Helvetica",
               fontsize="11", width="3.2")  # fmt: skip
    graph.attr("edge", color="gray40", arrowsize="0.6")
    if not recorded:
        graph.node("empty", "no events recorded yet", style="dashed")
        return render_svg(graph.source)
    led_to = {step.version: step.target for step in walk(recorded)}
    for index, item in enumerate(recorded):
        detail = "\n".join(_detail(item.event))
        graph.node(
            f"v{item.version}",
            f"v{item.version} · position {item.position} · {item.event.occurred_at:%H:%M:%S}\n"
            f"{item.event.type}" + (f"\n{detail}" if detail else ""),
            fillcolor=STATE_FILL.get(led_to.get(item.version, PaymentState.INITIATED), "white"),
            penwidth="3" if index == len(recorded) - 1 else "1",
        )
        if index:
            graph.edge(f"v{recorded[index - 1].version}", f"v{item.version}")
    return render_svg(graph.source)


def _detail(event: PaymentEvent) -> list[str]:
    """The fields of an event that tell its story, shortened to fit a box."""
    fields = event.model_dump()
    lines = []
    for name in SHOWN_FIELDS:
        value = fields.get(name)
        if value:
            text = str(value)
            lines.append(f"{name}={text[:16] + '…' if len(text) > 17 else text}")
    return lines


@dataclass(frozen=True)
class LeaseWindow:
    """A lease as its taker was granted it: who took it, when, and until when."""

    owner: str
    taken_at: datetime
    expires_at: datetime


BAR_POINTS = 480
# A segment is never narrower than its words; a sliver of a second still shows.
MIN_POINTS = 72


def lease_diagram(
    resource: str, holder: str | None, now: datetime, lease: LeaseWindow | None = None
) -> Rendered:
    """A lock as a bar on the clock: who holds `resource` now (the lock manager's answer), and,
    when the lease's grant is known, how much of it has run and how much is left before expiry."""
    title = f"{resource}: held by {holder}" if holder else f"{resource}: free"
    if lease is None or (holder is not None and holder != lease.owner):
        said = "held; expiry not known to this view" if holder else "nobody holds it"
        cells = [("#bbf7d0" if holder else "#e5e7eb", BAR_POINTS, said)]
        ticks = f"now {now:%H:%M:%S}"
    else:
        cells, ticks = _lease_cells(lease, holder, now)
    # Segments side by side, each as wide as its share of the time: a bar drawn with boxes, as
    # Graphviz in WebAssembly has no HTML-like labels (no tables) to draw one with.
    graph = graphviz.Digraph(
        "lease",
        graph_attr={"rankdir": "LR", "ranksep": "0", "size": MAX_SIZE, "fontname": "Helvetica",
                    "fontsize": "12", "label": f"{title}\n{ticks}", "labelloc": "t"},
    )  # fmt: skip
    graph.attr("node", shape="box", style="filled", height="0.45", fontname="Helvetica",
               fontsize="11")  # fmt: skip
    for index, (colour, points, text) in enumerate(cells):
        graph.node(f"part{index}", text, width=f"{points / 72:.2f}", fillcolor=colour)
        if index:
            graph.edge(f"part{index - 1}", f"part{index}", style="invis")
    return render_svg(graph.source)


def _lease_cells(
    lease: LeaseWindow, holder: str | None, now: datetime
) -> tuple[list[tuple[str, int, str]], str]:
    """The bar's cells (colour, width, text) and its line of times, for a lease we know."""
    held = (min(now, lease.expires_at) - lease.taken_at).total_seconds()
    span = max((max(now, lease.expires_at) - lease.taken_at).total_seconds(), 1e-9)
    ticks = (
        f"taken {lease.taken_at:%H:%M:%S} · now {now:%H:%M:%S} · "
        f"expires {lease.expires_at:%H:%M:%S}"
    )

    def width(seconds: float) -> int:
        return max(MIN_POINTS, round(BAR_POINTS * seconds / span))

    if holder == lease.owner:
        left = (lease.expires_at - now).total_seconds()
        return [("#22c55e", width(held), f"{held:g} s held"),
                ("#bbf7d0", width(left), f"{left:g} s left")], ticks  # fmt: skip
    if now >= lease.expires_at:
        late = (now - lease.expires_at).total_seconds()
        return [("#d1d5db", width(held), f"{lease.owner}: {held:g} s"),
                ("#f87171", width(late), f"expired {late:g} s ago")], ticks  # fmt: skip
    return [("#d1d5db", BAR_POINTS, f"released by {lease.owner}")], ticks


def event_table(events: Sequence[RecordedEvent]) -> str:
    """A payment's recorded events as aligned lines: stored version, time, type, telling field."""
    lines = []
    for recorded in events:
        version, event = recorded.version, recorded.event
        detail = {
            k: v for k, v in event.model_dump().items()
            if k in ("gateway", "transaction_id", "reason")
        }  # fmt: skip
        shown = " ".join(f"{k}={v}" for k, v in detail.items())
        lines.append(
            f"v{version:<2} {event.occurred_at:%H:%M:%S} {event.type:<22} {shown}".rstrip()
        )
    return "\n".join(lines)
