"""The simulated gateway behaves like a real provider, over either ledger."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aegispay.domain.charges import ChargeRequest, ChargeStatus
from aegispay.domain.money import Money
from aegispay.infra.clock import VirtualClock
from aegispay.infra.gateway.ledger import GatewayIdempotencyMismatch, InMemoryLedger, SQLiteLedger
from aegispay.infra.gateway.simulated import SimulatedGateway


def request(reference: str = "pay_1", minor: int = 1000, method: str = "tok_visa") -> ChargeRequest:
    return ChargeRequest(
        merchant_reference=reference,
        idempotency_key=f"aegispay-{reference}",
        amount=Money(minor=minor, currency="USD"),
        payment_method=method,
    )


class GatewayContract:
    """What any simulated gateway must do, whatever ledger it keeps."""

    @pytest.fixture
    def gateway(self, tmp_path: Path) -> Iterator[SimulatedGateway]:
        yield SimulatedGateway("primary", self.make_ledger(tmp_path), VirtualClock())

    def make_ledger(self, tmp_path: Path) -> InMemoryLedger | SQLiteLedger:
        raise NotImplementedError

    def test_a_charge_succeeds_with_a_transaction_id(self, gateway: SimulatedGateway) -> None:
        record = gateway.charge(request())
        assert record.status is ChargeStatus.SUCCEEDED
        assert record.charged
        assert record.transaction_id.startswith("txn_")

    def test_the_same_idempotency_key_never_charges_twice(self, gateway: SimulatedGateway) -> None:
        first = gateway.charge(request())
        again = gateway.charge(request())
        assert again == first
        assert len(gateway.charges()) == 1
        assert gateway.calls == 2

    def test_a_cancel_before_any_charge_fences_the_reference_for_good(
        self, gateway: SimulatedGateway
    ) -> None:
        cancelled = gateway.cancel("pay_1")
        assert cancelled.status is ChargeStatus.CANCELLED
        assert (cancelled.amount, cancelled.idempotency_key) == (None, None)
        refused = gateway.charge(request())
        assert refused == cancelled
        assert not refused.charged
        assert gateway.status("pay_1") == cancelled
        assert gateway.cancel("pay_1") == cancelled
        assert gateway.charges() == [cancelled]

    def test_a_cancel_after_a_charge_or_a_decline_answers_what_is_held(
        self, gateway: SimulatedGateway
    ) -> None:
        charged = gateway.charge(request("pay_1"))
        declined = gateway.charge(request("pay_2", method="tok_decline"))
        assert gateway.cancel("pay_1") == charged
        assert gateway.cancel("pay_2") == declined
        assert gateway.charges() == [charged, declined]

    def test_a_cancel_touches_only_its_own_reference(self, gateway: SimulatedGateway) -> None:
        gateway.cancel("pay_1")
        assert gateway.charge(request("pay_2")).charged

    def test_the_same_key_for_another_amount_is_refused(self, gateway: SimulatedGateway) -> None:
        gateway.charge(request())
        with pytest.raises(GatewayIdempotencyMismatch):
            gateway.charge(request(minor=2000))
        assert len(gateway.charges()) == 1

    @pytest.mark.parametrize(
        ("method", "reason"),
        [("tok_decline", "card_declined"), ("tok_insufficient_funds", "insufficient_funds")],
    )
    def test_documented_test_tokens_are_declined(
        self, gateway: SimulatedGateway, method: str, reason: str
    ) -> None:
        record = gateway.charge(request(method=method))
        assert record.status is ChargeStatus.DECLINED
        assert record.decline_reason == reason
        assert not record.charged

    def test_status_is_found_by_merchant_reference_and_by_transaction(
        self, gateway: SimulatedGateway
    ) -> None:
        record = gateway.charge(request("pay_7"))
        assert gateway.status("pay_7") == record
        assert gateway.status_by_transaction(record.transaction_id) == record
        assert gateway.status("pay_never") is None
        assert gateway.status_by_transaction("txn_never") is None

    def test_charges_are_listed_in_order(self, gateway: SimulatedGateway) -> None:
        for ref in ("pay_a", "pay_b", "pay_c"):
            gateway.charge(request(ref))
        assert [c.merchant_reference for c in gateway.charges()] == ["pay_a", "pay_b", "pay_c"]


class TestInMemoryGateway(GatewayContract):
    def make_ledger(self, tmp_path: Path) -> InMemoryLedger:
        return InMemoryLedger()


class TestSQLiteGateway(GatewayContract):
    def make_ledger(self, tmp_path: Path) -> SQLiteLedger:
        return SQLiteLedger(str(tmp_path / "gateway.db"))


def test_the_sqlite_ledger_outlives_the_process_that_wrote_it(tmp_path: Path) -> None:
    path = str(tmp_path / "gateway.db")
    first = SQLiteLedger(path)
    record = SimulatedGateway("primary", first, VirtualClock()).charge(request())
    first.close()
    reopened = SimulatedGateway("primary", SQLiteLedger(path), VirtualClock())
    assert reopened.status("pay_1") == record
    assert reopened.charge(request()) == record
    assert len(reopened.charges()) == 1


def test_a_cancellation_in_the_sqlite_ledger_fences_the_reference_in_another_process(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "gateway.db")
    first = SQLiteLedger(path)
    cancelled = SimulatedGateway("primary", first, VirtualClock()).cancel("pay_1")
    first.close()
    reopened = SimulatedGateway("primary", SQLiteLedger(path), VirtualClock())
    assert reopened.charge(request()) == cancelled
    assert reopened.charges() == [cancelled]
