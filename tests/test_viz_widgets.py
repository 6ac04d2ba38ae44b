"""Widgets redraw the picture of what each click changed, and show pictures without a kernel."""

from __future__ import annotations

import re

from aegispay import AegisPay, BreakerState, ChargeStatus, PaymentState
from aegispay.viz.diagrams import BREAKER_FILL, LIT
from aegispay.viz.explorer import PaymentExplorer
from aegispay.viz.ledgers import compare_ledgers
from aegispay.viz.widgets import CrashLab, FaultPanel, LeaseLab
from tests.test_rendering import SCREEN_PX, width_px


def node_fill(svg: str, title: str) -> str:
    """The fill of the Graphviz node whose title is `title`."""
    found = re.search(
        rf'class="node">\s*<title>{re.escape(title)}</title>\s*<\w+ fill="([^"]+)"', svg
    )
    assert found, f"no node {title!r} in the picture"
    return found[1]


def lit(svg: str) -> list[str]:
    """The titles of the state-machine nodes drawn with the "you are here" fill."""
    return [state for state in PaymentState if node_fill(svg, state) == LIT]


def texts(svg: str) -> list[str]:
    """Every piece of text drawn in a picture."""
    return re.findall(r"<text[^>]*>([^<]*)</text>", svg)


def test_the_crash_lab_lights_processing_after_a_crash_past_the_charge_then_success() -> None:
    lab = CrashLab(AegisPay.in_memory(seed=3))
    lab.boundary.value, lab.side.value = "gateway.charge", "after"
    before = lab.explorer.state_picture.value
    lab.crash_button.click()
    crashed = lab.explorer.state_picture.value
    assert crashed != before
    assert lit(crashed) == ["PROCESSING"]
    assert "v3: ProcessingStarted" in texts(crashed)
    assert "… unsettled" in lab.explorer.ledgers.value
    lab.restart_button.click()
    lab.recover_button.click()
    settled = lab.explorer.state_picture.value
    assert settled != crashed
    assert lit(settled) == ["SUCCESS"]
    assert "v4: ChargeConfirmed" in texts(settled)
    assert "two ledgers: 1 of 1 agree" in lab.explorer.ledgers.value
    assert "✔ agree" in lab.explorer.ledgers.value


def test_the_timeline_grows_by_the_recovered_event_with_its_version_and_position() -> None:
    lab = CrashLab(AegisPay.in_memory(seed=3))
    lab.crash_button.click()
    assert "v3 · position 3 · 00:00:00" in texts(lab.explorer.timeline_picture.value)
    lab.restart_button.click()
    lab.recover_button.click()
    shown = texts(lab.explorer.timeline_picture.value)
    assert shown[shown.index("v4 · position 4 · 00:00:00") + 1] == "ChargeConfirmed"


def test_the_timeline_shows_global_positions_not_the_index_in_the_stream() -> None:
    pay = AegisPay.in_memory()
    for key in ("first", "second"):
        made = pay.create_payment(idempotency_key=key, amount="1.00", currency="USD",
                                  customer_id="c", payment_method="tok_visa")  # fmt: skip
        pay.process_payment(made.id)
    shown = texts(PaymentExplorer(pay).timeline_picture.value)
    assert [line.split(" · ")[:2] for line in shown if line.startswith("v")] == [
        ["v1", "position 5"], ["v2", "position 6"], ["v3", "position 7"], ["v4", "position 8"],
    ]  # fmt: skip


def test_the_fault_panel_draws_the_breaker_open_after_failures_and_closed_after_cool_down() -> None:
    panel = FaultPanel(AegisPay.in_memory(seed=4))
    closed = panel.breaker("primary").svg or ""
    assert node_fill(closed, "CLOSED") == BREAKER_FILL[BreakerState.CLOSED]
    assert "connected" in texts(closed)
    panel.sliders["network"].value = 1.0
    panel.send_button.click()
    opened = panel.breaker("primary").svg or ""
    assert opened != closed
    assert node_fill(opened, "OPEN") == BREAKER_FILL[BreakerState.OPEN]
    assert node_fill(opened, "CLOSED") == "white"
    assert {"OPEN", "calls refused", "disconnected", "1 times"} <= set(texts(opened))
    assert panel.breaker_pictures.value.count("disconnected") == 2
    panel.heal_button.click()
    panel.wait_button.click()
    panel.send(1)
    healed = panel.breaker("primary").svg or ""
    assert node_fill(healed, "CLOSED") == BREAKER_FILL[BreakerState.CLOSED]
    assert texts(healed).count("1 times") == 3
    assert "sent 1: 1 SUCCESS" in panel.outcomes.value


