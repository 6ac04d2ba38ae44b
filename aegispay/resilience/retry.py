"""Retries with tenacity: exponential backoff with seeded jitter, sleeping on the injected clock."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_base

T = TypeVar("T")


class RetryPolicy(BaseModel):
    """How many times to retry and how long to back off (the seed's defaults)."""

    model_config = ConfigDict(frozen=True)

    retries: int = Field(default=3, ge=0, description="attempts after the first")
    initial: float = Field(default=1.0, ge=0, description="first backoff, seconds")
    max: float = Field(default=10.0, ge=0, description="longest backoff, seconds")
    multiplier: float = Field(default=2.0, ge=1, description="growth per attempt")
    jitter: float = Field(default=0.5, ge=0, description="up to this many seconds added")

    def backoff(self, retry_number: int, rng: random.Random) -> float:
        """The wait before retry number `retry_number` (1, 2, ...): grows, jitters, is capped."""
        try:
            growth = self.multiplier ** (retry_number - 1)
        except OverflowError:
            # Far past any float, so far past max: the cap below applies all the same.
            growth = math.inf
        # An initial backoff of zero stays zero, where 0 * inf would be NaN.
        base = self.initial * growth if self.initial else 0.0
        return min(base + rng.uniform(0, self.jitter), self.max)


class wait_seeded_exponential_jitter(wait_base):  # noqa: N801 - tenacity names strategies so
    """Wait per the policy's backoff, with jitter drawn from a seeded generator."""

    def __init__(self, policy: RetryPolicy, rng: random.Random) -> None:
        self.policy = policy
        self.rng = rng

    def __call__(self, retry_state: RetryCallState) -> float:
        return self.policy.backoff(retry_state.attempt_number, self.rng)


def retrying(
    *,
    policy: RetryPolicy,
    retryable: Callable[[BaseException], bool],
    sleep: Callable[[float], None],
    rng: random.Random,
    on_retry: Callable[[RetryCallState], None] | None = None,
) -> Retrying:
    """Build the tenacity retrier of a policy once; calling it with `fn` runs one retried call.

    The re-raised error is the last one, unchanged. tenacity keeps each call's state per
    thread, so one retrier serves every call of every thread.
    """
    return Retrying(
        sleep=sleep,
        wait=wait_seeded_exponential_jitter(policy, rng),
        stop=stop_after_attempt(policy.retries + 1),
        # tenacity catches BaseException: a crash or an interrupt must end the call, never retry.
        retry=retry_if_exception(lambda error: isinstance(error, Exception) and retryable(error)),
        before_sleep=on_retry,
        reraise=True,
    )


def call_with_retry(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy,
    retryable: Callable[[BaseException], bool],
    sleep: Callable[[float], None],
    rng: random.Random,
    on_retry: Callable[[RetryCallState], None] | None = None,
) -> T:
    """Call `fn`, retrying what `retryable` accepts; the last error is re-raised unchanged."""
    retrier = retrying(policy=policy, retryable=retryable, sleep=sleep, rng=rng, on_retry=on_retry)
    return retrier(fn)
