"""Notebook widgets: inject faults, crash the engine, contend for a lock, and watch the pictures
of what each click changed.

The widgets hold an engine and call only its public methods (`set_faults`, `crash_at`,
`process_payment`, `restart`, `recover`, `locks`, `clock`), so a notebook shows exactly what a
program would do. Every click redraws the pictures it affects. Their state is plain attributes
and their logic plain methods, so tests drive them with `button.click()`, no browser needed.
Time passes on the engine's clock: with `AegisPay.in_memory` (a VirtualClock) it passes at once.
"""

from __future__ import annotations

import html
import math
from collections import Counter
from collections.abc import Mapping
from datetime import timedelta

import ipywidgets as w
from pydantic import ValidationError

from aegispay.domain.errors import AegisPayError
from aegispay.sim.crashpoints import BOUNDARIES, ProcessCrash, sides_of
from aegispay.sim.faults import EXCLUSIVE_KINDS, FailureConfig

# The engine's pieces these widgets drive, in one place.
from aegispay.sim.harness import AegisPay
from aegispay.viz.diagrams import LeaseWindow, breaker_diagram
from aegispay.viz.explorer import (
    AS_WIDE_AS_ITS_WORDS,
    LABELLED,
    TOGGLES,
    LogView,
    PaymentExplorer,
    Snapshot,
    guarded,
    pictures_html,
)
from aegispay.viz.rendering import Rendered


def explain_refusal(rates: Mapping[str, float], error: ValidationError) -> str:
    """Why FailureConfig refused these rates (by kind), in one line a person reads at a glance."""
    exclusive = {kind: rates[kind] for kind in EXCLUSIVE_KINDS if rates.get(kind)}
    total = math.fsum(exclusive.values())
    if total > 1:
        added = " + ".join(f"{kind} {rate:.0%}" for kind, rate in exclusive.items())
        return (
            f"{added} = {total:.0%}; each of these replaces a call's answer, "
            "so together they can be at most 100%"
        )
    first = error.errors()[0]
    return f"{'.'.join(map(str, first['loc'])) or 'faults'}: {first['msg']}"


