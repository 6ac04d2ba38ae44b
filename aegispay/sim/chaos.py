"""The chaos soak: every fault at once, crashes anywhere, then heal, recover, and check.

A seeded run of N payments, each a client's create and process, mixed with every gateway
fault, failing projection writes, crashes at random boundaries (the process restarts),
duplicate requests (some racing from a second process), lock holders paused past their lease
(before an append, or with their charge on the wire) while another process takes over, and
recoveries in a second process running while a payment is mid-flight. Then the faults heal,
recovery runs to quiescence, clients retry what they never heard back about, and every
invariant is checked.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from aegispay.domain.commands import payment_id_for
from aegispay.domain.errors import AegisPayError
from aegispay.infra.clock import VirtualClock
from aegispay.service import LOCK_TTL
from aegispay.sim.crashpoints import BOUNDARIES, ProcessCrash, Side, sides_of
from aegispay.sim.faults import FAULT_KINDS, FailureConfig, ScheduledFault
from aegispay.sim.harness import AegisPay
from aegispay.sim.invariants import INVARIANTS, event_log_digest
from aegispay.sim.workload import ARRIVAL_INTERVAL, seeded_request

CHAOS_FAULTS = FailureConfig(
    timeout_before_rate=0.03, timeout_after_rate=0.03, network_rate=0.03, partial_rate=0.05,
    decline_rate=0.02, slow_rate=0.02, crash_rate=0.003, projection_rate=0.02,
)  # fmt: skip
CRASH_POINT_RATE = 0.02
DUPLICATE_RATE = 0.05
RACING_DUPLICATE_RATE = 0.02
PAUSED_HOLDER_RATE = 0.02
CONCURRENT_RECOVERY_RATE = 0.02
RECOVER_EVERY = 100
# Where a second actor cuts into a payment: before its appends, or while its charge travels.
CUT_IN_POINTS: tuple[tuple[str, Side], ...] = (
    ("events.append", "before"),
    ("gateway.charge", "inside"),
)
# A second actor that cannot reach the gateway for its charges: it must give up through a cancel.
UNREACHABLE_CHARGES = FailureConfig(schedule=(ScheduledFault(kind="network", calls=20),))
# The soak's own disturbances, counted beside the fault kinds.
CHAOS_EXTRAS = (
    "crash_point", "duplicate_request", "racing_duplicate", "paused_holder",
    "concurrent_recovery", "restart",
)  # fmt: skip


@dataclass
class ChaosReport:
    """What the soak did and what it found."""

    payments: int
    seed: int
    faults: Counter[str] = field(default_factory=Counter)
    recovery: Counter[str] = field(default_factory=Counter)
    invariants: dict[str, int] = field(default_factory=dict)
    details: list[str] = field(default_factory=list)
    digest: str = ""

    @property
    def violations(self) -> int:
        """Violations of every invariant, in total."""
        return sum(self.invariants.values())

    def as_dict(self) -> dict[str, object]:
        """The JSON the `chaos` command prints."""
        return {
            "payments": self.payments,
            "seed": self.seed,
            "faults": {**dict.fromkeys((*FAULT_KINDS, *CHAOS_EXTRAS), 0), **self.faults},
            "recovery": dict(sorted(self.recovery.items())),
            "invariants": self.invariants,
            "violations": self.violations,
            "digest": self.digest,
            "details": self.details[:20],
        }


class ChaosRun:
    """One soak: the current engine (replaced at each crash) and the running tallies."""

    def __init__(self, pay: AegisPay, payments: int, seed: int) -> None:
        self.pay = pay
        self.rng = random.Random(f"chaos/{seed}")
        self.report = ChaosReport(payments, seed)
        self._requests: dict[int, dict[str, str]] = {}

    def run(self, advance: Callable[[], None] = lambda: None) -> ChaosReport:
        """Soak, heal, recover, retry, recover, check."""
        for index in range(self.report.payments):
            self._survive(lambda index=index: self._client(index, chaotic=True))  # type: ignore[misc]
            if (index + 1) % RECOVER_EVERY == 0:
                self._survive(self._recover)
            self.pay.clock.sleep(ARRIVAL_INTERVAL)
            advance()
        self.pay.set_faults(FailureConfig())
        self._recover()
        for index in range(self.report.payments):
            self._client(index, chaotic=False)  # clients retry what they never heard back about
        self._recover()
        self._check()
        return self.report

    def _client(self, index: int, chaotic: bool) -> None:
        """One customer: create (maybe twice, maybe racing), then process."""
        request = self._request(index)
        if chaotic:
            self._maybe_arm_crash()
        if chaotic and self.rng.random() < RACING_DUPLICATE_RATE:
            self.report.faults["racing_duplicate"] += 1
            sibling = self._sibling()

            def race() -> None:
                sibling.create_payment(**request)

            self.pay.crashpoints.arm("events.append", "before", 1, race)
        payment = self.pay.create_payment(**request)
        if chaotic and self.rng.random() < DUPLICATE_RATE:
            self.report.faults["duplicate_request"] += 1
            self.pay.create_payment(**request)
        if chaotic and self.rng.random() < PAUSED_HOLDER_RATE:
            self._pause_holder(payment.id)
        elif chaotic and self.rng.random() < CONCURRENT_RECOVERY_RATE:
            self._recover_concurrently()
        try:
            self.pay.process_payment(payment_id_for(request["idempotency_key"]))
        except AegisPayError as error:
            self.pay.logger.log("info", "client saw an error", error=error)

    def _request(self, index: int) -> dict[str, str]:
        """The index-th client's request, drawn once: its retry sends the very same."""
        request = self._requests.get(index)
        if request is None:
            request = self._requests[index] = seeded_request(self.report.seed, index)
        return request

    def _pause_holder(self, payment_id: str) -> None:
        """This process stalls past its lease mid-payment; another one takes the payment over."""
        self.report.faults["paused_holder"] += 1
        sibling = self._sibling(self._second_actor_faults())

        def stall() -> None:
            self.pay.clock.sleep(LOCK_TTL + 1)
            self._as_second_actor(lambda: sibling.process_payment(payment_id))

        self._cut_in(stall)

    def _recover_concurrently(self) -> None:
        """A recovery in another process runs while this payment is mid-flight."""
        self.report.faults["concurrent_recovery"] += 1
        sibling = self._sibling(self._second_actor_faults())
        self._cut_in(lambda: self._as_second_actor(sibling.recover))

    def _cut_in(self, action: Callable[[], None]) -> None:
        boundary, side = self.rng.choice(CUT_IN_POINTS)
        self.pay.crashpoints.arm(boundary, side, 1, action)

    def _second_actor_faults(self) -> FailureConfig:
        # Half the time the second actor cannot reach the gateway: the case that must cancel.
        return UNREACHABLE_CHARGES if self.rng.random() < 0.5 else self.pay.faults_config

    def _as_second_actor(self, action: Callable[[], object]) -> None:
        """Run another process's step; what it sees fail is its own business, not ours."""
        try:
            action()
        except AegisPayError as error:
            self.pay.logger.log("info", "second actor saw an error", error=error)

    def _maybe_arm_crash(self) -> None:
        if self.rng.random() < CRASH_POINT_RATE:
            boundary = self.rng.choice(BOUNDARIES)
            side = self.rng.choice(sides_of(boundary))
            self.pay.crash_at(boundary, side, nth=self.rng.randint(1, 3))

    def _survive(self, step: Callable[[], None]) -> None:
        """Run a step; if the process dies, restart it and carry on."""
        try:
            step()
        except ProcessCrash:
            self.report.faults["restart"] += 1
            self._tally_faults()
            self.pay = self.pay.restart()
        self.pay.crashpoints.disarm()

    def _recover(self) -> None:
        self.report.recovery.update(self.pay.recover(until_quiet=True).as_dict())

    def _sibling(self, faults: FailureConfig | None = None) -> AegisPay:
        """A second process over the same storage, with its own memory, locks and faults."""
        return self.pay.sibling(faults=faults, offset=10_000)

    def _tally_faults(self) -> None:
        self.report.faults.update(self.pay.metrics.counts("faults."))

    def _check(self) -> None:
        self._tally_faults()
        # Every restart followed a crash: at a gateway (`crash`) or at an armed boundary.
        self.report.faults["crash_point"] = (
            self.report.faults["restart"] - self.report.faults["crash"]
        )
        pay = self.pay
        found = pay.check_invariants()
        self.report.invariants = {name: found.counts[name] for name in INVARIANTS}
        self.report.details = found.details
        self.report.digest = event_log_digest(pay.event_store)


def run_chaos(
    payments: int,
    seed: int,
    store: str | None = None,
    gateway: str | None = None,
    *,
    advance: Callable[[], None] = lambda: None,
    engine: type[AegisPay] = AegisPay,
) -> ChaosReport:
    """Run a seeded soak in memory, or over the stores named by URL, on simulated time.

    `engine` is the class the soak runs (a test hands in a broken one to show the soak notices).
    """
    if store is None and gateway is None:
        pay = engine.in_memory(seed=seed, faults=CHAOS_FAULTS)
    else:
        pay = engine.open(
            store=store or "memory://",
            gateway=gateway or "memory://",
            seed=seed,
            faults=CHAOS_FAULTS,
            clock=VirtualClock(),
        )
    run = ChaosRun(pay, payments, seed)
    try:
        return run.run(advance)
    finally:
        run.pay.close()
