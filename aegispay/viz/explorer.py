"""One screen of pictures for one engine: a payment's state and events, both ledgers, the
breakers and the payment's lock, redrawn from the engine by `refresh()`.

`Snapshot` gives every composite widget a static HTML picture of itself, shown where no kernel
runs the widget (a saved notebook, nbval, a rendered page) instead of a widget's raw text.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w

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


class PaymentExplorer(Snapshot):
    """A payment's state machine and event timeline, both ledgers, every breaker and the
    payment's lock; `refresh()` redraws them all after anything changed the engine.

        explorer = PaymentExplorer(pay)     # shows the newest payment
        pay.process_payment(p.id); explorer.show(p.id)
        explorer                            # the live widget, or its pictures without a kernel
    """

    def __init__(self, pay: AegisPay, payment_id: str | None = None) -> None:
        self.pay = pay
        self.payment_id = payment_id
        # Leases whose grant a widget saw (by resource): the lock manager tells only the holder.
        self.leases: dict[str, LeaseWindow] = {}
        self.chooser = w.Dropdown(description="payment")
        self.state_picture = w.HTML()
        self.timeline_picture = w.HTML()
        self.ledgers = w.HTML()
        self.breaker_pictures = w.HTML()
        self.lease_picture = w.HTML()
        self.chooser.observe(self._chosen, names="value")
        self.widget = w.VBox([
            self.chooser,
            w.Box([self.state_picture, self.timeline_picture], layout=ROW),
            self.ledgers, self.lease_picture, self.breaker_pictures,
        ])  # fmt: skip
        self.refresh()

    def show(self, payment_id: str) -> None:
        """Look at another payment, and redraw."""
        self.payment_id = payment_id
        self.refresh()

    def refresh(self) -> None:
        """Redraw every picture from the engine as it is now."""
        streams = self.pay.event_store.stream_ids()
        if self.payment_id is None and streams:
            self.payment_id = streams[-1]
        self._choices(streams)
        recorded = self.pay.event_store.read(self.payment_id) if self.payment_id else []
        self.state_picture.value = state_machine_diagram(recorded).as_html()
        self.timeline_picture.value = event_timeline(recorded).as_html()
        self.ledgers.value = ledgers_table(ledger_rows(self.pay), list(self.pay.gateways))
        self.breaker_pictures.value = pictures_html(*(
            breaker_diagram(self.pay.circuit_breaker(name)).as_html() for name in self.pay.gateways
        ))  # fmt: skip
        self.lease_picture.value = self._lease().as_html()

    @property
    def state(self) -> str:
        """The state the shown payment is in, per its events ("" when there is none)."""
        if self.payment_id is None:
            return ""
        return str(current_state(self.pay.event_store.read(self.payment_id)) or "")

    def _lease(self) -> Rendered:
        resource = f"payment:{self.payment_id}" if self.payment_id else "payment:(none yet)"
        holder = self.pay.locks.holder(resource) if self.payment_id else None
        return lease_diagram(resource, holder, self.pay.clock.now(), self.leases.get(resource))

    def _choices(self, streams: list[str]) -> None:
        # Setting options resets the value, which would call back into refresh: hold it off.
        self.chooser.unobserve(self._chosen, names="value")
        self.chooser.options = streams
        self.chooser.value = self.payment_id
        self.chooser.observe(self._chosen, names="value")

    def _chosen(self, change: dict[str, Any]) -> None:
        if change["new"] is not None:
            self.show(change["new"])

    def snapshot_html(self) -> str:
        """The explorer's pictures as they are now."""
        shown = html.escape(self.payment_id or "none yet")
        pictures: list[str] = [
            self.ledgers.value, self.lease_picture.value, self.breaker_pictures.value
        ]  # fmt: skip
        return (
            f"<p><b>payment</b> <code>{shown}</code></p>"
            + pictures_html(self.state_picture.value, self.timeline_picture.value)
            + "".join(pictures)
        )

    def summary(self) -> str:
        """The shown payment and its state."""
        shown = " ".join(filter(None, (self.payment_id or "no payment yet", self.state)))
        return f"<PaymentExplorer: {shown}>"
