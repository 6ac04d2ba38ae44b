"""Pictures and widgets for the notebooks, drawn from the engine's own tables and records."""

from aegispay.viz.diagrams import breaker_diagram, event_table, state_machine_diagram

__all__ = ["breaker_diagram", "event_table", "state_machine_diagram"]
