"""Money: exact parsing into integer minor units, rejection that names the rule, formatting."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from aegispay.domain.errors import InvalidRequest
from aegispay.domain.money import (
    CURRENCY_EXPONENTS,
    MAX_MINOR_UNITS,
    Money,
    parse_amount,
    parse_currency,
)

currencies = st.sampled_from(sorted(CURRENCY_EXPONENTS))


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("19.99", "USD", 1999),
        ("1000", "JPY", 1000),
        ("1.234", "BHD", 1234),
        ("0.0001", "CLF", 1),
        ("0.01", "USD", 1),
        ("1.5", "USD", 150),
        ("1.990", "USD", 199),
        (" 19.99 ", "USD", 1999),
        ("\t5\n", "USD", 500),
    ],
)
def test_a_decimal_string_parses_to_exact_minor_units(
    amount: str, currency: str, minor: int
) -> None:
    assert parse_amount(amount, currency) == minor


def test_a_decimal_parses_to_exact_minor_units() -> None:
    assert parse_amount(Decimal("19.99"), "USD") == 1999


@pytest.mark.parametrize(("amount", "currency", "minor"), [(5, "USD", 500), (1000, "JPY", 1000)])
def test_an_int_is_read_as_major_units(amount: int, currency: str, minor: int) -> None:
    assert parse_amount(amount, currency) == minor


def test_money_parse_builds_money_from_a_major_unit_amount() -> None:
    assert Money.parse("19.99", "USD") == Money(minor=1999, currency="USD")


@pytest.mark.parametrize(
    ("amount", "currency", "rule_says"),
    [
        ("-1", "USD", "greater than zero"),
        ("-0.01", "USD", "greater than zero"),
        ("-0", "USD", "greater than zero"),
        (Decimal("-5"), "USD", "greater than zero"),
        ("0", "USD", "greater than zero"),
        ("0.00", "USD", "greater than zero"),
        (0, "USD", "greater than zero"),
        ("NaN", "USD", "finite"),
        (Decimal("NaN"), "USD", "finite"),
        ("Infinity", "USD", "finite"),
        ("-Infinity", "USD", "finite"),
        ("inf", "USD", "finite"),
        (Decimal("Infinity"), "USD", "finite"),
        (Decimal("-Infinity"), "USD", "finite"),
        (Decimal("sNaN"), "USD", "finite"),
        ("1.999", "USD", "has more than 2 decimal places allowed for USD"),
        ("1.5", "JPY", "must be a whole number for JPY (JPY has no minor unit)"),
        ("1.2345", "BHD", "decimal places"),
        ("abc", "USD", "decimal number"),
        ("", "USD", "decimal number"),
        ("19.99.1", "USD", "decimal number"),
        (19.99, "USD", "floats are not exact: pass a string like '19.99'"),
        (True, "USD", "must be a decimal string like '19.99', a Decimal or an int"),
        (None, "USD", "must be a decimal string like '19.99', a Decimal or an int"),
        ("10000000000000.01", "USD", "at most"),
    ],
)
def test_an_invalid_amount_is_rejected_naming_the_amount_field_and_the_rule(
    amount: object, currency: str, rule_says: str
) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_amount(amount, currency)
    assert raised.value.field == "amount"
    assert rule_says in raised.value.rule


@pytest.mark.parametrize(
    "amount",
    [
        "1.000000000000000000000000000001",
        "0.10000000000000000000000000001",
        Decimal("1e-999999999"),
    ],
)
def test_extra_decimals_beyond_the_default_decimal_precision_are_rejected_not_rounded(
    amount: str | Decimal,
) -> None:
    """Decimal arithmetic rounds to 28 digits; a tiny fraction must still count as a decimal."""
    with pytest.raises(InvalidRequest) as raised:
        parse_amount(amount, "USD")
    assert "decimal places" in raised.value.rule


def test_an_astronomically_large_exponent_is_rejected_as_too_large() -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_amount(Decimal("1e999999999"), "USD")
    assert raised.value.field == "amount"
    assert "at most" in raised.value.rule


FULL_WIDTH_19 = "\uff11\uff19"
ARABIC_INDIC_19 = "\u0661\u0669"


@pytest.mark.parametrize(
    "amount",
    ["1_000", "1e2", "1E2", "+5", "5.", ".5", "1 000", "1,00", "0x10", "--5", "\x1c5", "5\x1f"],
)  # fmt: skip
def test_a_string_amount_must_be_ascii_digits_with_an_optional_point_and_digits_after_it(
    amount: str,
) -> None:
    """Decimal() reads underscores, exponents and a plus sign, str.strip() drops \\x1c-\\x1f."""
    with pytest.raises(InvalidRequest) as raised:
        parse_amount(amount, "USD")
    assert raised.value.field == "amount"
    assert raised.value.rule == "must be a decimal number like '19.99'"


@pytest.mark.parametrize(
    ("amount", "found"),
    [(FULL_WIDTH_19, "U+FF11 FULLWIDTH DIGIT ONE"),
     (ARABIC_INDIC_19, "U+0661 ARABIC-INDIC DIGIT ONE"),
     ("19.99\u00a0", "U+00A0 NO-BREAK SPACE"),
     ("\u00a019.99", "U+00A0 NO-BREAK SPACE"),
     ("1\u2009000", "U+2009 THIN SPACE"),
     ("\u30005", "U+3000 IDEOGRAPHIC SPACE"),
     ("5\u2028", "U+2028 LINE SEPARATOR"),
     ("5\u0085", "U+0085"),
     ("\u200b5", "U+200B ZERO WIDTH SPACE")],
)  # fmt: skip
def test_a_non_ascii_character_anywhere_in_an_amount_is_refused_by_its_code_point(
    amount: str, found: str
) -> None:
    """Decimal() reads other scripts' digits and str.strip() drops no-break spaces; we do not."""
    with pytest.raises(InvalidRequest) as raised:
        parse_amount(amount, "USD")
    assert raised.value.field == "amount"
    assert raised.value.rule == f"must be a decimal number like '19.99' in ASCII: found {found}"


