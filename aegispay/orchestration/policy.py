"""The decisions processing takes, as values a caller may replace: the engine's own by default.

`recover` settles a payment found in flight on what the gateway answered; `after_failed_charge`
says what follows a charge call that failed without an answer; `start` writes the payment's
starting events and sends its charge, in an order of its own. A harness or a learner builds
the engine with other ones (`Engine(policy=Policy(recover=my_decide))`); the workflows hold no
switch of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aegispay.domain import decisions
from aegispay.domain.decisions import Action, AfterFailedCharge, Seen
from aegispay.domain.failures import FailureRule
from aegispay.orchestration.workflows import Start, intent_then_charge


@dataclass(frozen=True)
class Policy:
    """The replaceable decisions of processing; each is a plain function."""

    recover: Callable[[Seen], Action | str] = decisions.decide_recovery
    after_failed_charge: Callable[[FailureRule], AfterFailedCharge | str] = (
        decisions.after_failed_charge
    )
    start: Start = intent_then_charge


ENGINE_POLICY = Policy()
