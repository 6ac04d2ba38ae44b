"""The attack on the engine: whole, it holds; each defense switched off alone breaks a promise."""

from __future__ import annotations

from dataclasses import replace

import pytest

from aegispay import AegisPay, InvalidRequest, PaymentState
from aegispay.domain.decisions import Action, Seen
from aegispay.labs import DEFENSES, Step, Verdict, attack
from aegispay.labs.runner import World, run
from aegispay.labs.schedules import Crash, CutIn, FaultMove, schedules
from aegispay.orchestration.policy import ENGINE_POLICY, Policy

BROKEN_PROMISES = {
    "idempotency_key": "charged twice",
    "fence": "charged but recorded as failed",
    "expected_version": "the payment's history is broken",
    "verify_before_failure": "charged but recorded as failed",
    "intent_first": "charged, but our records never say the charge was sent",
}


@pytest.fixture(scope="module")
def whole() -> Verdict:
    return attack()


def test_with_every_defense_on_the_attack_holds_over_more_than_two_thousand_schedules(
    whole: Verdict,
) -> None:
    assert whole.holds
    assert whole.tried > 2000
    assert (whole.promise, whole.steps) == (None, [])


@pytest.mark.parametrize("defense", sorted(BROKEN_PROMISES))
def test_each_defense_switched_off_alone_breaks_the_promise_it_keeps(defense: str) -> None:
    verdict = attack(without=[defense])
    assert not verdict.holds
    assert verdict.promise == BROKEN_PROMISES[defense]
    assert sum(step.breaking for step in verdict.trace) == 1
    assert verdict.steps[0] == "the client pays order-1 (42.00 EUR)"


def test_without_the_fence_a_late_charge_lands_after_another_process_cancelled() -> None:
    verdict = attack(without="fence", seed=0)
    breaking = next(step for step in verdict.trace if step.breaking)
    assert verdict.steps.index("process B cancels our reference at the gateway") < (
        verdict.trace.index(breaking)
    )
    assert "process A sends the charge (key k1)" in verdict.steps


def test_without_the_idempotency_key_the_second_charge_is_the_step_that_breaks() -> None:
    verdict = attack(without="idempotency_key")
    breaking = next(step for step in verdict.trace if step.breaking)
    assert breaking == Step("gateway", "the gateway charges 42.00 EUR (t2)", "process A", True)


def test_without_the_lock_nothing_breaks_the_store_and_the_gateway_are_the_fences() -> None:
    """The docs' claim, proved over these schedules: the lock saves work, safety is elsewhere."""
    verdict = attack(without="lock", depth=1)
    assert verdict.holds
    assert "refused" in verdict.note


def test_the_same_seed_gives_the_same_counterexample() -> None:
    first, second = attack(without="fence", seed=7), attack(without="fence", seed=7)
    assert first == second
    assert first.schedule == second.schedule


def test_the_counterexample_is_the_first_of_the_shortest_schedules_that_break() -> None:
    world = DEFENSES["fence"].off(World())
    verdict = attack(without="fence")
    shorter = [s for s in schedules(lambda faults: run(world, faults).trace, 1) if len(s) == 0]
    assert all(run(world, schedule).promise is None for schedule in shorter)
    assert len(verdict.schedule) == 1


def test_an_unknown_defense_is_refused_naming_every_known_one() -> None:
    with pytest.raises(InvalidRequest, match="must name defenses among lock, idempotency_key"):
        attack(without=["locks"])


@pytest.mark.parametrize("depth", [0, 5, True, "2"])
def test_a_depth_outside_one_to_four_is_refused(depth: object) -> None:
    with pytest.raises(InvalidRequest, match="depth"):
        attack(depth=depth)  # type: ignore[arg-type]


def test_a_schedule_lists_faults_alone_before_a_crash_or_a_cut_in_of_the_same_length() -> None:
    listed = list(schedules(lambda faults: run(World(), faults).trace, 1))
    assert listed[0] == ()
    kinds = [type(schedule[0]) for schedule in listed[1:]]
    assert kinds.index(Crash) > kinds.index(FaultMove)
    assert kinds.index(CutIn) > kinds.index(Crash)
    assert kinds[-1] is CutIn


def test_the_verdict_draws_its_lanes_as_svg_with_a_png_beside_it() -> None:
    verdict = attack(without="intent_first")
    svg = verdict._repr_svg_()
    assert svg is not None and "<svg" in svg
    for lane in ("client", "process A", "event store", "gateway"):
        assert lane in svg
    png = verdict._repr_png_()
    assert png is None or png.startswith(b"\x89PNG")


def test_the_text_form_numbers_the_steps_and_marks_the_one_that_broke() -> None:
    text = str(attack(without="verify_before_failure"))
    assert text.splitlines()[0].startswith("without verify_before_failure: broke after")
    assert "   <- the promise breaks here" in text
    assert "  1. the client pays order-1 (42.00 EUR)" in text


def test_a_held_verdict_says_so_in_one_line_and_has_no_steps() -> None:
    verdict = Verdict(holds=True, tried=3, subject="x")
    assert str(verdict) == "x: holds over 3 schedules"
    assert verdict.actors == []


def test_the_engine_takes_a_recovery_policy_from_outside() -> None:
    """A policy that never settles leaves a payment whose charge crashed in flight unresolved."""

    def wait(seen: Seen) -> Action:
        return Action.WAIT

    pay = AegisPay.in_memory(seed=1, policy=Policy(recover=wait))
    payment = pay.create_payment(
        idempotency_key="k", amount="1.00", currency="EUR", customer_id="c", payment_method="tok"
    )
    pay.crash_at("gateway.charge", "after")
    with pytest.raises(BaseException, match="crashed"):
        pay.process_payment(payment.id)
    report = pay.restart().recover()
    assert report.unresolved_ids == [payment.id]
    assert pay.restart().recover().found == 1


def test_the_engine_policy_settles_the_same_payment() -> None:
    pay = AegisPay.in_memory(seed=1, policy=replace(ENGINE_POLICY))
    payment = pay.create_payment(
        idempotency_key="k", amount="1.00", currency="EUR", customer_id="c", payment_method="tok"
    )
    pay.crash_at("gateway.charge", "after")
    with pytest.raises(BaseException, match="crashed"):
        pay.process_payment(payment.id)
    restarted = pay.restart()
    assert restarted.recover().succeeded == 1
    assert restarted.get_payment(payment.id).state is PaymentState.SUCCESS
