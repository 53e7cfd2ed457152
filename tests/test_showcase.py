"""The showcase end to end: generated receipts uploaded over HTTP to the example on Ray Serve,
read by real OCR in Ray tasks, expenses in the Delta view; the main job (`talix dev --once`)
and `talix demo` as a user runs them."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import socket
import subprocess
import uuid
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from services.demo import ExpensesApi, follow
from services.documents.receipts import generate, same_vendor
from talix_ray.dev.feed import FileServer

from .http_support import ADMIN_KEY, app_env, free_port, kill_app_actors
from .test_cli import talix as run_talix

ROOT = Path(__file__).parent.parent
SEED = 20261129  # a seed of its own: the OCR benchmark and the unit tests use others
QUIET = Console(file=io.StringIO())


@pytest.fixture(scope="module")
def showcase(serve_session, s3_server, tmp_path_factory):
    """The example (with a crash hook) on Serve; yields (client, env, crash folder)."""
    from ray import serve

    from talix_ray.serve import serve_deployment

    app = f"show{uuid.uuid4().hex[:6]}"
    crash = tmp_path_factory.mktemp("crash")
    env = {**app_env(s3_server, app), "TALIX_DOWNLOAD_ALLOW": '["127.0.0.1/32"]',
           "TALIX_TEST_CRASH_DIR": str(crash)}
    serve.run(serve_deployment("tests.showcase_app:build_ray_runtime", name="showcase",
                               runtime_env={"env_vars": env}),
              name=app, route_prefix=f"/{app}")
    try:
        with ExpensesApi(f"{serve_session}/{app}", ADMIN_KEY, timeout=120) as api:
            api.wait_ready(120)
            yield api, env, crash
    finally:
        serve.delete(app)
        kill_app_actors(app)


def test_expenses_match_the_generated_receipts(showcase, tmp_path, capsys):
    """Multipart uploads and uploads from a URL; each receipt's fields as generated, no
    expense for the documents that are not expenses, the view answering GET /expenses."""
    api, _, _ = showcase
    docs = list(generate(8, SEED))
    ids: dict[str, str] = {}
    with FileServer(tmp_path / "files") as files:
        for i, doc in enumerate(docs):
            ids[doc.name] = (api.upload_file(doc.name, doc.content, doc.content_type)
                             if i % 2 else api.upload_url(files.add(doc.name, doc.content)))
        assert follow(api, ids, QUIET, timeout=300)
    rows = {r["document_id"]: r for r in api.expenses(limit=1000)}
    right = wrong = 0
    for doc in docs:
        doc_id, truth = ids[doc.name], doc.truth
        state = api.document(doc_id)
        assert state["status"] == "ANALYZED" and state["is_expense"] == truth.is_expense
        if not truth.is_expense:
            assert api.expense(doc_id) is None and doc_id not in rows
            continue
        row, expense = rows[doc_id], api.expense(doc_id)
        assert expense is not None and row["expense_id"] == doc_id
        for ok in (same_vendor(row["vendor"], truth.vendor),
                   dt.date.fromisoformat(row["date"]) == truth.date,
                   Decimal(row["amount"]) == truth.total, row["currency"] == truth.currency):
            right, wrong = right + ok, wrong + (not ok)
        assert Decimal(row["amount"]) == truth.total  # the total is never wrong on these
    assert right / (right + wrong) >= 0.95, (right, wrong)
    # the filters are bound parameters: a vendor with a quote is a value, not SQL
    some = next(r for r in rows.values())
    assert [r["document_id"] for r in api.expenses(vendor=some["vendor"])] == \
        [some["document_id"]]
    assert api.expenses(vendor="x' or '1'='1") == []


def test_unreadable_files_end_in_a_failed_analysis(showcase):
    """A corrupt image and an unsupported type: DocumentAnalysisFailed with a reason, no
    expense, no dead letter, and the consumer goes on with the next document."""
    api, _, _ = showcase
    corrupt = api.upload_file("broken.png", b"\x89PNG\r\n\x1a\n" + os.urandom(2000),
                              "image/png")
    unsupported = api.upload_file("sheet.xlsx", b"PK\x03\x04" + os.urandom(500),
                                  "application/vnd.openxmlformats-officedocument"
                                  ".spreadsheetml.sheet")
    good = next(d for d in generate(4, SEED + 1) if d.truth.is_expense)
    after = api.upload_file(good.name, good.content, good.content_type)
    assert follow(api, {"corrupt": corrupt, "unsupported": unsupported, "after": after},
                  QUIET, timeout=300)
    failed = {k: api.document(v) for k, v in (("corrupt", corrupt),
                                               ("unsupported", unsupported))}
    assert failed["corrupt"]["status"] == "FAILED"
    assert failed["corrupt"]["failure_reason"] in {"corrupt", "unreadable"}
    assert failed["unsupported"]["failure_reason"] == "unsupported"
    assert api.expense(corrupt) is None and api.expense(unsupported) is None
    assert api.document(after)["status"] == "ANALYZED" and api.expense(after) is not None


def test_an_analysis_whose_worker_dies_is_retried_into_one_expense(showcase):
    api, _, crash = showcase
    doc = next(d for d in generate(6, SEED + 2) if d.truth.is_expense)
    sha = hashlib.sha256(doc.content).hexdigest()
    (crash / f"crash-{sha}").touch()
    doc_id = api.upload_file(doc.name, doc.content, doc.content_type)
    assert follow(api, {doc.name: doc_id}, QUIET, timeout=300)
    assert (crash / f"crashed-{sha}").exists()  # the first attempt's worker did die
    assert api.document(doc_id)["status"] == "ANALYZED"
    expense = api.expense(doc_id)
    assert expense is not None and Decimal(expense["amount"]) == doc.truth.total
    assert [r["document_id"] for r in api.expenses(limit=1000)].count(doc_id) == 1


def test_demo_uploads_to_a_running_stack(showcase, tmp_path):
    api, _, _ = showcase
    key = tmp_path / "key"
    key.write_text(ADMIN_KEY)
    r = talix("demo", "--count", "2", "--seed", str(SEED + 3), "--url", api.base_url,
              "--key-file", str(key), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    uploaded = json.loads(r.stdout.strip().splitlines()[-1])
    assert len(uploaded) == 2 and all(api.document(i)["status"] for i in uploaded.values())
    bad = talix("demo", "--url", api.base_url, "--key-file", str(tmp_path / "missing"))
    assert bad.returncode == 2 and "cannot read the API key file" in bad.stdout
    wrong = tmp_path / "wrong"
    wrong.write_text("tlx_not-a-key")
    denied = talix("demo", "--count", "1", "--url", api.base_url, "--key-file", str(wrong))
    assert denied.returncode == 2 and "401" in denied.stdout
    assert "Traceback" not in bad.stdout + bad.stderr + denied.stdout + denied.stderr


def test_the_notebook_reads_the_stacks_store(showcase, monkeypatch):
    """notebooks/expenses.ipynb against the store the HTTP tests filled (on S3)."""
    import nbformat
    from nbclient import NotebookClient

    api, env, _ = showcase
    if not api.expenses(limit=1):
        pytest.skip("no expense in the stack yet (run with the other tests of this module)")
    for k, v in env.items():
        if k.startswith(("TALIX_STORE", "TALIX_S3_", "TALIX_APP")):
            monkeypatch.setenv(k, v)
    nb = nbformat.read(ROOT / "notebooks" / "expenses.ipynb", as_version=4)
    NotebookClient(nb, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT)}}).execute()
    text = "\n".join(str(o.get("data", {}).get("text/plain", "")) + str(o.get("text", ""))
                     for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    vendors = {r["vendor"] for r in api.expenses(limit=1000) if r["vendor"]}
    assert any(v in text for v in vendors)
    assert not [o for c in nb.cells for o in c.get("outputs", [])
                if o.get("output_type") == "error"]


def talix(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The `talix` command as a user runs it (Ray wants a HOME)."""
    return run_talix(*args, timeout=timeout, env={"HOME": os.environ.get("HOME", "/")})


