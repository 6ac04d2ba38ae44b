"""IO[T]: the monad laws, laziness, error routing and a stack-safe interpreter."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aegispay.io import IO, Err, Ok


class Crash(BaseException):
    """A simulated process crash: a BaseException no recover() may swallow."""


def outcome(program: IO[Any]) -> tuple[object, ...]:
    """Run a program and describe what happened, so two programs can be compared."""
    try:
        return ("ok", program.unsafe_run())
    except Exception as error:
        return ("err", type(error), error.args)


@dataclass(frozen=True)
class Step:
    """A Kleisli arrow int -> IO[int] of a few shapes, printable in hypothesis reports."""

    kind: str
    n: int

    def __call__(self, x: int) -> IO[int]:
        if self.kind == "pure":
            return IO.of(x + self.n)
        if self.kind == "delay":
            return IO.delay(lambda: x * self.n)
        if self.kind == "recovered":
            return IO.fail(KeyError(x)).recover(lambda _: IO.of(x - self.n))
        # "fails_sometimes": a failure that depends on the input.
        return IO.fail(ValueError(x)) if x % 3 == self.n % 3 else IO.of(x - self.n)


ints = st.integers(min_value=-1000, max_value=1000)
steps = st.builds(Step, st.sampled_from(["pure", "delay", "recovered", "fails_sometimes"]), ints)
programs: st.SearchStrategy[IO[int]] = st.one_of(
    ints.map(IO.of),
    ints.map(lambda n: IO.delay(lambda: n)),
    ints.map(lambda n: IO.fail(ValueError(n))),
    st.tuples(ints, steps).map(lambda pair: IO.of(pair[0]).flat_map(pair[1])),
)
pure_functions = st.functions(like=lambda x: x, returns=ints, pure=True)


# --- Monad and functor laws -------------------------------------------------------------------


@given(value=ints, f=steps)
def test_left_identity(value: int, f: Step) -> None:
    """Binding a pure value to f must equal f of the value."""
    assert outcome(IO.of(value).flat_map(f)) == outcome(f(value))


@given(program=programs)
def test_right_identity(program: IO[int]) -> None:
    """Binding a program to IO.of must equal the program."""
    assert outcome(program.flat_map(IO.of)) == outcome(program)


@given(program=programs, f=steps, g=steps)
def test_associativity(program: IO[int], f: Step, g: Step) -> None:
    """Binding f then g must equal binding each value to f(value) bound to g."""
    left = program.flat_map(f).flat_map(g)
    right = program.flat_map(lambda x: f(x).flat_map(g))
    assert outcome(left) == outcome(right)


@given(program=programs)
def test_map_identity(program: IO[int]) -> None:
    """Mapping identity over a program must leave its outcome unchanged."""
    assert outcome(program.map(lambda x: x)) == outcome(program)


@given(program=programs, f=pure_functions, g=pure_functions)
def test_map_composition(
    program: IO[int], f: Callable[[int], int], g: Callable[[int], int]
) -> None:
    """Mapping f then g must equal mapping their composition."""
    assert outcome(program.map(f).map(g)) == outcome(program.map(lambda x: g(f(x))))


# --- Laziness ---------------------------------------------------------------------------------


def test_building_a_program_runs_no_effect() -> None:
    effects: list[str] = []
    IO.delay(lambda: effects.append("charged")).map(lambda _: 1).flat_map(IO.of).recover(
        lambda _: IO.of(0)
    ).then(IO.delay(lambda: effects.append("logged")))
    assert effects == []


def test_running_a_program_twice_runs_its_effect_twice() -> None:
    effects: list[str] = []
    program = IO.delay(lambda: effects.append("charged"))
    program.unsafe_run()
    program.unsafe_run()
    assert effects == ["charged", "charged"]


def test_traverse_calls_nothing_until_the_program_runs() -> None:
    calls: list[int] = []

    def record(item: int) -> IO[int]:
        calls.append(item)
        return IO.of(item)

    program = IO.traverse([1, 2, 3], record)
    assert calls == []
    program.unsafe_run()
    assert calls == [1, 2, 3]


def test_then_runs_both_effects_in_order_and_keeps_the_second_result() -> None:
    effects: list[str] = []
    program = IO.delay(lambda: effects.append("first") or 1).then(
        IO.delay(lambda: effects.append("second") or 2)
    )
    assert program.unsafe_run() == 2
    assert effects == ["first", "second"]


# --- Errors -----------------------------------------------------------------------------------


def test_unsafe_run_raises_an_unrecovered_failure() -> None:
    with pytest.raises(ValueError, match="boom"):
        IO.fail(ValueError("boom")).unsafe_run()


def test_a_failure_skips_later_map_and_flat_map() -> None:
    effects: list[str] = []
    program = (
        IO.fail(ValueError("boom"))
        .map(lambda _: effects.append("map"))
        .flat_map(lambda _: IO.delay(lambda: effects.append("flat_map")))
    )
    with pytest.raises(ValueError):
        program.unsafe_run()
    assert effects == []


def test_recover_continues_with_the_handler_given_the_error() -> None:
    error = ValueError("boom")
    seen: list[Exception] = []

    def handler(raised: Exception) -> IO[str]:
        seen.append(raised)
        return IO.of("recovered")

    assert IO.fail(error).recover(handler).unsafe_run() == "recovered"
    assert seen == [error]


def test_recover_is_skipped_when_the_program_succeeds() -> None:
    handled: list[Exception] = []
    program = IO.of(7).recover(lambda e: IO.delay(lambda: handled.append(e) or 0))
    assert program.unsafe_run() == 7
    assert handled == []


def test_steps_after_a_recover_run_on_the_recovered_value() -> None:
    program = IO.fail(ValueError("boom")).recover(lambda _: IO.of(1)).map(lambda x: x + 1)
    assert program.unsafe_run() == 2


def test_a_failing_handler_propagates_to_an_outer_recover() -> None:
    inner_error = ValueError("first")
    handler_error = KeyError("handler failed")
    program = IO.fail(inner_error).recover(lambda _: IO.fail(handler_error)).recover(IO.of)
    assert program.unsafe_run() is handler_error


def test_a_handler_that_raises_propagates_to_an_outer_recover() -> None:
    def handler(_: Exception) -> IO[int]:
        raise KeyError("handler raised")

    program = IO.fail(ValueError("first")).recover(handler).recover(lambda e: IO.of(repr(e)))
    assert program.unsafe_run() == repr(KeyError("handler raised"))


def test_attempt_gives_ok_with_the_value_on_success() -> None:
    assert IO.of(5).attempt().unsafe_run() == Ok(5)


def test_attempt_gives_err_with_the_exception_on_failure() -> None:
    error = ValueError("boom")
    assert IO.fail(error).attempt().unsafe_run() == Err(error)


def test_an_exception_raised_inside_a_map_function_is_routed_to_recover() -> None:
    def explode(_: int) -> int:
        raise ZeroDivisionError("inside map")

    program = IO.of(1).map(explode).recover(lambda error: IO.of(type(error).__name__))
    assert program.unsafe_run() == "ZeroDivisionError"


def test_an_exception_raised_inside_a_flat_map_function_is_routed_to_recover() -> None:
    def explode(_: int) -> IO[int]:
        raise ZeroDivisionError("inside flat_map")

    program = IO.of(1).flat_map(explode).recover(lambda error: IO.of(str(error)))
    assert program.unsafe_run() == "inside flat_map"


def test_recover_does_not_catch_a_base_exception() -> None:
    handled: list[Exception] = []

    def crash() -> int:
        raise Crash

    program = IO.delay(crash).recover(lambda e: IO.delay(lambda: handled.append(e) or 0))
    with pytest.raises(Crash):
        program.unsafe_run()
    assert handled == []


def test_a_base_exception_raised_inside_map_is_not_caught_by_recover_or_attempt() -> None:
    def crash(_: int) -> int:
        raise Crash

    with pytest.raises(Crash):
        IO.of(1).map(crash).recover(lambda _: IO.of(0)).attempt().unsafe_run()


# --- Stack safety -----------------------------------------------------------------------------


def test_a_chain_of_100_000_flat_maps_runs_without_recursion_error() -> None:
    program: IO[int] = IO.of(0)
    for _ in range(100_000):
        program = program.flat_map(lambda x: IO.of(x + 1))
    assert program.unsafe_run() == 100_000


def test_a_recursive_loop_of_100_000_flat_maps_runs_without_recursion_error() -> None:
    """A loop written as a function returning the next step's IO stays within the stack."""

    def count_down(n: int) -> IO[int]:
        return IO.of(n) if n == 0 else IO.delay(lambda: n - 1).flat_map(count_down)

    assert count_down(100_000).unsafe_run() == 0


