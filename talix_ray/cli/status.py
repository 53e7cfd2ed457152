"""`talix status`: where every partition, consumer and view of a store stands."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import typer

from .common import STORE_OPTION, _guard, _settings, app, console

if TYPE_CHECKING:
    from rich.console import Group

    from ..status import StoreStatus


def _tables(status: StoreStatus) -> Group:
    """The status as rich tables (partitions, then consumers and views)."""
    from rich.console import Group
    from rich.table import Table

    parts = Table("partition", "head", "writer epoch", "watermark", "unindexed",
                  title=f"{len(status.partitions)} partition(s)")
    for p in status.partitions:
        parts.add_row(str(p.partition), str(p.head), str(p.writer_epoch), str(p.watermark),
                      str(p.unindexed))
    total = sum(status.deadletters.values())
    consumers = Table("consumer", "kind", "lag (segments)", "lag (seconds)", "dead letters",
                      title=f"{len(status.consumers)} consumer(s) and view(s), "
                            f"{total} dead letter(s)")
    for c in status.consumers:
        consumers.add_row(c.name, c.kind, str(c.lag_segments), f"{c.lag_seconds:.1f}",
                          str(status.deadletters.get(c.name, 0)) if c.kind == "consumer"
                          else "-")
    for name, n in sorted(status.deadletters.items()):
        if not any(c.name == name for c in status.consumers):
            consumers.add_row(name, "consumer", "-", "-", str(n))
    when = status.checked_at.isoformat(timespec="seconds")
    return Group(f"{status.store} at {when}", parts, consumers)


@app.command("status")
def status_cmd(
    store: str = STORE_OPTION,
    json_out: bool = typer.Option(False, "--json", help="print the status as JSON"),
    watch: bool = typer.Option(False, "--watch", help="refresh until Ctrl-C"),
    interval: float = typer.Option(2.0, "--interval", min=0.2, max=3600,
                                   help="seconds between refreshes with --watch"),
) -> None:
    """Per partition: head seq, writer epoch, index watermark and unindexed tail; per
    consumer and view: lag in segments and seconds; dead letters."""
    from ..status import store_status

    settings = _guard(lambda: _settings(store))

    def read() -> StoreStatus:
        return _guard(lambda: asyncio.run(store_status(settings)))

    if json_out and not watch:
        print(read().model_dump_json())
        return
    if not watch:
        console.print(_tables(read()))
        return
    from rich.live import Live

    try:
        with Live(_tables(read()), console=console, auto_refresh=False) as live:
            while True:
                time.sleep(interval)
                if json_out:
                    print(read().model_dump_json(), flush=True)
                else:
                    live.update(_tables(read()), refresh=True)
    except KeyboardInterrupt:
        pass
