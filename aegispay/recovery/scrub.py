"""The scrub: read every stored event once, in constant memory, and report each damaged stream.

Recovery reads only what it needs (in-flight, halted and recently written streams), so damage in
a stream settled long ago is found here, by `aegispay verify`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from aegispay.domain.errors import EventIntegrityError
from aegispay.orchestration.ports import EventStore


@dataclass(frozen=True)
class Damage:
    """One damaged stream: the first version found wrong and what is wrong with it."""

    stream_id: str
    version: int
    problem: str


@dataclass
class ScrubReport:
    """How many stored events were checked, and every damaged stream (once each)."""

    events: int = 0
    damaged: list[Damage] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready summary."""
        return {
            "events": self.events,
            "damaged_streams": len(self.damaged),
            "damaged": [asdict(damage) for damage in self.damaged],
        }


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


def _first_damage(events: EventStore, found: EventIntegrityError) -> Damage:
    """The damage that reading the whole stream reports: its first wrong version."""
    try:
        events.read(found.stream_id)
    except EventIntegrityError as error:
        found = error
    return Damage(found.stream_id, found.version, found.problem)
