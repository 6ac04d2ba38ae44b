"""The theatre's "remove a defense" mode: the shortest counterexample without it, played as lanes.

The theatre does not attack anything itself: it is handed `attacks`, a function from a defense's
name to a counterexample (`aegispay.labs.attack` fits, wired by the app notebook), and plays what
comes back as data: its lanes (`actors`) and its steps (`trace`: who acted, what happened,
towards whom, and whether that step broke the promise). The lanes are drawn in HTML, one column
per actor and one row per step, so their words keep the screen's type size on any window.
Play shows one step a second; Next step shows one more, for a presenter who talks over each.

    player = AttackPlayer(aegispay.labs.attack, verdict_widget, story_rows, redraw_story)
    player.defense.value = "fence"; player.play_button.click(); player.next_button.click()
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import ipywidgets as w

from aegispay.viz.theatre_panels import card, verdict_html

# How long apart the steps appear while playing.
PLAY_SECONDS = 1.0


class AttackStep(Protocol):
    """One step of a counterexample (`aegispay.labs.Step` is one)."""

    @property
    def actor(self) -> str: ...
    @property
    def sentence(self) -> str: ...
    @property
    def target(self) -> str | None: ...
    @property
    def breaking(self) -> bool: ...


class Counterexample(Protocol):
    """What an attack answers (`aegispay.labs.Verdict` is one): whether the promise held, over
    how many schedules, which promise broke, and the steps that broke it on their lanes."""

    @property
    def holds(self) -> bool: ...
    @property
    def tried(self) -> int: ...
    @property
    def promise(self) -> str | None: ...
    @property
    def note(self) -> str: ...
    @property
    def trace(self) -> Sequence[AttackStep]: ...
    @property
    def actors(self) -> Sequence[str]: ...


# The attack: a defense's name in, the engine attacked without it, its verdict out.
Attacks = Callable[[str], Counterexample]


class Timer(Protocol):
    def cancel(self) -> None: ...


# Call a function so many seconds from now; None when nothing can (no event loop running).
Later = Callable[[float, Callable[[], None]], Timer | None]


def event_loop_later(seconds: float, callback: Callable[[], None]) -> Timer | None:
    """The kernel's event loop calls back (as a click does, on its one thread)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return loop.call_later(seconds, callback)


# Each defense in the viewer's words, by the name the attack knows it by; and for a defense
# whose removal breaks nothing, why.
DEFENSE_WORDS: dict[str, str] = {
    "lock": "the payment lease (lock)",
    "idempotency_key": "the gateway's idempotency key",
    "fence": "the gateway's cancel fence",
    "expected_version": "the store's expected version",
    "verify_before_failure": "asking the gateway before writing FAILURE",
    "intent_first": "writing the intent before the charge",
}
WHY_IT_HOLDS: dict[str, str] = {
    "lock": "the store's expected version is the fence; the lock only saves duplicate work",
}

CSS = """<style>
.theatre .lanes-box{max-height:max(10rem,calc(100vh - 20rem));overflow-y:auto;display:flex;
  flex-direction:column-reverse}
.theatre .lanes{display:grid;grid-template-columns:repeat(var(--lanes),minmax(0,1fr));
  position:relative;padding-bottom:6px}
.theatre .lane-head{grid-row:1;text-align:center;font-weight:bold;background:#eef2f7;
  border:1px solid #5d6d7e;border-radius:8px;margin:0 3px 3px 3px;padding:2px 4px;
  position:sticky;top:0;z-index:2;box-shadow:0 0 0 3px #fff}
.theatre .lane-line{border-left:2px dashed #bbb;margin-left:50%;z-index:0}
.theatre .lane-say{text-align:center;padding:6px 4px 0 4px;z-index:1;color:#1f2937}
.theatre .lane-note{border:1px solid #5d6d7e;border-radius:8px;background:#fff;
  padding:2px 8px;margin:6px 3px 2px 0;z-index:1;color:#1f2937}
.theatre .arrow{height:14px;position:relative;z-index:1;color:#34495e}
.theatre .arrow::before{content:"";position:absolute;left:0;right:0;top:6px;
  border-top:2px solid currentColor}
.theatre .arrow.right::after,.theatre .arrow.left::after{content:"";position:absolute;top:0;
  border-top:7px solid transparent;border-bottom:7px solid transparent}
.theatre .arrow.right::after{right:-2px;border-left:13px solid currentColor}
.theatre .arrow.left::after{left:-2px;border-right:13px solid currentColor}
.theatre .breaks{color:#b91c1c;font-weight:bold}
.theatre .lane-say.breaks,.theatre .lane-note.breaks{background:#fee2e2;border-radius:8px}
.theatre .lane-note.breaks{border:3px solid #b91c1c}
.theatre .arrow.breaks::before{border-top-width:4px;top:5px}
.theatre .held{color:#15803d;font-weight:bold}
</style>"""


