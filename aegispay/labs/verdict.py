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


# Points between two lanes, and between two steps, in the picture.
LANE_GAP, ROW_GAP = 160, 44


def lanes_dot(verdict: Verdict) -> str:
    """DOT for a lane diagram: a column per actor, a row per step, an arrow or a note per step.

    Every point is pinned (neato with `pos`), so the lanes stay straight however long a label.
    """
    lanes = verdict.actors
    colour = HELD if verdict.holds else BROKE
    lines = [
        "digraph verdict {",
        # At most 9 inches (864 px) wide: a wider picture is scaled down to fit JupyterLab's column.
        '  graph [layout=neato, inputscale=72, splines=false, size="9,100", labelloc=t, '
        'fontname="DejaVu Sans", '
        f'fontsize=22, fontcolor="{colour}", label="{_escape(verdict.headline)}"];',
        '  node [shape=point, width=0.05, color="#aaaaaa", fontname="DejaVu Sans"];',
        '  edge [fontname="DejaVu Sans", fontsize=14, arrowsize=0.7];',
    ]
    bottom = -(len(verdict.trace) + 1) * ROW_GAP
    for column, lane in enumerate(lanes):
        x = column * LANE_GAP
        lines += [
            f'  h{column} [shape=box, style="rounded,filled", fillcolor="#eef2f7", '
            f'color="#5d6d7e", fontsize=16, width=1.7, pos="{x},0!", label="{_escape(lane)}"];',
            f'  end{column} [pos="{x},{bottom}!", width=0.01];',
            f'  h{column} -> end{column} [arrowhead=none, color="#bbbbbb", style=dashed];',
        ]
    for row, step in enumerate(verdict.trace):
        y = -(row + 1) * ROW_GAP
        source = lanes.index(step.actor)
        target = lanes.index(step.target) if step.target in lanes else source
        paint = BROKE if step.breaking else "#34495e"
        words = _escape(("✘ " if step.breaking else "") + step.sentence)
        bold = ", penwidth=2.5" if step.breaking else ""
        if target == source:
            lines.append(
                f'  n{row} [shape=box, style="rounded,filled", fillcolor=white, fontsize=14, '
                f'fontcolor="{paint}", color="{paint}"{bold}, pos="{source * LANE_GAP},{y}!", '
                f'label="{words}"];'
            )
            continue
        lines += [
            f'  a{row} [pos="{source * LANE_GAP},{y}!"];',
            f'  b{row} [pos="{target * LANE_GAP},{y}!"];',
            f'  a{row} -> b{row} [label="{words}", color="{paint}", fontcolor="{paint}"{bold}];',
        ]
    lines.append("}")
    return "\n".join(lines)


def _escape(text: str) -> str:
    """Text safe inside a DOT double-quoted label, wrapped near 40 characters."""
    words, lines, line = html.unescape(text).split(), [], ""
    for word in words:
        if line and len(line) + len(word) > 40:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    return "\\n".join(part.replace("\\", "\\\\").replace('"', '\\"') for part in lines)
