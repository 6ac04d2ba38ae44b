"""Errors the domain raises: each names what was wrong so a caller can act on it."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping


class AegisPayError(Exception):
    """Base of every error AegisPay raises on purpose."""


class InvalidRequest(AegisPayError, ValueError):
    """A request broke a rule; `field` and `rule` say which."""

    def __init__(self, field: str, rule: str, value: object = ...) -> None:
        self.field = field
        self.rule = rule
        self.value = value
        shown = "" if value is ... else f" (got {_shown(value)})"
        super().__init__(f"{field}: {rule}{shown}")


def _shown(value: object) -> str:
    try:
        return repr(value)
    except ValueError:
        # Python refuses to print an int of more than 4300 digits; the error must still be raised.
        return "a number too long to print"


def code_point(char: str) -> str:
    """Name a character as an error shows it, "U+200B ZERO WIDTH SPACE", even if it is invisible."""
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X} {name}".rstrip()


class InvalidTransition(AegisPayError):
    """An event is not allowed from the payment's current state by the transition table."""

    def __init__(self, state: str, event: str, payment_id: str = "") -> None:
        self.state = state
        self.event = event
        self.payment_id = payment_id
        where = f" for payment {payment_id}" if payment_id else ""
        super().__init__(f"{event} is not allowed in state {state}{where}")


class IdempotencyKeyConflict(AegisPayError):
    """The idempotency key was already used with different parameters; nothing was written."""

    def __init__(self, key: str, differences: Mapping[str, tuple[object, object]]) -> None:
        self.key = key
        self.differences = dict(differences)
        shown = ", ".join(f"{f}: stored {a}, requested {b}" for f, (a, b) in differences.items())
        super().__init__(
            f"idempotency_key {key!r} was already used with other parameters ({shown})"
        )


class PaymentNotFound(AegisPayError, LookupError):
    """No payment has this id."""

    def __init__(self, payment_id: str) -> None:
        self.payment_id = payment_id
        super().__init__(f"payment_id: no payment {payment_id!r}")

    def __str__(self) -> str:
        return str(self.args[0])


class ConcurrencyError(AegisPayError):
    """Another writer appended to the stream first; the expected version no longer holds."""

    def __init__(self, stream_id: str, expected: int, actual: int) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"stream {stream_id}: expected version {expected}, found {actual} (a concurrent writer)"
        )


class EventContinuityError(AegisPayError):
    """A stream has a version gap or an unreadable row; reading it halts rather than skip."""

    def __init__(self, stream_id: str, detail: str) -> None:
        self.stream_id = stream_id
        self.detail = detail
        super().__init__(f"stream {stream_id}: {detail}")


class EventIntegrityError(EventContinuityError):
    """A stored event fails the log's checks (version, hash chain, stream membership, format).

    `version` is the version found damaged or missing; `position` is the global position of the
    row where reading stopped, so that a scan can carry on after it.
    """

    def __init__(self, stream_id: str, version: int, detail: str, position: int) -> None:
        self.version = version
        self.position = position
        self.problem = detail
        super().__init__(stream_id, f"version {version}: {detail}")


class LockNotHeld(AegisPayError):
    """A lock operation was refused: the caller does not own the lock (or it expired)."""


class LockTimeout(AegisPayError):
    """A lock could not be acquired before the wait timed out."""


class ProjectionWriteFailed(AegisPayError):
    """Writing a projection row failed; the events hold the truth and repair will catch up."""
