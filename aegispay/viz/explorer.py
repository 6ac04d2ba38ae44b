"""One screen of pictures for one engine: a payment's state and events, both ledgers, the
breakers and the payment's lock, redrawn from the engine by `refresh()`.

`Snapshot` gives every composite widget a static HTML picture of itself, shown where no kernel
runs the widget (a saved notebook, nbval, a rendered page) instead of a widget's raw text.
`guarded` and `LogView` are the pieces every widget shares: a callback whose failure is said in
the widget, and a log whose newest line is always in view.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import ipywidgets as w

from aegispay.orchestration.ports import RecordedEvent
from aegispay.sim.crashpoints import ProcessCrash
from aegispay.sim.harness import AegisPay
from aegispay.viz.diagrams import (
    LeaseWindow,
    breaker_diagram,
    current_state,
    event_timeline,
    lease_diagram,
    state_machine_diagram,
)
from aegispay.viz.ledgers import ledger_rows, ledgers_table
from aegispay.viz.rendering import Rendered, static_html

# Pictures sit side by side while they fit and wrap below each other on a narrower screen.
ROW = w.Layout(display="flex", flex_flow="row wrap", align_items="flex-start")
ROW_CSS = "display:flex;flex-flow:row wrap;align-items:flex-start;gap:12px"
# Controls as wide as their words: ipywidgets' fixed widths cut a label off mid-word.
AS_WIDE_AS_ITS_WORDS: dict[str, Any] = {"layout": {"width": "auto"}}
LABELLED: dict[str, Any] = {"style": {"description_width": "initial"}}
TOGGLES: dict[str, Any] = {"style": {"description_width": "initial", "button_width": "auto"}}
# The most ledger rows an explorer lists: the chosen payment first, then those not agreeing.
LEDGER_ROWS = 8


class Snapshot:
    """Shows `self.widget` live in a kernel, and `snapshot_html()` as its HTML fallback."""

    widget: w.Box

    def snapshot_html(self) -> str:
        """The widget's pictures as they are now, as static HTML."""
        raise NotImplementedError

    def summary(self) -> str:
        """One line of plain text standing for the widget."""
        return f"<{type(self).__name__}>"

    def _repr_html_(self) -> str:
        return static_html(self.snapshot_html())

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle: dict[str, Any] = dict(self.widget._repr_mimebundle_(**kwargs) or {})
        bundle["text/html"] = static_html(self.snapshot_html())
        bundle["text/plain"] = self.summary()
        return bundle


def pictures_html(*parts: str) -> str:
    """Pictures (SVG or HTML) in a row that wraps, as one block of HTML."""
    return f'<div style="{ROW_CSS}">{"".join(f"<div>{part}</div>" for part in parts)}</div>'


def error_html(error: BaseException) -> str:
    """A failure as the line a widget shows in place of its status."""
    said = html.escape(f"{type(error).__name__}: {error}")
    return f'<span style="color:#b91c1c;font-size:14px"><b>that click failed</b>: {said}</span>'


def guarded(status: w.HTML, action: Callable[[], object]) -> Callable[..., None]:
    """A widget callback running `action`; a failure is written into `status`, in the widget."""

    def callback(*_args: object) -> None:
        try:
            action()
        # A click's failure must show where the viewer looks, never only in the log console.
        except (Exception, ProcessCrash) as error:
            status.value = error_html(error)

    return callback


class LogView:
    """A widget's log, oldest line first, scrolled so that the newest line is always in view."""

    # A column laid out in reverse starts scrolled to its end: the newest line stays in view.
    BOX = (
        "display:flex;flex-direction:column-reverse;max-height:9em;overflow-y:auto;"
        "font:14px/1.45 monospace;white-space:pre-wrap;border:1px solid #d1d5db;padding:4px 8px"
    )

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.widget = w.HTML(self.html(), layout={"width": "100%"})

    @property
    def text(self) -> str:
        """Every line, oldest first, one a line."""
        return "".join(f"{line}\n" for line in self.lines)

    def say(self, line: str) -> None:
        """Append a line, and redraw."""
        self.lines.append(line)
        self.widget.value = self.html()

    def html(self) -> str:
        """The log as HTML that needs no kernel."""
        shown = html.escape(self.text) or "<i>nothing yet</i>"
        return f'<div style="{self.BOX}"><div>{shown}</div></div>'


