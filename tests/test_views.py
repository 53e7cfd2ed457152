"""Views: Delta Lake projections, exactly once, read in every way, on real storage."""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import uuid
from decimal import Decimal
from typing import Any, Literal

import pyarrow as pa
import pytest
from pydantic import BaseModel, Field

from talix_ray import (
    ConfigurationError,
    EventType,
    LocalRuntime,
    NotFound,
    Service,
    ValidationError,
    fact_view,
    state_view,
)
from talix_ray.journal import ObjectStoreJournal
from talix_ray.objectstore import LocalObjectStore
from talix_ray.views import (
    EventsFold,
    ProjectionFold,
    ViewLocation,
    ViewRunner,
    ViewSchemaChanged,
    arrow_schema,
)
from talix_ray.views import open as open_view

from . import views_domain as bank
from .waiting import eventually

FAST = {"linger": 0.02, "poll_interval": 0.05}


async def seed(runtime: Any, accounts: int, deposits: int, *, prefix: str = "a") -> dict:
    """Open accounts, deposit, close every fifth; the balances view that must result."""
    expected: dict[str, tuple[str, Decimal, int]] = {}
    for i in range(accounts):
        aid = f"{prefix}{i}"
        await runtime.run(bank.open_account, aid, bank.Open(owner=f"o{i % 3}"))
        total = Decimal(0)
        for j in range(deposits):
            amount = Decimal(f"{j + 1}.25")
            await runtime.run(bank.deposit, aid, bank.Deposit(amount=amount))
            total += amount
        expected[aid] = (f"o{i % 3}", total, deposits)
    for i in range(0, accounts, 5):
        await runtime.run(bank.close, f"{prefix}{i}", bank.Open(owner="x"))
        expected.pop(f"{prefix}{i}")
    return expected


def balances_of(view: Any) -> dict:
    return {r["account_id"]: (r["owner"], r["balance"], r["deposits"])
            for r in view.to_arrow().to_pylist()}


def file_runtime(root: Any, **kw: Any) -> LocalRuntime:
    journal = ObjectStoreJournal(LocalObjectStore(root), partitions=kw.pop("partitions", 4))
    return LocalRuntime(journal, **kw).add(bank.service).create()


# -- declarations and schemas ---------------------------------------------------------------
class Color(enum.Enum):
    RED = "red"


class Inner(BaseModel):
    x: int
    d: dict = {}


class Wide(BaseModel):
    id: str
    n: int
    f: float | None = None
    ok: bool
    amount: Decimal = Field(max_digits=10, decimal_places=3)
    loose: Decimal
    day: dt.date
    at: dt.datetime
    color: Color
    kind: Literal["a", "b"]
    tags: list[str]
    inner: Inner | None = None
    blob: dict[str, Any]


def test_row_models_become_arrow_schemas():
    s = arrow_schema(Wide, key="id")
    assert s.field("id").type == pa.string() and not s.field("id").nullable
    assert s.field("n").type == pa.int64() and not s.field("n").nullable
    assert s.field("f").type == pa.float64() and s.field("f").nullable
    assert s.field("amount").type == pa.decimal128(10, 3)
    assert s.field("loose").type == pa.decimal128(38, 9)
    assert s.field("day").type == pa.date32()
    assert s.field("at").type == pa.timestamp("us", tz="UTC")
    assert s.field("color").type == pa.string() and s.field("kind").type == pa.string()
    assert s.field("tags").type == pa.list_(pa.string())
    assert s.field("inner").type == pa.struct([("x", pa.int64()), ("d", pa.string())])
    assert s.field("blob").type == pa.string()  # JSON text


def test_a_dict_field_with_unhashable_metadata_inside_is_still_json():
    """A row field whose annotation cannot be hashed (``Annotated`` metadata that is a dict,
    inside ``dict[...]``) is stored as JSON text, as any dict is: its type is found by
    identity, not by a dict look-up that would raise ``TypeError``."""
    from typing import Annotated

    class Tagged(BaseModel):
        id: str
        extra: dict[str, Annotated[int, {"unit": "kg"}]]

    assert arrow_schema(Tagged, key="id").field("extra").type == pa.string()


