"""Loads fold through a cache keyed by the chain hash of the stream's last event: a stream that
has not moved is not replayed, and any change to its events, even with the chain recomputed,
is folded afresh."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from aegispay.domain.payment import replay
from aegispay.engine import Engine
from aegispay.infra.clock import VirtualClock
from aegispay.infra.events.memory import InMemoryEventStore
from aegispay.orchestration.folds import Folds
from tests.test_tamper import durable, rechain

REQUEST = {
    "amount": "12.50",
    "currency": "EUR",
    "customer_id": "cus_1",
    "payment_method": "tok_visa",
}


def test_a_stream_that_has_not_moved_is_folded_once() -> None:
    with Engine.in_memory() as engine:
        payment = engine.create_payment(idempotency_key="order-1", **REQUEST)
        engine.process_payment(payment.id)
        folds = engine.ports.folds
        hits, misses = folds.hits, folds.misses
        first = engine.get_payment(payment.id)
        second = engine.get_payment(payment.id)
        assert (folds.hits, folds.misses) == (hits + 1, misses + 1)
        assert first is second
        assert second == replay(r.event for r in engine.ports.events.read(payment.id))


def test_a_stream_that_moved_is_folded_again_and_agrees_with_a_replay() -> None:
    with Engine.in_memory() as engine:
        payment = engine.create_payment(idempotency_key="order-1", **REQUEST)
        before = engine.get_payment(payment.id)
        after = engine.process_payment(payment.id)
        loaded = engine.get_payment(payment.id)
        assert loaded != before
        assert loaded == after == replay(r.event for r in engine.ports.events.read(payment.id))


def test_an_amount_edited_with_the_chain_recomputed_is_loaded_as_stored_now(
    tmp_path: Path,
) -> None:
    """The informed intruder's edit changes every hash from the edited version on, so the
    cached fold of the stream as it was is never handed out for the stream as it is."""
    with Engine.open(**durable(tmp_path), clock=VirtualClock()) as engine:
        payment = engine.create_payment(idempotency_key="order-1", **REQUEST)
        engine.process_payment(payment.id)
        assert engine.get_payment(payment.id).amount.minor == 1250  # now cached
        with sqlite3.connect(tmp_path / "s.db") as conn:
            conn.execute(
                "UPDATE events SET data = json_set(data, '$.amount.minor', 1)"
                " WHERE stream_id = ? AND version = 1",
                (payment.id,),
            )
        rechain(tmp_path, payment.id)
        assert engine.get_payment(payment.id).amount.minor == 1


def test_a_row_replaced_in_memory_is_folded_from_what_is_stored() -> None:
    with Engine.in_memory() as engine:
        payment = engine.create_payment(idempotency_key="order-1", **REQUEST)
        engine.process_payment(payment.id)
        engine.get_payment(payment.id)
        store = engine.ports.events
        assert isinstance(store, InMemoryEventStore)
        recorded = store.read(payment.id)
        # Same content, a new object: the key (stream, version, hash) is the same, and so is
        # the fold, which is what the cache may hand out.
        last = recorded[-1]
        store._streams[payment.id][last.version] = replace(last)
        assert engine.get_payment(payment.id) == replay(r.event for r in recorded)


def test_the_cache_keeps_at_most_its_size_and_drops_the_oldest_first() -> None:
    folds = Folds(size=2)
    with Engine.in_memory() as engine:
        ids = [engine.create_payment(idempotency_key=f"order-{n}", **REQUEST).id for n in range(3)]
        streams = [engine.ports.events.read(payment_id) for payment_id in ids]
    for stream in streams:
        folds.replay(stream)
    assert len(folds) == 2
    misses = folds.misses
    folds.replay(streams[2])  # kept
    folds.replay(streams[0])  # dropped first, so folded again
    assert folds.misses == misses + 1


def test_a_cache_of_size_zero_keeps_nothing_and_still_folds() -> None:
    folds = Folds(size=0)
    with Engine.in_memory() as engine:
        payment = engine.create_payment(idempotency_key="order-1", **REQUEST)
        stream = engine.ports.events.read(payment.id)
    assert folds.replay(stream) == folds.replay(stream) == replay(r.event for r in stream)
    assert (len(folds), folds.hits) == (0, 0)
    assert folds.replay([]) is None


@pytest.mark.parametrize("size", [-1, 2.5, "10", True, None])
def test_a_bad_size_is_refused(size: object) -> None:
    with pytest.raises(ValueError, match="size: must be a non-negative int"):
        Folds(size=size)  # type: ignore[arg-type]
