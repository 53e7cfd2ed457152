"""A view runner in its own process, for the kill tests: ``python -m tests.view_crash ROOT
[POINT N]`` folds every view of the bank up to the log's head; with POINT and N it dies
(``os._exit(137)``, like a SIGKILL) the N-th time any runner passes POINT."""

from __future__ import annotations

import asyncio
import os
import sys

from talix_ray.journal import ObjectStoreJournal
from talix_ray.objectstore import LocalObjectStore
from talix_ray.views import EventsFold, ProjectionFold, ViewLocation, ViewRunner

from . import views_domain as bank


async def main(root: str, point: str | None, nth: int) -> None:
    passed = 0

    def fault(name: str) -> None:
        nonlocal passed
        if name == point:
            passed += 1
            if passed == nth:
                sys.stdout.flush()
                os._exit(137)

    journal = ObjectStoreJournal(LocalObjectStore(root), owned=[])
    await journal.open()
    location = ViewLocation.of_store(journal.store)
    assert location is not None
    folds = [EventsFold(), ProjectionFold(bank.balances, bank.accounts.decode),
             ProjectionFold(bank.deposits, bank.accounts.decode),
             ProjectionFold(bank.owners, bank.accounts.decode)]
    print("folding", flush=True)
    for fold in folds:
        runner = ViewRunner(fold, journal, location, batch_events=10, linger=0,
                            fault=fault)
        await runner.catch_up(timeout=120)
        runner.close()
    print("caught up", flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(main(args[0], args[1] if len(args) > 1 else None,
                     int(args[2]) if len(args) > 2 else 0))