def test_unsupported_row_fields_and_bad_declarations_are_refused():
    class Bad(BaseModel):
        id: str
        when: dt.time

    class OptionalKey(BaseModel):
        id: str | None

    with pytest.raises(ConfigurationError, match="no Delta Lake type"):
        arrow_schema(Bad)
    with pytest.raises(ConfigurationError, match="cannot be optional"):
        arrow_schema(OptionalKey, key="id")
    with pytest.raises(ConfigurationError, match="key 'nope'"):
        state_view("v", Wide, key="nope")
    with pytest.raises(ValidationError, match="invalid view name"):
        fact_view("Bad Name", Wide)
    with pytest.raises(ConfigurationError, match="pydantic model"):
        fact_view("v", dict)  # type: ignore[arg-type]
    v = state_view("v", bank.Balance, key="account_id")
    with pytest.raises(ConfigurationError, match=r"takes \(row, event\)"):
        v.on(bank.opened)(lambda e: None)
    with pytest.raises(ConfigurationError, match="key= is for state views"):
        fact_view("f", bank.DepositFact).on(bank.deposited, key=lambda e: e)
    with pytest.raises(ConfigurationError, match="at least one event type"):
        v.on()
    stray = state_view("stray", bank.Balance, key="account_id")
    stray.on(EventType("OTHER:THING", bank.Opened))(lambda row, e: None)
    with pytest.raises(ConfigurationError, match="no added event store declares"):
        LocalRuntime().add(Service("s", stores=[bank.accounts], projections=[stray])).create()
    taken = fact_view("events", bank.DepositFact)
    with pytest.raises(ConfigurationError, match="built-in view"):
        LocalRuntime().add(Service("s", stores=[bank.accounts], projections=[taken])).create()


# -- folding into Delta tables ----------------------------------------------------------------
async def test_state_fact_and_events_views_follow_the_log(tmp_path):
    rt = file_runtime(tmp_path / "store", view_options=FAST)
    async with rt:
        expected = await seed(rt, 12, 3)
        last = await rt.run(bank.deposit, "a1", bank.Deposit(amount=Decimal("0.50")))
        expected["a1"] = ("o1", expected["a1"][1] + Decimal("0.50"), 4)
        await rt.views.wait_for(last, timeout=30)
        assert balances_of(rt.views.open("balances")) == expected
        owners = {r["owner"]: r["accounts"] for r in rt.views.open("owners").to_arrow().to_pylist()}
        assert owners == {"o0": 4, "o1": 4, "o2": 4}
        facts = rt.views.open("deposits").to_arrow().to_pylist()
        assert len(facts) == 12 * 3 + 1
        assert len({(f["account_id"], f["version"]) for f in facts}) == len(facts)
        assert facts[0]["tags"] == ["d"] and facts[0]["extra"].startswith('{"v":')
        events = rt.views.open("events").to_arrow()
        assert events.num_rows == 12 + 36 + 3 + 1
        row = events.filter(pa.compute.equal(events["version"], 2)).to_pylist()[0]
        assert row["store"] == "accounts" and row["type"] == "BANK:DEPOSITED"
        assert row["payload"] == '{"amount":"1.25"}'
        status = {s["view"]: s for s in await rt.views.status()}
        assert set(status) == {"events", "balances", "owners", "deposits"}
        assert all(s["status"] == "running" and s["lag"] == 0 for s in status.values())