class FaultPanel(Snapshot):
    """One slider per fault kind, a button that sends payments through the faults, and a picture
    of every gateway's circuit breaker and the clock, redrawn after each slider, batch, heal or
    cool-down.

        panel = FaultPanel(AegisPay.in_memory(seed=4))
        panel.sliders["network"].value = 1.0; panel.send_button.click()  # breakers open
        panel                                                            # sliders and pictures
    """

    KINDS = (*EXCLUSIVE_KINDS, "slow", "projection")

    def __init__(self, pay: AegisPay, batch: int = 5) -> None:
        self.pay = pay
        self.sent = self.batches = 0
        self.sliders = {
            kind: w.FloatSlider(value=pay.faults_config.rate(kind), min=0, max=1, step=0.05,
                                description=kind, continuous_update=False,
                                style={"description_width": "10em"})
            for kind in self.KINDS
        }  # fmt: skip
        self.status = w.HTML()
        self.outcomes = w.HTML()
        self.breaker_pictures = w.HTML()
        self.heal_button = w.Button(description="Heal everything", icon="medkit",
                                    **AS_WIDE_AS_ITS_WORDS)  # fmt: skip
        self.batch = w.BoundedIntText(value=batch, min=1, max=100, description="payments",
                                      layout={"width": "11em"})  # fmt: skip
        self.send_button = w.Button(icon="paper-plane", **AS_WIDE_AS_ITS_WORDS)
        self.wait_button = w.Button(description=f"Let {self.cool_down:g} s pass", icon="clock",
                                    **AS_WIDE_AS_ITS_WORDS)  # fmt: skip
        for slider in self.sliders.values():
            slider.observe(guarded(self.status, self.apply), names="value")
        self.batch.observe(guarded(self.status, self._label_send), names="value")
        self.heal_button.on_click(guarded(self.status, self.heal))
        self.send_button.on_click(guarded(self.status, self.send))
        self.wait_button.on_click(guarded(self.status, self.wait))
        actions = w.HBox([self.batch, self.send_button, self.wait_button, self.heal_button],
                         layout={"flex_flow": "row wrap"})  # fmt: skip
        self.widget = w.VBox([
            *self.sliders.values(), actions, self.status, self.outcomes, self.breaker_pictures
        ])  # fmt: skip
        self._label_send()
        self.redraw()

    @property
    def cool_down(self) -> float:
        """The longest time any breaker stays open before it lets a probe through."""
        return max(self.pay.circuit_breaker(name).config.timeout for name in self.pay.gateways)

    def rates(self) -> dict[str, float]:
        """The sliders' rates, by fault kind."""
        return {kind: slider.value for kind, slider in self.sliders.items()}

    def apply(self) -> None:
        """Send the sliders' rates to the engine; a combination over 100% is refused and shown."""
        rates = self.rates()
        try:
            config = FailureConfig.model_validate({f"{k}_rate": v for k, v in rates.items()})
        except ValidationError as error:
            self.status.value = f"<b>refused</b>: {html.escape(explain_refusal(rates, error))}"
            return
        self.pay.set_faults(config)
        self.status.value = f"faults now: {self.faults_said()}"
        self.redraw()

    def faults_said(self) -> str:
        """The faults injected now, in words ("none" when healed)."""
        return ", ".join(f"{k} {rate:.0%}" for k, rate in self.rates().items() if rate) or "none"

    def heal(self) -> None:
        """Set every slider to zero, which heals the gateways; say which breakers stay open."""
        for slider in self.sliders.values():
            slider.value = 0.0
        self.apply()
        still_open = [
            n for n in self.pay.gateways if not self.pay.circuit_breaker(n).allows_request()
        ]
        if still_open:
            self.status.value = (
                f"healed: the gateways answer again, but the breakers of {', '.join(still_open)} "
                f"stay open until their cool-down has passed (press Let {self.cool_down:g} s pass)"
            )
        self.redraw()

    def send(self, count: int | None = None) -> Counter[str]:
        """Create and process `count` payments (the box's number by default); tally their ends."""
        ends: Counter[str] = Counter()
        for _ in range(count or self.batch.value):
            self.sent += 1
            payment = self.pay.create_payment(
                idempotency_key=f"panel-{self.pay.settings.seed}-{self.sent}", amount="10.00",
                currency="USD", customer_id="cus_panel", payment_method="tok_visa",
            )  # fmt: skip
            try:
                ends[self.pay.process_payment(payment.id).state] += 1
            except ProcessCrash:
                ends["process died"] += 1
                break
        tally = ", ".join(f"{n} {end}" for end, n in ends.items())
        self.batches += 1
        self.outcomes.value = (
            f"batch {self.batches} at {self.pay.clock.now():%H:%M:%S}, sent {ends.total()}: {tally}"
        )
        self.redraw()
        return ends

    def wait(self, seconds: float | None = None) -> None:
        """Let time pass on the engine's clock (a breaker's cool-down by default), and redraw."""
        waited = self.cool_down if seconds is None else seconds
        self.pay.clock.sleep(waited)
        self.status.value = f"{waited:g} s passed: the clock says {self.pay.clock.now():%H:%M:%S}"
        self.redraw()

    def redraw(self) -> None:
        """Draw every gateway's breaker as it is now."""
        self.breaker_pictures.value = pictures_html(*(
            self.breaker(name).as_html() for name in self.pay.gateways
        ))  # fmt: skip

    def breaker(self, name: str = "primary") -> Rendered:
        """The picture of one gateway's breaker as it is now, with the faults injected there."""
        note = f"faults: {self.faults_said()}"
        return breaker_diagram(self.pay.circuit_breaker(name), self.pay.clock.now(), note)

    def _label_send(self) -> None:
        self.send_button.description = f"Send {self.batch.value} payments"

    def snapshot_html(self) -> str:
        """The rates, the last batch's outcome and the breakers, as they are now."""
        return (
            f"<p><b>faults</b>: {self.faults_said()}</p><p>{self.status.value}</p>"
            f"<p>{self.outcomes.value}</p>{self.breaker_pictures.value}"
        )

    def summary(self) -> str:
        """The breakers' states in one line."""
        states = ", ".join(f"{n} {self.pay.circuit_breaker(n).state}" for n in self.pay.gateways)
        return f"<FaultPanel: breakers {states}>"


