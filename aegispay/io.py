"""IO[T]: a lazy description of an effect, composed purely and run only by `unsafe_run`.

Building an IO does nothing. Workflows return IO values; the facade, the CLI, tests and
notebook cells call `unsafe_run` at the edge. The interpreter is a loop, not recursion, so a
long chain of `flat_map` (a retry loop, a replay of many events) cannot overflow the stack.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True)
class Ok(Generic[T]):
    """A successful outcome of `IO.attempt`."""

    value: T


@dataclass(frozen=True)
class Err:
    """A failed outcome of `IO.attempt`: the exception the effect raised."""

    error: Exception


Result = Ok[T] | Err


class IO(Generic[T]):
    """A lazy effect that yields a T when run."""

    __slots__ = ()

    @staticmethod
    def of(value: U) -> IO[U]:
        """Lift a plain value: running it yields the value and does nothing else."""
        return _Pure(value)

    @staticmethod
    def delay(thunk: Callable[[], U]) -> IO[U]:
        """Suspend a side effect: it runs each time the IO is run, never when it is built."""
        return _Suspend(thunk)

    @staticmethod
    def fail(error: Exception) -> IO[Any]:
        """An IO that raises `error` when run."""

        def raise_it() -> Any:
            # Drop the previous run's traceback: re-raising one object would grow it forever.
            raise error.with_traceback(None)

        return _Suspend(raise_it)

    @staticmethod
    def traverse(items: Iterable[U], f: Callable[[U], IO[T]]) -> IO[list[T]]:
        """Run `f` over items in order and collect the results."""
        program: IO[list[T]] = IO.of([])
        for item in items:
            program = program.flat_map(
                lambda acc, item=item: f(item).map(lambda value: [*acc, value])  # type: ignore[misc]
            )
        return program

    def map(self, f: Callable[[T], U]) -> IO[U]:
        """Transform the result with a pure function."""
        return _FlatMap(self, lambda value: _Pure(f(value)))

    def flat_map(self, f: Callable[[T], IO[U]]) -> IO[U]:
        """Sequence: run this, feed its result to `f`, run the IO that `f` returns."""
        return _FlatMap(self, f)

    def then(self, following: IO[U]) -> IO[U]:
        """Sequence, discarding this result."""
        return _FlatMap(self, lambda _: following)

    def recover(self, handler: Callable[[Exception], IO[T]]) -> IO[T]:
        """On an Exception, continue with `handler(error)`; BaseExceptions (crashes) pass."""
        return _Recover(self, handler)

    def attempt(self) -> IO[Result[T]]:
        """Turn failure into a value: Ok(result) or Err(exception)."""
        ok: IO[Result[T]] = self.map(Ok)
        return ok.recover(lambda error: _Pure(Err(error)))

    def unsafe_run(self) -> T:
        """Run the described effects now and return the result (raises what they raise)."""
        return cast(T, _interpret(self))


@dataclass(frozen=True, slots=True)
class _Pure(IO[T]):
    value: T


@dataclass(frozen=True, slots=True)
class _Suspend(IO[T]):
    thunk: Callable[[], T]


@dataclass(frozen=True, slots=True)
class _FlatMap(IO[U], Generic[T, U]):
    source: IO[T]
    f: Callable[[T], IO[U]]


@dataclass(frozen=True, slots=True)
class _Recover(IO[T]):
    source: IO[T]
    handler: Callable[[Exception], IO[T]]


def _interpret(program: IO[Any]) -> Any:
    """Run a program with an explicit stack of continuations ("k") and error handlers ("h")."""
    stack: list[tuple[str, Callable[[Any], IO[Any]]]] = []
    current: IO[Any] = program
    error: Exception | None = None
    while True:
        if error is not None:
            handler = _pop_until(stack, "h")
            if handler is None:
                raise error
            current, error = _call(handler, error)
        elif isinstance(current, _FlatMap):
            stack.append(("k", current.f))
            current = current.source
        elif isinstance(current, _Recover):
            stack.append(("h", current.handler))
            current = current.source
        else:
            try:
                value = current.value if isinstance(current, _Pure) else current.thunk()  # type: ignore[attr-defined]
            except Exception as raised:
                error = raised
                continue
            continuation = _pop_until(stack, "k")
            if continuation is None:
                return value
            current, error = _call(continuation, value)


def _pop_until(
    stack: list[tuple[str, Callable[[Any], IO[Any]]]], kind: str
) -> Callable[[Any], IO[Any]] | None:
    """Pop frames until one of `kind`; the skipped frames do not apply to this outcome."""
    while stack:
        frame_kind, f = stack.pop()
        if frame_kind == kind:
            return f
    return None


def _call(f: Callable[[Any], IO[Any]], arg: Any) -> tuple[IO[Any], Exception | None]:
    """Call a continuation or handler; an exception it raises becomes the failure to route."""
    try:
        return f(arg), None
    except Exception as raised:
        return _Pure(None), raised
