"""Reconciliation: our payments against the gateways' ledgers, on presence, amount and currency.

The categories are the ones payments teams use: matched, missing at the gateway (we say
SUCCESS, the gateway holds no charge), missing in our records (a charge with no SUCCESS payment),
amount mismatch and currency mismatch. Only charges that moved money count (`.charged`): a
declined or cancelled record is not money at the gateway.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from aegispay.domain.charges import ChargeRecord
from aegispay.domain.money import Money
from aegispay.domain.payment import Payment
from aegispay.domain.states import PaymentState


class Outcome(StrEnum):
    """Where a payment or a charge stands once both sides are compared."""

    MATCHED = "matched"
    MISSING_AT_GATEWAY = "missing_at_gateway"
    MISSING_IN_OUR_RECORDS = "missing_in_our_records"
    AMOUNT_MISMATCH = "amount_mismatch"
    CURRENCY_MISMATCH = "currency_mismatch"


MEANING: dict[Outcome, str] = {
    Outcome.MATCHED: "SUCCESS here, a charge of the same amount and currency there",
    Outcome.MISSING_AT_GATEWAY: "SUCCESS here, no charge at the gateway",
    Outcome.MISSING_IN_OUR_RECORDS: "a charge at the gateway, no SUCCESS payment here",
    Outcome.AMOUNT_MISMATCH: "both sides hold it, for different amounts",
    Outcome.CURRENCY_MISMATCH: "both sides hold it, in different currencies",
}


@dataclass(frozen=True)
class Finding:
    """One payment reference and how it reconciled; `damaged` when our side was read from a
    damaged stream without the chain checks, so it may itself be what was tampered with."""

    reference: str
    outcome: Outcome
    detail: str
    damaged: bool = False

    def __str__(self) -> str:
        label = " [damaged stream, read without the chain check]" if self.damaged else ""
        return f"{self.outcome.value} {self.reference}: {self.detail}{label}"


# Breaks kept with their detail; beyond these only the counts grow, so an audit of any size
# holds a bounded report.
KEPT_BREAKS = 1000


@dataclass
class Reconciliation:
    """A count per outcome, and the first KEPT_BREAKS findings that did not match."""

    tally: Counter[Outcome] = field(default_factory=Counter)
    kept: list[Finding] = field(default_factory=list)

    def add(self, finding: Finding) -> None:
        """Count a finding; keep it if it is a break and there is room."""
        self.tally[finding.outcome] += 1
        if finding.outcome is not Outcome.MATCHED and len(self.kept) < KEPT_BREAKS:
            self.kept.append(finding)

    def counts(self) -> dict[str, int]:
        """How many references fell in each outcome, every outcome named."""
        return {outcome.value: self.tally[outcome] for outcome in Outcome}

    def breaks(self) -> list[Finding]:
        """The findings that did not match (the first KEPT_BREAKS of them)."""
        return list(self.kept)


def reconcile(
    ours: Mapping[str, Payment],
    charged: Mapping[str, ChargeRecord],
    damaged: Mapping[str, Payment | None] | None = None,
) -> Reconciliation:
    """Compare our payments (by id) with the charges that moved money (by merchant reference).

    `damaged` holds the streams that failed the chain checks, replayed from their rows as stored
    (None when even that failed); their findings are labelled damaged.
    """
    damaged = damaged or {}
    replayed = {reference: p for reference, p in damaged.items() if p is not None}
    result = Reconciliation()
    for payments, is_damaged in ((ours, False), (replayed, True)):
        for reference, payment in payments.items():
            found = compare(reference, payment, charged.get(reference), damaged=is_damaged)
            if found is not None:
                result.add(found)
    for reference in sorted(charged.keys() - ours.keys() - replayed.keys()):
        result.add(orphan(reference, damaged=reference in damaged))
    return result


def compare(
    reference: str, payment: Payment, charge: ChargeRecord | None, damaged: bool = False
) -> Finding | None:
    """How one payment of ours reconciles with its charge; None when neither side has money."""
    found = _compare(payment, charge)
    return None if found is None else Finding(reference, *found, damaged=damaged)


def orphan(reference: str, damaged: bool = False) -> Finding:
    """A charge that moved money with no readable payment of ours behind it."""
    detail = (
        "our stream of it is damaged beyond replay"
        if damaged
        else "no payment of ours has this reference"
    )
    return Finding(reference, Outcome.MISSING_IN_OUR_RECORDS, detail, damaged)


def _compare(payment: Payment, charge: ChargeRecord | None) -> tuple[Outcome, str] | None:
    """How one payment of ours stands against its charge; None when neither side has money."""
    if payment.state is not PaymentState.SUCCESS:
        if charge is None:
            return None
        return Outcome.MISSING_IN_OUR_RECORDS, f"charged, but our payment is {payment.state}"
    if charge is None:
        return Outcome.MISSING_AT_GATEWAY, f"we say SUCCESS for {payment.amount}, no charge"
    return _compare_money(payment.amount, charge.amount)


def _compare_money(ours: Money, theirs: Money | None) -> tuple[Outcome, str]:
    """Compare our amount with the gateway's: currency first, then the minor units."""
    # Written defensively: a gateway record that moved no money may carry no amount.
    if theirs is None:
        return Outcome.AMOUNT_MISMATCH, f"ours {ours}, the gateway records no amount"
    if theirs.currency != ours.currency:
        return Outcome.CURRENCY_MISMATCH, f"ours {ours}, gateway {theirs}"
    if theirs.minor != ours.minor:
        return Outcome.AMOUNT_MISMATCH, f"ours {ours}, gateway {theirs}"
    return Outcome.MATCHED, f"{ours}"