class CrashLab(Snapshot):
    """Pick a boundary and a side, crash a payment there, restart, recover, check invariants;
    after each click the process badge (alive or dead), the payment's state machine, event
    timeline and both ledgers are redrawn.

        lab = CrashLab(AegisPay.in_memory(seed=12))
        lab.crash_button.click(); lab.restart_button.click(); lab.recover_button.click()
        lab.explorer.state  # "SUCCESS"; `lab` shows the buttons and the pictures
    """

    def __init__(self, pay: AegisPay) -> None:
        self.pay = pay
        self.payments = 0
        self.process = 1
        self.death: str | None = None
        self.boundary = w.Dropdown(options=BOUNDARIES, value="gateway.charge",
                                   description="crash at", **LABELLED)  # fmt: skip
        self.side = w.ToggleButtons(options=sides_of("gateway.charge"), value="after",
                                    description="side", **TOGGLES)  # fmt: skip
        self.crash_button = w.Button(description="Pay, and crash there", icon="bolt",
                                     **AS_WIDE_AS_ITS_WORDS)  # fmt: skip
        self.restart_button = w.Button(description="Restart the process", icon="refresh",
                                       **AS_WIDE_AS_ITS_WORDS)  # fmt: skip
        self.recover_button = w.Button(description="Recover", icon="wrench",
                                       **AS_WIDE_AS_ITS_WORDS)  # fmt: skip
        self.badge = w.HTML()
        self.status = w.HTML()
        self.log = LogView()
        self.explorer = PaymentExplorer(pay)
        self.boundary.observe(guarded(self.status, self._boundary_chosen), names="value")
        self.side.observe(guarded(self.status, self.draw_badge), names="value")
        self.crash_button.on_click(guarded(self.status, self.pay_and_crash))
        self.restart_button.on_click(guarded(self.status, self.restart))
        self.recover_button.on_click(guarded(self.status, self.recover))
        buttons = w.HBox([self.crash_button, self.restart_button, self.recover_button],
                         layout={"flex_flow": "row wrap"})  # fmt: skip
        self.widget = w.VBox([
            w.HBox([self.boundary, self.side], layout={"flex_flow": "row wrap"}), buttons,
            self.badge, self.status, self.log.widget, self.explorer.widget,
        ])  # fmt: skip
        self.draw_badge()

    @property
    def alive(self) -> bool:
        """Whether the lab's engine process is running (a crash kills it until a restart)."""
        return self.death is None

    def say(self, line: str) -> None:
        """Append a line to the lab's log, and show it as the status."""
        self.log.say(line)
        self.status.value = html.escape(line)

    def pay_and_crash(self) -> None:
        """Create a payment and process it with a crash armed at the chosen boundary."""
        if not self.alive:
            self.say(f"process {self.process} is dead: restart it before paying")
            return
        self.payments += 1
        payment = self.pay.create_payment(
            idempotency_key=f"lab-{self.pay.settings.seed}-{self.payments}", amount="25.00",
            currency="EUR", customer_id="cus_lab", payment_method="tok_visa",
        )  # fmt: skip
        self.pay.crash_at(self.boundary.value, self.side.value)
        try:
            done = self.pay.process_payment(payment.id)
        except ProcessCrash as crash:
            self.death = str(crash)
            self.say(f"{payment.id}: the process died ({crash}); restart it, then recover")
        else:
            self.pay.crashpoints.disarm()
            self.say(
                f"{payment.id}: no crash on the way ({done.state}); that boundary was not crossed"
            )
        self.draw_badge()
        self.explorer.show(payment.id)

    def restart(self) -> None:
        """Replace the engine by a new process over the same storage."""
        self.pay = self.explorer.pay = self.pay.restart()
        self.process += 1
        self.death = None
        in_flight = self.pay.list_payments("PROCESSING") + self.pay.list_payments("UNKNOWN")
        self.say(f"restarted as process {self.process}: {len(in_flight)} payment(s) in flight")
        self.draw_badge()
        self.explorer.refresh()

    def recover(self) -> None:
        """Run recovery and check every invariant (a dead process can do neither)."""
        if not self.alive:
            self.say(f"process {self.process} is dead: restart it, then recover")
            return
        report = self.pay.recover()
        found = self.pay.check_invariants()
        self.say(f"recovered: {report.as_dict()}")
        self.say(f"invariants: {found.violations} violation(s); charges: {len(self.pay.charges())}")
        self.explorer.refresh()

    def draw_badge(self) -> None:
        """Draw the process (alive or dead, and why) and the crash the next payment will meet."""
        if self.alive:
            colour, said = "#dcfce7", f"● process {self.process}: alive"
        else:
            colour, said = "#fecaca", f"✖ process {self.process}: dead ({self.death})"
        armed = f"next payment dies {self.side.value} {self.boundary.value}"
        self.badge.value = (
            f'<div style="background:{colour};padding:6px 10px;border-radius:6px;font-size:18px">'
            f'<b>{html.escape(said)}</b> <span style="font-size:14px">· {html.escape(armed)}'
            "</span></div>"
        )

    def _boundary_chosen(self) -> None:
        # Only a gateway call has an inside (the request on the wire); other boundaries have two.
        sides = sides_of(self.boundary.value)
        if tuple(self.side.options) != sides:
            keep = self.side.value if self.side.value in sides else "after"
            self.side.options = sides
            self.side.value = keep
        self.draw_badge()

    def snapshot_html(self) -> str:
        """The badge, the log and the pictures as they are now."""
        return f"{self.badge.value}{self.log.html()}{self.explorer.snapshot_html()}"

    def summary(self) -> str:
        """The payment on show and its state."""
        return self.explorer.summary().replace("PaymentExplorer", "CrashLab", 1)