def test_talix_dev_once_runs_the_main_job(tmp_path):
    """`make dev`'s command, to the end: its own SeaweedFS, Ray and Serve; receipts in, the
    expenses view out; then a second run on the same data directory finds its data again."""
    port = free_port()
    data = tmp_path / "dev"
    r = talix("dev", "--once", "--count", "3", "--seed", str(SEED + 4), "--port", str(port),
              "--data", str(data), timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    key = (data / "dev-api-key").read_text().strip()
    assert key in r.stdout and oct((data / "dev-api-key").stat().st_mode)[-3:] == "600"
    assert "3/3 document(s) analyzed" in r.stdout and "the expenses view" in r.stdout
    assert f"http://127.0.0.1:{port}/docs" in r.stdout
    assert "Traceback" not in r.stdout + r.stderr
    with pytest.raises(httpx.ConnectError):  # everything stopped
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    again = talix("dev", "--once", "--count", "0", "--port", str(port), "--data", str(data),
                  timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert key in again.stdout  # the same key, the same store
    busy = socket.socket()
    busy.bind(("127.0.0.1", port))
    try:
        r = talix("dev", "--once", "--port", str(port), "--data", str(data))
    finally:
        busy.close()
    assert r.returncode == 2 and "is in use" in r.stdout and "Traceback" not in r.stdout
