"""Queues of created payments for workers to take, and the log of which worker did what."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class WorkRecord:
    """One payment a worker moved on: by processing it, or by settling it in a janitor run."""

    payment_id: str
    worker: str
    action: str
    state: str
    at: datetime