def test_fault_rates_over_one_hundred_percent_are_refused_in_one_human_line() -> None:
    pay = AegisPay.in_memory()
    panel = FaultPanel(pay)
    panel.sliders["network"].value = 0.6
    panel.sliders["partial"].value = 0.6
    assert panel.status.value == (
        "<b>refused</b>: network 60% + partial 60% = 120%; each of these replaces a call&#x27;s "
        "answer, so together they can be at most 100%"
    )
    assert pay.faults_config.partial_rate == 0.0


def test_the_lease_bar_shows_the_holder_the_time_left_and_the_expiry() -> None:
    lab = LeaseLab(AegisPay.in_memory())
    free = lab.explorer.lease_picture.value
    assert "nobody holds it" in texts(free)
    lab.take_button.click()
    lab.advance(12)
    held = texts(lab.explorer.lease_picture.value)
    assert f"{lab.resource}: held by worker&#45;A" in held
    assert {"12 s held", "18 s left"} <= set(held)
    lab.worker.value = "worker-B"
    lab.take_button.click()
    assert "worker-B refused: worker-A holds it" in lab.log.text
    lab.process_button.click()
    assert "the engine took the lock after 18 s and settled it: SUCCESS" in lab.log.text
    after = texts(lab.explorer.lease_picture.value)
    assert f"{lab.resource}: free" in after
    assert lit(lab.explorer.state_picture.value) == ["SUCCESS"]


def test_an_extended_lease_is_drawn_with_its_new_expiry() -> None:
    lab = LeaseLab(AegisPay.in_memory(), ttl=10)
    lab.take_button.click()
    lab.advance(8)
    lab.extend_button.click()
    shown = texts(lab.explorer.lease_picture.value)
    assert "taken 00:00:00 · now 00:00:08 · expires 00:00:18" in shown
    assert "10 s left" in shown


def test_a_record_at_the_gateway_for_a_failed_payment_disagrees() -> None:
    pay = AegisPay.in_memory()
    made = pay.create_payment(idempotency_key="k", amount="3.00", currency="USD",
                              customer_id="c", payment_method="tok_visa")  # fmt: skip
    paid = pay.process_payment(made.id)
    failed = paid.model_copy(update={"state": PaymentState.FAILURE})
    [row] = compare_ledgers([failed], {"primary": pay.gateway.charges()})
    assert (row.verdict, row.reason) == ("disagree", "we say FAILURE; a gateway charged 3.00 USD")
    [stranger] = compare_ledgers([], {"primary": pay.gateway.charges()})
    assert stranger.verdict == "disagree"
    assert stranger.records["primary"].status is ChargeStatus.SUCCEEDED


def test_without_a_kernel_every_widget_shows_its_pictures_not_its_widget_text() -> None:
    pay = AegisPay.in_memory(seed=5)
    lab = CrashLab(pay)
    lab.crash_button.click()
    for widget in (lab, FaultPanel(pay), LeaseLab(pay), PaymentExplorer(pay)):
        bundle = widget._repr_mimebundle_()
        assert "application/vnd.jupyter.widget-view+json" in bundle
        assert bundle["text/html"].count('<img src="data:image/png;base64,') >= 1
        assert "Box(" not in bundle["text/plain"]
    assert lab._repr_mimebundle_()["text/plain"].endswith(" PROCESSING>")


def test_every_picture_of_the_explorer_fits_a_1366_px_screen() -> None:
    lab = CrashLab(AegisPay.in_memory(seed=6))
    lab.crash_button.click()
    pictures = re.findall(r"<svg\b.*?</svg>", lab.snapshot_html(), flags=re.DOTALL)
    assert len(pictures) == 5
    for svg in pictures:
        assert width_px(svg) <= SCREEN_PX


