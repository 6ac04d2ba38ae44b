"""Workflows: create, authenticate and process a payment, as IO programs built from ports.

Every function here returns an IO and runs nothing. The order of effects is the design:
events are appended (the source of truth) with the projection row written beside them, and
ProcessingStarted is durable before the charge is sent, so a crash always leaves a trace.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from aegispay.domain import decisions
from aegispay.domain.charges import ChargeRecord
from aegispay.domain.commands import CreatePayment
from aegispay.domain.decisions import Action, AfterFailedCharge, Answer
from aegispay.domain.errors import ConcurrencyError, PaymentNotFound
from aegispay.domain.events import PaymentEvent
from aegispay.domain.failures import classify, kind_of
from aegispay.domain.payment import Payment, replay
from aegispay.domain.states import PaymentState
from aegispay.io import IO, Err, Ok, Result
from aegispay.orchestration.ports import Ports, Projector


@dataclass(frozen=True)
class Created:
    """The payment a create returned, and whether this call created it."""

    payment: Payment
    created: bool


def now(ports: Ports) -> IO[datetime]:
    """Read the injected clock."""
    return IO.delay(ports.clock.now)


def load(ports: Ports, payment_id: str) -> IO[Payment | None]:
    """Rebuild a payment from its events; None when the stream is empty."""
    # One step: the fold is pure, so running it inside the read's thunk adds no effect.
    return IO.delay(lambda: ports.folds.replay(ports.events.read(payment_id)))


def require(ports: Ports, payment_id: str) -> IO[Payment]:
    """Rebuild a payment, or fail with PaymentNotFound."""

    def found(payment: Payment | None) -> IO[Payment]:
        return IO.of(payment) if payment is not None else IO.fail(PaymentNotFound(payment_id))

    return load(ports, payment_id).flat_map(found)


def append(ports: Ports, payment: Payment | None, events: Sequence[PaymentEvent]) -> IO[Payment]:
    """Append events at the payment's version (the fence), the projection row beside them."""
    # One step: the pure fold, then the write it allows (an IO per append, not one per part).
    return IO.delay(lambda: _fold_and_write(ports, payment, events))


def _fold_and_write(
    ports: Ports, payment: Payment | None, events: Sequence[PaymentEvent]
) -> Payment:
    """The effect inside `append` and `record`: run only by an IO's thunk."""
    # Fold first: an event the transition table forbids raises here and is never written.
    return _write(ports, payment, events, _fold(events, payment))


def _fold(events: Sequence[PaymentEvent], start: Payment | None) -> Payment:
    after = replay(events, start=start)
    assert after is not None, "append needs at least one event"
    return after


def _write(
    ports: Ports, payment: Payment | None, events: Sequence[PaymentEvent], after: Payment
) -> Payment:
    """Write events at the payment's version, `after` (what they fold to) as the projection
    row; run only by an IO's thunk."""
    expected = payment.version if payment is not None else 0
    ports.events.append(events[0].payment_id, events, expected, project(ports, after))
    return after


def project(ports: Ports, payment: Payment) -> Projector:
    """The projection write an append runs with its events: a failure is logged and counted,
    then raised so that the store undoes that write alone; the events still hold the payment."""

    def write() -> None:
        try:
            ports.projections.save(payment)
        except Exception as error:
            ports.metrics.increment("projection.write_failed")
            ports.logger.log("warning", "projection write failed", payment=payment.id, error=error)
            raise

    return write


def create_payment(ports: Ports, command: CreatePayment) -> IO[Created]:
    """Return the key's payment if it exists (same parameters), else record a new one."""

    def decide(existing: Payment | None) -> IO[Created]:
        if existing is not None:
            return IO.of(Created(decisions.same_request(existing, command), created=False))
        initiated = record(ports, None, lambda at: decisions.initiate(command, at))
        return initiated.map(lambda payment: Created(payment, created=True))

    def lost_race(error: Exception) -> IO[Created]:
        # Another writer created the stream between our read and our append: the fence held.
        if isinstance(error, ConcurrencyError):
            return load(ports, command.payment_id).flat_map(decide)
        return IO.fail(error)

    return load(ports, command.payment_id).flat_map(decide).recover(lost_race)


def process_payment(ports: Ports, payment_id: str) -> IO[Payment]:
    """Drive a payment as far as the gateways allow: to a terminal state, or UNKNOWN."""
    return require(ports, payment_id).flat_map(lambda payment: advance(ports, payment))


def advance(ports: Ports, payment: Payment) -> IO[Payment]:
    """Take the next step the payment's state calls for."""
    match payment.state:
        case PaymentState.INITIATED:
            return authenticate_and_start(ports, payment)
        case PaymentState.AUTHENTICATED:
            return start_processing(ports, payment)
        case PaymentState.PROCESSING | PaymentState.UNKNOWN:
            # An earlier attempt may have sent the charge: ask the gateway before sending.
            return verify_with_gateway(ports, payment)
        case PaymentState.CANCELLING:
            # A cancel was asked for and never answered: ask again, it is idempotent.
            return cancel(ports, payment)
        case _:
            return IO.of(payment)


