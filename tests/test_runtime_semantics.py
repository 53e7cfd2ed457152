"""Semantics of a runtime, on the LocalRuntime (parametrized over runtimes as they arrive)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from pydantic import BaseModel

from talix_ray import (
    ConfigurationError,
    Context,
    DomainError,
    Event,
    FileStorage,
    IdGenerator,
    Invocation,
    LocalRuntime,
    NotFound,
    SequentialIds,
    Service,
    Unavailable,
    ValidationError,
    VersionConflict,
    action,
    http,
    on_event,
)
from talix_ray.journal import Commit, MemoryJournal, ObjectStoreJournal
from talix_ray.model import StoredEvent
from talix_ray.objectstore import MemoryObjectStore

from . import domain
from .domain import Add, Book, Copy, Limit, add, add_below, add_twice, book, counters, ledger
from .waiting import eventually


@pytest.fixture(params=["memory", "objectstore", "s3", "ray"])
def journal_kind(request):
    return request.param


@pytest.fixture
def storage(journal_kind, request):
    """``storage(name)``: where the storage called ``name`` lives, per kind."""
    made: dict[str, object] = {}

    def get(name: str):
        if name not in made:
            if journal_kind == "memory":
                made[name] = MemoryJournal(partitions=2)
            elif journal_kind == "objectstore":
                made[name] = MemoryObjectStore()
            else:
                server = request.getfixturevalue("s3_server")
                made[name] = (server, f"rt-{uuid.uuid4().hex[:12]}")
        return made[name]

    return get


@pytest.fixture
def new_journal(journal_kind, storage):
    """``new_journal(name)``: a journal on the storage called ``name`` (a new instance each
    call, as a restarted process would have; the memory journal is shared)."""

    def make(name: str | None = None):
        where = storage(name or uuid.uuid4().hex)
        if journal_kind == "memory":
            return where
        if journal_kind == "objectstore":
            return ObjectStoreJournal(where, partitions=2, own_store=False, poll_interval=0.05)
        from talix_ray.objectstore.s3 import S3ObjectStore

        server, prefix = where
        return ObjectStoreJournal(S3ObjectStore(server.bucket, prefix, **server.store_options()),
                                  partitions=2, poll_interval=0.05)

    return make


@pytest.fixture
def make_runtime(journal_kind, new_journal, storage, request):
    """``make_runtime(service, storage=name, **options)``: a runtime of the kind under test."""
    made = []

    def make(service: Service = domain.plain_service, storage_name: str | None = None, **kw):
        name = storage_name or uuid.uuid4().hex
        if journal_kind != "ray":
            return LocalRuntime(new_journal(name), poll_interval=0.05, **kw).add(service)
        from talix_ray.runtime.ray import RayRuntime

        request.getfixturevalue("ray_session")
        server, prefix = storage(name)
        kw.pop("timers", None)
        extra = {"remember_commands": kw.pop("remember_commands")} \
            if "remember_commands" in kw else {}
        settings = server.settings(f"s3://{server.bucket}/{prefix}", **extra)
        rt = RayRuntime(settings=settings, app=f"t{uuid.uuid4().hex[:10]}", partitions=2,
                        shards=1, poll_interval=0.05, **{"views": False, **kw}).add(service)
        made.append(rt)
        return rt

    yield make


@pytest.fixture
def memory_only(journal_kind):
    if journal_kind != "memory":
        pytest.skip("needs two runtimes writing one journal (see the zombie test)")


@pytest.fixture
def in_process(journal_kind):
    if journal_kind == "ray":
        pytest.skip("needs a journal object in this process")


async def test_run_appends_events_and_returns_the_new_version(make_runtime):
    async with make_runtime().create() as rt:
        r1 = await rt.run(add, "c1", Add(amount=2))
        r2 = await rt.run(add_twice, "c1", {"amount": 3})
        assert (r1.version, r2.version) == (1, 3)
        assert [e.version for e in r2.events] == [2, 3]
        agg = await rt.get_aggregate(counters, "c1")
        assert agg.state.total == 8 and agg.version == 3
        assert agg.last_event is not None and agg.last_event.version == 3


async def test_a_repeated_command_id_returns_the_first_result_and_appends_nothing(make_runtime):
    async with make_runtime().create() as rt:
        first = await rt.run(add, "c1", Add(amount=5), command_id="req-1")
        again = await rt.run(add, "c1", Add(amount=5), command_id="req-1")
        assert again.duplicate and not again.appended
        assert again.version == first.version == 1
        assert [e.id for e in again.events] == [e.id for e in first.events]
        assert (await rt.get_aggregate(counters, "c1")).version == 1


async def test_command_ids_survive_passivation_and_restart(make_runtime):
    async with make_runtime(storage_name="j").create() as rt:
        await rt.run(add_twice, "c1", Add(amount=1), command_id="once")
    async with make_runtime(storage_name="j").create() as rt2:
        again = await rt2.run(add_twice, "c1", Add(amount=1), command_id="once")
        assert again.duplicate and again.version == 2 and len(again.events) == 2
        assert (await rt2.get_aggregate(counters, "c1")).state.total == 2


async def test_bad_input_is_rejected_with_the_field_and_nothing_appended(make_runtime):
    async with make_runtime().create() as rt:
        with pytest.raises(ValidationError, match="field 'amount'"):
            await rt.run(add, "c1", {"amount": 0})
        with pytest.raises(ValidationError, match="aggregate id"):
            await rt.run(add, "a/b", Add(amount=1))
        with pytest.raises(ValidationError, match="command id"):
            await rt.run(add, "c1", Add(amount=1), command_id="")
        assert (await rt.get_aggregate(counters, "c1")).version == 0
        assert (await rt.list_aggregate_ids(counters)).ids == []


async def test_errors_in_a_command_append_nothing(make_runtime):
    async with make_runtime().create() as rt:
        await rt.run(add, "c1", Add(amount=5))
        with pytest.raises(DomainError, match="would exceed 6"):
            await rt.run(add_below, "c1", Limit(amount=2, limit=6))
        with pytest.raises(ConfigurationError, match="not an event"):
            await rt.run(domain.broken, "c1", Add(amount=1))
        with pytest.raises(NotFound, match="no counter nope"):
            await rt.run(domain.copy_from, "c1", Copy(source="nope"))
        agg = await rt.get_aggregate(counters, "c1")
        assert agg.version == 1 and agg.state.total == 5


async def test_commands_can_read_other_aggregates(make_runtime):
    async with make_runtime().create() as rt:
        await rt.run(add, "src", Add(amount=7))
        await rt.run(domain.copy_from, "dst", Copy(source="src"))
        await rt.run(domain.copy_from, "dst", Copy(source="dst"))  # reading itself: current state
        assert (await rt.get_aggregate(counters, "dst")).state.total == 14


async def test_concurrent_commands_on_one_aggregate_are_serialized(make_runtime):
    async with make_runtime().create() as rt:
        await asyncio.gather(*(rt.run(add, "hot", Add(amount=1)) for _ in range(200)))
        agg = await rt.get_aggregate(counters, "hot")
        assert agg.version == 200 and agg.state.total == 200
        events = await rt.get_events(counters, "hot")
        assert [e.version for e in events] == list(range(1, 201))


async def test_a_version_conflict_between_two_writers_is_retried(make_runtime, memory_only):
    a = make_runtime(storage_name="j").create()
    b = make_runtime(storage_name="j").create()
    async with a, b:
        await a.run(add, "shared", Add(amount=1))
        await b.run(add, "shared", Add(amount=10))  # b loaded after a's write
        await a.run(add, "shared", Add(amount=100))  # a's state is stale: conflict, reload, retry
        agg = await a.get_aggregate(counters, "shared")
        assert agg.version == 3 and agg.state.total == 111


async def test_conflicts_beyond_the_retry_budget_surface(memory_only):
    class Always(MemoryJournal):
        async def append(self, commit):
            raise VersionConflict("always")

    async with LocalRuntime(Always()).add(domain.plain_service).create() as rt:
        with pytest.raises(VersionConflict):
            await rt.run(add, "c1", Add(amount=1))


async def test_castore_reads(make_runtime):
    async with make_runtime().create() as rt:
        for i in range(1, 6):
            await rt.run(add, "c1", Add(amount=i))
        at3 = await rt.get_aggregate(counters, "c1", version=3)
        assert at3.state.total == 6 and at3.version == 3
        with pytest.raises(NotFound, match="no version 9"):
            await rt.get_aggregate(counters, "c1", version=9)
        evs = await rt.get_events(counters, "c1", min_version=2, max_version=4)
        assert [e.version for e in evs] == [2, 3, 4]
        evs = await rt.get_events(counters, "c1", reverse=True, limit=2)
        assert [e.version for e in evs] == [5, 4]
        for name in ["b", "a", "d", "c"]:
            await rt.run(add, name, Add(amount=1))
        page = await rt.list_aggregate_ids(counters, limit=2)
        assert page.ids == ["a", "b"] and page.next_page_token == "b"
        page = await rt.list_aggregate_ids(counters, limit=2, page_token=page.next_page_token)
        assert page.ids == ["c", "c1"]
        page = await rt.list_aggregate_ids(counters, limit=2, page_token=page.next_page_token)
        assert page.ids == ["d"] and page.next_page_token is None
        sim = rt.simulate_aggregate(counters, [domain.added(amount=4), domain.reset(),
                                               domain.added(amount=2)])
        assert sim.total == 2 and sim.adds == 2
        with pytest.raises(NotFound, match="nope"):
            await rt.get_aggregate("nope", "x")


async def test_unknown_event_type_in_a_stored_stream_is_a_clear_error(make_runtime,
                                                                      new_journal):
    journal = new_journal("j")
    await journal.open()
    rec = StoredEvent("counters", "old", 1, "COUNTERS:REMOVED_LONG_AGO", {}, 0)
    await journal.append(Commit("counters", "old", 0, (rec,)))
    await journal.close()
    async with make_runtime(storage_name="j").create() as rt:
        with pytest.raises(Exception, match="COUNTERS:REMOVED_LONG_AGO"):
            await rt.run(add, "old", Add(amount=1))
        assert len(await rt.journal.read_stream("counters", "old")) == 1


async def test_passivated_aggregates_reload_from_the_journal(make_runtime):
    async with make_runtime(max_active=10).create() as rt:
        for i in range(50):
            await rt.run(add, f"c{i}", Add(amount=i + 1))
        assert (await rt.stats())["active"] <= 10
        for i in range(50):
            agg = await rt.get_aggregate(counters, f"c{i}")
            assert agg.state.total == i + 1


async def test_snapshots_are_used_when_configured(make_runtime, new_journal):
    async with make_runtime(storage_name="j", snapshot_every=10).create() as rt:
        for _ in range(25):
            await rt.run(add, "snap", Add(amount=1))
        await rt.passivate_all()
    # snapshots live in the load index: durable (and seen by others) with its next table,
    # at the latest when the runtime stops
    journal = new_journal("j")
    await journal.open()
    snap = await journal.load_snapshot("counters", "snap", counters.reducer_hash)
    assert snap is not None and snap.version == 20
    await journal.close()
    async with make_runtime(storage_name="j", snapshot_every=10).create() as rt2:
        agg = await rt2.get_aggregate(counters, "snap")
        assert agg.version == 25 and agg.state.total == 25 and agg.last_event.version == 25


class Recorder:
    """Middleware that appends what it wraps to a file (actions may run in other processes)."""

    def __init__(self, path):
        self.path = str(path)

    async def __call__(self, inv: Invocation, call_next):
        with open(self.path, "a") as f:
            f.write(f"{inv.kind} {inv.name}\n")
        return await call_next()


async def test_a_command_id_known_from_a_snapshot_returns_its_events(make_runtime):
    async with make_runtime(storage_name="j", snapshot_every=3).create() as rt:
        first = await rt.run(add_twice, "s1", Add(amount=2), command_id="twice")
        for _ in range(4):
            await rt.run(add, "s1", Add(amount=1))
        await rt.passivate_all()
    async with make_runtime(storage_name="j", snapshot_every=3).create() as rt2:
        again = await rt2.run(add_twice, "s1", Add(amount=2), command_id="twice")
        assert again.duplicate and again.version == first.version == 2
        assert [(e.version, e.payload.amount) for e in again.events] == [(1, 2), (2, 2)]
        assert (await rt2.get_aggregate(counters, "s1")).version == 6


async def test_middleware_wraps_commands_and_actions(make_runtime, tmp_path):
    log = tmp_path / "calls.txt"
    async with make_runtime(domain.service).use(Recorder(log)).create() as rt:
        await rt.run(add, "m1", Add(amount=1))
        await rt.settle(30)
    seen = [tuple(line.split()) for line in log.read_text().splitlines()]
    assert ("command", "counters.add") in seen
    assert ("action", "mirror_to_ledger") in seen
    assert ("command", "ledger.book") in seen


async def test_shared_services_by_type(make_runtime):
    rt = make_runtime().register(IdGenerator, SequentialIds("doc")).create()
    assert rt.get(IdGenerator).new() == "doc-1"
    assert isinstance(rt.get(FileStorage), FileStorage)  # a default is registered
    with pytest.raises(ConfigurationError, match="not an instance"):
        make_runtime().register(IdGenerator, object())
    with pytest.raises(ConfigurationError, match="created already"):
        rt.register(IdGenerator, SequentialIds())
    with pytest.raises(NotFound, match="no shared service registered for Limit"):
        rt.get(Limit)


async def test_a_runtime_must_be_started(make_runtime):
    rt = make_runtime().create()
    with pytest.raises(Unavailable, match="not started"):
        await rt.run(add, "c1", Add(amount=1))


async def test_stores_and_services_are_checked_when_created(make_runtime):
    with pytest.raises(ConfigurationError, match="reserved"):
        from talix_ray import EventStore
        LocalRuntime().add(Service("x", stores=[EventStore("talix-x", [domain.added],
                                                           domain.reduce)])).create()
    with pytest.raises(ConfigurationError, match="added twice"):
        LocalRuntime().add(domain.plain_service, domain.plain_service).create()
    async with make_runtime().create() as rt:
        from .domain import mirror_to_ledger
        with pytest.raises(NotFound):
            await rt.call(mirror_to_ledger, {})


# -- actions --------------------------------------------------------------------------------------
async def test_event_actions_run_once_per_event_in_order(make_runtime):
    async with make_runtime(domain.service).create() as rt:
        for i in range(10):
            await rt.run(add, f"e{i % 3}", Add(amount=i + 1))
        await rt.settle(30)
        sources = []
        for i in range(3):
            entries = await rt.load_state(ledger, f"e{i}")
            versions = [int(e.source.rsplit(":", 1)[1]) for e in entries]
            assert versions == sorted(versions)  # in order within one aggregate
            sources += [e.source for e in entries]
        assert len(sources) == len(set(sources)) == 10  # once per event


async def test_failing_actions_are_retried_with_backoff_then_succeed(make_runtime):
    async with make_runtime(domain.service).create() as rt:
        await rt.run(add, "flaky-1", Add(amount=4))
        await rt.settle(30)
        state = await rt.load_state(ledger, "flaky-1")
        assert [(e.amount, e.attempt) for e in state] == [(4, 3)]
        assert await rt.deadletters() == []


async def test_actions_that_keep_failing_are_dead_lettered_and_can_be_retried(make_runtime):
    async with make_runtime(domain.service).create() as rt:
        await rt.run(add, "doomed-1", Add(amount=1))
        await rt.run(add, "fine-1", Add(amount=2))  # the consumer moves on
        await rt.settle(30)
        letters = await rt.deadletters()
        assert len(letters) == 1
        letter = letters[0]
        assert letter["action"] == "mirror_to_ledger" and letter["attempts"] == 3
        assert "always fails" in letter["error"]
        assert (await rt.load_state(ledger, "fine-1"))[0].amount == 2
        with pytest.raises(RuntimeError, match="always fails"):
            await rt.retry_deadletter(letter["key"])
        assert len(await rt.deadletters()) == 1
        await rt.run(book, "heal-doomed-1", Book(source="fix", amount=0))
        await rt.retry_deadletter(letter["key"])
        assert await rt.deadletters() == []
        assert [e.amount for e in await rt.load_state(ledger, "doomed-1")] == [1]
        with pytest.raises(NotFound):
            await rt.retry_deadletter("nope")


@action(on_event(domain.added), durable=False)
async def mirror_plainly(event: Event[domain.Added], ctx: Context) -> None:
    """Books each addition to the ledger with no durable step record (so a second run of
    the same event is kept from booking twice by its command id alone)."""
    await ctx.run(book, event.aggregate_id, Book(source=event.id, amount=event.payload.amount))


mirroring = Service("mirroring", stores=[counters, ledger], actions=[mirror_plainly])


async def test_the_dispatcher_resumes_from_its_checkpoint(make_runtime):
    """The third runtime handles only what came after the checkpoint. A replay from offset 0
    would end the same whenever the ledger recognized the replayed command id (or a durable
    step record replayed it), so the action keeps no step record, the ledger remembers only
    its last command id (``remember_commands=1``) and a manual entry pushes the first
    action's id out: a replay would book event 1 again."""
    async with make_runtime(mirroring, storage_name="j").create() as rt:
        await rt.run(add, "r1", Add(amount=1))
        await rt.settle(30)
    async with make_runtime(domain.plain_service, storage_name="j").create() as rt:
        await rt.run(add, "r1", Add(amount=2))  # written while no dispatcher runs
        await rt.run(book, "r1", Book(source="manual", amount=0), command_id="manual")
    async with make_runtime(mirroring, storage_name="j", remember_commands=1).create() as rt:
        await rt.settle(30)
        assert [e.amount for e in await rt.load_state(ledger, "r1")] == [1, 0, 2]


