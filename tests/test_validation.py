"""Every public entry point validates before touching storage, naming the field and the rule."""

from __future__ import annotations

from decimal import Decimal

import pytest

from aegispay import AegisPay, InvalidRequest

GOOD = {
    "idempotency_key": "order-1",
    "amount": "10.00",
    "currency": "USD",
    "customer_id": "cus_1",
    "payment_method": "tok_visa",
}


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("amount", "-1", "greater than zero"),
        ("amount", "0", "greater than zero"),
        ("amount", "0.00", "greater than zero"),
        ("amount", "NaN", "finite"),
        ("amount", "Infinity", "finite"),
        ("amount", "1.999", "more than 2 decimal places"),
        ("amount", "abc", "decimal number"),
        ("amount", "", "decimal number"),
        ("amount", 19.99, "floats are not exact"),
        ("amount", None, "decimal string"),
        ("amount", Decimal("1e30"), "at most"),
        ("currency", "XYZ", "ISO 4217"),
        ("currency", "", "ISO 4217"),
        ("currency", 840, "ISO 4217"),
        ("idempotency_key", "", "must not be empty"),
        ("idempotency_key", "   ", "must not be empty"),
        ("idempotency_key", "k" * 256, "at most 255 characters"),
        ("idempotency_key", 42, "must be a string"),
        ("customer_id", "", "must not be empty"),
        ("customer_id", "c" * 65, "at most 64 characters"),
        ("payment_method", "", "must not be empty"),
    ],
)
def test_a_bad_create_request_names_the_field_and_rule_and_stores_nothing(
    field: str, value: object, rule: str
) -> None:
    pay = AegisPay.in_memory()
    pay.create_payment(**{**GOOD, "idempotency_key": "existing"})
    with pytest.raises(InvalidRequest) as caught:
        pay.create_payment(**{**GOOD, field: value})
    assert caught.value.field == field
    assert rule in str(caught.value)
    assert [p.idempotency_key for p in pay.list_payments()] == ["existing"]


def test_jpy_rejects_any_decimal_and_bhd_takes_three() -> None:
    pay = AegisPay.in_memory()
    with pytest.raises(InvalidRequest, match="more than 0 decimal places"):
        pay.create_payment(**{**GOOD, "amount": "1.5", "currency": "JPY"})
    payment = pay.create_payment(**{**GOOD, "amount": "1.234", "currency": "BHD"})
    assert payment.amount.minor == 1234


@pytest.mark.parametrize("payment_id", ["", "  ", None, 7, "p" * 65])
def test_a_malformed_payment_id_is_rejected_by_name(payment_id: object) -> None:
    pay = AegisPay.in_memory()
    for call in (pay.get_payment, pay.process_payment, pay.events):
        with pytest.raises(InvalidRequest) as caught:
            call(payment_id)  # type: ignore[arg-type]
        assert caught.value.field == "payment_id"


def test_an_unknown_state_filter_lists_the_valid_ones() -> None:
    with pytest.raises(InvalidRequest, match="state: must be one of INITIATED"):
        AegisPay.in_memory().list_payments("DONE")


@pytest.mark.parametrize("url", ["postgres://x", "sqlite://", "sqlite:///", "", 5])
def test_a_bad_store_url_is_rejected_before_opening_anything(url: object) -> None:
    with pytest.raises(InvalidRequest) as caught:
        AegisPay.open(store=url, gateway="memory://")  # type: ignore[arg-type]
    assert caught.value.field == "store"


def test_a_store_in_a_missing_directory_is_rejected(tmp_path: object) -> None:
    with pytest.raises(InvalidRequest, match="does not exist"):
        AegisPay.open(store=f"sqlite:///{tmp_path}/nope/x.db", gateway="memory://")
