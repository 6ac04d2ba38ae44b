"""Queues of created payments for workers to take, and the log of which worker did what.

A claim is a lease: committed at once with an expiry, renewed while its worker works, and
free for any other worker once it expires (a worker that died or stalled holds nothing for
longer than its lease). Each claim carries a token of its own, so a worker woken after its
lease passed to another can tell that the work is no longer its to finish or to log.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class WorkRecord:
    """One payment a worker moved on: by processing it, or by settling it in a janitor run."""

    payment_id: str
    worker: str
    action: str
    state: str
    at: datetime


@dataclass(frozen=True)
class Claim:
    """Payments one worker took for a lease, and the token that proves the lease is theirs."""

    worker: str
    ids: tuple[str, ...]
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