async def test_reading_pandas_polars_sql_and_time_travel(tmp_path):
    rt = file_runtime(tmp_path / "store", view_options=FAST)
    async with rt:
        first = await rt.run(bank.open_account, "x1", bank.Open(owner="ann"))
        await rt.views.wait_for(first, "balances")
        view = rt.views.open("balances")
        v1, t1 = view.version, dt.datetime.now(dt.UTC)
        # the next commit's timestamp (milliseconds) must fall after t1
        await eventually(lambda: dt.datetime.now(dt.UTC) > t1 + dt.timedelta(milliseconds=2),
                         timeout=5, what="the clock past t1")
        last = await rt.run(bank.deposit, "x1", bank.Deposit(amount=Decimal("7.10")))
        await rt.views.wait_for(last, "balances")
        assert view.version > v1
        assert view.to_pandas().loc[0, "balance"] == Decimal("7.10")
        assert view.to_polars()["deposits"].to_list() == [1]
        assert view.to_arrow(["owner"]).column_names == ["owner"]
        rel = view.sql("select owner, balance from balances where owner = 'ann' and deposits >= 1")
        assert rel.fetchall() == [("ann", Decimal("7.10"))]
        assert view.count() == 1
        old = view.as_of(v1)
        assert old.to_arrow().to_pylist()[0]["balance"] == Decimal("0.00")
        assert view.as_of(t1).to_arrow().to_pylist()[0]["deposits"] == 0
        joined = rt.views.sql("select b.owner, count(*) from balances b join events e "
                              "on e.aggregate_id = b.account_id group by 1").fetchall()
        assert joined == [("ann", 2)]
        with pytest.raises(NotFound):
            rt.views.open("nope")
        with pytest.raises(ValidationError):
            view.as_of("yesterday")  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match="aware"):
            view.as_of(dt.datetime(2020, 1, 1))
        with pytest.raises(NotFound):
            view.to_arrow(["no_such_column"])
        with pytest.raises(ValidationError, match="CommandResult"):
            await rt.views.wait_for("x1")  # type: ignore[arg-type]


async def test_read_your_writes_times_out_when_the_view_is_behind(tmp_path):
    """The blocking ``View.wait_for`` (a script's) runs on a worker thread here, so the
    runtime's loop and its runner go on: the view is behind only because the runner lingers
    2 s before folding a new batch — and once it has, the same wait returns."""
    rt = file_runtime(tmp_path / "store", view_options={"linger": 2.0, "poll_interval": 5.0})
    async with rt:
        r0 = await rt.run(bank.open_account, "y", bank.Open(owner="bo"))
        await rt.views.wait_for(r0, "balances", timeout=30)  # the first batch, then idle
        r1 = await rt.run(bank.deposit, "y", bank.Deposit(amount=Decimal(1)))
        view = rt.views.open("balances")
        with pytest.raises(TimeoutError, match="has not reached"):
            await asyncio.to_thread(view.wait_for, r1, timeout=0.3)
        assert await asyncio.to_thread(view.wait_for, r1, timeout=30) is view
        assert view.to_arrow().to_pylist()[0]["deposits"] == 1


async def test_the_async_wait_lets_the_runtime_s_own_loop_fold_the_write(tmp_path):
    """``wait_for_async`` on the loop the LocalRuntime's runners run on: it returns once the
    runner (lingering 0.5 s, so the view is behind when the wait starts) has folded the write,
    also for a result without its log position (a command id repeated after a reload: the
    log's head is awaited); a target the view cannot reach times out at the deadline."""
    rt = file_runtime(tmp_path / "store", view_options={"linger": 0.5, "poll_interval": 5.0})
    async with rt:
        view = rt.views.open("balances")
        r0 = await rt.run(bank.open_account, "w", bank.Open(owner="wu"))
        assert await view.wait_for_async(r0, timeout=30) is view
        assert [r["owner"] for r in view.to_arrow().to_pylist()] == ["wu"]
        r1 = await rt.run(bank.deposit, "w", bank.Deposit(amount=Decimal(3)))
        no_position = r1._replace(partition=None, seq=None)
        assert await view.wait_for_async(no_position, timeout=30) is view
        assert view.to_arrow().to_pylist()[0]["deposits"] == 1
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError, match="has not reached segment 999999 of partition 0"):
            await view.wait_for_offsets_async({0: 999_999}, timeout=0.3)
        assert 0.3 <= loop.time() - started < 5


async def test_the_blocking_wait_refuses_a_running_event_loop(tmp_path):
    """Called on the loop's thread, the blocking forms would hold up the loop the runner
    needs until they time out; they refuse at once, naming the form to await."""
    rt = file_runtime(tmp_path / "store", view_options=FAST)
    async with rt:
        r0 = await rt.run(bank.open_account, "v", bank.Open(owner="vi"))
        view = rt.views.open("balances")
        with pytest.raises(RuntimeError, match=r"await view\.wait_for_async\(result\)"):
            view.wait_for(r0, timeout=30)
        with pytest.raises(RuntimeError, match=r"await view\.wait_for_offsets_async"):
            view.wait_for_offsets({0: 1}, timeout=30)
        assert await view.wait_for_async(r0, timeout=30) is view


