"""The transition table drives evolve and replay: allowed events move, all others are refused."""

from __future__ import annotations

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aegispay.domain.errors import InvalidTransition
from aegispay.domain.payment import Payment, evolve, initial, replay
from aegispay.domain.states import IN_FLIGHT, TRANSITIONS, PaymentState
from tests.factories_core import (
    EVENT_TYPES,
    HAPPY_PATH,
    at,
    event_of_type,
    events_of_types,
    initiated,
)

S = PaymentState
ALLOWED = [(state, event) for state, exits in TRANSITIONS.items() for event in exits]
FORBIDDEN = [
    (state, event)
    for state in PaymentState
    for event in EVENT_TYPES
    if event not in TRANSITIONS[state]
]
VERIFICATION_EVENTS = {"ChargeConfirmed", "DeclineConfirmed", "CancelConfirmed", "ChargeNotFound"}


def payment_in(state: PaymentState) -> Payment:
    """A payment placed directly in a state, to test one transition in isolation."""
    return initial(initiated()).model_copy(update={"state": state})


@pytest.mark.parametrize(("state", "event_type"), FORBIDDEN)
def test_an_event_not_in_the_table_for_the_state_raises_invalid_transition(
    state: PaymentState, event_type: str
) -> None:
    with pytest.raises(InvalidTransition) as raised:
        evolve(payment_in(state), event_of_type(event_type, when=at(1)))
    assert (raised.value.state, raised.value.event) == (state, event_type)


@pytest.mark.parametrize(("state", "event_type"), ALLOWED)
def test_an_event_in_the_table_moves_the_payment_to_the_tables_target(
    state: PaymentState, event_type: str
) -> None:
    payment = payment_in(state)
    moved = evolve(payment, event_of_type(event_type, when=at(1)))
    assert moved.state == TRANSITIONS[state][event_type]
    assert moved.version == payment.version + 1
    assert moved.updated_at == at(1)


def test_the_table_has_an_entry_for_every_state_and_names_only_real_event_types() -> None:
    assert set(TRANSITIONS) == set(PaymentState)
    assert {event for exits in TRANSITIONS.values() for event in exits} <= set(EVENT_TYPES)


def test_success_and_failure_are_the_terminal_states_and_have_no_exits() -> None:
    terminal = {state for state in PaymentState if state.is_terminal}
    assert terminal == {S.SUCCESS, S.FAILURE}
    assert all(TRANSITIONS[state] == {} for state in terminal)


def test_unknown_is_left_only_through_verification_events() -> None:
    assert set(TRANSITIONS[S.UNKNOWN]) == VERIFICATION_EVENTS


def test_unknown_reaches_failure_only_when_the_gateway_confirms_a_decline_or_a_cancel() -> None:
    """Never guess: an unknown outcome becomes FAILURE only on the gateway's word."""
    to_failure = {event for event, target in TRANSITIONS[S.UNKNOWN].items() if target == S.FAILURE}
    assert to_failure == {"DeclineConfirmed", "CancelConfirmed"}


def test_once_processing_started_failure_follows_only_a_decline_or_a_confirmed_cancel() -> None:
    """PaymentFailed after ProcessingStarted is the gateway's answer to our charge: a decline."""
    for state in (S.PROCESSING, S.UNKNOWN, S.CANCELLING):
        to_failure = {event for event, target in TRANSITIONS[state].items() if target == S.FAILURE}
        assert to_failure <= {"PaymentFailed", "DeclineConfirmed", "CancelConfirmed"}, state
    assert "PaymentFailed" not in TRANSITIONS[S.CANCELLING]


def test_cancelling_is_left_only_through_what_the_gateway_answered_a_cancel() -> None:
    assert set(TRANSITIONS[S.CANCELLING]) == {
        "CancelConfirmed", "ChargeConfirmed", "DeclineConfirmed", "PaymentRerouted",
    }  # fmt: skip
    assert S.CANCELLING in IN_FLIGHT


def test_only_a_confirmed_cancel_lets_a_payment_move_to_another_gateway() -> None:
    rerouting = {state for state, exits in TRANSITIONS.items() if "PaymentRerouted" in exits}
    assert rerouting == {S.CANCELLING}


