"""Event-triggered actions as Ray tasks."""

from __future__ import annotations

import asyncio
from typing import Any

import ray

from ...model.events import StoredEvent
from .actors import app_client

_runner: asyncio.Runner | None = None


@ray.remote(max_retries=0)
def run_action(spec: Any, action_name: str, record: StoredEvent, attempt: int,
               fresh: bool = False) -> None:
    """Run one action for one log record in this worker, against the application's actors."""
    global _runner
    if _runner is None:
        _runner = asyncio.Runner()
    client = app_client(spec)
    action = client._require_started().action(action_name)
    _runner.run(client.execute_triggered(action, record, attempt, fresh))
