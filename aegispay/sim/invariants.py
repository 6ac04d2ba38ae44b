"""The invariants of docs/architecture.md, checked on stored state: events, projection, ledgers."""

from __future__ import annotations

import hashlib
import heapq
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import groupby

from aegispay.domain.charges import ChargeRecord, ChargeStatus
from aegispay.domain.commands import payment_id_for
from aegispay.domain.errors import EventContinuityError, InvalidTransition
from aegispay.domain.payment import Payment, replay
from aegispay.domain.states import PaymentState
from aegispay.infra.gateway.ledger import Ledger
from aegispay.orchestration.ports import EventStore, ProjectionStore
from aegispay.recovery.coordinator import in_id_order
from aegispay.sim.reconciliation import Outcome, Reconciliation, compare, orphan

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


# Violations kept with their detail; beyond these only the counts grow, so an audit of any
# size holds a bounded report.
KEPT_DETAILS = 1000


@dataclass
class InvariantReport:
    """Violations per invariant, with a line of detail for each of the first KEPT_DETAILS."""

    payments: int = 0
    charges: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    details: list[str] = field(default_factory=list)
    reconciliation: Reconciliation = field(default_factory=Reconciliation)

    def violate(self, invariant: str, detail: str) -> None:
        """Count one violation and keep its detail while there is room."""
        self.counts[invariant] += 1
        if len(self.details) < KEPT_DETAILS:
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
    """Check every invariant that stored state can show; return the violations found.

    Streams are visited in id order and joined with the charges by merchant reference (a
    payment's id), one payment at a time, so memory stays flat in the size of history.
    `charges` is any list, or an iterator in merchant-reference order such as
    `charges_in_reference_order` yields.
    """
    report = InvariantReport()
    ledger = _charges_by_reference(_in_reference_order(charges), report)
    pending = next(ledger, None)
    for stream_id in in_id_order(events.stream_ids_after):
        report.payments += 1
        while pending is not None and pending[0] < stream_id:
            _check_orphan(*pending, report)
            pending = next(ledger, None)
        records: list[ChargeRecord] = []
        if pending is not None and pending[0] == stream_id:
            records = pending[1]
            pending = next(ledger, None)
        _check_payment(events, projections, stream_id, records, report)
    while pending is not None:
        _check_orphan(*pending, report)
        pending = next(ledger, None)
    _check_rows_have_events(events, projections, report)
    return report


def charges_in_reference_order(ledgers: Iterable[Ledger]) -> Iterator[ChargeRecord]:
    """Every ledger's records merged by merchant reference, a page of each at a time."""
    return heapq.merge(
        *(ledger.in_reference_order() for ledger in ledgers),
        key=lambda record: record.merchant_reference,
    )


def _in_reference_order(charges: Iterable[ChargeRecord]) -> Iterator[ChargeRecord]:
    """A list sorted by reference (it is in memory already); an iterator checked for order."""
    if isinstance(charges, Sequence):
        # Stable: one reference's records keep their order, as the ledgers hold them.
        yield from sorted(charges, key=lambda record: record.merchant_reference)
        return
    previous = ""
    for record in charges:
        if record.merchant_reference < previous:
            raise ValueError("charges: an iterator must yield them in merchant-reference order")
        previous = record.merchant_reference
        yield record


def _charges_by_reference(
    charges: Iterator[ChargeRecord], report: InvariantReport
) -> Iterator[tuple[str, list[ChargeRecord]]]:
    """Group the records of each reference; count charges and flag a reference charged twice."""
    for reference, group in groupby(charges, key=lambda record: record.merchant_reference):
        records = list(group)
        charged = sum(1 for record in records if record.charged)
        report.charges += charged
        for _ in range(charged - 1):
            report.violate("at_most_one_charge", f"payment {reference} charged twice")
        yield reference, records


def _money_moved(records: list[ChargeRecord]) -> ChargeRecord | None:
    """The reference's charge that moved money (the last one, if there were several)."""
    charged = [record for record in records if record.charged]
    return charged[-1] if charged else None


