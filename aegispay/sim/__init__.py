"""The harness around the engine: faults, crash points, restarts, crash enumeration, chaos, audits.

It imports the engine; the engine never imports it.
"""

from aegispay.sim.chaos import run_chaos
from aegispay.sim.crashpoints import BOUNDARIES, ProcessCrash
from aegispay.sim.enumeration import enumerate_crashes
from aegispay.sim.faults import FAULT_KINDS, FailureConfig, FaultyGateway, ScheduledFault
from aegispay.sim.harness import AegisPay
from aegispay.sim.invariants import InvariantReport, check_invariants, event_log_digest
from aegispay.sim.workload import run_workload

__all__ = [
    "BOUNDARIES",
    "FAULT_KINDS",
    "AegisPay",
    "FailureConfig",
    "FaultyGateway",
    "InvariantReport",
    "ProcessCrash",
    "ScheduledFault",
    "check_invariants",
    "enumerate_crashes",
    "event_log_digest",
    "run_chaos",
    "run_workload",
]