async def test_queues_deliver_messages_and_validate_them(make_runtime):
    async with make_runtime(domain.service).create() as rt:
        await rt.enqueue("pings", {"text": "a"})
        await rt.enqueue("pings", domain.Ping(text="b"), key="k1")
        with pytest.raises(ValidationError, match="field 'text'"):
            await rt.enqueue("pings", {"text": "x" * 50})
        with pytest.raises(ValidationError, match="queue name"):
            await rt.enqueue("Bad Queue", {"text": "a"})
        await rt.settle(30)
        assert sorted(e.source for e in await rt.load_state(ledger, "pings")) == ["a", "b"]


async def _fired(rt: LocalRuntime, n: int) -> bool:
    """Whether the ``tick`` timer has fired at least ``n`` periods."""
    return len(await rt.journal.read_stream("talix-timers", "tick")) >= n


async def _booked(rt: LocalRuntime, ledger_id: str, n: int) -> bool:
    """Whether ledger ``ledger_id`` holds at least ``n`` entries."""
    return len(await rt.load_state(ledger, ledger_id) or []) >= n


async def test_timers_fire_once_per_period_across_runtimes(make_runtime, memory_only):
    a = make_runtime(domain.service, storage_name="j").create()
    b = make_runtime(domain.service, storage_name="j", dispatch=False).create()
    async with a, b:  # both fire the timer, a dispatches
        await eventually(lambda: _fired(a, 3), timeout=30,
                         what="three periods of the 200 ms timer")
        await a.settle(10)
        fired = await a.journal.read_stream("talix-timers", "tick")
        periods = [r.payload["period"] for r in fired]
        assert len(periods) == len(set(periods)) >= 3  # two runtimes, one event per period
        booked = await a.load_state(ledger, "ticks")
        assert sorted(e.amount for e in booked) == sorted(periods)


