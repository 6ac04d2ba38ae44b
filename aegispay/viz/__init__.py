"""Pictures and widgets for the notebooks, drawn from the engine's own tables and records."""

from aegispay.viz.diagrams import breaker_diagram, event_table, state_machine_diagram
from aegispay.viz.rendering import Rendered, SystemDot, WasiGraphviz, render_svg

__all__ = [
    "Rendered",
    "SystemDot",
    "WasiGraphviz",
    "breaker_diagram",
    "event_table",
    "render_svg",
    "state_machine_diagram",
]
