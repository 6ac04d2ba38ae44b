"""Lab `retry`: decide which failed charges to send again, and how, before and after sending.

A charge call fails: the connection was refused, it timed out connecting (the request never
left), it timed out waiting for the answer, or the answer was lost (the gateway may well have
charged). Your function decides, after each failed attempt, whether to send the charge again.

You write `retry(failure) -> str`. `failure.kind` is one of "timeout_before", "network",
"timeout_after", "partial"; `failure.sent` is True when the request may have reached the
gateway; `failure.attempt` counts the attempts made so far (1, 2, 3; after the third the
harness stops, whatever you answer). Answer one of:

    "same_key"  send the very same request again, with the payment's idempotency key
    "new_key"   send it again as a new request, under a fresh idempotency key
    "stop"      stop retrying: the engine then verifies or cancels, as it always does

For example, a first try that retries everything as a fresh request:

    def retry(failure):
        return "new_key"

The harness builds the engine with your function in front of each gateway (its own retries
turned off) and runs the whole attack. The promises: nobody is charged twice; after the faults
heal and recovery runs, the payment is settled and agrees with the gateway; and a payment
whose first attempt met one refused connection, and nothing else, still succeeds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar, cast

from aegispay.domain.charges import ChargeRecord, ChargeRequest
from aegispay.domain.errors import InvalidRequest
from aegispay.domain.failures import Fault, classify, kind_of
from aegispay.domain.states import PaymentState
from aegispay.labs.narration import Narrated
from aegispay.labs.runner import Run, World, search
from aegispay.labs.schedules import FaultMove
from aegispay.labs.verdict import Verdict
from aegispay.orchestration.ports import PaymentGateway
from aegispay.resilience.retry import RetryPolicy

ANSWERS = ("same_key", "new_key", "stop")
# The harness stops after this many attempts of one charge, whatever the solution answers.
MAX_ATTEMPTS = 3
BLIP = (FaultMove(Fault.NETWORK),)


@dataclass(frozen=True)
class Failure:
    """One failed attempt: its kind, whether the request may have been sent, attempts so far."""

    kind: str
    sent: bool
    attempt: int


Retry = Callable[[Failure], object]


class RetryingGateway:
    """A gateway whose failed charges are retried as the learner's function says."""

    def __init__(self, inner: PaymentGateway, decide: Retry) -> None:
        self._inner, self._decide = inner, decide

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @property
    def name(self) -> str:
        """The wrapped gateway's name."""
        return self._inner.name

    def charge(self, request: ChargeRequest) -> ChargeRecord:
        """Charge; after each failure, ask the learner's function what to send next."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                return self._inner.charge(request)
            except Exception as error:
                failure = Failure(kind_of(error).value, classify(error).may_have_charged, attempt)
                answer = self._decide(failure)
                if not (isinstance(answer, str) and answer in ANSWERS):
                    raise InvalidRequest(
                        "retry", f"must answer one of {', '.join(ANSWERS)}", answer
                    ) from None
                if answer == "stop" or attempt == MAX_ATTEMPTS:
                    raise
                if answer == "new_key":
                    fresh = f"{request.idempotency_key}/retry-{attempt}"
                    request = request.model_copy(update={"idempotency_key": fresh})
        raise AssertionError("unreachable: the last attempt returns or raises")

    def status(self, merchant_reference: str) -> ChargeRecord | None:
        """Look up through."""
        return self._inner.status(merchant_reference)

    def cancel(self, merchant_reference: str) -> ChargeRecord:
        """Cancel through."""
        return self._inner.cancel(merchant_reference)


class RetryLab(Narrated):
    """Processes whose gateways retry charges through the learner's function."""

    # The learner's function, held in a tuple so that it is never bound as a method.
    solution: ClassVar[tuple[Retry]] = (lambda failure: "stop",)

    def wrap_gateway(self, gateway: PaymentGateway) -> PaymentGateway:
        """The learner's retries in front of the narrated, faulty gateway."""
        return cast(
            PaymentGateway, RetryingGateway(super().wrap_gateway(gateway), self.solution[0])
        )


def cured_blips(pay: Narrated, run: Run) -> str | None:
    """One refused connection, nothing else: the payment must still succeed."""
    if run.schedule == BLIP and run.final is not PaymentState.SUCCESS:
        return "gave up on one refused connection that a retry would have cured"
    return None


def check(retry: Retry, seed: int = 0, depth: int = 2) -> Verdict:
    """Attack an engine whose charges are retried as `retry` says."""
    engine = type("RetryLab", (RetryLab,), {"solution": (retry,)})
    world = replace(
        World(), engine=engine, check=cured_blips, retry=RetryPolicy(retries=0, jitter=0)
    )
    return search(world, "retry lab", seed=seed, depth=depth)