async def test_timers_fire_on_every_runtime_kind(make_runtime):
    async with make_runtime(domain.service).create() as rt:
        await eventually(lambda: _booked(rt, "ticks", 2), timeout=30,
                         what="two ticks of the 200 ms timer booked")
        await rt.settle(30)
        booked = await rt.load_state(ledger, "ticks")
        assert booked is not None and len(booked) >= 2
        assert len({e.source for e in booked}) == len(booked)


class Deposit(BaseModel):
    counter: str
    amount: int


@action(http.post("/deposit"))
async def deposit(input: Deposit, ctx: Context) -> int:
    r = await ctx.run(add, input.counter, Add(amount=input.amount))
    return r.version


bank = Service("bank", stores=[counters, ledger], actions=[deposit])


async def test_an_http_style_call_with_an_idempotency_key_applies_once(make_runtime):
    async with make_runtime(bank).create() as rt:
        v1 = await rt.call(deposit, {"counter": "acc", "amount": 5}, idempotency_key="k-1")
        v2 = await rt.call(deposit, {"counter": "acc", "amount": 5}, idempotency_key="k-1")
        v3 = await rt.call(deposit, {"counter": "acc", "amount": 5})
        assert (v1, v2, v3) == (1, 1, 2)
        with pytest.raises(ValidationError, match="field 'amount'"):
            await rt.call(deposit, {"counter": "acc"})