class PaymentExplorer(Snapshot):
    """A payment's state machine and event timeline, both ledgers, every breaker and the
    payment's lock; `refresh()` redraws them all after anything changed the engine, and the
    slider replays the payment's first events only, to step back through its history.

        explorer = PaymentExplorer(pay)     # shows the newest payment
        pay.process_payment(p.id); explorer.show(p.id)
        explorer.replayed.value = 2         # its state after its first two events
        explorer                            # the live widget, or its pictures without a kernel
    """

    def __init__(self, pay: AegisPay, payment_id: str | None = None) -> None:
        self.pay = pay
        self.payment_id = payment_id
        # Leases whose grant a widget saw (by resource): the lock manager tells only the holder.
        self.leases: dict[str, LeaseWindow] = {}
        self.chooser = w.Dropdown(description="payment", layout={"width": "auto"}, **LABELLED)
        self.replayed = w.IntSlider(description="events replayed", min=0, max=0,
                                    continuous_update=False, layout={"width": "26em"},
                                    **LABELLED)  # fmt: skip
        self.status = w.HTML()
        self.state_picture = w.HTML()
        self.timeline_picture = w.HTML()
        self.ledgers = w.HTML()
        self.breaker_pictures = w.HTML()
        self.lease_picture = w.HTML()
        self._on_choice = guarded(self.status, lambda: self.show(self.chooser.value))
        self._on_replay = guarded(self.status, self._draw_history)
        self.chooser.observe(self._on_choice, names="value")
        self.replayed.observe(self._on_replay, names="value")
        self.widget = w.VBox([
            w.HBox([self.chooser, self.replayed], layout=ROW), self.status,
            w.Box([self.state_picture, self.timeline_picture], layout=ROW),
            self.ledgers, self.lease_picture, self.breaker_pictures,
        ])  # fmt: skip
        self.refresh()

    def show(self, payment_id: str | None) -> None:
        """Look at another payment, and redraw."""
        if payment_id is not None:
            self.payment_id = payment_id
            self.refresh()

    def refresh(self) -> None:
        """Redraw every picture from the engine as it is now, with every event replayed."""
        streams = self.pay.event_store.stream_ids()
        if self.payment_id is None and streams:
            self.payment_id = streams[-1]
        recorded = self._recorded()
        with self._held_off():
            self.chooser.options = streams
            self.chooser.value = self.payment_id
            self.replayed.min = 0
            self.replayed.max = len(recorded)
            self.replayed.min = min(1, len(recorded))
            self.replayed.value = len(recorded)
        self._draw_history()
        rows = ledger_rows(self.pay)
        self.ledgers.value = ledgers_table(
            rows, list(self.pay.gateways), focus=self.payment_id, limit=LEDGER_ROWS
        )
        self.breaker_pictures.value = pictures_html(*(
            breaker_diagram(self.pay.circuit_breaker(name), now=self.pay.clock.now()).as_html()
            for name in self.pay.gateways
        ))  # fmt: skip
        self.lease_picture.value = self._lease().as_html()

    @property
    def state(self) -> str:
        """The state the shown payment is in, per its events ("" when there is none)."""
        if self.payment_id is None:
            return ""
        return str(current_state(self.pay.event_store.read(self.payment_id)) or "")

    def _recorded(self) -> list[RecordedEvent]:
        return list(self.pay.event_store.read(self.payment_id)) if self.payment_id else []

    @contextmanager
    def _held_off(self) -> Iterator[None]:
        # Setting the controls from the engine must not call back into another redraw.
        self.chooser.unobserve(self._on_choice, names="value")
        self.replayed.unobserve(self._on_replay, names="value")
        try:
            yield
        finally:
            self.chooser.observe(self._on_choice, names="value")
            self.replayed.observe(self._on_replay, names="value")

    def _draw_history(self) -> None:
        """Draw the state machine and timeline from the payment's first `replayed` events."""
        recorded = self._recorded()
        shown = recorded[: self.replayed.value]
        self.state_picture.value = state_machine_diagram(shown).as_html()
        self.timeline_picture.value = event_timeline(shown).as_html()
        if not recorded:
            self.status.value = "no payment yet"
            return
        state = current_state(shown)
        later = len(recorded) - len(shown)
        self.status.value = (
            f"<b>{state}</b> after v{len(shown)}, its newest event"
            if not later
            else f"<b>{state}</b> after v{len(shown)}: stepped back, {later} later event(s) "
            "not replayed (slide right to see them)"
        )

    def _lease(self) -> Rendered:
        resource = f"payment:{self.payment_id}" if self.payment_id else "payment:(none yet)"
        holder = self.pay.locks.holder(resource) if self.payment_id else None
        return lease_diagram(resource, holder, self.pay.clock.now(), self.leases.get(resource))

    def snapshot_html(self) -> str:
        """The explorer's pictures as they are now."""
        shown = html.escape(self.payment_id or "none yet")
        pictures: list[str] = [
            self.ledgers.value, self.lease_picture.value, self.breaker_pictures.value
        ]  # fmt: skip
        return (
            f"<p><b>payment</b> <code>{shown}</code> · {self.status.value}</p>"
            + pictures_html(self.state_picture.value, self.timeline_picture.value)
            + "".join(pictures)
        )

    def summary(self) -> str:
        """The shown payment and its state."""
        shown = " ".join(filter(None, (self.payment_id or "no payment yet", self.state)))
        return f"<PaymentExplorer: {shown}>"
