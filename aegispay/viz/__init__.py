"""Pictures and widgets for the notebooks, drawn from the engine's own tables and records.

Each name is imported on first use, so that a process which only draws a verdict's picture
(the labs, and with them the CLI and every worker) does not pay for ipywidgets and IPython at
start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aegispay.viz.diagrams import (
        LeaseWindow,
        breaker_diagram,
        event_table,
        event_timeline,
        lease_diagram,
        state_machine_diagram,
    )
    from aegispay.viz.explorer import PaymentExplorer
    from aegispay.viz.ledgers import LedgerRow, compare_ledgers, ledger_rows, ledgers_table
    from aegispay.viz.rendering import Rendered, SystemDot, WasiGraphviz, render_svg
    from aegispay.viz.widgets import CrashLab, FaultPanel, LeaseLab

# Each public name and the module that defines it.
_HOMES = {
    **dict.fromkeys(
        ["LeaseWindow", "breaker_diagram", "event_table", "event_timeline", "lease_diagram",
         "state_machine_diagram"],
        "diagrams",
    ),
    "PaymentExplorer": "explorer",
    **dict.fromkeys(["LedgerRow", "compare_ledgers", "ledger_rows", "ledgers_table"], "ledgers"),
    **dict.fromkeys(["Rendered", "SystemDot", "WasiGraphviz", "render_svg"], "rendering"),
    **dict.fromkeys(["CrashLab", "FaultPanel", "LeaseLab"], "widgets"),
}  # fmt: skip

__all__ = [
    "CrashLab",
    "FaultPanel",
    "LeaseLab",
    "LeaseWindow",
    "LedgerRow",
    "PaymentExplorer",
    "Rendered",
    "SystemDot",
    "WasiGraphviz",
    "breaker_diagram",
    "compare_ledgers",
    "event_table",
    "event_timeline",
    "lease_diagram",
    "ledger_rows",
    "ledgers_table",
    "render_svg",
    "state_machine_diagram",
]


if not TYPE_CHECKING:
    # Hidden from type checkers, which see the imports above: a misspelt name stays an error.

    def __getattr__(name: str) -> Any:
        """Import a public name's module on first use (PEP 562)."""
        home = _HOMES.get(name)
        if home is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