def test_a_chain_of_100_000_failing_recovers_runs_without_recursion_error() -> None:
    """A failure passes through 100_000 handlers that each fail again, then one recovers."""

    def fail_again(error: Exception) -> IO[int]:
        handled_so_far = error.args[0] if isinstance(error, RuntimeError) else 0
        return IO.fail(RuntimeError(handled_so_far + 1))

    program: IO[int] = IO.fail(ValueError("boom"))
    for _ in range(100_000):
        program = program.recover(fail_again)
    program = program.recover(lambda error: IO.of(error.args[0]))
    assert program.unsafe_run() == 100_000


def test_recovers_nested_100_000_deep_inside_handlers_run_without_recursion_error() -> None:
    """Each handler returns a new failing IO with its own recover, 100_000 levels deep."""

    def retry(attempts_left: int) -> IO[int]:
        if attempts_left == 0:
            return IO.of(0)
        return IO.fail(RuntimeError(attempts_left)).recover(lambda _: retry(attempts_left - 1))

    assert retry(100_000).unsafe_run() == 0


def test_a_success_passes_100_000_unused_recovers_without_recursion_error() -> None:
    program: IO[int] = IO.of(1)
    for _ in range(100_000):
        program = program.recover(lambda _: IO.of(0))
    assert program.unsafe_run() == 1


