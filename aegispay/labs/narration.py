"""Narration: each process of an attack tells what it does to the store and the gateway, in words.

`Narrated` is the harness (`AegisPay`) with one more wrapper around its event store, gateways
and locks: every write, charge, lookup and cancel adds a `Step` to the shared `Story`, named
by the process that made it. Nothing here changes what a call does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, TypeVar, cast

from aegispay.domain.charges import ChargeRecord, ChargeRequest
from aegispay.domain.errors import ConcurrencyError
from aegispay.domain.events import PaymentEvent
from aegispay.domain.failures import classify
from aegispay.domain.payment import replay
from aegispay.domain.states import TRANSITIONS
from aegispay.infra.gateway.ledger import Ledger
from aegispay.labs.verdict import Step
from aegispay.orchestration.ports import PaymentGateway, Projector
from aegispay.sim.crashpoints import ProcessCrash
from aegispay.sim.harness import AegisPay

A = TypeVar("A")
R = TypeVar("R")
STORE, GATEWAY = "event store", "gateway"
DIES = " (the process crashed)"
# Generations of the processes an attack builds: A and its restarts, B, a recovery elsewhere.
PROCESS_B, RECOVERY, CLEAN_UP = 1000, 2000, 3000


def actor_of(generation: int) -> str:
    """The lane of a process, from the generation it was built with."""
    if generation >= RECOVERY:  # a recovery elsewhere, or the clean-up's after the faults heal
        return "recovery"
    if generation >= PROCESS_B:
        return "process B"
    return "process A"


def state_after(event_type: str) -> str:
    """The state an event always leads to, or '' when it depends on the state before."""
    if event_type == "PaymentInitiated":
        return "INITIATED"
    targets = {row[event_type] for row in TRANSITIONS.values() if event_type in row}
    return next(iter(targets)).value if len(targets) == 1 else ""


@dataclass
class Story:
    """The steps every process of one run tells, in order, with short names for keys and ids."""

    steps: list[Step] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)
    quiet: bool = False
    # Whether reads are told too (a lab whose learner reads before writing tells them).
    reads: bool = False
    # Whose call the gateway is answering now (one process calls at a time in a run).
    caller: str = "process A"

    def tell(self, actor: str, sentence: str, target: str | None = None) -> None:
        """Add a step, unless the story is muted (the clean-up's routine work)."""
        if not self.quiet:
            self.steps.append(Step(actor, sentence, target))

    @property
    def died(self) -> bool:
        """Whether the last step told was a process dying."""
        return bool(self.steps) and self.steps[-1].sentence.endswith(DIES)

    def death(self, actor: str, where: str) -> None:
        """Tell a process dying, once."""
        if not self.died:
            self.tell(actor, f"{actor} dies" + (f" {where}" if where else "") + DIES)

    def alias(self, value: str, prefix: str) -> str:
        """A short, stable name for a long key or transaction id: k1, k2, t1 ..."""
        if value not in self.aliases:
            count = sum(1 for name in self.aliases.values() if name.startswith(prefix))
            self.aliases[value] = f"{prefix}{count + 1}"
        return self.aliases[value]

    def record(self, record: ChargeRecord) -> str:
        """What a record held by the gateway says, in words."""
        if record.cancelled:
            return "cancelled"
        if record.charged:
            return f"charged ({self.alias(record.transaction_id, 't')})"
        return f"declined ({record.decline_reason})"


class NarratedEvents:
    """An event store that tells each write as it lands, and each write refused as stale."""

    def __init__(self, inner: Any, story: Story, actor: str) -> None:
        self._inner, self._story, self._actor = inner, story, actor

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def read(self, stream_id: str) -> list[Any]:
        """Read through; when the story tells reads, say what was found, as it was found."""
        recorded: list[Any] = self._inner.read(stream_id)
        if self._story.reads:
            found = replay(r.event for r in recorded)
            said = "nothing" if found is None else f"the payment ({found.amount})"
            self._story.tell(self._actor, f"{self._actor} looks the key up: {said}", STORE)
        return recorded

    def append(
        self,
        stream_id: str,
        events: Sequence[PaymentEvent],
        expected_version: int,
        project: Projector | None = None,
    ) -> int:
        """Append through; the write is told once it landed, before its projection row."""

        def told() -> None:
            names = ", ".join(event.type for event in events)
            state = state_after(events[-1].type) if events else ""
            arrow = f" → {state}" if state else ""
            self._story.tell(self._actor, f"{self._actor} writes {names}{arrow}", STORE)
            if project is not None:
                project()

        try:
            version: int = self._inner.append(stream_id, events, expected_version, told)
        except ConcurrencyError:
            self._story.tell(
                self._actor, f"{self._actor}'s write is refused: the payment moved on", STORE
            )
            raise
        return version


class NarratedLedger:
    """The provider's ledger, telling what the gateway does for whoever called it."""

    def __init__(self, inner: Ledger, story: Story) -> None:
        self._inner, self._story = inner, story

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def record(self, charge: ChargeRecord) -> ChargeRecord:
        """Record through, and tell what the gateway did with the charge."""
        held = self._inner.record(charge)
        story = self._story
        if held is charge:
            alias = story.alias(held.transaction_id, "t")
            said = f"charges 42.00 EUR ({alias})" if held.charged else "declines the charge"
            told = f"the gateway {said}"
        elif held.cancelled:
            told = "the gateway refuses the charge: our reference is cancelled"
        else:
            told = f"the gateway answers with the record it holds: {story.record(held)}"
        story.tell(GATEWAY, told, story.caller)
        return held

    def cancel(self, merchant_reference: str, at: datetime) -> ChargeRecord:
        """Cancel through, and tell what the gateway holds now."""
        held = self._inner.cancel(merchant_reference, at)
        self._story.tell(GATEWAY, f"the gateway answers: {self._story.record(held)}",
                         self._story.caller)  # fmt: skip
        return held


class NarratedGateway:
    """A process's view of a gateway that tells each call it sends and each answer it loses."""

    def __init__(self, inner: PaymentGateway, story: Story, actor: str) -> None:
        self._inner, self._story, self._actor = inner, story, actor

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @property
    def name(self) -> str:
        """The wrapped gateway's name."""
        return self._inner.name

    def charge(self, request: ChargeRequest) -> ChargeRecord:
        """Tell the charge going out; the ledger tells what the gateway did."""
        key = self._story.alias(request.idempotency_key, "k")
        return self._call(f"sends the charge (key {key})", lambda: self._inner.charge(request))

    def status(self, merchant_reference: str) -> ChargeRecord | None:
        """Tell the lookup going out, and its answer."""
        found = self._call(
            "asks the gateway about the payment", lambda: self._inner.status(merchant_reference)
        )
        said = "not found" if found is None else self._story.record(found)
        self._story.tell(GATEWAY, f"the gateway answers: {said}", self._actor)
        return found

    def cancel(self, merchant_reference: str) -> ChargeRecord:
        """Tell the cancel going out, and its answer unless the ledger told it."""
        told = len(self._story.steps)
        held = self._call(
            "cancels our reference at the gateway", lambda: self._inner.cancel(merchant_reference)
        )
        if not any(step.actor == GATEWAY for step in self._story.steps[told:]):
            said = self._story.record(held)
            self._story.tell(GATEWAY, f"the gateway answers: {said}", self._actor)
        return held

    def _call(self, what: str, call: Callable[[], R]) -> R:
        story = self._story
        story.tell(self._actor, f"{self._actor} {what}", GATEWAY)
        caller, story.caller = story.caller, self._actor
        try:
            return call()
        except ProcessCrash:
            story.death(self._actor, "before the gateway's answer arrives")
            raise
        except Exception as error:
            sent = classify(error).may_have_charged
            lost = "the answer is lost on the way back" if sent else "the request never arrives"
            story.tell(GATEWAY, f"{lost} ({type(error).__name__})", self._actor)
            raise
        finally:
            story.caller = caller


class Narrated(AegisPay):
    """The harness whose every process tells its steps into one shared story."""

    story: ClassVar[Story] = Story()

    @classmethod
    def telling(cls, story: Story) -> type[Narrated]:
        """A class of processes that all tell into `story`."""
        return cast(type[Narrated], type("Narrated", (cls,), {"story": story}))

    @property
    def actor(self) -> str:
        """This process's lane."""
        return actor_of(self.generation)

    def wrap_port(self, port: str, adapter: A) -> A:
        """Narrated, then behind the harness's boundaries (so a write is told where it lands)."""
        if port == "events":
            adapter = cast(A, NarratedEvents(adapter, self.story, self.actor))
        return super().wrap_port(port, adapter)

    def wrap_gateway(self, gateway: PaymentGateway) -> PaymentGateway:
        """Behind the harness's faults and boundaries, then narrated."""
        return cast(
            PaymentGateway, NarratedGateway(super().wrap_gateway(gateway), self.story, self.actor)
        )
