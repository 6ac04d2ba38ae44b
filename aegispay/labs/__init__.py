"""Labs: break it, fix it. Attack the engine with its defenses switched off, or your own code.

`attack(without=("fence",))` runs the whole attack on the engine with the named defenses
switched off and answers with a `Verdict`: it holds, or here is the shortest schedule that
broke a promise, step by step, drawn as lanes. `check("recovery", decide)` does the same to a
learner's solution for one lab; each lab's module docstring is its assignment.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from aegispay.domain.errors import InvalidRequest
from aegispay.labs import breaker, create_once, lock, recovery, retry
from aegispay.labs.defenses import DEFENSES, Defense
from aegispay.labs.runner import World, search
from aegispay.labs.verdict import Step, Verdict

# Each lab's grader: the learner's solution in, a verdict out.
LABS: dict[str, Callable[..., Verdict]] = {
    "recovery": recovery.check,
    "create_once": create_once.check,
    "retry": retry.check,
    "breaker": breaker.check,
    "lock": lock.check,
}
# The name each lab's solution goes by in a learner's file (`aegispay attack --solution`).
SOLUTION_NAMES: dict[str, str] = {
    "recovery": "decide", "create_once": "create", "retry": "retry", "breaker": "step",
    "lock": "Locks",
}  # fmt: skip
# Schedules of at most this many moves are tried exhaustively; `depth=3` is the deeper attack.
DEPTH = 2


def attack(without: Iterable[str] | str = (), seed: int = 0, depth: int = DEPTH) -> Verdict:
    """Attack the engine with the named defenses switched off (none: the whole engine)."""
    names = _names(without)
    world = World()
    for name in names:
        world = DEFENSES[name].off(world)
    subject = f"without {', '.join(names)}" if names else "every defense on"
    return search(world, subject, seed=_seed(seed), depth=_depth(depth))


def check(lab: str, solution: Any, seed: int = 0, depth: int = DEPTH) -> Verdict:
    """Attack a learner's solution to one lab (see `LABS` and each lab's docstring)."""
    if lab not in LABS:
        raise InvalidRequest("lab", f"must be one of {', '.join(LABS)}", lab)
    if not callable(solution):
        raise InvalidRequest("solution", f"must be a function or class (see aegispay.labs.{lab})")
    return LABS[lab](solution, seed=_seed(seed), depth=_depth(depth))


def solution_from_file(lab: str, path: str) -> Any:
    """The solution a learner's Python file defines for a lab, by the name the lab gives it."""
    if lab not in LABS:
        raise InvalidRequest("lab", f"must be one of {', '.join(LABS)}", lab)
    file = Path(path)
    if not file.is_file():
        raise InvalidRequest("solution", "must be a Python file that exists", path)
    spec = importlib.util.spec_from_file_location(f"aegispay_lab_solution_{lab}", file)
    assert spec is not None and spec.loader is not None, "a .py file always has a loader"
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # the learner's file: whatever it raises is reported in a line
        raise InvalidRequest(
            "solution", f"{path} did not load: {type(error).__name__}: {error}"
        ) from None
    name = SOLUTION_NAMES[lab]
    if not hasattr(module, name):
        raise InvalidRequest("solution", f"{path} must define `{name}` for the {lab} lab")
    return getattr(module, name)


def _names(without: Iterable[str] | str) -> tuple[str, ...]:
    chosen = (without,) if isinstance(without, str) else tuple(without)
    for name in chosen:
        if name not in DEFENSES:
            raise InvalidRequest("without", f"must name defenses among {', '.join(DEFENSES)}", name)
    return tuple(dict.fromkeys(chosen))


def _seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidRequest("seed", "must be an integer", seed)
    return seed


def _depth(depth: object) -> int:
    if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= 4:
        raise InvalidRequest("depth", "must be a whole number from 1 to 4", depth)
    return depth


__all__ = [
    "DEFENSES",
    "DEPTH",
    "LABS",
    "SOLUTION_NAMES",
    "Defense",
    "Step",
    "Verdict",
    "attack",
    "check",
    "solution_from_file",
]