def _check_orphan(reference: str, records: list[ChargeRecord], report: InvariantReport) -> None:
    """Charges of a reference with no stream of ours: money we have no payment for."""
    if _money_moved(records) is None:
        return
    finding = orphan(reference)
    report.reconciliation.add(finding)
    report.violate("settled_matches_gateway", str(finding))


def _check_payment(
    events: EventStore,
    projections: ProjectionStore,
    stream_id: str,
    records: list[ChargeRecord],
    report: InvariantReport,
) -> None:
    """Every invariant of one payment: its stream, key, failure, settlement and row."""
    charge = _money_moved(records)
    try:
        payment = replay(r.event for r in events.read(stream_id))
    except (EventContinuityError, InvalidTransition) as error:
        report.violate("stream_continuity", str(error))
        _reconcile_damaged(events, stream_id, charge, report)
        return
    if payment is None:
        return
    if payment.id != payment_id_for(payment.idempotency_key):
        report.violate(
            "one_payment_per_key",
            f"key {payment.idempotency_key!r} maps to {payment_id_for(payment.idempotency_key)},"
            f" not {payment.id}",
        )
    started = payment.gateway is not None
    answered = any(record.status is not ChargeStatus.SUCCEEDED for record in records)
    if started and payment.state is PaymentState.FAILURE and not answered:
        report.violate(
            "failure_is_definitive",
            f"{payment.id} is FAILURE but no gateway declined or cancelled it",
        )
    in_flight = started and not payment.state.is_terminal
    if in_flight:
        report.violate("settled_matches_gateway", f"{payment.id} left in {payment.state}")
    finding = compare(stream_id, payment, charge)
    if finding is not None:
        report.reconciliation.add(finding)
        if finding.outcome is not Outcome.MATCHED and not in_flight:
            invariant = (
                "settled_matches_gateway"
                if finding.outcome in (Outcome.MISSING_AT_GATEWAY, Outcome.MISSING_IN_OUR_RECORDS)
                else "amounts_match_gateway"
            )
            report.violate(invariant, str(finding))
    _check_row(projections, payment, report)


def _reconcile_damaged(
    events: EventStore, stream_id: str, charge: ChargeRecord | None, report: InvariantReport
) -> None:
    """Reconcile a damaged stream from its rows as stored, labelled so: it is reported once,
    as damage (stream_continuity), not again as a settlement break."""
    try:
        payment = replay(r.event for r in events.read_unverified(stream_id))
    except InvalidTransition:
        payment = None
    if payment is not None and payment.id == stream_id:
        finding = compare(stream_id, payment, charge, damaged=True)
    else:
        finding = None if charge is None else orphan(stream_id, damaged=True)
    if finding is not None:
        report.reconciliation.add(finding)


def _check_row(projections: ProjectionStore, payment: Payment, report: InvariantReport) -> None:
    try:
        row = projections.get(payment.id)
    except Exception as error:  # an unreadable row differs from its events, like any drift
        report.violate("projection_matches_events", f"{payment.id}: unreadable row: {error}")
        return
    if row != payment:
        report.violate("projection_matches_events", f"{payment.id} differs from its events")


def _check_rows_have_events(
    events: EventStore, projections: ProjectionStore, report: InvariantReport
) -> None:
    """Walk the rows and the streams in id order together: a row with no stream is lost."""
    streams = in_id_order(events.stream_ids_after)
    stream = next(streams, None)
    for row_id in in_id_order(projections.ids_after):
        while stream is not None and stream < row_id:
            stream = next(streams, None)
        if stream != row_id:
            report.violate("nothing_lost", f"projection row {row_id} has no events")


def event_log_digest(events: EventStore) -> str:
    """A SHA-256 over every stored event in global order: equal logs, equal digests."""
    digest = hashlib.sha256()
    # Each event's chain hash covers its stream, version, type and payload (read_all checked
    # it against them), so hashing the hashes in order digests the events themselves.
    for recorded in events.read_all():
        digest.update(recorded.hash.encode())
    return digest.hexdigest()
