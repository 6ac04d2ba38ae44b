"""A verdict: whether the promise held, and if not the shortest schedule that broke it, as lanes.

The counterexample is plain data, so any face can play it: `Verdict.trace` is a tuple of
`Step(actor, sentence, target, breaking)`, one per step, in order, the step that broke the
promise marked. In a notebook the verdict draws itself as a lane diagram (one lane per actor,
one arrow per step, as Maelstrom's Lamport diagrams are), SVG with a PNG beside it; `str()` is
its text form for the terminal and for nbval.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import NamedTuple

from aegispay.viz.rendering import Rendered, render_svg

# The lanes, left to right, in the viewer's words.
LANES: tuple[str, ...] = (
    "client", "process A", "process B", "recovery", "event store", "gateway",
)  # fmt: skip
# Lab actors that are none of the lanes above get lanes of their own, after these.
BROKE = "#c0392b"
HELD = "#1e8449"


class Step(NamedTuple):
    """One step of a counterexample: who acted, what happened, towards whom, and if it broke."""

    actor: str
    sentence: str
    target: str | None = None
    breaking: bool = False


@dataclass(frozen=True)
class Verdict:
    """What an attack found: `holds`, how many schedules it `tried`, the `promise` that broke."""

    holds: bool
    tried: int
    promise: str | None = None
    trace: tuple[Step, ...] = ()
    subject: str = ""
    note: str = ""
    schedule: tuple[str, ...] = field(default=())

    @property
    def steps(self) -> list[str]:
        """The counterexample, one plain sentence per step (empty when the promise held)."""
        return [step.sentence for step in self.trace]

    @property
    def actors(self) -> list[str]:
        """The lanes the counterexample uses, in lane order."""
        used = {step.actor for step in self.trace} | {s.target for s in self.trace if s.target}
        known = [lane for lane in LANES if lane in used]
        return known + sorted(used - set(LANES))

    @property
    def headline(self) -> str:
        """The verdict in one line: what was attacked, and whether it held."""
        subject = f"{self.subject}: " if self.subject else ""
        if self.holds:
            return f"{subject}holds over {self.tried} schedules"
        return (
            f"{subject}broke after {self.tried} schedules: {self.promise} "
            f"(shortest counterexample, {len(self.trace)} steps)"
        )

    def __str__(self) -> str:
        lines = [self.headline]
        lines += [
            f"  {number:2}. {step.sentence}" + ("   <- the promise breaks here" * step.breaking)
            for number, step in enumerate(self.trace, start=1)
        ]
        if self.note:
            lines.append(f"  note: {self.note}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def diagram(self) -> Rendered:
        """The counterexample as a lane diagram, drawn by Graphviz (the headline alone if held)."""
        return render_svg(lanes_dot(self))

    def _repr_svg_(self) -> str | None:
        return self.diagram()._repr_svg_()

    def _repr_png_(self) -> bytes | None:
        return self.diagram()._repr_png_()

    def _repr_pretty_(self, printer: object, cycle: bool) -> None:
        text = getattr(printer, "text", None)
        if callable(text):
            text(str(self))


def lanes_dot(verdict: Verdict) -> str:
    """DOT for a lane diagram: a column per actor, a row per step, an arrow or a mark per step."""
    lanes = verdict.actors
    colour = HELD if verdict.holds else BROKE
    lines = [
        "digraph verdict {",
        '  graph [rankdir=TB, nodesep=0.25, ranksep=0.18, fontname="DejaVu Sans", '
        f'labelloc=t, fontsize=22, fontcolor="{colour}", label="{_escape(verdict.headline)}"];',
        '  node [shape=point, width=0.06, color="#888888", fontname="DejaVu Sans"];',
        '  edge [fontname="DejaVu Sans", fontsize=14, arrowsize=0.7];',
    ]
    rows = len(verdict.trace)
    for column, lane in enumerate(lanes):
        lines.append(
            f'  h{column} [shape=box, style="rounded,filled", fillcolor="#eef2f7", '
            f'color="#5d6d7e", fontsize=16, width=1.6, label="{_escape(lane)}"];'
        )
        chain = [f"h{column}"] + [f"p{row}_{column}" for row in range(rows)]
        for row in range(rows):
            lines.append(f'  p{row}_{column} [label="", width=0.04];')
        if rows:
            lines.append(f'  {" -> ".join(chain)} [arrowhead=none, color="#bbbbbb", style=dashed];')
    for row, step in enumerate(verdict.trace):
        lines.append(f"  {{rank=same; {' '.join(f'p{row}_{c}' for c in range(len(lanes)))}}}")
        source = lanes.index(step.actor)
        target = lanes.index(step.target) if step.target in lanes else source
        paint = BROKE if step.breaking else "#34495e"
        words = _escape(("✘ " if step.breaking else "") + step.sentence)
        width = ", penwidth=2.5" if step.breaking else ""
        if target == source:
            lines.append(
                f'  p{row}_{source} [shape=box, style="rounded", width=0, height=0, '
                f'fontsize=14, fontcolor="{paint}", color="{paint}", label="{words}"];'
            )
        else:
            lines.append(
                f'  p{row}_{source} -> p{row}_{target} [label="{words}", color="{paint}", '
                f'fontcolor="{paint}", constraint=false{width}];'
            )
    lines.append("}")
    return "\n".join(lines)


def _escape(text: str) -> str:
    """Text safe inside a DOT double-quoted label, wrapped near 48 characters."""
    words, lines, line = html.unescape(text).split(), [], ""
    for word in words:
        if line and len(line) + len(word) > 48:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    return "\\n".join(part.replace("\\", "\\\\").replace('"', '\\"') for part in lines)
