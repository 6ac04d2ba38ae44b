"""Pictures and widgets for the notebooks, drawn from the engine's own tables and records."""

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
