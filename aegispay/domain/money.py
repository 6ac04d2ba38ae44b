"""Money in integer minor units of an ISO 4217 currency, parsed exactly from decimal strings."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from aegispay.domain.errors import InvalidRequest, code_point

# ISO 4217 active codes and their minor-unit exponents (digits after the decimal point).
CURRENCY_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(
        (
            "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP "
            "BYN BZD CAD CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP "
            "GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT "
            "LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN "
            "NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP "
            "SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD UYU UZS VES "
            "WST XCD YER ZAR ZMW ZWL"
        ).split(),
        2,
    ),
    **dict.fromkeys(
        "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(), 0
    ),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
    **dict.fromkeys("CLF UYW".split(), 4),
}

# Large enough for any real charge, small enough that a typo of extra zeros is caught.
MAX_MINOR_UNITS = 10**15

# ASCII digits, then optionally a point and more digits. Decimal() would also take "1e2", "+5",
# "1_000" and full-width digits; an amount is written one way only. The minus sign is read so
# that "-1" is told it must be greater than zero rather than that it is not a number.
DECIMAL_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?")

# Trimmed from the edges of an amount or a currency code. str.strip() would also trim no-break
# and thin spaces and the ASCII separators \x1c-\x1f, none of which a typed value holds.
ASCII_WHITESPACE = " \t\r\n"


def parse_currency(value: object) -> str:
    """Read an ISO 4217 code in ASCII letters, case-insensitively: "usd" is read as USD."""
    if not isinstance(value, str):
        raise InvalidRequest("currency", "must be an ISO 4217 code such as USD", value)
    # Checked before upper-casing: str.upper() turns "\u017fek" (long s) into "SEK".
    if odd := _first_non_ascii(value):
        raise InvalidRequest(
            "currency", f"must be an ISO 4217 code such as USD in ASCII letters: found {odd}", value
        )
    code = value.strip(ASCII_WHITESPACE).upper()
    currency_exponent(code)
    return code


def currency_exponent(currency: str) -> int:
    """Return the ISO 4217 exponent of a currency code, or raise InvalidRequest naming it."""
    try:
        return CURRENCY_EXPONENTS[currency]
    except KeyError:
        raise InvalidRequest(
            "currency", "must be an ISO 4217 code such as USD, EUR or JPY", currency
        ) from None


def parse_amount(value: object, currency: str) -> int:
    """Parse a decimal amount ("19.99", Decimal, int) into minor units of the currency, exactly."""
    exponent = currency_exponent(currency)
    if isinstance(value, str):
        text = value.strip(ASCII_WHITESPACE)
        if DECIMAL_TEXT.fullmatch(text):
            return _text_to_minor(text, value, exponent, currency)
    amount = _exact_decimal(value)
    if not amount.is_finite():
        raise InvalidRequest("amount", "must be a finite number", value)
    if amount <= 0:
        raise InvalidRequest("amount", "must be greater than zero", value)
    if _decimal_places(amount) > exponent:
        raise InvalidRequest("amount", _too_many_decimals(exponent, currency), value)
    # Compared before scaling: Decimal arithmetic rounds to 28 digits, a comparison never does.
    if amount > Decimal(MAX_MINOR_UNITS).scaleb(-exponent):
        raise InvalidRequest("amount", f"must be at most {MAX_MINOR_UNITS} minor units", value)
    return int(amount.scaleb(exponent))


def _text_to_minor(text: str, value: str, exponent: int, currency: str) -> int:
    """Minor units of a plain decimal text ("19.99", "-1", "007.50"), in integer arithmetic,
    refused as parse_amount refuses a Decimal: not above zero, too many places, too large."""
    negative = text.startswith("-")
    whole, _, fraction = text.removeprefix("-").partition(".")
    whole, fraction = whole.lstrip("0"), fraction.rstrip("0")
    if negative or not (whole or fraction):
        raise InvalidRequest("amount", "must be greater than zero", value)
    if len(fraction) > exponent:
        raise InvalidRequest("amount", _too_many_decimals(exponent, currency), value)
    # Checked on the digits before int() reads them: a huge text is refused, never converted.
    if len(whole) + exponent > len(str(MAX_MINOR_UNITS)):
        raise InvalidRequest("amount", f"must be at most {MAX_MINOR_UNITS} minor units", value)
    minor: int = int(whole or "0") * 10**exponent + int(fraction.ljust(exponent, "0") or "0")
    if minor > MAX_MINOR_UNITS:
        raise InvalidRequest("amount", f"must be at most {MAX_MINOR_UNITS} minor units", value)
    return minor


def _exact_decimal(value: object) -> Decimal:
    """Read a string, Decimal or int as a Decimal; refuse floats and every other type."""
    if isinstance(value, float):
        raise InvalidRequest("amount", "floats are not exact: pass a string like '19.99'", value)
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise InvalidRequest(
            "amount", "must be a decimal string like '19.99', a Decimal or an int", value
        )
    if not isinstance(value, str):
        return Decimal(value)
    text = value.strip(ASCII_WHITESPACE)
    if DECIMAL_TEXT.fullmatch(text):
        return Decimal(text)
    if odd := _first_non_ascii(text):
        raise InvalidRequest(
            "amount", f"must be a decimal number like '19.99' in ASCII: found {odd}", value
        )
    if _names_infinity_or_nan(text):
        raise InvalidRequest("amount", "must be a finite number", value)
    raise InvalidRequest("amount", "must be a decimal number like '19.99'", value)


def _first_non_ascii(text: str) -> str:
    """Name the first character of text outside ASCII, or return "" when it is all ASCII."""
    if text.isascii():
        return ""  # the usual case, answered in one pass in C
    return next((code_point(char) for char in text if not char.isascii()), "")


def _names_infinity_or_nan(text: str) -> bool:
    try:
        return not Decimal(text).is_finite()
    except InvalidOperation:
        return False


def _too_many_decimals(exponent: int, currency: str) -> str:
    if exponent == 0:
        return f"must be a whole number for {currency} ({currency} has no minor unit)"
    return f"has more than {exponent} decimal places allowed for {currency}"


def _decimal_places(amount: Decimal) -> int:
    """Count the digits after the point, ignoring trailing zeros, without rounding anything."""
    _, digits, exp = amount.as_tuple()
    trailing_zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(0, -(int(exp) + trailing_zeros))


class Money(BaseModel):
    """An exact amount: integer minor units of an ISO 4217 currency."""

    model_config = ConfigDict(frozen=True)

    minor: int
    currency: str

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, currency: str) -> str:
        currency_exponent(currency)
        return currency

    # A field validator, not a model one: a model's "after" validator runs again each time a
    # built Money is passed into another model (an event, a payment, a charge), and a frozen
    # Money's minor units were checked when it was built.
    @field_validator("minor")
    @classmethod
    def _positive(cls, minor: int) -> int:
        if not 0 < minor <= MAX_MINOR_UNITS:
            raise InvalidRequest("amount", f"must be between 1 and {MAX_MINOR_UNITS} minor units")
        return minor

    @classmethod
    def parse(cls, amount: object, currency: str) -> Money:
        """Build Money from a major-unit amount such as "19.99" and a currency code."""
        return cls(minor=parse_amount(amount, currency), currency=currency)

    @property
    def exponent(self) -> int:
        """Digits after the decimal point for this currency."""
        return CURRENCY_EXPONENTS[self.currency]

    @property
    def decimal(self) -> Decimal:
        """The amount in major units, exact."""
        return Decimal(self.minor).scaleb(-self.exponent)

    def __str__(self) -> str:
        exponent = self.exponent
        if self.minor < 0:  # never built validated; shown as Decimal shows it
            return f"{self.decimal:.{exponent}f} {self.currency}"
        # In integer arithmetic: the same text as formatting `decimal`, without a Decimal.
        whole, fraction = divmod(self.minor, 10**exponent)
        if not exponent:
            return f"{whole} {self.currency}"
        return f"{whole}.{fraction:0{exponent}d} {self.currency}"

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, Money):
            return (self.minor, self.currency) == (other.minor, other.currency)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.minor, self.currency))