def lanes_html(actors: Sequence[str], trace: Sequence[AttackStep], shown: int) -> str:
    """The first `shown` steps on their lanes: a column per actor, under it a dashed lane; per
    step its sentence (numbered) over an arrow from actor to target, or in a box on the actor's
    lane when it acts alone; the breaking step in red with a ✘; the newest step fades in."""
    lanes = list(actors)
    count = len(lanes)
    cells = [
        f'<div class="lane-head" style="grid-column:{column + 1}">{html.escape(lane)}</div>'
        for column, lane in enumerate(lanes)
    ]
    if shown:
        cells += [
            f'<div class="lane-line" style="grid-column:{column + 1};'
            f'grid-row:2 / span {2 * shown}"></div>'
            for column in range(count)
        ]
    for index, step in enumerate(trace[:shown]):
        row = 2 + 2 * index
        source = lanes.index(step.actor)
        target = lanes.index(step.target) if step.target in lanes else source
        classes = ("breaks " if step.breaking else "") + ("step" if index == shown - 1 else "")
        words = f"{index + 1}. {'✘ ' if step.breaking else ''}{html.escape(step.sentence)}"
        if target == source:
            low, high = (source, source + 1) if source + 1 < count else (source - 1, source)
            side = "margin-left:25%" if low == source else "margin-right:25%;text-align:right"
            cells.append(
                f'<div class="lane-note {classes}" style="grid-row:{row};'
                f'grid-column:{low + 1} / {high + 2};{side}">{words}</div>'
            )
            continue
        low, high = min(source, target), max(source, target)
        half = f"calc(50% / {high - low + 1})"
        cells += [
            f'<div class="lane-say {classes}" style="grid-row:{row};'
            f'grid-column:{low + 1} / {high + 2}">{words}</div>',
            f'<div class="arrow {"right" if target > source else "left"} {classes}" '
            f'style="grid-row:{row + 1};grid-column:{low + 1} / {high + 2};'
            f'margin:0 {half}"></div>',
        ]
    return (
        f'<div class="lanes-box"><div class="lanes" style="--lanes:{count}">{"".join(cells)}'
        "</div></div>"
    )