def test_the_blocking_wait_from_a_script(tmp_path):
    """No loop on this thread (a script; the runtime runs on a thread of its own): ``wait_for``
    blocks until the runner has folded the write, and times out on a target the view cannot
    reach; every call runs on the same background loop (no thread and loop per call), which
    refuses a blocking call from itself."""
    import queue
    import threading

    from talix_ray.views.blocking import run_sync

    rt = file_runtime(tmp_path / "store", view_options={"linger": 0.5, "poll_interval": 5.0})
    results: queue.Queue[Any] = queue.Queue()
    stop = threading.Event()

    async def serve() -> None:
        async with rt:
            results.put(await rt.run(bank.open_account, "s", bank.Open(owner="so")))
            await asyncio.to_thread(stop.wait, 60)

    thread = threading.Thread(target=asyncio.run, args=(serve(),))
    thread.start()
    try:
        result = results.get(timeout=60)
        view = rt.views.open("balances")
        assert view.wait_for(result, timeout=30) is view
        assert view.to_arrow().to_pylist()[0]["owner"] == "so"
        with pytest.raises(TimeoutError, match="has not reached"):
            view.wait_for_offsets({0: 999_999}, timeout=0.2)
    finally:
        stop.set()
        thread.join(60)
    first, second = (run_sync(_current_loop()) for _ in range(2))
    assert first is second

    async def nested() -> asyncio.AbstractEventLoop:  # on the background loop: would hang
        return run_sync(_current_loop())

    with pytest.raises(RuntimeError, match="would wait for itself"):
        run_sync(nested())


async def _current_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


async def test_views_on_s3_are_read_from_settings(s3_server, tmp_path):

    prefix = f"v-{uuid.uuid4().hex[:10]}"
    settings = s3_server.settings(f"s3://{s3_server.bucket}/{prefix}", partitions=2)
    rt = LocalRuntime.from_settings(settings, view_options=FAST).add(bank.service).create()
    async with rt:
        expected = await seed(rt, 6, 2)
        last = await rt.run(bank.open_account, "z", bank.Open(owner="zed"))
        expected["z"] = ("zed", Decimal(0), 0)
        await rt.views.wait_for(last, timeout=60)
    view = open_view("balances", settings)
    assert view.uri == f"s3://{s3_server.bucket}/{prefix}/views/balances"
    assert balances_of(view) == expected
    assert view.sql("select count(*) from balances").fetchall() == [(len(expected),)]
    from talix_ray import views

    assert views.names(settings) == ["balances", "deposits", "events", "owners"]
    with pytest.raises(NotFound):
        open_view("nothing", settings)


# -- failures ------------------------------------------------------------------------------------
async def test_a_failing_handler_stops_its_view_at_that_event(tmp_path):
    flaky = state_view("flaky", bank.Balance, key="account_id")
    broken = {"on": True}

    @flaky.on(bank.opened)
    def _(row, event):
        if broken["on"] and event.aggregate_id == "bad":
            raise RuntimeError("boom")
        return bank.Balance(account_id=event.aggregate_id, owner=event.payload.owner,
                            balance=Decimal(0))

    svc = Service("flaky", stores=[bank.accounts], projections=[flaky])
    journal = ObjectStoreJournal(LocalObjectStore(tmp_path / "s"), partitions=1)
    rt = LocalRuntime(journal, view_options=FAST).add(svc).create()
    async with rt:
        good = await rt.run(bank.open_account, "good", bank.Open(owner="g"))
        await rt.views.wait_for(good, "flaky")
        await rt.run(bank.open_account, "bad", bank.Open(owner="b"))
        after = await rt.run(bank.open_account, "after", bank.Open(owner="a"))
        async def failed() -> dict[str, Any] | None:
            status = {s["view"]: s for s in await rt.views.status()}["flaky"]
            return status if status["status"] == "failed" else None

        status = await eventually(failed, timeout=30, what="view flaky failed")
        assert "boom" in status["error"]
        assert "bad@1" in status["error"] and status["lag"] > 0
        assert [r["account_id"] for r in rt.views.open("flaky").to_arrow().to_pylist()] == ["good"]
        broken["on"] = False  # the fix: the runner retries and goes on
        await rt.views.wait_for(after, "flaky", timeout=60)
        ids = sorted(r["account_id"] for r in rt.views.open("flaky").to_arrow().to_pylist())
        assert ids == ["after", "bad", "good"]


