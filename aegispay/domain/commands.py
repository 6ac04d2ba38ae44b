"""Commands: what a caller asks for, validated before anything touches storage."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from functools import lru_cache
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from aegispay.domain.errors import InvalidRequest, code_point
from aegispay.domain.money import Money, parse_currency

M = TypeVar("M", bound=BaseModel)

MAX_KEY_LENGTH = 255
MAX_ID_LENGTH = 64

Key = Annotated[str, StringConstraints(min_length=1, max_length=MAX_KEY_LENGTH)]
Identifier = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_ID_LENGTH)
]

# Characters no key or id may hold, by Unicode category: each is invisible or breaks a line, so
# two keys that print alike would be two payments. A lone surrogate cannot even be encoded.
FORBIDDEN_CHARACTERS = {
    "Cc": "control characters",
    "Cf": "invisible format characters",
    "Cs": "lone surrogates",
    "Zl": "line separators",
    "Zp": "paragraph separators",
}
_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class CreatePayment(BaseModel):
    """Create a payment once per idempotency key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    idempotency_key: Key
    amount: Money
    customer_id: Identifier
    payment_method: Identifier

    @classmethod
    def parse(
        cls,
        *,
        idempotency_key: object,
        amount: object,
        currency: object,
        customer_id: object,
        payment_method: object,
    ) -> CreatePayment:
        """Validate raw input field by field; raise InvalidRequest naming the first bad field.

        The currency code is read case-insensitively: "usd" is accepted and stored as "USD".
        """
        key = validate_key(idempotency_key)
        money = Money.parse(amount, parse_currency(currency))
        return validated(
            cls,
            idempotency_key=key,
            amount=money,
            customer_id=validate_text("customer_id", customer_id, MAX_ID_LENGTH),
            payment_method=validate_text("payment_method", payment_method, MAX_ID_LENGTH),
        )

    @property
    def payment_id(self) -> str:
        """The payment id this key maps to."""
        return payment_id_for(self.idempotency_key)


@lru_cache(maxsize=4096)
def payment_id_for(idempotency_key: str) -> str:
    """Derive the payment id from the idempotency key: one key, one payment, in every process."""
    key = idempotency_key if idempotency_key.isascii() else normal_form(idempotency_key)
    return "pay_" + hashlib.sha256(key.encode()).hexdigest()[:24]


def normal_form(text: str) -> str:
    """The text in Unicode's composed form (NFC): "café" typed or pasted is one key, not two."""
    return unicodedata.normalize("NFC", text)


def validate_key(value: object) -> str:
    """Check an idempotency key is text as a client sent it, with nothing trimmed; return it in
    Unicode's composed form (NFC), so that keys which print alike are one key."""
    key = validate_text("idempotency_key", value, MAX_KEY_LENGTH)
    # "order-1 " and "order-1" would be two payments for what is surely one order.
    if key != key.strip():
        raise InvalidRequest("idempotency_key", "must not start or end with whitespace", key)
    if key.isascii():
        return key
    # A no-break or other wide space prints as " " yet would make another payment.
    for char in key:
        if unicodedata.category(char) == "Zs" and char != " ":
            rule = f"must not contain a space other than ' ': found {code_point(char)}"
            raise InvalidRequest("idempotency_key", rule, key)
    return normal_form(key)


def validate_text(field: str, value: object, max_length: int) -> str:
    """Check a text field is a non-blank string within a length, with no invisible characters."""
    if not isinstance(value, str):
        raise InvalidRequest(field, "must be a string", value)
    if not value.strip():
        raise InvalidRequest(field, "must not be empty", value)
    if len(value) > max_length:
        raise InvalidRequest(field, f"must be at most {max_length} characters", value[:40] + "...")
    # ASCII text holds no forbidden character but the C0 controls and DEL: one regex pass.
    # Anything else is checked character by character, by category.
    if value.isascii() and not _ASCII_CONTROL.search(value):
        return value
    for char in value:
        if kind := FORBIDDEN_CHARACTERS.get(unicodedata.category(char)):
            raise InvalidRequest(field, f"must not contain {kind}: found {code_point(char)}", value)
    return value


def validated(model: type[M], **fields: Any) -> M:
    """Build a pydantic model, turning its first error into an InvalidRequest naming the field."""
    try:
        return model(**fields)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or model.__name__
        raise InvalidRequest(field, _rule(first), first.get("input", ...)) from None


def _rule(error: Any) -> str:
    ctx = error.get("ctx") or {}
    match error["type"]:
        case "string_too_short":
            return "must not be empty"
        case "string_too_long":
            return f"must be at most {ctx.get('max_length')} characters"
        case "string_type":
            return "must be a string"
        case "value_error":
            return str(ctx.get("error"))
    return str(error["msg"]).lower()
