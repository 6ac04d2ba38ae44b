"""The invariants of docs/architecture.md, checked on stored state: events, projection, ledgers."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from aegispay.domain.charges import ChargeRecord, ChargeStatus
from aegispay.domain.commands import payment_id_for
from aegispay.domain.errors import EventContinuityError, InvalidTransition
from aegispay.domain.events import event_to_json
from aegispay.domain.payment import Payment, replay
from aegispay.domain.states import PaymentState
from aegispay.orchestration.ports import EventStore, ProjectionStore
from aegispay.sim.reconciliation import Outcome, Reconciliation, reconcile

INVARIANTS: dict[str, str] = {
    "at_most_one_charge": "At most one charge per payment at the gateways.",
    "settled_matches_gateway": (
        "Every payment whose processing started is terminal, and SUCCESS iff a gateway holds "
        "its charge (no orphan charge, no lost payment)."
    ),
    "one_payment_per_key": "One payment per idempotency key.",
    "stream_continuity": (
        "Every stream reads cleanly: versions 1..n, its hash chain intact, every event its own, "
        "every transition in the table."
    ),
    "nothing_lost": "Every payment the projection knows has its events in the store.",
    "projection_matches_events": "The projection equals replay(events) for every payment.",
    "amounts_match_gateway": (
        "Our records and the gateways' ledgers agree on amount and currency for every charge."
    ),
    "failure_is_definitive": (
        "A payment whose processing started is FAILURE only if its gateway declined it or "
        "confirmed the cancel of its reference."
    ),
}


@dataclass
class InvariantReport:
    """Violations per invariant, with a line of detail for each."""

    payments: int = 0
    charges: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    details: list[str] = field(default_factory=list)
    reconciliation: Reconciliation = field(default_factory=Reconciliation)

    def violate(self, invariant: str, detail: str) -> None:
        """Count one violation and keep its detail."""
        self.counts[invariant] += 1
        self.details.append(f"{invariant}: {detail}")

    @property
    def violations(self) -> int:
        """The total number of violations."""
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready summary: a count per invariant and the total."""
        return {
            "payments": self.payments,
            "charges": self.charges,
            "invariants": {name: self.counts[name] for name in INVARIANTS},
            "violations": self.violations,
            "details": self.details[:50],
            "reconciliation": self.reconciliation.counts(),
            "reconciliation_breaks": [str(f) for f in self.reconciliation.breaks()[:50]],
        }


def check_invariants(
    events: EventStore, projections: ProjectionStore, charges: Iterable[ChargeRecord]
) -> InvariantReport:
    """Check every invariant that stored state can show; return the violations found."""
    report = InvariantReport()
    streams = events.stream_ids()
    report.payments = len(streams)
    payments, unreadable = _replay_all(events, streams, report)
    records = list(charges)
    charged = _charges_by_reference(records, report)
    _check_keys(payments, report)
    _check_failures(payments, records, report)
    report.reconciliation = reconcile(payments, charged, _replay_damaged(events, unreadable))
    _check_settlement(payments, report)
    _check_projection(projections, payments, unreadable, report)
    return report


def _replay_damaged(events: EventStore, unreadable: set[str]) -> dict[str, Payment | None]:
    """Replay each unreadable stream from its rows as stored, for reconciliation only."""
    damaged: dict[str, Payment | None] = {}
    for stream_id in unreadable:
        try:
            payment = replay(r.event for r in events.read_unverified(stream_id))
        except InvalidTransition:
            payment = None
        damaged[stream_id] = payment if payment is not None and payment.id == stream_id else None
    return damaged


def _replay_all(
    events: EventStore, streams: list[str], report: InvariantReport
) -> tuple[dict[str, Payment], set[str]]:
    payments: dict[str, Payment] = {}
    unreadable: set[str] = set()
    for stream_id in streams:
        try:
            payment = replay(r.event for r in events.read(stream_id))
        except (EventContinuityError, InvalidTransition) as error:
            report.violate("stream_continuity", str(error))
            unreadable.add(stream_id)
            continue
        if payment is not None:
            payments[stream_id] = payment
    return payments, unreadable


def _charges_by_reference(
    charges: list[ChargeRecord], report: InvariantReport
) -> dict[str, ChargeRecord]:
    report.charges = sum(1 for c in charges if c.charged)
    charged: dict[str, ChargeRecord] = {}
    for charge in charges:
        if not charge.charged:
            continue
        if charge.merchant_reference in charged:
            report.violate(
                "at_most_one_charge", f"payment {charge.merchant_reference} charged twice"
            )
        charged[charge.merchant_reference] = charge
    return charged


def _check_keys(payments: dict[str, Payment], report: InvariantReport) -> None:
    by_key: dict[str, list[str]] = defaultdict(list)
    for payment in payments.values():
        by_key[payment.idempotency_key].append(payment.id)
    for key, ids in by_key.items():
        if len(ids) > 1 or ids[0] != payment_id_for(key):
            report.violate("one_payment_per_key", f"key {key!r} maps to {ids}")


def _check_settlement(payments: dict[str, Payment], report: InvariantReport) -> None:
    in_flight = set()
    for payment in payments.values():
        if payment.gateway is not None and not payment.state.is_terminal:
            in_flight.add(payment.id)
            report.violate("settled_matches_gateway", f"{payment.id} left in {payment.state}")
    # A damaged stream is reported once, as such (stream_continuity): its findings are shown in
    # the reconciliation, labelled, but not counted again here.
    for finding in report.reconciliation.breaks():
        if finding.damaged or finding.reference in in_flight:
            continue
        invariant = (
            "settled_matches_gateway"
            if finding.outcome in (Outcome.MISSING_AT_GATEWAY, Outcome.MISSING_IN_OUR_RECORDS)
            else "amounts_match_gateway"
        )
        report.violate(invariant, str(finding))


def _check_failures(
    payments: dict[str, Payment], records: list[ChargeRecord], report: InvariantReport
) -> None:
    answered = {r.merchant_reference for r in records if r.status is not ChargeStatus.SUCCEEDED}
    for payment in payments.values():
        started = payment.gateway is not None
        if started and payment.state is PaymentState.FAILURE and payment.id not in answered:
            report.violate(
                "failure_is_definitive",
                f"{payment.id} is FAILURE but no gateway declined or cancelled it",
            )


def _check_projection(
    projections: ProjectionStore,
    payments: dict[str, Payment],
    unreadable: set[str],
    report: InvariantReport,
) -> None:
    row_ids = set(projections.ids_in_states(tuple(PaymentState)))
    for payment_id in row_ids - payments.keys() - unreadable:
        report.violate("nothing_lost", f"projection row {payment_id} has no events")
    for payment_id, payment in payments.items():
        try:
            row = projections.get(payment_id)
        except Exception as error:  # an unreadable row differs from its events, like any drift
            report.violate("projection_matches_events", f"{payment_id}: unreadable row: {error}")
            continue
        if row != payment:
            report.violate("projection_matches_events", f"{payment_id} differs from its events")


def event_log_digest(events: EventStore) -> str:
    """A SHA-256 over every stored event in global order: equal logs, equal digests."""
    digest = hashlib.sha256()
    for recorded in events.read_all():
        digest.update(f"{recorded.stream_id}/{recorded.version}:".encode())
        digest.update(event_to_json(recorded.event).encode())
    return digest.hexdigest()