@given(
    before=st.text(max_size=3),
    odd=st.characters(min_codepoint=0x80),
    after=st.text(max_size=3),
)
def test_every_amount_holding_a_non_ascii_character_is_refused(
    before: str, odd: str, after: str
) -> None:
    """An amount is ASCII: one character outside it, anywhere, refuses the whole amount."""
    with pytest.raises(InvalidRequest) as raised:
        parse_amount(f"{before}1{odd}{after}", "USD")
    assert raised.value.field == "amount"


def test_an_int_too_long_to_print_is_refused_as_too_large() -> None:
    """Python refuses to print an int over 4300 digits; the error must not fail in turn."""
    with pytest.raises(InvalidRequest) as raised:
        parse_amount(10**5000, "USD")
    assert "at most" in raised.value.rule


@pytest.mark.parametrize("amount", [None, True, False, [19], b"19.99", Fraction(1, 2)], ids=repr)
def test_an_amount_of_the_wrong_type_lists_the_accepted_types_without_mentioning_floats(
    amount: object,
) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_amount(amount, "USD")
    assert raised.value.rule == "must be a decimal string like '19.99', a Decimal or an int"
    assert "float" not in str(raised.value)


def test_a_whole_amount_with_zero_decimals_is_accepted_for_a_currency_with_no_minor_unit() -> None:
    assert parse_amount("1000.00", "JPY") == 1000


@given(amount=st.decimals(allow_nan=False, allow_infinity=False), currency=currencies)
@example(amount=Decimal("1.000000000000000000000000000001"), currency="USD")
@example(amount=Decimal("1E-999999"), currency="USD")
def test_parsing_never_rounds_it_returns_the_exact_amount_or_rejects(
    amount: Decimal, currency: str
) -> None:
    """parse_amount returns exactly amount x 10**exponent, or raises InvalidRequest."""
    try:
        minor = parse_amount(amount, currency)
    except InvalidRequest:
        return
    assert Fraction(minor) == Fraction(amount) * 10 ** CURRENCY_EXPONENTS[currency]
    assert 0 < minor <= MAX_MINOR_UNITS


def test_an_unknown_currency_is_rejected_naming_the_currency_field() -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_amount("19.99", "XYZ")
    assert raised.value.field == "currency"
    assert raised.value.rule


@pytest.mark.parametrize(("code", "currency"), [("usd", "USD"), (" eur ", "EUR"), ("JpY", "JPY")])
def test_a_currency_code_in_ascii_letters_is_read_case_insensitively(
    code: str, currency: str
) -> None:
    assert parse_currency(code) == currency