def test_replay_of_the_happy_path_gives_a_successful_payment_at_version_4() -> None:
    payment = replay(events_of_types(HAPPY_PATH))
    assert payment is not None
    assert payment.state == S.SUCCESS
    assert payment.transaction_id == "txn_1"
    assert payment.version == 4
    assert payment.gateway == "sim"
    assert (payment.created_at, payment.updated_at) == (at(0), at(3))


def test_replay_of_an_unknown_outcome_records_the_error_and_verification_clears_it() -> None:
    unknown = events_of_types(
        ["PaymentInitiated", "PaymentAuthenticated", "ProcessingStarted", "GatewayOutcomeUnknown"]
    )
    in_doubt = replay(unknown)
    settled = replay([*unknown, event_of_type("ChargeConfirmed", when=at(4))])
    assert in_doubt is not None
    assert (in_doubt.state, in_doubt.last_error) == (S.UNKNOWN, "timeout after send")
    assert settled is not None
    assert (settled.state, settled.transaction_id, settled.last_error) == (S.SUCCESS, "txn_1", None)


def test_replay_of_no_events_is_none() -> None:
    assert replay([]) is None


@pytest.mark.parametrize("event_type", [t for t in EVENT_TYPES if t != "PaymentInitiated"])
def test_replay_starting_with_an_event_other_than_payment_initiated_raises(
    event_type: str,
) -> None:
    with pytest.raises(InvalidTransition):
        replay([event_of_type(event_type)])


def test_a_second_payment_initiated_raises_invalid_transition() -> None:
    with pytest.raises(InvalidTransition):
        replay(events_of_types(["PaymentInitiated", "PaymentInitiated"]))


def test_an_event_for_another_payment_raises_invalid_transition() -> None:
    with pytest.raises(InvalidTransition):
        evolve(initial(initiated()), event_of_type("PaymentAuthenticated", payment_id="pay_other"))


def test_evolve_returns_a_new_payment_and_leaves_the_old_one_unchanged() -> None:
    payment = initial(initiated())
    before = payment.model_dump()
    moved = evolve(payment, event_of_type("PaymentAuthenticated", when=at(1)))
    assert moved is not payment
    assert moved.state == S.AUTHENTICATED
    assert payment.model_dump() == before


def test_a_payment_cannot_be_changed_in_place() -> None:
    payment = initial(initiated())
    with pytest.raises(pydantic.ValidationError):
        payment.state = S.SUCCESS  # type: ignore[misc]


def walk_table(event_types: list[str]) -> PaymentState | None:
    """Follow the table by hand: the final state, or None where an event is not allowed."""
    if not event_types or event_types[0] != "PaymentInitiated":
        return None
    state: PaymentState | None = S.INITIATED
    for event_type in event_types[1:]:
        state = TRANSITIONS[state].get(event_type) if state is not None else None
    return state


event_type_lists = st.lists(st.sampled_from(EVENT_TYPES), min_size=1, max_size=12)


@given(
    event_types=st.one_of(
        event_type_lists, event_type_lists.map(lambda t: ["PaymentInitiated", *t])
    )
)
def test_replay_either_raises_or_ends_where_the_table_leads(event_types: list[str]) -> None:
    """Replay of any event sequence ends in the table's state, or raises InvalidTransition."""
    expected = walk_table(event_types)
    events = events_of_types(event_types)
    if expected is None:
        with pytest.raises(InvalidTransition):
            replay(events)
    else:
        payment = replay(events)
        assert payment is not None
        assert payment.state == expected
        assert payment.version == len(event_types)


@given(event_types=event_type_lists.map(lambda t: ["PaymentInitiated", *t]), cut=st.integers(1, 8))
def test_replaying_in_two_parts_equals_replaying_at_once(event_types: list[str], cut: int) -> None:
    """replay(rest, start=replay(head)) == replay(head + rest): the fold resumes."""
    events = events_of_types(event_types)
    head, rest = events[:cut], events[cut:]
    try:
        whole = replay(events)
    except InvalidTransition:
        with pytest.raises(InvalidTransition):
            replay(rest, start=replay(head))
        return
    assert replay(rest, start=replay(head)) == whole