async def test_a_changed_row_model_asks_for_a_rebuild_which_replays_the_log(tmp_path):
    root = tmp_path / "store"
    rt = file_runtime(root, view_options=FAST)
    async with rt:
        expected = await seed(rt, 5, 2)
        await rt.views.wait_for(await rt.run(bank.open_account, "n", bank.Open(owner="n")))
        expected["n"] = ("n", Decimal(0), 0)

    changed = state_view("balances", _Balance2, key="account_id")
    for name, h in bank.balances.handlers.items():
        changed.handlers[name] = h.__class__(
            h.event_type, lambda row, e, fn=h.fn: _widen(fn(row and bank.Balance(
                **row.model_dump(exclude={"note"})), e)), h.key_of)
    journal = ObjectStoreJournal(LocalObjectStore(root))
    await journal.open()
    location = ViewLocation.of_store(journal.store)
    assert location is not None
    fold = ProjectionFold(changed, lambda r: bank.accounts.decode(r))
    runner = ViewRunner(fold, journal, location, **FAST)
    with pytest.raises(ViewSchemaChanged, match="talix views rebuild balances"):
        await runner.open()
    before = open_view("balances", location=location).version
    seen: list[tuple[int, int]] = []
    version = await runner.rebuild(lambda done, total: seen.append((done, total)))
    assert version == before + 1 and seen[-1][0] == seen[-1][1] > 0
    view = open_view("balances", location=location)
    assert "note" in view.schema.names
    assert balances_of(view) == expected
    assert view.history(1)[0]["operation"] in ("WRITE", "CREATE OR REPLACE TABLE")
    await runner.catch_up()  # the runner now accepts the table and is at its head
    assert runner.offsets == {p: await journal.head(p) for p in range(journal.partitions)}
    runner.close()
    await journal.close()


def _widen(row: Any) -> Any:
    return None if row is None else _Balance2(**row.model_dump())


class _Balance2(BaseModel):
    account_id: str
    owner: str
    balance: Decimal = Field(max_digits=14, decimal_places=2)
    deposits: int = 0
    note: str | None = None


async def test_two_runners_of_one_view_never_double_rows(tmp_path):
    from talix_ray.views import delta

    root = tmp_path / "store"
    rt = file_runtime(root, views=False, partitions=2)
    async with rt:
        await seed(rt, 10, 4)
    journal = ObjectStoreJournal(LocalObjectStore(root))
    await journal.open()
    location = ViewLocation.of_store(journal.store)
    runners = [ViewRunner(fold, journal, location, batch_events=7, **FAST)
               for fold in (EventsFold(), EventsFold(),
                            ProjectionFold(bank.deposits, bank.accounts.decode),
                            ProjectionFold(bank.deposits, bank.accounts.decode))]

    async def follow(r: ViewRunner) -> None:
        while True:
            try:
                await r.catch_up(timeout=60)
                return
            except Exception as exc:  # the loser of a commit race reloads and goes on
                assert delta.is_conflict(exc), exc
                r._table = None

    await asyncio.gather(*(follow(r) for r in runners))
    events = open_view("events", location=location).to_arrow().to_pylist()
    assert len(events) == 10 + 40 + 2
    assert len({(e["aggregate_id"], e["version"]) for e in events}) == len(events)
    facts = open_view("deposits", location=location).to_arrow().to_pylist()
    assert len(facts) == 40 == len({(f["account_id"], f["version"]) for f in facts})
    for r in runners:
        r.close()
    await journal.close()


