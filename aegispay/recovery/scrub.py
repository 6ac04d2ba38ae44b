"""The scrub: read every stored event once, in constant memory, and report each damaged stream.

Recovery reads only what it needs (in-flight, halted and recently written streams), so damage in
a stream settled long ago is found here, by `aegispay verify` (and by `aegispay recover`, which
runs it first). Two passes:

1. The log: every event in global order, each checked against its predecessor in its stream
   (the chain, its key, stream membership, versions without gaps).
2. The heads: every stream beside its projection row, in id order. A chain cannot see that a
   stream's newest events were cut off, but the projection row, written in the same transaction
   as the events, can: a row at a later version than its stream's last event, a row that says
   otherwise than its events at the same version, or a row whose events are gone is damage. A
   row behind its events, or missing, is drift that recovery repairs. With the gateway's ledger
   at hand, what it holds for such a payment is named too, and a charge of another amount or
   currency than the events say is damage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

from aegispay.domain.charges import ChargeRecord
from aegispay.domain.errors import EventContinuityError, EventIntegrityError, InvalidTransition
from aegispay.domain.payment import Payment, replay
from aegispay.orchestration.ports import EventStore, ProjectionStore, RecordedEvent
from aegispay.recovery.coordinator import in_id_order

# How drift is repaired: recovery rewrites the rows of the streams it reads; a rebuild, every row.
REBUILT = "recovery or rebuild_projections() rewrites it from the events"
# What the gateway holds for a merchant reference (the payment id), or None.
ChargeLookup = Callable[[str], ChargeRecord | None]


@dataclass(frozen=True)
class Damage:
    """One damaged stream: the first version found wrong and what is wrong with it."""

    stream_id: str
    version: int
    problem: str


@dataclass
class ScrubReport:
    """How many stored events and streams were checked, every damaged stream (once each), and
    the projection rows that lag behind their events (drift, which recovery repairs)."""

    events: int = 0
    streams: int = 0
    damaged: list[Damage] = field(default_factory=list)
    behind: list[Damage] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready summary."""
        return {
            "events": self.events,
            "streams": self.streams,
            "damaged_streams": len(self.damaged),
            "damaged": [asdict(damage) for damage in self.damaged],
            "projection_behind": [asdict(lag) for lag in self.behind],
        }


def scrub(
    events: EventStore,
    projections: ProjectionStore,
    charge_of: ChargeLookup | None = None,
    progress: Callable[[int], None] | None = None,
) -> ScrubReport:
    """Check the whole log, then every stream's head against its projection row (and the
    gateway's record, with `charge_of`)."""
    report = scrub_event_log(events, progress)
    scrub_heads(events, projections, report, charge_of)
    return report


def scrub_event_log(
    events: EventStore, progress: Callable[[int], None] | None = None
) -> ScrubReport:
    """Check every stored event in global order, carrying on past damage; `progress` is told
    each position reached."""
    report = ScrubReport()
    damaged: set[str] = set()  # grows with the damage found, never with history
    after = 0
    while True:
        try:
            for recorded in events.read_all(after):
                report.events += 1
                after = recorded.position
                if progress is not None:
                    progress(after)
            return report
        except EventIntegrityError as error:
            report.events += 1
            after = error.position
            if error.stream_id not in damaged:
                damaged.add(error.stream_id)
                report.damaged.append(_first_damage(events, error))


def scrub_heads(
    events: EventStore,
    projections: ProjectionStore,
    report: ScrubReport,
    charge_of: ChargeLookup | None = None,
) -> None:
    """Compare every stream's last event with its projection row (and the gateway's record),
    adding what is wrong to `report`; streams already found damaged are not read again."""
    known = {damage.stream_id for damage in report.damaged}
    for payment_id, has_stream, has_row in _side_by_side(events, projections):
        report.streams += has_stream
        if payment_id in known:
            continue
        found = _head_damage(events, projections, payment_id, has_row, charge_of)
        if isinstance(found, Damage):
            report.damaged.append(found)
        elif found is not None:
            report.behind.append(Damage(payment_id, found[0], found[1]))