def authenticate(ports: Ports, payment: Payment) -> IO[Payment]:
    """Authenticate the payment method and record the result."""
    return record(ports, payment, lambda at: decisions.authenticate(payment, at))


def authenticate_and_start(ports: Ports, payment: Payment) -> IO[Payment]:
    """Authenticate and, when a gateway would take the charge, record PaymentAuthenticated and
    ProcessingStarted in one append, durable before the charge is sent; then charge."""

    def decided(at: datetime) -> IO[Payment]:
        verdict = decisions.authenticate(payment, at)
        authenticated = replay([verdict], start=payment)
        if authenticated is None or authenticated.state is not PaymentState.AUTHENTICATED:
            return append(ports, payment, [verdict])  # authentication failed: no charge
        return IO.delay(ports.gateways.route).flat_map(
            lambda route: begin(at, verdict, authenticated, route)
        )

    def begin(
        at: datetime, verdict: PaymentEvent, authenticated: Payment, route: str | None
    ) -> IO[Payment]:
        if route is None:
            return append(ports, payment, [verdict]).flat_map(lambda p: _unavailable(ports, p))
        started = decisions.start_processing(authenticated, route, at)
        return ports.policy.start(ports, payment, [verdict, started], frozenset({route}))

    return now(ports).flat_map(decided)


def start_processing(ports: Ports, payment: Payment) -> IO[Payment]:
    """Pick a gateway, record ProcessingStarted durably, and only then send the charge."""

    def begin(route: str | None) -> IO[Payment]:
        if route is None:
            return _unavailable(ports, payment)
        return now(ports).flat_map(
            lambda at: ports.policy.start(
                ports, payment, [decisions.start_processing(payment, route, at)], frozenset({route})
            )
        )

    return IO.delay(ports.gateways.route).flat_map(begin)


# Writes a payment's starting events (the last one ProcessingStarted) and sends its charge.
Start = Callable[[Ports, Payment, Sequence[PaymentEvent], frozenset[str]], IO[Payment]]


def intent_then_charge(
    ports: Ports, payment: Payment, events: Sequence[PaymentEvent], tried: frozenset[str]
) -> IO[Payment]:
    """Write the intent (ProcessingStarted) durably, then send the charge: a crash after
    sending always leaves a payment that recovery will find and verify."""
    return append(ports, payment, events).flat_map(lambda p: charge(ports, p, tried))


def _unavailable(ports: Ports, payment: Payment) -> IO[Payment]:
    # The fast path: nothing was recorded as started, so nobody can have sent a charge.
    reason = "every gateway's breaker is open"
    return record(ports, payment, lambda at: decisions.gateway_unavailable(payment, reason, at))


def charge(ports: Ports, payment: Payment, tried: frozenset[str] = frozenset()) -> IO[Payment]:
    """Send the charge with the payment's idempotency key and settle on the answer.

    `tried` names the gateways this call has sent the payment to; after a confirmed cancel,
    the payment may move on to a gateway not yet tried.
    """
    assert payment.gateway is not None, "a charge goes to the gateway ProcessingStarted named"
    return send_charge(ports, payment).flat_map(
        lambda result: settle_charge(ports, payment, result, tried)
    )


def send_charge(ports: Ports, payment: Payment) -> IO[Result[ChargeRecord]]:
    """Send the payment's charge to its gateway; the answer, or the error met on the way."""
    assert payment.gateway is not None, "a charge goes to the gateway ProcessingStarted named"
    gateway = ports.gateways.get(payment.gateway)
    request = decisions.charge_request(payment)
    return IO.delay(lambda: gateway.charge(request)).attempt()


def settle_charge(
    ports: Ports, payment: Payment, result: Result[ChargeRecord], tried: frozenset[str]
) -> IO[Payment]:
    """Settle on the gateway's answer to a charge; a failed call goes as the policy says."""
    if isinstance(result, Ok):
        return record(
            ports, payment, lambda at: decisions.charge_outcome(payment, result.value, at)
        )
    error = result.error
    match AfterFailedCharge(ports.policy.after_failed_charge(classify(error))):
        case AfterFailedCharge.VERIFY:
            # Verify once, without re-driving: a charge that keeps failing in an unknown way
            # would otherwise loop here for ever. "Not found" leaves it for a later recovery.
            return record(
                ports, payment, lambda at: decisions.outcome_unknown(payment, str(error), at)
            ).flat_map(lambda p: verify_with_gateway(ports, p, redrive=False))
        case AfterFailedCharge.CANCEL:
            # Our request never left (retries ran out, the breaker refused), but another
            # actor's may still be on the wire: only a confirmed cancel makes giving up safe.
            kind = kind_of(error)
            return record(
                ports, payment, lambda at: decisions.request_cancel(payment, kind, at)
            ).flat_map(lambda p: cancel(ports, p, tried))
    return record(ports, payment, lambda at: decisions.charge_failed(payment, str(error), at))


