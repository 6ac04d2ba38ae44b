"""Simulation and proof: invariant checks (and, later, fault injection, crash points, chaos)."""