async def test_a_new_state_view_runner_updates_the_rows_its_table_already_holds(tmp_path):
    # A runner that starts on a table with rows (a restart: nothing cached) loads the rows
    # its events touch from the table, then merges updates into them.
    root = tmp_path / "store"
    rt = file_runtime(root, views=False, partitions=2)
    async with rt:
        expected = await seed(rt, 10, 2)
    location = ViewLocation(str(tmp_path / "views"))
    fold = ProjectionFold(bank.balances, bank.accounts.decode)

    async def project() -> ViewRunner:
        journal = ObjectStoreJournal(LocalObjectStore(root), owned=[])
        await journal.open()
        runner = ViewRunner(fold, journal, location, **FAST)
        await runner.catch_up(timeout=60)
        runner.close()
        await journal.close()
        return runner

    await project()
    rt = file_runtime(root, views=False, partitions=2)
    async with rt:
        for aid, (owner, total, n) in list(expected.items()):
            await rt.run(bank.deposit, aid, bank.Deposit(amount=Decimal("1.50")))
            expected[aid] = (owner, total + Decimal("1.50"), n + 1)
    runner = await project()
    assert runner.events == len(expected)  # only the new deposits
    assert balances_of(open_view("balances", location=location)) == expected


# -- crashes ------------------------------------------------------------------------------------
def _crash_run(root: Any, *args: str, kill_after: float | None = None) -> int:
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).parent.parent
    proc = subprocess.Popen([sys.executable, "-m", "tests.view_crash", str(root), *args],
                            cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONPATH": str(repo)})
    head = b""
    if kill_after is not None:
        assert proc.stdout is not None
        head = proc.stdout.readline()  # "folding": the runners start now
        try:
            proc.wait(kill_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode in (0, 137, -9), (head + out).decode()
    return proc.returncode


def _check_views(location: ViewLocation, expected: dict | None, events: int, deposits: int,
                 owners: dict | None) -> None:
    """No row doubled; with ``expected``, nothing lost either."""
    from talix_ray.views import delta

    if not delta.exists(location.uri("events"), {}):
        return
    ev = open_view("events", location=location).to_arrow().to_pylist()
    assert len({(e["aggregate_id"], e["version"]) for e in ev}) == len(ev) <= events
    dep = open_view("deposits", location=location).to_arrow().to_pylist() \
        if delta.exists(location.uri("deposits"), {}) else []
    assert len({(d["account_id"], d["version"]) for d in dep}) == len(dep) <= deposits
    if expected is None:
        return
    assert len(ev) == events and len(dep) == deposits
    assert balances_of(open_view("balances", location=location)) == expected
    got = {r["owner"]: r["accounts"]
           for r in open_view("owners", location=location).to_arrow().to_pylist()}
    assert got == owners


async def test_killing_the_runner_at_any_point_of_a_batch_loses_and_doubles_nothing(tmp_path):
    import random
    import shutil

    root = tmp_path / "store"
    rt = file_runtime(root, views=False)
    async with rt:
        expected = await seed(rt, 30, 5)
    location = ViewLocation(str(root / "views"))
    total_events, total_deposits = 30 + 150 + 6, 150
    owners = {"o0": 10, "o1": 10, "o2": 10}
    # die at each point of a batch (after reading, after folding, after the Delta commit),
    # early and later in the log, resuming each time from what the tables say
    for point in ("read", "folded", "committed"):
        shutil.rmtree(location.base, ignore_errors=True)
        for nth in (1, 6):
            assert _crash_run(root, point, str(nth)) == 137
            _check_views(location, None, total_events, total_deposits, owners)
        assert _crash_run(root) == 0
        _check_views(location, expected, total_events, total_deposits, owners)
    # and real SIGKILLs at random moments (some inside a Delta write)
    shutil.rmtree(location.base, ignore_errors=True)
    rng = random.Random(7)
    killed = 0
    for _ in range(6):
        killed += _crash_run(root, kill_after=rng.uniform(0.0, 0.25)) == -9
        _check_views(location, None, total_events, total_deposits, owners)
    assert killed >= 2  # the kills did land while the runner was working
    assert _crash_run(root) == 0
    _check_views(location, expected, total_events, total_deposits, owners)