async def test_a_waiter_cancelled_after_release_skipped_it_leaves_the_entity_usable():
    """A command cancelled while queued behind another must not corrupt the entity's queue
    (release() drops cancelled waiters; the cancelled one must not try to remove itself)."""
    from talix_ray.engine.entities import Entity

    entity = Entity(domain.counters, "q")
    await entity.acquire()
    waiter = asyncio.ensure_future(entity.acquire())
    await eventually(lambda: entity.waiters, timeout=5, what="the second acquire queued")
    waiter.cancel()
    entity.release()  # drops the cancelled waiter from the queue
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await asyncio.wait_for(entity.acquire(), 1)  # the entity is free again
    entity.release()


async def test_stopping_a_runtime_cancels_running_actions_without_dead_letters(tmp_path):
    from talix_ray import Context, Event, Retry, Service, action, on_event  # noqa: F401
    from talix_ray.journal import ObjectStoreJournal
    from talix_ray.objectstore import LocalObjectStore

    started = asyncio.Event()

    @action(on_event(domain.added), retry=Retry(max_attempts=1))
    async def busy(event: Event[domain.Added], ctx: Context) -> None:
        started.set()
        for i in range(100_000):  # keeps running commands until it is cancelled
            await ctx.run(domain.book, "busy", domain.Book(source=f"{event.id}:{i}", amount=1))

    svc = Service("slow", stores=[domain.counters, domain.ledger],
                  actions=[busy, domain.tick])  # a timer: the runtime has background tasks
    store = LocalObjectStore(tmp_path / "log")
    async with LocalRuntime(ObjectStoreJournal(store, own_store=False),
                            poll_interval=0.05).add(svc).create() as rt:
        await rt.run(add, "slow", Add(amount=1))
        await asyncio.wait_for(started.wait(), 10)
    async with LocalRuntime(ObjectStoreJournal(store, own_store=False), dispatch=False
                            ).add(svc).create() as again:
        assert await again.deadletters() == []


async def test_actions_pending_at_start_run_once_the_runtime_takes_calls(tmp_path, caplog):
    """Events written while no dispatcher ran: the next runtime's dispatcher starts only once
    the runtime accepts calls. Its first actions used to fail with 'the runtime is not
    started' (the dispatcher ran inside start()) and ran again after a backoff."""
    from talix_ray.objectstore import LocalObjectStore

    store = LocalObjectStore(tmp_path / "log")
    async with LocalRuntime(ObjectStoreJournal(store, partitions=4, own_store=False),
                            dispatch=False, views=False, timers=False
                            ).add(domain.service).create() as rt:
        await asyncio.gather(*(rt.run(domain.add, f"s{i}", domain.Add(amount=1))
                               for i in range(200)))
    async with LocalRuntime(ObjectStoreJournal(store, partitions=4, own_store=False),
                            views=False, timers=False, poll_interval=0.05, max_concurrency=64
                            ).add(domain.service).create() as rt:
        await rt.settle(60)
        entries = [e for i in range(200) for e in await rt.load_state(domain.ledger, f"s{i}")]
        assert len(entries) == 200
    failures = [r.getMessage() for r in caplog.records if "failed (attempt" in r.getMessage()]
    assert failures == []
