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
        return _Map(self, f)

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


# The nodes of a program. Plain slotted classes rather than frozen dataclasses: a payment builds
# dozens of them, and a frozen dataclass's __init__ costs three times as much. Nothing assigns
# to a node after its __init__; the interpreter only reads them.


class _Pure(IO[T]):
    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value


class _Suspend(IO[T]):
    __slots__ = ("thunk",)

    def __init__(self, thunk: Callable[[], T]) -> None:
        self.thunk = thunk


class _FlatMap(IO[U], Generic[T, U]):
    __slots__ = ("f", "source")

    def __init__(self, source: IO[T], f: Callable[[T], IO[U]]) -> None:
        self.source = source
        self.f = f


class _Map(IO[U], Generic[T, U]):
    __slots__ = ("f", "source")

    def __init__(self, source: IO[T], f: Callable[[T], U]) -> None:
        self.source = source
        self.f = f


class _Recover(IO[T]):
    __slots__ = ("handler", "source")

    def __init__(self, source: IO[T], handler: Callable[[Exception], IO[T]]) -> None:
        self.source = source
        self.handler = handler


# The kinds of frame on the interpreter's stack.
_BIND, _MAP, _HANDLE = 0, 1, 2
Frame = tuple[int, Callable[[Any], Any]]


def _interpret(program: IO[Any]) -> Any:
    """Run a program with an explicit stack of frames: continuations (bind, map) and handlers.

    A value pops frames until a continuation (handlers it passes do not apply to it); a map
    frame is applied at once, a bind frame gives the next program to run. An exception pops
    frames until a handler; anything a continuation or handler raises is routed the same way.
    """
    stack: list[Frame] = []
    current: IO[Any] = program
    while True:
        kind = type(current)
        if kind is _FlatMap:
            stack.append((_BIND, current.f))  # type: ignore[attr-defined]
            current = current.source  # type: ignore[attr-defined]
            continue
        if kind is _Map:
            stack.append((_MAP, current.f))  # type: ignore[attr-defined]
            current = current.source  # type: ignore[attr-defined]
            continue
        if kind is _Recover:
            stack.append((_HANDLE, current.handler))  # type: ignore[attr-defined]
            current = current.source  # type: ignore[attr-defined]
            continue
        try:
            value = current.value if kind is _Pure else current.thunk()  # type: ignore[attr-defined]
            while stack:
                frame, f = stack.pop()
                if frame is _MAP:
                    value = f(value)
                elif frame is _BIND:
                    current = f(value)
                    break
            else:
                return value
            continue
        except Exception as raised:
            error = raised
        # Outside the except block: a handler's own error is not chained to this one.
        current = _handle(stack, error)


def _handle(stack: list[Frame], error: Exception) -> IO[Any]:
    """Pop frames to the nearest handler and return what it makes of `error`; re-raise the
    error when no handler is left. A handler that raises passes its error on to the next."""
    while True:
        while stack:
            frame, handler = stack.pop()
            if frame is _HANDLE:
                break
        else:
            raise error
        try:
            return cast(IO[Any], handler(error))
        except Exception as again:
            error = again