class LeaseLab(Snapshot):
    """Two workers and the engine contend for one payment's lock (`payment:<id>`) on the clock;
    the lease bar (holder, time held, time left or expired) is redrawn after every click.
    Without a `payment_id` it creates a payment to contend for.

        lab = LeaseLab(AegisPay.in_memory())
        lab.take_button.click(); lab.advance(31); lab.process_button.click()  # the lease ran out
        lab                                   # the lease bar, the state machine and the ledgers
    """

    WORKERS = ("worker-A", "worker-B")

    def __init__(self, pay: AegisPay, payment_id: str | None = None, ttl: float = 30.0) -> None:
        self.pay = pay
        self.ttl = ttl
        if payment_id is None:
            payment_id = pay.create_payment(
                idempotency_key=f"lease-lab-{pay.settings.seed}", amount="12.00", currency="EUR",
                customer_id="cus_lease", payment_method="tok_visa",
            ).id  # fmt: skip
        self.resource = f"payment:{payment_id}"
        self.explorer = PaymentExplorer(pay, payment_id)
        self.worker = w.ToggleButtons(options=self.WORKERS, description="as",
                                      **TOGGLES)  # fmt: skip
        self.take_button = w.Button(description=f"Take the lease ({ttl:g} s)", icon="lock",
                                    **AS_WIDE_AS_ITS_WORDS)  # fmt: skip
        self.extend_button = w.Button(description="Extend it", icon="plus",
                                      **AS_WIDE_AS_ITS_WORDS)  # fmt: skip
        self.release_button = w.Button(description="Release it", icon="unlock",
                                       **AS_WIDE_AS_ITS_WORDS)  # fmt: skip
        self.seconds = w.BoundedFloatText(value=10, min=0, max=3600, description="seconds",
                                          layout={"width": "11em"})  # fmt: skip
        self.advance_button = w.Button(description="Let them pass", icon="clock",
                                       **AS_WIDE_AS_ITS_WORDS)  # fmt: skip
        self.process_button = w.Button(description="Engine: process the payment", icon="play",
                                       **AS_WIDE_AS_ITS_WORDS)  # fmt: skip
        self.status = w.HTML()
        self.log = LogView()
        self.worker.observe(guarded(self.status, self.introduce), names="value")
        self.take_button.on_click(guarded(self.status, self.take))
        self.extend_button.on_click(guarded(self.status, self.extend))
        self.release_button.on_click(guarded(self.status, self.release))
        self.advance_button.on_click(guarded(self.status, lambda: self.advance(self.seconds.value)))
        self.process_button.on_click(guarded(self.status, self.process))
        wrap = {"flex_flow": "row wrap"}
        self.widget = w.VBox([
            w.HBox([self.worker, self.take_button, self.extend_button, self.release_button],
                   layout=wrap),
            w.HBox([self.seconds, self.advance_button, self.process_button], layout=wrap),
            self.status, self.log.widget, self.explorer.widget,
        ])  # fmt: skip
        self.introduce()

    def say(self, line: str) -> None:
        """Append a line to the lab's log, stamped with the clock, and show it as the status."""
        self.log.say(f"{self.pay.clock.now():%H:%M:%S} {line}")
        self.status.value = html.escape(line)

    def introduce(self) -> None:
        """Say whom the buttons act for, and who holds the lease now."""
        holder = self.pay.locks.holder(self.resource)
        held = f"{holder} holds the lease" if holder else "nobody holds the lease"
        self.status.value = f"you act as <b>{self.worker.value}</b>; {held}"

    def take(self) -> None:
        """The chosen worker asks for the lease; it gets it only if nobody holds it."""
        worker, now = self.worker.value, self.pay.clock.now()
        if self.pay.locks.acquire(self.resource, worker, ttl=self.ttl):
            expires = now + timedelta(seconds=self.ttl)
            self.explorer.leases[self.resource] = LeaseWindow(worker, now, expires)
            self.say(f"{worker} holds {self.resource} until {expires:%H:%M:%S}")
        else:
            self.say(f"{worker} refused: {self.pay.locks.holder(self.resource)} holds it")
        self.explorer.refresh()

    def extend(self) -> None:
        """The chosen worker renews its lease to now + ttl; only the live holder may."""
        worker, now = self.worker.value, self.pay.clock.now()
        try:
            self.pay.locks.extend(self.resource, worker, ttl=self.ttl)
        except AegisPayError as error:
            self.say(f"{worker} cannot extend: {error}")
        else:
            taken = self.explorer.leases[self.resource].taken_at
            expires = now + timedelta(seconds=self.ttl)
            self.explorer.leases[self.resource] = LeaseWindow(worker, taken, expires)
            self.say(f"{worker} extended its lease to {expires:%H:%M:%S}")
        self.explorer.refresh()

    def release(self) -> None:
        """The chosen worker gives the lease back; only the live holder may."""
        worker = self.worker.value
        try:
            self.pay.locks.release(self.resource, worker)
        except AegisPayError as error:
            self.say(f"{worker} cannot release: {error}")
        else:
            self.say(f"{worker} released {self.resource}")
        self.explorer.refresh()

    def advance(self, seconds: float) -> None:
        """Let time pass on the engine's clock, and redraw."""
        self.pay.clock.sleep(seconds)
        self.say(f"{seconds:g} s passed")
        self.explorer.refresh()

    def process(self) -> None:
        """The engine processes the payment: it waits on the clock for a held lease to run out."""
        started = self.pay.clock.now()
        try:
            done = self.pay.process_payment(self.resource.removeprefix("payment:"))
        except AegisPayError as error:
            self.say(f"the engine gave up: {error}")
        else:
            waited = (self.pay.clock.now() - started).total_seconds()
            self.say(f"the engine took the lock after {waited:g} s and settled it: {done.state}")
        self.explorer.refresh()

    def snapshot_html(self) -> str:
        """The log and the pictures as they are now."""
        return f"{self.log.html()}{self.explorer.snapshot_html()}"

    def summary(self) -> str:
        """Who holds the lock now."""
        holder = self.pay.locks.holder(self.resource)
        return f"<LeaseLab: {self.resource} {'held by ' + holder if holder else 'free'}>"
