"""``talix:{app}:dispatcher``: the actor consuming the log of a RayRuntime's application."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import ray

from ...engine.dispatcher import Dispatcher
from ...model.events import StoredEvent
from .actors import app_client
from .errors import unwrap
from .executors import ExecutorPool
from .spec import AppSpec
from .tasks import run_action


@ray.remote(num_cpus=0)
class DispatcherActor:
    """``talix:{app}:dispatcher``: consumes the log and runs triggered actions as Ray tasks
    (with each action's resources); also fires the ``every`` timers."""

    def __init__(self, spec: AppSpec, timers: bool) -> None:
        self.spec = spec
        self.client = app_client(spec)
        self.journal = spec.journal([])
        self._timers = timers
        self.dispatcher: Dispatcher | None = None
        self.executors: Any = None
        self._spec_ref: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._starting = asyncio.Lock()
        with contextlib.suppress(RuntimeError):  # after a restart nobody calls start()
            self._tasks.append(asyncio.get_running_loop().create_task(self._autostart()))

    async def _autostart(self) -> None:
        await asyncio.sleep(0.5)
        with contextlib.suppress(Exception):
            await self.start()

    async def start(self) -> bool:
        """Load checkpoints and start consuming (idempotent, also after a restart)."""
        async with self._starting:
            if self.dispatcher is None:
                await self._start()
        return True

    async def _start(self) -> None:
        await self.journal.open()
        self._spec_ref = ray.put(self.spec)
        app = self.client._require_started()
        self.executors = ExecutorPool(self.spec, self.spec.long_lived_options())
        self.dispatcher = Dispatcher(self.journal, app.route, self._execute,
                                     max_concurrency=self.spec.max_concurrency,
                                     poll_interval=self.spec.poll_interval)
        await self.dispatcher.start()
        if self._timers:
            for action in app.timer_actions.values():
                self._tasks.append(asyncio.ensure_future(self.client.timer_loop(action)))

    async def _execute(self, action: Any, record: StoredEvent, attempt: int,
                       fresh: bool = False) -> None:
        """Light actions on the executors, the others as Ray tasks with their resources."""
        res = action.resources
        if res.light:
            await self.executors.run(action.name, record, attempt, fresh)
            return
        try:
            await run_action.options(**res.task_options(), max_retries=0).remote(
                self._spec_ref, action.name, record, attempt, fresh)
        except Exception as exc:
            raise unwrap(exc) from None

    async def hint(self, partition: int, seq: int) -> None:
        """A shard says a segment landed."""
        await self.start()
        self.journal.hint(partition, seq)

    async def settle(self, timeout: float) -> None:
        """Wait until every segment written so far has been processed."""
        await self.start()
        assert self.dispatcher is not None
        await self.dispatcher.settle(timeout)

    async def stats(self) -> dict[str, Any]:
        """Progress counters."""
        await self.start()
        assert self.dispatcher is not None
        return {"processed": self.dispatcher.processed,
                "deadlettered": self.dispatcher.deadlettered,
                "lag": await self.dispatcher.lag()}

    async def stop(self) -> None:
        """Stop consuming and save checkpoints."""
        for t in self._tasks:
            t.cancel()
        if self.dispatcher is not None:
            await self.dispatcher.stop()
            self.executors.stop()


__all__ = ["DispatcherActor"]
