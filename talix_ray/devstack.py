"""The embedded demo: the example services on one machine, fed with sample documents."""

from __future__ import annotations

import asyncio
import os
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .s3server import EmbeddedS3
from .settings import Settings


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def serve_folder(folder: Path) -> tuple[ThreadingHTTPServer, str]:
    """Serve ``folder`` over HTTP on a free loopback port (the demo's 'internet')."""
    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 partial(_QuietHandler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def dev_settings(store: str, data: Path, console: Console) -> tuple[Settings, Any]:
    """Settings for ``store``: ``embedded`` starts SeaweedFS with its data in ``data``."""
    server = None
    if store == "embedded":
        server = EmbeddedS3(data / "s3", bucket="talix").start()
        settings = server.settings("s3://talix/dev", data_dir=data)
        console.print(f"embedded S3 (SeaweedFS) on {server.endpoint}, data in {data / 's3'}, "
                      f"keys in {server.data_dir / 'credentials.json'}")
    else:
        settings = Settings(store=store, data_dir=data)
    return settings, server


async def run_demo(samples: str, console: Console, store: str = "embedded",
                   data: str = ".talix", ray: bool = False) -> int:
    """Upload every sample document, let the analysis run, print documents and expenses."""
    from services import documents, expenses
    from services.app import build_runtime
    from services.documents.actions import upload_document_from_url

    folder = Path(samples)
    files = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
    if not files:
        console.print(f"[red]no sample documents in {folder}[/red]")
        return 2
    server, base = serve_folder(folder)
    s3 = None
    try:
        settings, s3 = dev_settings(store, Path(data), console)
        if ray:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            console.print("starting a local Ray instance on 127.0.0.1 with token "
                          f"authentication (token in {Path(data) / 'ray'}; aggregates in "
                          "shard actors, actions as Ray tasks)")
        # the samples are served on loopback, which the downloader refuses by default: allow
        # exactly that address
        runtime = build_runtime(settings, ray=ray, download_allow=["127.0.0.1/32"])
        async with runtime:
            ids = {}
            for f in files:
                out = await runtime.call(upload_document_from_url, {"url": f"{base}/{f.name}"})
                ids[f.name] = out.document_id
                console.print(f"uploaded [bold]{f.name}[/bold] → document {out.document_id}")
            await runtime.settle(60)
            table = Table("file", "status", "expense?", "vendor", "date", "amount",
                          title="documents and the expenses found in them")
            for name, doc_id in ids.items():
                doc = await runtime.load_state(documents.documents, doc_id)
                exp = await runtime.load_state(expenses.expenses, doc_id)
                table.add_row(name, doc.status, "yes" if doc.is_expense else "no",
                              exp.vendor if exp else "", str(exp.date) if exp else "",
                              f"{exp.amount} {exp.currency}" if exp else "")
            console.print(table)
            await runtime.views.catch_up("expenses", timeout=60)
            totals = runtime.views.open("expenses").sql(
                "select coalesce(vendor, '?') as vendor, currency, sum(amount) as total, "
                "count(*) as n from expenses group by all order by total desc").fetchall()
            view_table = Table("vendor", "total", "expenses",
                               title="the expenses view (Delta Lake, DuckDB)")
            for vendor, currency, total, n in totals:
                view_table.add_row(vendor, f"{total} {currency}", str(n))
            console.print(view_table)
            page = await runtime.list_aggregate_ids(documents.documents, limit=10_000)
            console.print(f"{len(page.ids)} document(s) in the store {runtime.journal_url}")
            dead = await runtime.deadletters()
            if dead:
                console.print(f"[red]{len(dead)} dead letter(s)[/red]")
                return 1
    finally:
        server.shutdown()
        if s3 is not None:
            s3.stop()
    await asyncio.sleep(0)
    return 0
