"""Pictures are drawn from the engine's tables; widgets drive the engine through its public API."""

from __future__ import annotations

from aegispay import TRANSITIONS, AegisPay, PaymentState
from aegispay.resilience.breaker import BreakerState
from aegispay.sim import FailureConfig
from aegispay.viz import breaker_diagram, event_table, state_machine_diagram
from aegispay.viz.diagrams import LIT
from aegispay.viz.widgets import CrashLab, FaultPanel


def paid(pay: AegisPay, key: str = "v") -> str:
    payment = pay.create_payment(
        idempotency_key=key, amount="2.00", currency="USD", customer_id="c",
        payment_method="tok_visa",
    )  # fmt: skip
    return pay.process_payment(payment.id).id


def test_the_state_diagram_has_one_edge_per_row_of_the_transition_table() -> None:
    source = state_machine_diagram().source
    edges = sum(len(exits) for exits in TRANSITIONS.values())
    assert source.count(" -> ") == edges
    for state, exits in TRANSITIONS.items():
        for event, target in exits.items():
            assert f"{state.value} -> {target.value}" in source
            assert f"label={event}" in source


def test_the_path_a_payment_took_is_drawn_bold() -> None:
    pay = AegisPay.in_memory()
    source = state_machine_diagram(pay.events(paid(pay))).source
    bold = [line for line in source.splitlines() if "penwidth=2.5" in line]
    assert len(bold) == 3
    assert any("PROCESSING -> SUCCESS" in line and "PaymentSucceeded" in line for line in bold)


def test_the_current_state_is_lit_and_the_taken_edges_carry_their_versions() -> None:
    pay = AegisPay.in_memory()
    payment_id = paid(pay)
    source = state_machine_diagram(pay.event_store.read(payment_id)).source
    assert f'SUCCESS [label="SUCCESS\nnow" fillcolor="{LIT}" penwidth=3]' in source
    assert 'PROCESSING -> SUCCESS [label="v4: PaymentSucceeded"' in source
    assert source.count(LIT) == 1


def test_the_breaker_diagram_counts_the_transitions_it_recorded() -> None:
    pay = AegisPay.in_memory(faults=FailureConfig(network_rate=1.0))
    breaker = pay.circuit_breaker("primary")
    while breaker.state is not BreakerState.OPEN:
        paid(pay, key=f"b{len(pay.list_payments())}")
    source = breaker_diagram(breaker).source
    assert "1 times" in source
    assert 'OPEN [label="OPEN\ncalls refused" fillcolor="#f87171"' in source
    assert "OPEN -> gateway [label=disconnected" in source


def test_the_event_table_shows_each_version_in_order() -> None:
    pay = AegisPay.in_memory()
    lines = event_table(pay.events(paid(pay))).splitlines()
    assert [line.split()[0] for line in lines] == ["v1", "v2", "v3", "v4"]
    assert "PaymentSucceeded" in lines[-1]
    assert "transaction_id=txn_" in lines[-1]


def test_fault_sliders_set_the_engines_faults_and_heal_resets_them() -> None:
    pay = AegisPay.in_memory()
    panel = FaultPanel(pay)
    panel.sliders["network"].value = 0.5
    assert pay.faults_config.network_rate == 0.5
    assert pay.faults["primary"].config.network_rate == 0.5
    panel.heal_button.click()
    assert pay.faults_config == FailureConfig()


def test_fault_sliders_over_one_hundred_percent_are_refused_and_say_so() -> None:
    pay = AegisPay.in_memory()
    panel = FaultPanel(pay)
    panel.sliders["network"].value = 0.6
    panel.sliders["partial"].value = 0.6
    assert "refused" in panel.status.value
    assert pay.faults_config.partial_rate == 0.0


def test_the_crash_lab_crashes_restarts_and_recovers_to_clean_invariants() -> None:
    lab = CrashLab(AegisPay.in_memory(seed=3))
    lab.boundary.value, lab.side.value = "gateway.charge", "after"
    lab.crash_button.click()
    assert "the process died" in lab.log.text
    lab.restart_button.click()
    assert "1 payment(s) in flight" in lab.log.text
    lab.recover_button.click()
    assert "0 violation(s); charges: 1" in lab.log.text
    assert lab.pay.list_payments(PaymentState.SUCCESS)