# --- traverse ---------------------------------------------------------------------------------


@given(items=st.lists(ints, max_size=50))
def test_traverse_preserves_the_order_of_results_and_effects(items: list[int]) -> None:
    effects: list[int] = []

    def step(item: int) -> IO[int]:
        return IO.delay(lambda: effects.append(item) or item * 2)

    assert IO.traverse(items, step).unsafe_run() == [item * 2 for item in items]
    assert effects == items


def test_traverse_stops_at_the_first_failure() -> None:
    effects: list[int] = []

    def step(item: int) -> IO[int]:
        if item == 2:
            return IO.fail(ValueError(item))
        return IO.delay(lambda: effects.append(item) or item)

    with pytest.raises(ValueError):
        IO.traverse([1, 2, 3], step).unsafe_run()
    assert effects == [1]


def test_a_handlers_own_error_reaches_the_next_handler_unchained() -> None:
    """A handler that raises hands its own error on (to the next handler out, or the caller),
    not chained to the error it was given: each handler sees one error, as raised."""
    second = ValueError("second")

    def fails(_: Exception) -> IO[int]:
        raise second

    seen: list[Exception] = []

    def outer(error: Exception) -> IO[int]:
        seen.append(error)
        return IO.of(7)

    assert IO.fail(KeyError("first")).recover(fails).recover(outer).unsafe_run() == 7
    assert seen == [second]
    with pytest.raises(ValueError) as caught:
        IO.fail(KeyError("first")).recover(fails).unsafe_run()
    assert caught.value is second
    assert caught.value.__context__ is None