@pytest.mark.parametrize(
    ("code", "found"),
    [("\u017fek", "U+017F LATIN SMALL LETTER LONG S"),
     ("\u0131sk", "U+0131 LATIN SMALL LETTER DOTLESS I"),
     ("U\u0405D", "U+0405 CYRILLIC CAPITAL LETTER DZE"),
     ("\uff35\uff33\uff24", "U+FF35 FULLWIDTH LATIN CAPITAL LETTER U"),
     ("\u00a0USD", "U+00A0 NO-BREAK SPACE"),
     ("USD\u200b", "U+200B ZERO WIDTH SPACE")],
)  # fmt: skip
def test_a_currency_code_with_a_non_ascii_character_is_refused_by_its_code_point(
    code: str, found: str
) -> None:
    """str.upper() turns a long s into S and a dotless i into I: "\u017fek" would be SEK."""
    with pytest.raises(InvalidRequest) as raised:
        parse_currency(code)
    assert raised.value.field == "currency"
    assert raised.value.rule == (
        f"must be an ISO 4217 code such as USD in ASCII letters: found {found}"
    )


@pytest.mark.parametrize("code", ["XYZ", "", "US", "USDD", 840, None], ids=repr)
def test_a_currency_that_is_not_an_iso_code_is_refused(code: object) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_currency(code)
    assert raised.value.field == "currency"
    assert "ISO 4217" in raised.value.rule


def test_money_parse_with_an_unknown_currency_names_the_currency_field() -> None:
    with pytest.raises(InvalidRequest) as raised:
        Money.parse("19.99", "ABC")
    assert raised.value.field == "currency"


@pytest.mark.parametrize("minor", [0, -1, MAX_MINOR_UNITS + 1])
def test_money_cannot_be_built_with_minor_units_out_of_range(minor: int) -> None:
    with pytest.raises(ValueError, match="minor units"):
        Money(minor=minor, currency="USD")


@pytest.mark.parametrize(
    ("minor", "currency", "shown"),
    [
        (1999, "USD", "19.99 USD"),
        (1000, "JPY", "1000 JPY"),
        (5, "USD", "0.05 USD"),
        (100, "USD", "1.00 USD"),
        (1234, "BHD", "1.234 BHD"),
        (1, "CLF", "0.0001 CLF"),
    ],
)
def test_money_prints_its_major_units_with_the_currency_exponent(
    minor: int, currency: str, shown: str
) -> None:
    assert str(Money(minor=minor, currency=currency)) == shown


@given(minor=st.integers(min_value=1, max_value=MAX_MINOR_UNITS), currency=currencies)
def test_parsing_the_printed_amount_gives_the_same_money(minor: int, currency: str) -> None:
    """Printing then parsing Money must return it unchanged."""
    money = Money(minor=minor, currency=currency)
    assert Money.parse(str(money).split()[0], currency) == money


def test_equal_amounts_are_equal_money_with_equal_hashes() -> None:
    a, b = Money(minor=1999, currency="USD"), Money.parse("19.99", "USD")
    assert a == b
    assert hash(a) == hash(b)
    assert a != Money(minor=1999, currency="EUR")


def _rule_or_minor(amount: object, currency: str) -> object:
    try:
        return parse_amount(amount, currency)
    except InvalidRequest as refused:
        return refused.rule


@given(
    sign=st.sampled_from(["", "-"]),
    whole=st.text("0123456789", min_size=1, max_size=20),
    fraction=st.one_of(st.none(), st.text("0123456789", min_size=1, max_size=6)),
    currency=currencies,
)
@example(sign="-", whole="0", fraction=None, currency="USD")
@example(sign="", whole="000", fraction="000", currency="JPY")
@example(sign="", whole="1000000000000", fraction="001", currency="USD")
@example(sign="", whole="10000000000000", fraction="00", currency="USD")
@example(sign="", whole="9999999999999", fraction="99", currency="USD")
def test_a_decimal_text_reads_as_its_decimal_does_to_the_unit_and_to_the_error(
    sign: str, whole: str, fraction: str | None, currency: str
) -> None:
    """Plain decimal text is read in integer arithmetic; a Decimal of it goes the other way.
    Both give the same minor units, or the same refusal."""
    text = sign + whole + ("" if fraction is None else "." + fraction)
    assert _rule_or_minor(text, currency) == _rule_or_minor(Decimal(text), currency)
