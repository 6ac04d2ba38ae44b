"""Graphviz diagrams drawn from TRANSITIONS, a payment's events and a breaker's transitions.

Nothing here is drawn by hand: change the transition table and the picture changes with it.
`graphviz.Digraph` builds the DOT; `render_svg` draws it with whichever engine the machine has.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import graphviz

from aegispay.domain.states import TRANSITIONS, PaymentState
from aegispay.orchestration.ports import RecordedEvent
from aegispay.resilience.breaker import BreakerState, CircuitBreaker
from aegispay.viz.rendering import Rendered, render_svg

TERMINAL_COLOUR = {PaymentState.SUCCESS: "#d8f3dc", PaymentState.FAILURE: "#ffd6d6"}
TAKEN = "#1d4ed8"
# Graphviz scales a larger drawing down to this box (inches): 10 in is 720 pt, 960 px, so every
# diagram fits a 1,366 px laptop screen beside the notebook's margins, however the tables grow.
MAX_SIZE = "10,10"


def state_machine_diagram(events: Sequence[RecordedEvent] = ()) -> Rendered:
    """The payment state machine; with a payment's recorded events, its path is drawn bold."""
    taken = _path(events)
    # Top to bottom: side by side, the edge labels out of PROCESSING push the terminal states
    # past a laptop screen's width.
    graph = graphviz.Digraph(
        "payment", graph_attr={"rankdir": "TB", "fontname": "Helvetica", "size": MAX_SIZE}
    )
    graph.attr("node", shape="box", style="rounded,filled", fillcolor="white", fontname="Helvetica")
    graph.attr("edge", fontname="Helvetica", fontsize="10")
    for state in PaymentState:
        visited = any(state in edge[::2] for edge in taken)
        colour = TERMINAL_COLOUR.get(state, "#e0e7ff" if visited else "white")
        graph.node(state.value, fillcolor=colour, penwidth="2" if visited else "1")
    for source, exits in TRANSITIONS.items():
        for event, target in exits.items():
            bold = (source, event, target) in taken
            graph.edge(
                source.value, target.value, label=event,
                color=TAKEN if bold else "gray40", penwidth="2.5" if bold else "1",
                fontcolor=TAKEN if bold else "black",
            )  # fmt: skip
    return render_svg(graph.source)


def _path(events: Sequence[RecordedEvent]) -> set[tuple[PaymentState, str, PaymentState]]:
    """The (state, event, next state) edges a sequence of events walks through the table."""
    state = PaymentState.INITIATED
    edges: set[tuple[PaymentState, str, PaymentState]] = set()
    for recorded in events[1:]:
        target = TRANSITIONS[state].get(recorded.event.type)
        if target is None:
            break
        edges.add((state, recorded.event.type, target))
        state = target
    return edges


def breaker_diagram(breaker: CircuitBreaker) -> Rendered:
    """A breaker's three states, the current one filled, each edge with how often it was taken."""
    counts = Counter((t.source, t.target) for t in breaker.transitions)
    graph = graphviz.Digraph(
        f"breaker-{breaker.name}", graph_attr={"rankdir": "LR", "size": MAX_SIZE}
    )
    graph.attr("node", shape="circle", style="filled", fontname="Helvetica", fixedsize="true",
               width="1.3")  # fmt: skip
    graph.attr("edge", fontname="Helvetica", fontsize="10")
    colours = {BreakerState.CLOSED: "#d8f3dc", BreakerState.OPEN: "#ffd6d6",
               BreakerState.HALF_OPEN: "#fff3bf"}  # fmt: skip
    for state in BreakerState:
        current = state is breaker.state
        graph.node(state.value, fillcolor=colours[state] if current else "white",
                   penwidth="3" if current else "1")  # fmt: skip
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
    return render_svg(graph.source)


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
