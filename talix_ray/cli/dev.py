"""`talix dev`, `talix demo` and `talix s3`: the embedded stack on this machine."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import _guard, app, console


@app.command()
def dev(
    once: bool = typer.Option(False, "--once", help="exit when the receipts are analyzed and "
                              "in the expenses view (for tests and CI)"),
    count: int = typer.Option(12, min=0, max=10_000, help="generated receipts to upload"),
    seed: int = typer.Option(None, help="the receipts' seed (default: a new one each run)"),
    port: int = typer.Option(8000, help="HTTP port on 127.0.0.1"),
    data: Path = typer.Option(Path(".talix"), help="data directory (S3 data, Ray token, "
                              "API key): kept between runs"),
    app_ref: str = typer.Option("services.app:build_ray_runtime", "--app",
                                help="module:function making the runtime in each replica"),
    timeout: float = typer.Option(600, min=1, help="with --once: most seconds to wait"),
) -> None:
    """Run the example end to end on this machine: S3, Ray, the HTTP API on Ray Serve, and
    generated receipts uploaded through it and read by OCR. Ctrl-C stops everything."""
    import random
    import signal

    from ..dev import ApiClient, DevStack
    from ..dev.feed import FileServer, receipts
    from ..dev.watch import follow

    def _term(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    stack = DevStack(data=data, port=port, factory=app_ref, console=console)
    code = 0
    try:
        _guard(stack.start)
        console.print(f"\nThe API is on [bold]{stack.url}[/bold] (OpenAPI docs: "
                      f"{stack.url}/docs). Development API key (all scopes; kept in "
                      f"{stack.data / 'dev-api-key'}):")
        print(stack.key, flush=True)
        with ApiClient(stack.url, stack.key) as api, \
                FileServer(stack.data / "receipts") as files:
            _guard(lambda: api.wait_ready(180))
            seed = random.randrange(1 << 30) if seed is None else seed
            uploaded = {}
            for doc in receipts(count, seed):
                url = files.add(doc.name, doc.content)
                uploaded[doc.name] = _guard(lambda url=url: api.upload_url(url))
            if uploaded:
                console.print(f"uploaded {len(uploaded)} generated receipt(s) (seed {seed}) "
                              "from a file server on loopback: POST /documents/upload-from-url")
                sample = files.folder / next(iter(uploaded))
                console.print("upload one yourself:\n"
                              f'  curl -H "X-API-Key: $(cat {data}/dev-api-key)" '
                              f"-F file=@{sample} {stack.url}/documents", soft_wrap=True,
                              markup=False, highlight=False)
            done = _guard(lambda: follow(api, uploaded, console,
                                         timeout=timeout if once else None))
            console.print()
            if once:
                code = 0 if done else 1
                if not done:
                    console.print(f"[red]not every document was analyzed in {timeout:.0f} s"
                                  "[/red]")
            else:
                console.print(f"serving on {stack.url}; Ctrl-C stops")
                signal.pause()
    except KeyboardInterrupt:
        console.print("stopping …")
    finally:
        stack.stop()
    raise typer.Exit(code)


@app.command()
def demo(
    count: int = typer.Option(8, min=1, max=10_000, help="generated receipts to upload"),
    seed: int = typer.Option(None, help="the receipts' seed (default: a new one each run)"),
    url: str = typer.Option("http://127.0.0.1:8000", help="the running API"),
    key_file: Path = typer.Option(Path(".talix/dev-api-key"), help="file holding the API "
                                  "key (default: the one `talix dev` made)"),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="follow the analyses until the "
                              "expenses view shows them"),
    timeout: float = typer.Option(600, min=1, help="with --wait: most seconds to wait"),
    json_out: bool = typer.Option(False, "--json", help="print {file name: document id} "
                                  "as JSON"),
) -> None:
    """Upload generated receipts to a running stack (``POST /documents``, multipart)."""
    import json
    import random

    from rich.progress import BarColumn, MofNCompleteColumn, Progress

    from ..dev import ApiClient
    from ..dev.feed import receipts
    from ..dev.keys import read_key

    key = _guard(lambda: read_key(key_file))
    seed = random.randrange(1 << 30) if seed is None else seed
    uploaded: dict[str, str] = {}
    with _guard(lambda: ApiClient(url, key)) as api:
        with Progress("[progress.description]{task.description}", BarColumn(),
                      MofNCompleteColumn(), console=console, disable=json_out) as bar:
            task = bar.add_task(f"uploading receipts (seed {seed})", total=count)
            for doc in receipts(count, seed):
                uploaded[doc.name] = _guard(lambda doc=doc: api.upload_file(
                    doc.name, doc.content, doc.content_type))
                bar.advance(task)
        done = True
        if wait and not json_out:
            from ..dev.watch import follow

            done = _guard(lambda: follow(api, uploaded, console, timeout=timeout))
    if json_out:
        print(json.dumps(uploaded))
    raise typer.Exit(0 if done else 1)


@app.command("s3")
def s3(
    data: str = typer.Option(".talix/s3", help="data directory"),
    port: int = typer.Option(8333, help="S3 port on 127.0.0.1"),
    bucket: str = typer.Option("talix", help="bucket to create"),
) -> None:
    """Run the embedded S3 server (SeaweedFS) alone, until Ctrl-C."""
    import signal
    import time

    from ..s3server import EmbeddedS3

    server = EmbeddedS3(data, bucket=bucket, port=port).start()
    console.print(f"S3 on [bold]{server.endpoint}[/bold], bucket [bold]{bucket}[/bold], "
                  f"data in {server.data_dir}; its keys are in "
                  f"{server.data_dir / 'credentials.json'} (mode 0600):")
    env = server.environment(f"s3://{bucket}/app")
    console.print("  " + " ".join(f"{k}={v}" for k, v in env.items()), soft_wrap=True,
                  markup=False, highlight=False)
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stop and server.process is not None and server.process.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