def _head_damage(
    events: EventStore,
    projections: ProjectionStore,
    payment_id: str,
    has_row: bool,
    charge_of: ChargeLookup | None,
) -> Damage | tuple[int, str] | None:
    """What is wrong with one stream's head: Damage, drift as (version, problem), or None."""
    stored = _stored(events, payment_id)
    if isinstance(stored, Damage):
        return stored
    row = _row(projections, payment_id) if has_row else None
    if stored is None:
        where = f", but its projection row is at version {row.version} ({row.state})" if row else ""
        return Damage(payment_id, 1, f"missing: the stream holds no events{where}")
    gateway = _gateway_says(stored, charge_of)
    if isinstance(gateway, Damage):
        return gateway
    return _compare(row, stored, gateway)


def _compare(row: Payment | None, stored: Payment, gateway: str) -> Damage | tuple[int, str] | None:
    """A projection row against the payment its events make (see the module's docstring)."""
    if row is None:
        return (stored.version, f"no readable projection row ({REBUILT})")
    if row.version > stored.version:
        return Damage(
            stored.id,
            stored.version + 1,
            f"missing: the stream ends at version {stored.version} ({stored.state}) but its "
            f"projection row is at version {row.version} ({row.state}){gateway}",
        )
    if row.version < stored.version:
        return (stored.version, f"projection row at version {row.version} ({REBUILT})")
    if row != stored:
        return Damage(
            stored.id,
            stored.version,
            f"the projection row says otherwise than the events: {_differences(row, stored)}",
        )
    return None


def _stored(events: EventStore, payment_id: str) -> Payment | Damage | None:
    """The payment a stream's events make (None for no events), or Damage at the first event
    that cannot be read or that the transitions refuse."""
    try:
        recorded = events.read(payment_id)
    except EventIntegrityError as error:  # damage the log pass did not reach
        return Damage(error.stream_id, error.version, error.problem)
    except EventContinuityError as error:
        return Damage(error.stream_id, 1, error.detail)
    return _replayed(payment_id, recorded)


def _replayed(payment_id: str, recorded: list[RecordedEvent]) -> Payment | Damage | None:
    """The payment the events make, or Damage at the first event the transitions refuse."""
    try:
        return replay(r.event for r in recorded)
    except InvalidTransition as error:
        version = len(recorded)
        while version > 1:  # rare and short: find the first event refused
            try:
                replay(r.event for r in recorded[: version - 1])
                break
            except InvalidTransition:
                version -= 1
        return Damage(payment_id, version, f"the events do not replay: {error}")


def _gateway_says(stored: Payment, charge_of: ChargeLookup | None) -> str | Damage:
    """What the gateway holds for a payment, as a clause for a message, or Damage when it
    charged another amount or currency than the events say."""
    if charge_of is None:
        return ""
    charge = charge_of(stored.id)
    if charge is None:
        return "; the gateway holds no charge for it"
    if charge.charged and charge.amount is not None and charge.amount != stored.amount:
        return Damage(
            stored.id,
            1,
            f"the gateway charged {charge.amount}, the events say {stored.amount}",
        )
    verdict = "its charge" if charge.charged else f"a {charge.status} record"
    return f"; the gateway holds {verdict} ({charge.transaction_id})"


def _differences(row: Payment, stored: Payment) -> str:
    """The fields where a projection row and its events disagree, with both values."""
    ours, theirs = row.model_dump(), stored.model_dump()
    return ", ".join(
        f"{name} (row {ours[name]!r}, events {theirs[name]!r})"
        for name in ours
        if ours[name] != theirs[name]
    )


def _row(projections: ProjectionStore, payment_id: str) -> Payment | None:
    try:
        return projections.get(payment_id)
    except Exception:  # an unreadable row is drift, rebuilt by recovery
        return None


def _side_by_side(
    events: EventStore, projections: ProjectionStore
) -> Iterator[tuple[str, bool, bool]]:
    """Every id that names a stream or a projection row, in id order, with which it names."""
    streams = in_id_order(events.stream_ids_after)
    rows = in_id_order(projections.ids_after)
    stream, row = next(streams, None), next(rows, None)
    while stream is not None or row is not None:
        if stream is not None and (row is None or stream < row):
            yield stream, True, False
            stream = next(streams, None)
        elif row is not None and (stream is None or row < stream):
            yield row, False, True
            row = next(rows, None)
        elif stream is not None:
            yield stream, True, True
            stream, row = next(streams, None), next(rows, None)


def _first_damage(events: EventStore, found: EventIntegrityError) -> Damage:
    """The damage that reading the whole stream reports: its first wrong version."""
    try:
        events.read(found.stream_id)
    except EventIntegrityError as error:
        found = error
    return Damage(found.stream_id, found.version, found.problem)
