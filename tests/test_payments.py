"""The public surface, as a user drives it: create idempotently, process, read back."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

import aegispay
from aegispay import AegisPay, IdempotencyKeyConflict, PaymentNotFound, PaymentState

REQUEST = {
    "idempotency_key": "order-1",
    "amount": "19.99",
    "currency": "USD",
    "customer_id": "cus_1",
    "payment_method": "tok_visa",
}


@pytest.fixture
def pay() -> AegisPay:
    return AegisPay.in_memory(seed=1)


def test_a_new_payment_starts_initiated_with_exact_money(pay: AegisPay) -> None:
    payment = pay.create_payment(**REQUEST)
    assert payment.state is PaymentState.INITIATED
    assert payment.amount.minor == 1999
    assert payment.currency == "USD"
    assert payment.idempotency_key == "order-1"
    assert pay.get_payment(payment.id) == payment


def test_the_same_key_and_parameters_return_the_same_payment(pay: AegisPay) -> None:
    first = pay.create_payment(**REQUEST)
    second = pay.create_payment(**{**REQUEST, "amount": "19.990"})
    assert second == first
    assert len(pay.events(first.id)) == 1
    assert len(pay.list_payments()) == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", "20.00"),
        ("currency", "EUR"),
        ("customer_id", "cus_2"),
        ("payment_method", "tok_x"),
    ],
)
def test_the_same_key_with_other_parameters_is_a_conflict_and_writes_nothing(
    pay: AegisPay, field: str, value: str
) -> None:
    first = pay.create_payment(**REQUEST)
    with pytest.raises(IdempotencyKeyConflict) as caught:
        pay.create_payment(**{**REQUEST, field: value})
    assert "amount" in str(caught.value) or field in str(caught.value)
    assert pay.events(first.id) == pay.events(first.id)[:1]
    assert pay.list_payments() == [first]


def test_processing_charges_once_and_ends_in_success(pay: AegisPay) -> None:
    payment = pay.create_payment(**REQUEST)
    done = pay.process_payment(payment.id)
    assert done.state is PaymentState.SUCCESS
    assert done.transaction_id is not None
    charges = pay.gateway.charges()
    assert [c.merchant_reference for c in charges] == [payment.id]
    assert [r.event.type for r in pay.events(payment.id)] == [
        "PaymentInitiated",
        "PaymentAuthenticated",
        "ProcessingStarted",
        "PaymentSucceeded",
    ]


def test_processing_a_terminal_payment_again_changes_nothing(pay: AegisPay) -> None:
    payment = pay.create_payment(**REQUEST)
    done = pay.process_payment(payment.id)
    calls = pay.gateway.calls
    assert pay.process_payment(payment.id) == done
    assert pay.gateway.calls == calls
    assert len(pay.events(payment.id)) == 4


def test_a_declining_test_card_ends_in_failure_without_a_charge(pay: AegisPay) -> None:
    payment = pay.create_payment(**{**REQUEST, "payment_method": "tok_decline"})
    done = pay.process_payment(payment.id)
    assert done.state is PaymentState.FAILURE
    assert done.failure_reason == "card_declined"
    assert not any(c.charged for c in pay.gateway.charges())


def test_failed_authentication_never_reaches_the_gateway(pay: AegisPay) -> None:
    payment = pay.create_payment(**{**REQUEST, "payment_method": "tok_authentication_failed"})
    done = pay.process_payment(payment.id)
    assert done.state is PaymentState.FAILURE
    assert done.failure_reason == "authentication_failed"
    assert pay.gateway.calls == 0


def test_list_payments_filters_by_state(pay: AegisPay) -> None:
    a = pay.create_payment(**REQUEST)
    b = pay.create_payment(**{**REQUEST, "idempotency_key": "order-2"})
    pay.process_payment(b.id)
    assert [p.id for p in pay.list_payments("INITIATED")] == [a.id]
    assert [p.id for p in pay.list_payments(PaymentState.SUCCESS)] == [b.id]
    assert len(pay.list_payments()) == 2


def test_an_unknown_payment_id_is_reported_by_name(pay: AegisPay) -> None:
    for call in (pay.get_payment, pay.process_payment, pay.events):
        with pytest.raises(PaymentNotFound, match="payment_id: no payment 'pay_missing'"):
            call("pay_missing")


def test_concurrent_creates_from_threads_make_exactly_one_payment(pay: AegisPay) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        payments = list(pool.map(lambda _: pay.create_payment(**REQUEST), range(32)))
    assert len({p.id for p in payments}) == 1
    assert len(pay.list_payments()) == 1
    assert len(pay.events(payments[0].id)) == 1


def test_the_same_seed_gives_the_same_history() -> None:
    def history(seed: int) -> list[str]:
        pay = AegisPay.in_memory(seed=seed)
        for i in range(5):
            p = pay.create_payment(**{**REQUEST, "idempotency_key": f"k{i}"})
            pay.process_payment(p.id)
        return [r.event.model_dump_json() for p in pay.list_payments() for r in pay.events(p.id)]

    assert history(3) == history(3)


def test_the_public_names_are_exported() -> None:
    for name in ("AegisPay", "Payment", "PaymentState", "IdempotencyKeyConflict", "InvalidRequest"):
        assert name in aegispay.__all__
