"""Every public entry point validates before touching storage, naming the field and the rule."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
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
        ("currency", "\u017fek", "in ASCII letters: found U+017F LATIN SMALL LETTER LONG S"),
        ("amount", "10.00\u00a0", "in ASCII: found U+00A0 NO-BREAK SPACE"),
        ("amount", "1\u2009000", "in ASCII: found U+2009 THIN SPACE"),
        ("amount", "\u300010", "in ASCII: found U+3000 IDEOGRAPHIC SPACE"),
        ("idempotency_key", "", "must not be empty"),
        ("idempotency_key", "   ", "must not be empty"),
        ("idempotency_key", "k" * 256, "at most 255 characters"),
        ("idempotency_key", 42, "must be a string"),
        ("idempotency_key", " order-1", "must not start or end with whitespace"),
        ("idempotency_key", "order-1 ", "must not start or end with whitespace"),
        ("idempotency_key", "order\x00-1", "must not contain control characters"),
        ("idempotency_key", "order-1\n", "must not contain control characters"),
        ("idempotency_key", "order\x7f-1", "must not contain control characters"),
        (
            "idempotency_key",
            "order\u200b-1",
            "invisible format characters: found U+200B ZERO WIDTH",
        ),
        (
            "idempotency_key",
            "order\u200d-1",
            "invisible format characters: found U+200D ZERO WIDTH",
        ),
        ("idempotency_key", "\ufefforder-1", "invisible format characters: found U+FEFF"),
        (
            "idempotency_key",
            "order-1\u202e",
            "format characters: found U+202E RIGHT-TO-LEFT OVERRIDE",
        ),
        ("idempotency_key", "order\u2028-1", "line separators: found U+2028 LINE SEPARATOR"),
        ("idempotency_key", "order\u2029-1", "paragraph separators: found U+2029 PARAGRAPH"),
        ("idempotency_key", "order\ud800-1", "must not contain lone surrogates: found U+D800"),
        ("customer_id", "", "must not be empty"),
        ("customer_id", "c" * 65, "at most 64 characters"),
        ("customer_id", "cus\x001", "must not contain control characters"),
        ("customer_id", "cus_1\n", "must not contain control characters"),
        ("customer_id", "cus\u200b1", "invisible format characters: found U+200B ZERO WIDTH SPACE"),
        ("customer_id", "cus_1\u2066", "format characters: found U+2066 LEFT-TO-RIGHT ISOLATE"),
        ("payment_method", "", "must not be empty"),
        ("payment_method", "tok\tvisa", "must not contain control characters"),
        (
            "payment_method",
            "tok\u00advisa",
            "invisible format characters: found U+00AD SOFT HYPHEN",
        ),
        ("payment_method", "\u202etok_visa", "format characters: found U+202E RIGHT-TO-LEFT"),
        ("payment_method", "tok\u2028visa", "line separators: found U+2028 LINE SEPARATOR"),
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


@pytest.mark.parametrize(
    "payment_id", ["", "  ", None, 7, "p" * 65, "pay_1\x00", "pay_1\u200b", "\ufeffpay_1"]
)
def test_a_malformed_payment_id_is_rejected_by_name(payment_id: object) -> None:
    pay = AegisPay.in_memory()
    for call in (pay.get_payment, pay.process_payment, pay.events, pay.processing_program):
        with pytest.raises(InvalidRequest) as caught:
            call(payment_id)  # type: ignore[arg-type]
        assert caught.value.field == "payment_id"


def test_a_payment_id_with_an_invisible_character_is_refused_naming_its_code_point() -> None:
    """Copied from a chat or a PDF, an id may carry a zero-width space that no one can see."""
    pay = AegisPay.in_memory()
    payment = pay.create_payment(**GOOD)
    with pytest.raises(InvalidRequest) as caught:
        pay.process_payment(payment.id + "\u200b")
    assert caught.value.rule == (
        "must not contain invisible format characters: found U+200B ZERO WIDTH SPACE"
    )
    assert pay.get_payment(payment.id) == payment


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


# Database files this process cannot use: refused by name before anything is opened


def store_and_gateway(tmp_path: Path) -> dict[str, str]:
    return {"store": f"sqlite:///{tmp_path}/store.db", "gateway": f"sqlite:///{tmp_path}/gw.db"}


@pytest.mark.parametrize("field", ["store", "gateway"])
def test_a_url_naming_a_directory_is_refused_naming_the_path(tmp_path: Path, field: str) -> None:
    (tmp_path / "db").mkdir()
    urls = {**store_and_gateway(tmp_path), field: f"sqlite:///{tmp_path}/db"}
    with pytest.raises(InvalidRequest) as caught:
        AegisPay.open(**urls)
    assert (caught.value.field, caught.value.rule) == (
        field,
        "is a directory: name a database file",
    )
    assert caught.value.value == f"{tmp_path}/db"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["db"]


@pytest.mark.parametrize("field", ["store", "gateway"])
def test_a_path_below_a_file_is_refused_as_not_a_directory(tmp_path: Path, field: str) -> None:
    (tmp_path / "notes.txt").write_text("a file, not a directory\n")
    urls = {**store_and_gateway(tmp_path), field: f"sqlite:///{tmp_path}/notes.txt/x.db"}
    with pytest.raises(InvalidRequest) as caught:
        AegisPay.open(**urls)
    assert caught.value.field == field
    assert caught.value.rule == f"'{tmp_path}/notes.txt' is not a directory"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt"]


def test_a_store_whose_wal_file_name_is_taken_by_a_directory_is_refused_naming_it(
    tmp_path: Path,
) -> None:
    """SQLite must create store.db-wal beside the store; a directory there would fail later."""
    (tmp_path / "store.db-wal").mkdir()
    with pytest.raises(InvalidRequest) as caught:
        AegisPay.open(**store_and_gateway(tmp_path))
    assert caught.value.field == "store"
    assert caught.value.rule == f"'{tmp_path}/store.db-wal' is a directory: name a database file"


@pytest.mark.parametrize("field", ["store", "gateway"])
def test_a_file_that_is_not_a_database_is_refused_by_name_and_left_as_it_was(
    tmp_path: Path, field: str
) -> None:
    name = "store.db" if field == "store" else "gw.db"
    (tmp_path / name).write_text("a shopping list, not a database\n" * 10)
    with pytest.raises(InvalidRequest) as caught:
        AegisPay.open(**store_and_gateway(tmp_path))
    assert caught.value.field == field
    assert caught.value.rule == "cannot be opened as a database (file is not a database)"
    assert caught.value.value == f"{tmp_path}/{name}"
    assert (tmp_path / name).read_text() == "a shopping list, not a database\n" * 10


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make a file read-only even to root: by its mode, or as root by the immutable attribute."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(0o644)
        return
    chattr = shutil.which("chattr")
    # Setting the attribute takes CAP_LINUX_IMMUTABLE and a file system that keeps it (ext4).
    immutable = chattr and subprocess.run([chattr, "+i", path], check=False, capture_output=True)
    if not chattr or not immutable or immutable.returncode != 0:
        pytest.skip("root writes through a file's mode, and chattr +i is not available here")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", path], check=True)


@pytest.mark.parametrize("field", ["store", "gateway"])
def test_a_read_only_database_file_is_refused_by_name_and_left_as_it_was(
    tmp_path: Path, field: str
) -> None:
    urls = store_and_gateway(tmp_path)
    with AegisPay.open(**urls) as pay:
        pay.create_payment(**GOOD)
    target = tmp_path / ("store.db" if field == "store" else "gw.db")
    before = target.read_bytes()
    with read_only(target), pytest.raises(InvalidRequest) as caught:
        AegisPay.open(**urls)
    assert (caught.value.field, caught.value.rule) == (field, "is read-only: AegisPay writes to it")
    assert caught.value.value == str(target)
    assert target.read_bytes() == before
    with AegisPay.open(**urls) as pay:
        assert [p.idempotency_key for p in pay.list_payments()] == ["order-1"]