def test_the_explorer_redraws_what_changed_outside_it_on_refresh() -> None:
    pay = AegisPay.in_memory()
    made = pay.create_payment(idempotency_key="k", amount="3.00", currency="USD",
                              customer_id="c", payment_method="tok_visa")  # fmt: skip
    explorer = PaymentExplorer(pay)
    assert lit(explorer.state_picture.value) == ["INITIATED"]
    pay.process_payment(made.id)
    explorer.refresh()
    assert lit(explorer.state_picture.value) == ["SUCCESS"]
    assert explorer.chooser.options == (made.id,)


def test_a_click_that_fails_says_so_in_the_widget_status_line() -> None:
    pay = AegisPay.in_memory()
    explorer = PaymentExplorer(pay)
    pay.create_payment(idempotency_key="k", amount="3.00", currency="USD",
                       customer_id="c", payment_method="tok_visa")  # fmt: skip
    explorer.refresh()
    explorer.chooser.options = (*explorer.chooser.options, "pay_missing")
    explorer.chooser.value = "pay_missing"
    assert "that click failed" in explorer.status.value


def test_the_log_view_keeps_the_newest_line_in_view_by_laying_its_column_out_reversed() -> None:
    lab = LeaseLab(AegisPay.in_memory())
    for _ in range(12):
        lab.advance(1)
    assert lab.log.text.count("1 s passed") == 12
    assert "flex-direction:column-reverse" in lab.log.widget.value
    assert lab.log.widget.value.index("00:00:12 1 s passed") > 0


def test_the_explorer_slider_replays_only_the_first_events() -> None:
    lab = CrashLab(AegisPay.in_memory(seed=3))
    lab.crash_button.click()
    assert (lab.explorer.replayed.max, lab.explorer.replayed.value) == (3, 3)
    lab.explorer.replayed.value = 2
    assert lit(lab.explorer.state_picture.value) == ["AUTHENTICATED"]
    assert "1 later event(s) not replayed" in lab.explorer.status.value
    lab.restart_button.click()
    lab.recover_button.click()
    assert lab.explorer.replayed.value == 4
    assert lit(lab.explorer.state_picture.value) == ["SUCCESS"]


def test_a_long_ledger_lists_the_chosen_payment_first_and_counts_the_rest() -> None:
    pay = AegisPay.in_memory()
    made = [
        pay.create_payment(idempotency_key=f"k{n}", amount="3.00", currency="USD",
                           customer_id="c", payment_method="tok_visa")
        for n in range(12)
    ]  # fmt: skip
    for payment in made[1:]:
        pay.process_payment(payment.id)
    explorer = PaymentExplorer(pay, made[5].id)
    table = explorer.ledgers.value
    assert table.count("<tr style=") == 8
    assert table.index(made[5].id) < table.index(made[0].id)
    assert "two ledgers: 12 of 12 agree" in table
    assert "4 more not listed (4 agree)" in table


def test_the_crash_lab_draws_its_process_dead_after_a_crash_and_alive_after_a_restart() -> None:
    lab = CrashLab(AegisPay.in_memory(seed=3))
    assert "process 1: alive" in lab.badge.value
    lab.crash_button.click()
    assert "process 1: dead (crashed after gateway.charge #1)" in lab.badge.value
    lab.recover_button.click()
    assert lab.status.value == "process 1 is dead: restart it, then recover"
    lab.restart_button.click()
    assert "process 2: alive" in lab.badge.value


def test_the_crash_lab_offers_inside_only_for_gateway_calls() -> None:
    lab = CrashLab(AegisPay.in_memory())
    lab.boundary.value = "events.append"
    assert lab.side.options == ("before", "after")
    assert "next payment dies after events.append" in lab.badge.value


def test_after_heal_the_panel_says_the_breakers_stay_open_until_their_cool_down() -> None:
    panel = FaultPanel(AegisPay.in_memory(seed=4))
    panel.sliders["network"].value = 1.0
    assert "faults: network 100%" in texts(panel.breaker_pictures.value)
    panel.send(10)
    panel.heal_button.click()
    assert "stay open until their cool-down has passed" in panel.status.value
    assert panel.send(5) == {PaymentState.FAILURE: 5}
    assert any("open 50 s more" in line for line in texts(panel.breaker("primary").svg or ""))
    panel.wait_button.click()
    cooled = texts(panel.breaker("primary").svg or "")
    assert any("cool&#45;down over: the next call is the probe" in line for line in cooled)
    assert panel.send(5) == {PaymentState.SUCCESS: 5}
