"""The invariant checker notices each kind of broken state it is meant to catch."""

from __future__ import annotations

import pytest

from aegispay import AegisPay, PaymentState
from aegispay.domain.charges import ChargeRecord, ChargeStatus
from aegispay.domain.money import Money
from aegispay.sim import ProcessCrash
from aegispay.sim.invariants import (
    INVARIANTS,
    KEPT_DETAILS,
    InvariantReport,
    charges_in_reference_order,
    check_invariants,
    event_log_digest,
)


def settled_engine() -> AegisPay:
    pay = AegisPay.in_memory(seed=1)
    for n in range(3):
        payment = pay.create_payment(
            idempotency_key=f"k{n}", amount="3.00", currency="USD", customer_id="c",
            payment_method="tok_visa",
        )  # fmt: skip
        pay.process_payment(payment.id)
    return pay


def counts(pay: AegisPay, charges: list[ChargeRecord]) -> dict[str, int]:
    report = check_invariants(pay.event_store, pay.projections, charges)
    return {name: report.counts[name] for name in INVARIANTS if report.counts[name]}


def test_a_clean_engine_has_no_violations() -> None:
    pay = settled_engine()
    assert counts(pay, pay.charges()) == {}


def test_a_second_charge_for_one_payment_is_a_double_charge() -> None:
    pay = settled_engine()
    first = pay.charges()[0]
    twice = first.model_copy(update={"idempotency_key": "other", "transaction_id": "txn_other"})
    assert counts(pay, [*pay.charges(), twice]) == {"at_most_one_charge": 1}


def test_a_success_the_gateway_never_charged_is_a_mismatch() -> None:
    pay = settled_engine()
    assert counts(pay, pay.charges()[1:]) == {"settled_matches_gateway": 1}


def test_a_charge_for_a_payment_we_never_recorded_is_an_orphan() -> None:
    pay = settled_engine()
    orphan = pay.charges()[0].model_copy(update={"merchant_reference": "pay_ghost"})
    assert counts(pay, [*pay.charges(), orphan]) == {"settled_matches_gateway": 1}


def test_a_payment_left_in_flight_is_a_violation() -> None:
    pay = AegisPay.in_memory()
    payment = pay.create_payment(
        idempotency_key="k", amount="3.00", currency="USD", customer_id="c", payment_method="tok_x"
    )
    pay.crash_at("gateway.charge", "before")
    with pytest.raises(ProcessCrash):
        pay.process_payment(payment.id)
    assert pay.get_payment(payment.id).state is PaymentState.PROCESSING
    assert counts(pay, pay.charges()) == {"settled_matches_gateway": 1}


def test_a_projection_row_without_events_and_a_drifted_row_are_both_caught() -> None:
    pay = settled_engine()
    row = pay.list_payments()[0]
    pay.projections.save(row.model_copy(update={"id": "pay_ghost"}))
    pay.projections.delete(pay.list_payments()[1].id)
    assert counts(pay, pay.charges()) == {"nothing_lost": 1, "projection_matches_events": 1}


def test_the_digest_changes_with_any_event() -> None:
    pay = settled_engine()
    before = event_log_digest(pay.event_store)
    pay.create_payment(
        idempotency_key="new", amount="3.00", currency="USD", customer_id="c",
        payment_method="tok_visa",
    )  # fmt: skip
    assert event_log_digest(pay.event_store) != before


def reconciled(charges: list[ChargeRecord], pay: AegisPay) -> dict[str, int]:
    counts = check_invariants(pay.event_store, pay.projections, charges).reconciliation.counts()
    return {outcome: n for outcome, n in counts.items() if n}


def test_a_clean_engine_reconciles_every_payment_as_matched() -> None:
    pay = settled_engine()
    assert reconciled(pay.charges(), pay) == {"matched": 3}
    assert pay.check_invariants().as_dict()["reconciliation_breaks"] == []


def test_a_charge_for_another_amount_is_an_amount_mismatch() -> None:
    pay = settled_engine()
    first, *others = pay.charges()
    other = first.model_copy(update={"amount": Money(minor=301, currency="USD")})
    assert reconciled([other, *others], pay) == {"matched": 2, "amount_mismatch": 1}
    assert counts(pay, [other, *others]) == {"amounts_match_gateway": 1}
    [line] = check_invariants(pay.event_store, pay.projections, [other, *others]).details
    assert line == (
        f"amounts_match_gateway: amount_mismatch {first.merchant_reference}: "
        "ours 3.00 USD, gateway 3.01 USD"
    )


def test_a_charge_in_another_currency_is_a_currency_mismatch() -> None:
    pay = settled_engine()
    first, *others = pay.charges()
    other = first.model_copy(update={"amount": Money(minor=300, currency="EUR")})
    assert reconciled([other, *others], pay) == {"matched": 2, "currency_mismatch": 1}
    assert counts(pay, [other, *others]) == {"amounts_match_gateway": 1}


def test_missing_at_the_gateway_and_missing_in_our_records_are_told_apart() -> None:
    pay = settled_engine()
    first, *others = pay.charges()
    orphan = first.model_copy(update={"merchant_reference": "pay_ghost"})
    assert reconciled([*others, orphan], pay) == {
        "matched": 2,
        "missing_at_gateway": 1,
        "missing_in_our_records": 1,
    }


def test_a_record_that_moved_no_money_is_not_reconciled_even_without_an_amount() -> None:
    pay = settled_engine()
    declined = pay.charges()[0].model_copy(
        update={"merchant_reference": "pay_declined", "status": ChargeStatus.DECLINED,
                "amount": None},
    )  # fmt: skip
    assert reconciled([*pay.charges(), declined], pay) == {"matched": 3}


def test_charges_from_an_iterator_out_of_reference_order_are_refused() -> None:
    pay = settled_engine()
    backwards = iter(sorted(pay.charges(), key=lambda c: c.merchant_reference, reverse=True))
    with pytest.raises(ValueError, match="merchant-reference order"):
        check_invariants(pay.event_store, pay.projections, backwards)


def test_the_ledgers_merged_in_reference_order_audit_like_a_list_of_charges() -> None:
    pay = settled_engine()
    merged = charges_in_reference_order(pay.storage.ledgers.values())
    streamed = check_invariants(pay.event_store, pay.projections, merged)
    listed = check_invariants(pay.event_store, pay.projections, pay.charges())
    assert (streamed.as_dict(), streamed.payments) == (listed.as_dict(), 3)


def test_a_report_counts_every_violation_and_keeps_the_first_details() -> None:
    report = InvariantReport()
    for number in range(KEPT_DETAILS + 5):
        report.violate("nothing_lost", f"row {number}")
    assert (report.violations, len(report.details)) == (KEPT_DETAILS + 5, KEPT_DETAILS)
