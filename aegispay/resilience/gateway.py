"""A gateway behind its breaker and retry policy: what the workflows actually call."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryCallState, Retrying

from aegispay.domain.charges import ChargeRecord, ChargeRequest
from aegispay.domain.failures import CircuitOpenError, ErrorClass, classify, kind_of
from aegispay.orchestration.ports import Clock, Metrics, PaymentGateway
from aegispay.resilience.breaker import CircuitBreaker
from aegispay.resilience.retry import RetryPolicy, retrying

R = TypeVar("R")


def charge_is_retryable(error: BaseException) -> bool:
    """Retry a charge only where the table says the gateway cannot have charged."""
    return classify(error).error_class is ErrorClass.RETRYABLE


def lookup_is_retryable(error: BaseException) -> bool:
    """Retry a lookup or a cancel through any transport failure: neither can charge anyone."""
    return isinstance(error, Exception) and not isinstance(error, CircuitOpenError)


class ResilientGateway:
    """Every call goes through the breaker; retryable failures are retried with backoff."""

    def __init__(
        self,
        gateway: PaymentGateway,
        *,
        breaker: CircuitBreaker,
        policy: RetryPolicy,
        clock: Clock,
        metrics: Metrics,
        rng: random.Random,
    ) -> None:
        self.gateway = gateway
        # Asked once: the gateway's name is asked through every wrapper it has (boundaries,
        # faults), and it names every retrier and metric below.
        self._name = gateway.name
        self.breaker = breaker
        self.policy = policy
        self._clock = clock
        self._metrics = metrics
        self._rng = rng
        # What each operation retries, and its metric names.
        self._retryable = {
            "charge": charge_is_retryable,
            "status": lookup_is_retryable,
            "cancel": lookup_is_retryable,
        }
        self._prefixes = {
            operation: f"gateway.{self._name}.{operation}" for operation in self._retryable
        }
        # A tenacity retrier per operation, built at its first call and shared by every later
        # one: a process that never cancels (most never do) never builds that one.
        self._retriers: dict[str, Retrying] = {}

    @property
    def name(self) -> str:
        """The routing name of the gateway behind."""
        return self._name

    def charge(self, request: ChargeRequest) -> ChargeRecord:
        """Charge with retries; every attempt carries the same idempotency key."""
        return self._call("charge", lambda: self.gateway.charge(request))

    def status(self, merchant_reference: str) -> ChargeRecord | None:
        """Look a charge up by merchant reference, retried through transport failures."""
        return self._call("status", lambda: self.gateway.status(merchant_reference))

    def cancel(self, merchant_reference: str) -> ChargeRecord:
        """Cancel our reference, retried through transport failures: a cancel is idempotent."""
        return self._call("cancel", lambda: self.gateway.cancel(merchant_reference))

    def _retrier(self, operation: str, retryable: Callable[[BaseException], bool]) -> Retrying:
        retries = f"gateway.{self.name}.{operation}.retries"

        def on_retry(state: RetryCallState) -> None:
            self._metrics.increment(retries)

        return retrying(
            policy=self.policy,
            retryable=retryable,
            sleep=self._clock.sleep,
            rng=self._rng,
            on_retry=on_retry,
        )

    def _call(self, operation: str, fn: Callable[[], R]) -> R:
        prefix = self._prefixes[operation]

        def attempt() -> R:
            self._metrics.increment(f"{prefix}.attempts")
            try:
                return self.breaker.call(fn)
            except Exception as error:
                self._metrics.increment(f"{prefix}.failed.{kind_of(error)}")
                raise

        retrier = self._retriers.get(operation)
        if retrier is None:
            # Two threads may both build one here: either serves (a retrier keeps each call's
            # state per thread), and the last one stored is kept.
            retrier = self._retriers[operation] = self._retrier(
                operation, self._retryable[operation]
            )
        result: R = retrier(attempt)
        return result
