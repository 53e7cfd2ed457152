"""``talix:{app}:view:{name}``: a named, restartable actor keeping one view up to date."""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

import ray

from ...engine.app import App
from ...views.host import app_folds
from ...views.location import ViewLocation
from ...views.runner import ViewRunner
from .client import observe_as
from .spec import AppSpec


@ray.remote(num_cpus=0)
class ViewActor:
    """Runs one :class:`~talix_ray.views.ViewRunner`; Delta Lake work stays in this process.
    After a restart it resumes from the offsets in its table (nothing lost, nothing doubled)."""

    def __init__(self, spec: AppSpec, view: str, options: dict[str, Any]) -> None:
        observe_as(spec.app)
        app = App.build(spec.load_services())
        fold = next(f for f in app_folds(app) if f.name == view)
        self.journal = spec.journal([])
        location = ViewLocation.of_store(self.journal.store)
        assert location is not None, "the RayRuntime's store is always file:// or s3://"
        self.runner = ViewRunner(fold, self.journal, location,
                                 **{"poll_interval": spec.poll_interval, **options})
        self._task: asyncio.Task[None] | None = None
        with contextlib.suppress(RuntimeError):  # after a restart nobody calls start()
            asyncio.get_running_loop().call_soon(self._ensure_started)

    def _ensure_started(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        await self.journal.open()
        await self.runner.run()

    async def start(self) -> bool:
        """Start following the log (idempotent)."""
        self._ensure_started()
        return True

    async def hint(self, partition: int, seq: int) -> None:
        """A shard says a segment landed (no need to wait for the next poll)."""
        self.journal.hint(partition, seq)

    async def status(self) -> dict[str, Any]:
        """The runner's status, offsets and lag (segments)."""
        self._ensure_started()
        return {**await self.runner.stats(), "pid": os.getpid()}

    async def stop(self) -> None:
        """Stop after the commit in progress."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        self.runner.close()
        await self.journal.close()
