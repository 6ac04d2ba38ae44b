"""Notebook widgets: inject faults with sliders, crash the engine with a button, then recover.

The widgets hold an engine and call only its public methods (`set_faults`, `crash_at`,
`process_payment`, `restart`, `recover`), so a notebook shows exactly what a program would do.
Their state is plain attributes, so tests drive them with `button.click()`, no browser needed.
"""

from __future__ import annotations

import ipywidgets as w

from aegispay.app import AegisPay
from aegispay.sim.crashpoints import BOUNDARIES, SIDES, ProcessCrash
from aegispay.sim.faults import EXCLUSIVE_KINDS, FailureConfig


class FaultPanel:
    """One slider per gateway fault kind (and projection writes); each change calls set_faults."""

    KINDS = (*EXCLUSIVE_KINDS, "slow", "projection")

    def __init__(self, pay: AegisPay) -> None:
        self.pay = pay
        self.sliders = {
            kind: w.FloatSlider(value=pay.settings.faults.rate(kind), min=0, max=1, step=0.05,
                                description=kind, continuous_update=False)
            for kind in self.KINDS
        }  # fmt: skip
        self.status = w.HTML()
        self.heal_button = w.Button(description="Heal everything", icon="medkit")
        for slider in self.sliders.values():
            slider.observe(lambda _change: self.apply(), names="value")
        self.heal_button.on_click(lambda _button: self.heal())
        self.widget = w.VBox([*self.sliders.values(), self.heal_button, self.status])

    def apply(self) -> None:
        """Send the sliders' rates to the engine; a combination over 100% is refused and shown."""
        rates = {f"{kind}_rate": slider.value for kind, slider in self.sliders.items()}
        try:
            self.pay.set_faults(FailureConfig.model_validate(rates))
        except ValueError as error:
            self.status.value = f"<b>refused</b>: {str(error).splitlines()[-1]}"
            return
        active = {kind: rate for kind, rate in rates.items() if rate}
        self.status.value = f"faults now: {active or 'none'}"

    def heal(self) -> None:
        """Set every slider to zero, which heals the engine."""
        for slider in self.sliders.values():
            slider.value = 0.0
        self.apply()


class CrashLab:
    """Pick a boundary and a side, crash a payment there, restart, recover, check invariants."""

    def __init__(self, pay: AegisPay) -> None:
        self.pay = pay
        self.payments = 0
        self.boundary = w.Dropdown(
            options=BOUNDARIES, value="gateway.charge", description="crash at"
        )
        self.side = w.ToggleButtons(options=SIDES, value="after", description="side")
        self.crash_button = w.Button(description="Pay, and crash there", icon="bolt")
        self.restart_button = w.Button(description="Restart the process", icon="refresh")
        self.recover_button = w.Button(description="Recover", icon="wrench")
        self.log = w.Textarea(layout=w.Layout(width="100%", height="12em"), disabled=True)
        self.crash_button.on_click(lambda _button: self.pay_and_crash())
        self.restart_button.on_click(lambda _button: self.restart())
        self.recover_button.on_click(lambda _button: self.recover())
        buttons = w.HBox([self.crash_button, self.restart_button, self.recover_button])
        self.widget = w.VBox([self.boundary, self.side, buttons, self.log])

    def say(self, line: str) -> None:
        """Append a line to the lab's log."""
        self.log.value += line + "\n"

    def pay_and_crash(self) -> None:
        """Create a payment and process it with a crash armed at the chosen boundary."""
        self.payments += 1
        payment = self.pay.create_payment(
            idempotency_key=f"lab-{self.pay.settings.seed}-{self.payments}", amount="25.00",
            currency="EUR", customer_id="cus_lab", payment_method="tok_visa",
        )  # fmt: skip
        self.pay.crash_at(self.boundary.value, self.side.value)
        try:
            done = self.pay.process_payment(payment.id)
        except ProcessCrash as crash:
            self.say(f"{payment.id}: the process died ({crash}); restart it, then recover")
            return
        self.pay.crashpoints.disarm()
        self.say(f"{payment.id}: no crash on the way ({done.state}); that boundary was not crossed")

    def restart(self) -> None:
        """Replace the engine by a new process over the same storage."""
        self.pay = self.pay.restart()
        in_flight = self.pay.list_payments("PROCESSING") + self.pay.list_payments("UNKNOWN")
        self.say(f"restarted: {len(in_flight)} payment(s) in flight per the projection")

    def recover(self) -> None:
        """Run recovery and check every invariant."""
        report = self.pay.recover()
        found = self.pay.check_invariants()
        self.say(f"recovered: {report.as_dict()}")
        self.say(f"invariants: {found.violations} violation(s); charges: {len(self.pay.charges())}")
