"""Every public entry point validates before touching storage, naming the field and the rule."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from aegispay import AegisPay, InvalidRequest
from aegispay.infra.urls import check_distinct, parse_store_url

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
        ("amount", "\uff11\uff19", "decimal number"),  # full-width digits
        ("amount", "1_000", "decimal number"),
        ("amount", "1e2", "decimal number"),
        ("amount", "+5", "decimal number"),
        ("amount", "", "decimal number"),
        ("amount", 19.99, "floats are not exact: pass a string like '19.99'"),
        ("amount", None, "must be a decimal string like '19.99', a Decimal or an int"),
        ("amount", Decimal("Infinity"), "finite"),
        ("amount", Decimal("1e30"), "at most"),
        ("currency", "XYZ", "ISO 4217"),
        ("currency", "", "ISO 4217"),
        ("currency", 840, "ISO 4217"),
        ("idempotency_key", "", "must not be empty"),
        ("idempotency_key", "   ", "must not be empty"),
        ("idempotency_key", "k" * 256, "at most 255 characters"),
        ("idempotency_key", 42, "must be a string"),
        ("idempotency_key", " order-1", "must not start or end with whitespace"),
        ("idempotency_key", "order-1 ", "must not start or end with whitespace"),
        ("idempotency_key", "order\x00-1", "must not contain control characters"),
        ("idempotency_key", "order-1\n", "must not contain control characters"),
        ("idempotency_key", "order\x7f-1", "must not contain control characters"),
        ("customer_id", "", "must not be empty"),
        ("customer_id", "c" * 65, "at most 64 characters"),
        ("customer_id", "cus\x001", "must not contain control characters"),
        ("customer_id", "cus_1\n", "must not contain control characters"),
        ("payment_method", "", "must not be empty"),
        ("payment_method", "tok\tvisa", "must not contain control characters"),
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
    with pytest.raises(InvalidRequest, match=r"must be a whole number for JPY \(JPY has no minor"):
        pay.create_payment(**{**GOOD, "amount": "1.5", "currency": "JPY"})
    payment = pay.create_payment(**{**GOOD, "amount": "1.234", "currency": "BHD"})
    assert payment.amount.minor == 1234


def test_a_lowercase_currency_code_is_accepted_and_stored_upper_cased() -> None:
    payment = AegisPay.in_memory().create_payment(**{**GOOD, "currency": " usd "})
    assert payment.amount.currency == "USD"


def test_a_key_with_inner_spaces_is_accepted_as_it_was_sent() -> None:
    payment = AegisPay.in_memory().create_payment(**{**GOOD, "idempotency_key": "order 1"})
    assert payment.idempotency_key == "order 1"


@pytest.mark.parametrize("payment_id", ["", "  ", None, 7, "p" * 65, "pay_1\x00"])
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


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("sqlite:///:memory:", "must be 'memory://' for a store in memory"),
        ("sqlite:///{tmp}/x.db?mode=ro", "must not have a query string or fragment"),
        ("sqlite:///{tmp}/x.db#top", "must not have a query string or fragment"),
        ("sqlite:///{tmp}", "is a directory"),
    ],
)
def test_a_store_url_that_names_no_database_file_is_refused_and_creates_nothing(
    tmp_path: Path, url: str, rule: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        AegisPay.open(store=url.format(tmp=tmp_path), gateway="memory://")
    assert caught.value.field == "store"
    assert rule in caught.value.rule
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("store", "gateway"),
    [("{tmp}/one.db", "{tmp}/one.db"), ("{tmp}/one.db", "{tmp}/sub/../one.db"),
     ("{tmp}/one.db", "{tmp}/link.db")],
    ids=["same path", "same file once resolved", "through a symlink"],
)  # fmt: skip
def test_check_distinct_refuses_one_sqlite_file_for_store_and_gateway(
    tmp_path: Path, store: str, gateway: str
) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.db").symlink_to(tmp_path / "one.db")
    urls = [parse_store_url(name, f"sqlite:///{path.format(tmp=tmp_path)}")
            for name, path in (("store", store), ("gateway", gateway))]  # fmt: skip
    with pytest.raises(InvalidRequest) as caught:
        check_distinct(*urls)
    assert caught.value.field == "gateway"
    assert caught.value.rule == (
        "must be a different file from the store: the gateway keeps its own ledger"
    )


@pytest.mark.parametrize(
    ("store", "gateway"),
    [("sqlite:///{tmp}/s.db", "sqlite:///{tmp}/g.db"), ("memory://", "memory://"),
     ("sqlite:///{tmp}/s.db", "memory://")],
)  # fmt: skip
def test_check_distinct_accepts_two_files_or_memory(
    tmp_path: Path, store: str, gateway: str
) -> None:
    check_distinct(
        parse_store_url("store", store.format(tmp=tmp_path)),
        parse_store_url("gateway", gateway.format(tmp=tmp_path)),
    )


def test_the_store_and_the_gateway_cannot_share_one_file(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/one.db"
    with pytest.raises(InvalidRequest, match="gateway: must be a different file") as caught:
        AegisPay.open(store=url, gateway=url)
    assert caught.value.field == "gateway"
