"""notebooks/expenses.ipynb runs top to bottom against a store the test seeds."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.fixture
async def seeded_store(tmp_path):
    from services import documents, expenses
    from services.documents import CreateDocument, RecordAnalysis, create_document, record_analysis
    from services.expenses import CreateExpense, create_expense
    from talix_ray import LocalRuntime
    from talix_ray.settings import Settings

    settings = Settings(store=f"file://{tmp_path}/store")
    rt = LocalRuntime.from_settings(settings, dispatch=False, view_options={"linger": 0.02}) \
        .add(documents.service, expenses.service).create()
    rows = [("Blue Bottle", "2026-10-03", "4.50"), ("Blue Bottle", "2026-11-05", "5.25"),
            ("Hardware Store", "2026-11-07", "31.90"), ("Taxi Co", "2026-10-21", "18.00")]
    async with rt:
        for i, (vendor, day, amount) in enumerate(rows):
            await rt.run(create_document, f"d{i}", CreateDocument(key=f"k{i}",
                                                                  content_type="text/plain"))
            await rt.run(record_analysis, f"d{i}", RecordAnalysis(text="...", is_expense=True,
                                                                  engine="test"))
            last = await rt.run(create_expense, f"e{i}", CreateExpense(
                document_id=f"d{i}", vendor=vendor, date=dt.date.fromisoformat(day),
                amount=Decimal(amount), currency="USD"))
        await rt.run(create_document, "d9", CreateDocument(key="k9", content_type="text/plain"))
        await rt.views.wait_for(last, timeout=60)
        await rt.views.wait_for(await rt.run(record_analysis, "d9", RecordAnalysis(
            text="hello", is_expense=False, engine="test")), timeout=60)
    return settings.store


def test_the_expenses_notebook_runs_on_a_seeded_store(seeded_store, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("TALIX_STORE", seeded_store)
    nb = nbformat.read(ROOT / "notebooks" / "expenses.ipynb", as_version=4)
    NotebookClient(nb, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT)}}).execute()
    text = "\n".join(str(o.get("data", {}).get("text/plain", "")) + str(o.get("text", ""))
                     for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "Hardware Store" in text and "31.90" in text
    assert "2026-10" in text and "2026-11" in text
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert len(images) == 1  # the chart
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
