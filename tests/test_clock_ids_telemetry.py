"""The small ports: clocks, id generators, the logger and metrics."""

from __future__ import annotations

from datetime import timedelta

import pytest

from aegispay import AegisPay
from aegispay.infra.clock import EPOCH, SystemClock, VirtualClock
from aegispay.infra.ids import RandomIdGenerator, SeededIdGenerator
from aegispay.infra.telemetry import MemoryLogger, MemoryMetrics


def test_a_virtual_clock_sleep_advances_time_at_once_and_is_recorded() -> None:
    clock = VirtualClock()
    clock.sleep(1.5)
    clock.sleep(0)
    assert clock.now() == EPOCH + timedelta(seconds=1.5)
    assert clock.slept == [1.5]


def test_a_virtual_clock_cannot_go_backwards() -> None:
    with pytest.raises(ValueError, match="seconds: must not be negative"):
        VirtualClock().advance(-1)


def test_the_system_clock_is_timezone_aware() -> None:
    assert SystemClock().now().tzinfo is not None


def test_a_seeded_generator_repeats_its_sequence_and_seeds_differ() -> None:
    def ids(seed: int) -> list[str]:
        generator = SeededIdGenerator(seed)
        return [generator.new_id("owner") for _ in range(3)]

    assert ids(1) == ids(1)
    assert ids(1) != ids(2)
    assert ids(1)[0].startswith("owner_")


def test_random_ids_do_not_repeat() -> None:
    generator = RandomIdGenerator()
    assert len({generator.new_id("x") for _ in range(1000)}) == 1000


def test_metrics_count_per_name_and_snapshot_sorted() -> None:
    metrics = MemoryMetrics()
    metrics.increment("b")
    metrics.increment("a", by=3)
    metrics.increment("b")
    assert metrics.snapshot() == {"a": 3, "b": 2}
    assert metrics.get("never") == 0


def test_the_logger_keeps_lines_with_their_fields_and_time() -> None:
    clock = VirtualClock()
    logger = MemoryLogger(clock, keep=2)
    for n in range(3):
        logger.log("info", "step", n=n)
    assert [line.fields["n"] for line in logger.lines] == [1, 2]
    assert "step n=2" in str(logger.lines[-1])


def test_a_virtual_clock_refuses_to_sleep_a_negative_time() -> None:
    with pytest.raises(ValueError, match="seconds: must not be negative"):
        VirtualClock().sleep(-5)


def test_the_engine_logs_what_it_did_for_a_notebook_to_print() -> None:
    pay = AegisPay.in_memory()
    payment = pay.create_payment(
        idempotency_key="k", amount="1.00", currency="USD", customer_id="c", payment_method="tok_x"
    )
    pay.create_payment(
        idempotency_key="k", amount="1.00", currency="USD", customer_id="c", payment_method="tok_x"
    )
    pay.process_payment(payment.id)
    assert [line.message for line in pay.logger.lines] == [
        "payment created",
        "duplicate request answered",
        "payment processed",
    ]
