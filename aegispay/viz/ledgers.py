"""Two ledgers that must agree: our payments beside each gateway's records, as an HTML table.

Our side is each payment as its events tell it; the gateway's side is what its ledger holds for
that payment's reference (charged, declined, cancelled or nothing). A settled payment agrees when
the money it claims matches the money that moved; an in-flight one is unsettled until recovery
asks the gateway.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from aegispay.domain.charges import ChargeRecord
from aegispay.domain.payment import Payment
from aegispay.domain.states import IN_FLIGHT, PaymentState
from aegispay.engine import LedgerGateway

# The engine's values this table reads, in one place.
from aegispay.sim.harness import AegisPay

Verdict = Literal["agree", "disagree", "unsettled"]
MARK = {"agree": "✔ agree", "disagree": "✘ disagree", "unsettled": "… unsettled"}
STYLE = (
    ".aegispay-ledgers{border-collapse:collapse;font-family:Helvetica,sans-serif;font-size:14px}"
    ".aegispay-ledgers td,.aegispay-ledgers th{border:1px solid #d1d5db;padding:3px 8px}"
)
COLOUR = {"agree": "#d8f3dc", "disagree": "#ffd6d6", "unsettled": "#fff3bf"}


@dataclass(frozen=True)
class LedgerRow:
    """One merchant reference: our payment (None when we have none) and each gateway's record."""

    reference: str
    payment: Payment | None
    records: dict[str, ChargeRecord]
    verdict: Verdict
    reason: str


def compare_ledgers(
    payments: Sequence[Payment], ledgers: Mapping[str, Sequence[ChargeRecord]]
) -> list[LedgerRow]:
    """Pair every payment with the gateways' records for its id and judge whether they agree;
    records for a reference we have no payment for come last, and always disagree."""
    by_reference: dict[str, dict[str, ChargeRecord]] = {}
    for gateway, records in ledgers.items():
        for record in records:
            by_reference.setdefault(record.merchant_reference, {})[gateway] = record
    rows = [
        LedgerRow(p.id, p, by_reference.get(p.id, {}), *judge(p, by_reference.get(p.id, {})))
        for p in payments
    ]
    ours = {p.id for p in payments}
    rows += [
        LedgerRow(ref, None, records, "disagree", "a gateway holds a record we have no payment for")
        for ref, records in by_reference.items()
        if ref not in ours
    ]
    return rows


def judge(payment: Payment, records: Mapping[str, ChargeRecord]) -> tuple[Verdict, str]:
    """Do our state and amount agree with the money the gateways say moved?"""
    charged = [record for record in records.values() if record.charged]
    if payment.state in IN_FLIGHT:
        return "unsettled", f"{payment.state}: recovery must ask the gateway"
    if payment.state is PaymentState.SUCCESS:
        return _judge_paid(payment, charged)
    if charged:
        return "disagree", f"we say {payment.state}; a gateway charged {charged[0].amount}"
    return "agree", "no money moved"


def _judge_paid(payment: Payment, charged: Sequence[ChargeRecord]) -> tuple[Verdict, str]:
    """A payment we say succeeded agrees with exactly one charge of its amount."""
    if not charged:
        return "disagree", "we say paid; no gateway charged"
    if len(charged) > 1:
        return "disagree", f"charged {len(charged)} times"
    if charged[0].amount != payment.amount:
        return "disagree", f"we say {payment.amount}; the gateway charged {charged[0].amount}"
    return "agree", "charged once, the same amount"


def ledger_rows(pay: AegisPay) -> list[LedgerRow]:
    """Compare every payment in the event store (as its events tell it) with every ledger."""
    payments = [pay.get_payment(stream) for stream in pay.event_store.stream_ids()]
    ledgers = {
        name: gateway.charges()
        for name, gateway in pay.gateways.items()
        if isinstance(gateway, LedgerGateway)
    }
    return compare_ledgers(payments, ledgers)


def ledgers_table(
    rows: Sequence[LedgerRow],
    gateways: Sequence[str],
    focus: str | None = None,
    limit: int | None = None,
) -> str:
    """The rows as an HTML table: our state and amount, each gateway's record, and the verdict.

    With a `limit`, a long list is summarised: the `focus` payment's row first, then the rows
    that do not agree, then the others, up to `limit` rows; the caption counts them all.
    """
    shown = summarise(rows, focus, limit)
    head = "".join(f"<th>{html.escape(name)}'s ledger</th>" for name in gateways)
    body = "".join(_row(row, gateways) for row in shown) or (
        f'<tr><td colspan="{len(gateways) + 3}"><i>no payments yet</i></td></tr>'
    )
    verdicts = Counter(row.verdict for row in rows)
    caption = f"two ledgers: {verdicts['agree']} of {len(rows)} agree"
    if len(shown) < len(rows):
        listed = {id(row) for row in shown}
        others = Counter(row.verdict for row in rows if id(row) not in listed)
        tally = ", ".join(f"{n} {verdict}" for verdict, n in others.items())
        caption += (
            f" · listed: the chosen payment, then those not agreeing; {others.total()} more "
            f"not listed ({tally})"
        )
    return (
        f"<style>{STYLE}</style>"
        '<table class="aegispay-ledgers">'
        f"<caption>{caption}</caption>"
        f"<tr><th>payment</th><th>our record</th>{head}<th>verdict</th></tr>{body}</table>"
    )


def summarise(
    rows: Sequence[LedgerRow], focus: str | None = None, limit: int | None = None
) -> list[LedgerRow]:
    """At most `limit` rows: the `focus` payment's first, then those that do not agree."""
    if limit is None or len(rows) <= limit:
        return list(rows)
    first = sorted(rows, key=lambda row: (row.reference != focus, row.verdict == "agree"))
    return first[:limit]


def _row(row: LedgerRow, gateways: Sequence[str]) -> str:
    ours = f"{row.payment.state} {row.payment.amount}" if row.payment else "none"
    theirs = "".join(f"<td>{_record(row.records.get(name))}</td>" for name in gateways)
    return (
        f'<tr style="background:{COLOUR[row.verdict]}">'
        f"<td><code>{html.escape(row.reference)}</code></td><td>{html.escape(ours)}</td>{theirs}"
        f"<td><b>{MARK[row.verdict]}</b>: {html.escape(row.reason)}</td></tr>"
    )


def _record(record: ChargeRecord | None) -> str:
    """A gateway's record in words: charged, declined, cancelled or none."""
    if record is None:
        return "none"
    if record.charged:
        return html.escape(f"charged {record.amount}")
    if record.cancelled:
        return "cancelled"
    return html.escape(f"declined ({record.decline_reason})")