def cancel(ports: Ports, payment: Payment, tried: frozenset[str] = frozenset()) -> IO[Payment]:
    """Ask the payment's gateway to cancel our reference and settle on its answer.

    Cancelled: FAILURE is safe, or, within the call that first sent the payment, another gateway
    not yet tried takes it. Charged or declined first: that answer settles the payment.
    Unreachable: the payment stays CANCELLING for a later recovery.
    """
    assert payment.gateway is not None, "only a payment whose processing started is cancelled"
    gateway = ports.gateways.get(payment.gateway)

    def settle(result: Result[ChargeRecord]) -> IO[Payment]:
        if isinstance(result, Err):
            return unresolved(ports, payment, result.error)
        held = result.value
        fallback = ports.gateways.route(exclude=tried) if tried and held.cancelled else None
        if fallback is not None:
            reason = f"{payment.gateway} cancelled our reference: {payment.last_error}"
            return record(
                ports, payment, lambda at: decisions.reroute(payment, fallback, reason, at)
            ).flat_map(lambda p: charge(ports, p, tried | {fallback}))
        return record(
            ports, payment, lambda at: decisions.verification_outcome(payment, held, at)
        ).flat_map(lambda p: _counted(ports, f"cancel.{_verdict(held)}", p))

    return IO.delay(lambda: gateway.cancel(payment.id)).attempt().flat_map(settle)


def verify_with_gateway(ports: Ports, payment: Payment, redrive: bool = True) -> IO[Payment]:
    """Ask the payment's gateway by merchant reference and act as the recovery policy decides.

    The engine's policy settles on a definitive answer; never seen means "not yet", so the
    charge is re-driven with the same idempotency key, which the gateway deduplicates (and giving
    up on it goes through a cancel); unreachable leaves the payment UNKNOWN. Without `redrive`
    (right after our own charge failed unknown), the engine's own `verify_once` decides.
    """
    assert payment.gateway is not None, "only a payment whose processing started is verified"
    gateway = ports.gateways.get(payment.gateway)
    decide = ports.policy.recover if redrive else decisions.verify_once

    def settle(result: Result[ChargeRecord | None]) -> IO[Payment]:
        found = result.value if isinstance(result, Ok) else None
        answer = decisions.answer_of(found) if isinstance(result, Ok) else Answer.UNREACHABLE
        seen = decisions.Seen(answer, payment, found)
        return act(ports, payment, seen, Action(decide(seen)), result)

    return IO.delay(lambda: gateway.status(payment.id)).attempt().flat_map(settle)


def act(
    ports: Ports,
    payment: Payment,
    seen: decisions.Seen,
    action: Action,
    result: Result[ChargeRecord | None],
) -> IO[Payment]:
    """Carry out a recovery decision on a payment in flight."""
    verdict = f"verification.{seen.answer.value.replace('charged', 'confirmed')}"
    match action:
        case Action.SUCCEED | Action.FAIL:
            return record(
                ports, payment, lambda at: decisions.settlement(payment, action, seen, at)
            ).flat_map(lambda p: _counted(ports, verdict, p))
        case Action.REDRIVE:
            return (
                record(ports, payment, lambda at: decisions.verification_outcome(payment, None, at))
                .flat_map(lambda p: _counted(ports, verdict, p))
                .flat_map(lambda p: charge(ports, p))
            )
        case Action.CANCEL:
            return cancel(ports, payment)
    if isinstance(result, Err):
        return unresolved(ports, payment, result.error)
    return _counted(ports, "verification.not_yet", payment)


def unresolved(ports: Ports, payment: Payment, error: Exception) -> IO[Payment]:
    """The gateway could not be asked: the payment is (or stays) in flight, for a later run."""
    counted = _counted(ports, "verification.unresolved", payment)
    if payment.state is not PaymentState.PROCESSING:
        return counted
    return counted.flat_map(
        lambda p: record(
            ports, p, lambda at: decisions.outcome_unknown(p, f"unverified: {error}", at)
        )
    )


def record(
    ports: Ports, payment: Payment | None, decide: Callable[[datetime], PaymentEvent]
) -> IO[Payment]:
    """Read the clock, decide one event, append it at the payment's version."""
    # One step: the clock read, the pure decision on what it read, then `append`'s effect.
    return IO.delay(lambda: _fold_and_write(ports, payment, [decide(ports.clock.now())]))


def _counted(ports: Ports, metric: str, payment: Payment) -> IO[Payment]:
    """Count what the gateway answered, as an effect of the program (when it runs)."""

    def count() -> Payment:
        ports.metrics.increment(metric)
        return payment

    return IO.delay(count)


def _verdict(found: ChargeRecord | None) -> str:
    if found is None:
        return "not_found"
    if found.cancelled:
        return "cancelled"
    return "confirmed" if found.charged else "declined"