class AttackPlayer:
    """The defense dropdown, Play and Next step, and the lanes they draw.

    It writes the theatre's `verdict` line; with a defense chosen it hides the `story` (the
    crash story's rows) and shows its lanes instead, and on every choice it calls `changed` (the
    theatre redraws itself and sets its buttons). Each defense is attacked once, on its first
    Play or Next step, and remembered.
    """

    def __init__(
        self,
        attacks: Attacks,
        verdict: w.HTML,
        story: Sequence[w.Box],
        changed: Callable[[], None],
        later: Later = event_loop_later,
    ) -> None:
        self.attacks, self.verdict, self.story, self.changed = attacks, verdict, story, changed
        self.later = later
        self.defense = w.Dropdown(
            options=[("none", "")] + [(words, name) for name, words in DEFENSE_WORDS.items()],
            value="", description="remove a defense", style={"description_width": "initial"},
            layout=w.Layout(width="auto", max_width="100%"),
        )  # fmt: skip
        self.defense.add_class("theatre-defense")
        self.play_button = w.Button(description="Play the attack", icon="play")
        self.next_button = w.Button(description="Next step", icon="step-forward")
        for button, action, name in (
            (self.play_button, self.play, "attack-play"),
            (self.next_button, self.next_step, "attack-next"),
        ):
            button.on_click(lambda _button, act=action: act())
            button.add_class(f"theatre-{name}")
            button.layout = w.Layout(width="auto", height="auto")
        self.lanes = w.HTML().add_class("theatre-lanes")
        self.lanes.layout = w.Layout(width="100%")
        self.controls = w.HBox(
            [self.defense, self.play_button, self.next_button],
            layout=w.Layout(flex_flow="row wrap", align_items="center", width="100%"),
        )
        self.found: dict[str, Counterexample] = {}
        self.shown = 0
        self.timer: Timer | None = None
        self.lanes.layout.display = "none"
        self.defense.observe(lambda _change: self.choose(), names="value")
        self._enable()

    @property
    def name(self) -> str | None:
        """The defense removed, or None."""
        value: Any = self.defense.value
        return value if isinstance(value, str) and value else None

    @property
    def words(self) -> str:
        return DEFENSE_WORDS.get(self.name or "", self.name or "")

    @property
    def playing(self) -> bool:
        return self.timer is not None

    def choose(self) -> None:
        """A defense chosen: the lanes, empty until played; none: back to the crash story."""
        self.pause()
        self.shown = 0
        self.lanes.layout.display = None if self.name else "none"
        for row in self.story:
            row.layout.display = "none" if self.name else None
        self.changed()
        self._enable()
        if self.name is None:
            return
        self.lanes.value = card(
            f"without {self.words}",
            "<div>The engine will be attacked with this defense removed: crashes at every "
            "boundary, a second process, lost answers, paused lease holders. Press Play the "
            "attack, or Next step to go one step at a time.</div>",
        )
        self.show(f"What breaks without {self.words}?", "Press Play the attack or Next step.")

    def counterexample(self) -> Counterexample:
        """The attack's answer for the chosen defense, computed on first asking."""
        name = self.name
        assert name is not None, "only asked with a defense chosen"
        if name not in self.found:
            self.show(
                f"Attacking the engine without {self.words}…",
                "Trying every schedule, shortest first: this takes seconds, the lock longest.",
            )
            self.found[name] = self.attacks(name)
        return self.found[name]

    def play(self) -> None:
        """Play (from the start, once the end was reached) one step a second; or pause."""
        if self.playing:
            self.pause()
            self.draw()
            return
        found = self.counterexample()
        if self.shown >= len(found.trace):
            self.shown = 0
        self.advance()

    def tick(self) -> None:
        """Called back while playing: the next step."""
        self.timer = None
        self.advance()

    def advance(self) -> None:
        """One more step, and while more are left the next one a second from now."""
        steps = len(self.counterexample().trace)
        self.shown = min(self.shown + 1, steps)
        if self.shown < steps:
            self.timer = self.later(PLAY_SECONDS, self.tick)
        self.draw()

    def next_step(self) -> None:
        """One more step, by hand (playing stops)."""
        self.pause()
        found = self.counterexample()
        self.shown = min(self.shown + 1, len(found.trace))
        self.draw()

    def show(self, verdict: str, narration: str) -> None:
        self.verdict.value = verdict_html(verdict, narration)

    def pause(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = None

    def draw(self) -> None:
        """The lanes so far, and the verdict: which promise broke once its step is shown."""
        found = self.counterexample()
        if found.holds:
            self.lanes.value = card(
                f"without {self.words}: no counterexample",
                f'<div class="held">✔ the promise held over {found.tried} schedules</div>'
                + (f"<div>{html.escape(found.note)}</div>" if found.note else ""),
            )
            why = WHY_IT_HOLDS.get(self.name or "")
            self.show(
                f"Nothing breaks without {self.words}" + (f": {why}." if why else "."),
                f"The attack tried {found.tried} schedules and every promise held.",
            )
            self._enable()
            return
        trace, shown = found.trace, self.shown
        self.lanes.value = card(
            f"without {self.words}: the shortest schedule that breaks it "
            f"(found among {found.tried} tried)",
            lanes_html(found.actors, trace, shown),
        )
        broke = next((i for i, step in enumerate(trace[:shown]) if step.breaking), None)
        verdict = (
            f"Without {self.words}: {found.promise}."
            if broke is not None
            else f"Without {self.words}: step {shown} of {len(trace)}, nothing broken yet."
        )
        if shown == 0:
            said = "Press Play the attack or Next step."
        elif shown - 1 == broke:
            said = f"Step {shown} breaks the promise: {trace[shown - 1].sentence}."
        elif shown == len(trace):
            said = f"The end: {len(trace)} steps. Press Play the attack to see it again."
        else:
            said = f"Step {shown} of {len(trace)}: {trace[shown - 1].sentence}."
        self.show(verdict, said)
        self._enable()

    def _enable(self) -> None:
        chosen = self.name is not None
        found = self.found.get(self.name or "")
        at_end = found is not None and (found.holds or self.shown >= len(found.trace))
        self.play_button.disabled = not chosen
        self.play_button.description = "Pause" if self.playing else "Play the attack"
        self.play_button.icon = "pause" if self.playing else "play"
        self.next_button.disabled = not chosen or at_end
