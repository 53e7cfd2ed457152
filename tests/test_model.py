"""The model: event types, stores, commands, actions, names, errors."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from talix_ray import (
    ConfigurationError,
    Event,
    EventStore,
    EventType,
    Service,
    UnknownEventType,
    ValidationError,
    action,
    every,
    http,
    on_event,
    on_queue,
    query,
)
from talix_ray.model import StoredEvent, check_aggregate_id, check_name

from .domain import added, counters


class V2(BaseModel):
    amount: int
    currency: str


def test_event_type_validates_payload_and_names_the_field():
    with pytest.raises(ValidationError) as err:
        added(amount="lots")
    assert "field 'amount'" in str(err.value)
    assert err.value.errors[0]["field"] == "amount"
    assert added(amount=3).payload.amount == 3


def test_event_type_checks_its_declaration():
    with pytest.raises(ConfigurationError, match="invalid event type name"):
        EventType("has space", V2)
    with pytest.raises(ConfigurationError, match="pydantic model"):
        EventType("X", dict)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="no upcaster from version"):
        EventType("X", V2, version=3, upcasters={1: lambda p: p})


def test_upcasters_bring_old_payloads_to_the_current_version():
    v2 = EventType("COUNTERS:ADDED", V2, version=2,
                   upcasters={1: lambda p: {**p, "currency": "EUR"}})
    store = EventStore("money", [v2], lambda s, e: e.payload)
    old = StoredEvent("money", "a", 1, "COUNTERS:ADDED", {"amount": 5}, 0, schema_version=1)
    ev = store.decode(old)
    assert ev.payload == V2(amount=5, currency="EUR")
    future = StoredEvent("money", "a", 1, "COUNTERS:ADDED", {"amount": 5}, 0, schema_version=7)
    with pytest.raises(UnknownEventType, match="schema version 7"):
        store.decode(future)


def test_unknown_event_type_in_a_stream_is_a_clear_error():
    rec = StoredEvent("counters", "c1", 4, "COUNTERS:VANISHED", {}, 0)
    with pytest.raises(UnknownEventType) as err:
        counters.decode(rec)
    msg = str(err.value)
    assert "COUNTERS:VANISHED" in msg and "counters/c1@4" in msg and "COUNTERS:ADDED" in msg


def test_stored_payload_that_no_longer_validates_names_event_and_field():
    rec = StoredEvent("counters", "c1", 2, "COUNTERS:ADDED", {"amount": "x"}, 0)
    with pytest.raises(ValidationError, match=r"counters/c1@2.*field 'amount'"):
        counters.decode(rec)


def test_commands_need_a_model_annotated_input():
    store = EventStore("s", [added], lambda s, e: s)
    with pytest.raises(ConfigurationError, match="annotate the input"):
        @store.command
        def bad(state, input: dict):  # type: ignore[no-untyped-def]
            return None
    with pytest.raises(ConfigurationError, match="takes"):
        @store.command
        def bad2(state):  # type: ignore[no-untyped-def]
            return None


def test_names_and_ids_are_validated():
    assert check_aggregate_id("doc-1:ä") == "doc-1:ä"
    for bad in ["", "a/b", "a\\b", "x\x00", "tab\there", "a" * 257, "..", 5]:
        with pytest.raises(ValidationError, match="aggregate id"):
            check_aggregate_id(bad)
    for bad in ["Upper", "1abc", "with space", "", "a/b", "x" * 64]:
        with pytest.raises(ValidationError):
            check_name("store", bad)


class In(BaseModel):
    x: int


def test_action_declarations_are_checked():
    with pytest.raises(ConfigurationError, match="async"):
        @action(http.post("/x"))
        def sync_action(input: In, ctx):  # type: ignore[no-untyped-def]
            return None
    with pytest.raises(ConfigurationError, match="pydantic model"):
        @action(on_queue("q"))
        async def untyped(input, ctx):  # type: ignore[no-untyped-def]
            return None
    with pytest.raises(ConfigurationError, match=r"Event\[Payload\]"):
        @action(on_event(added))
        async def wrong(input: In, ctx):  # type: ignore[no-untyped-def]
            return None
    with pytest.raises(ConfigurationError, match="HTTP method"):
        http("FETCH", "/x")
    with pytest.raises(ConfigurationError, match="interval"):
        every("soon")
    assert every("1.5s").interval.total_seconds() == 1.5
    assert every("5m").interval.total_seconds() == 300

    @action(on_event(added), num_cpus=2)
    async def fine(event: Event[BaseModel], ctx):  # type: ignore[no-untyped-def]
        return None

    assert fine.resources.num_cpus == 2 and fine.event_trigger is not None


def test_service_rejects_duplicate_names():
    other = EventStore("counters", [added], lambda s, e: s)
    with pytest.raises(ConfigurationError, match="two stores named counters"):
        Service("x", stores=[counters, other])


def test_reducer_hash_changes_with_the_code():
    a = EventStore("a", [added], lambda s, e: 1)
    b = EventStore("a", [added], lambda s, e: 2)
    assert a.reducer_hash != b.reducer_hash
    assert a.reducer_hash == a.reducer_hash


def test_annotations_resolve_in_the_defining_module_not_the_callers_frame():
    """Registration reads no caller frame: a model local to a function is not found through
    a string annotation (this module has ``from __future__ import annotations``), and the
    error says what to do."""
    class LocalIn(BaseModel):
        x: int

    rule = "define the model at module level"
    with pytest.raises(ConfigurationError, match=rule):
        @counters.command(name="local_only")
        def local_only(state, input: LocalIn):  # type: ignore[no-untyped-def]
            return None
    assert "local_only" not in counters.commands
    with pytest.raises(ConfigurationError, match=rule):
        @action(http.post("/local"))
        async def local_action(input: LocalIn, ctx):  # type: ignore[no-untyped-def]
            return None
    with pytest.raises(ConfigurationError, match=rule):
        @query()
        async def local_query(input: LocalIn, ctx):  # type: ignore[no-untyped-def]
            return None
    # an annotation that is the class itself (not a string) needs no lookup at all
    def decide(state, input):  # type: ignore[no-untyped-def]
        return None
    decide.__annotations__ = {"input": LocalIn}
    store = EventStore("scratch", [added], lambda s, e: s)
    assert store.command(decide).input_model is LocalIn


def test_no_frame_inspection_in_the_framework():
    import pathlib

    import talix_ray

    root = pathlib.Path(talix_ray.__file__).parent
    for path in root.rglob("*.py"):
        text = path.read_text()
        for hack in ("_getframe", "f_back", "currentframe", "inspect.stack", "f_locals"):
            assert hack not in text, f"{path.relative_to(root)} uses {hack}"


def test_a_service_is_located_by_its_parts_modules_or_an_explicit_module():
    import services.documents
    from talix_ray.runtime.ray.spec import locate

    from . import domain

    assert locate(domain.service) == ("tests.domain", "service")
    assert locate(domain.plain_service) == ("tests.domain", "plain_service")
    # parts in submodules (services.documents.model/actions), the service in the package
    assert locate(services.documents.service) == ("services.documents", "service")
    homes = services.documents.service.home_modules()
    assert homes[:3] == ["services.documents.model", "services.documents", "services"]
    # assembled in a module that defines none of its parts: found among imported modules
    from . import assembled_app

    assert locate(assembled_app.service) == ("tests.assembled_app", "service")
    # built in a function: found nowhere, travels pickled
    assert locate(Service("counting", stores=[counters])) is None
    explicit = Service("counting", stores=[counters], module="tests.domain")
    assert explicit.home_modules() == ["tests.domain"]
    with pytest.raises(ConfigurationError, match="module name"):
        Service("counting", module="")


class _Opaque:
    """A state type pydantic has no schema for."""


def _reduce_to_a_missing_name(state, event) -> NoSuchState | None:  # type: ignore[name-defined]  # noqa: F821
    return state


def _reduce_to_an_opaque_state(state: _Opaque | None, event: Event) -> _Opaque | None:
    return state


def test_a_store_that_cannot_snapshot_says_why(caplog):
    """No snapshots for a state pydantic cannot handle — and a warning that says so, naming
    the store, instead of snapshots silently off."""
    from .domain import reduce

    caplog.set_level("WARNING", logger="talix.model")
    missing = EventStore("missing", [added], _reduce_to_a_missing_name, snapshot_every=5)
    opaque = EventStore("opaque", [added], _reduce_to_an_opaque_state, snapshot_every=5)
    assert missing.state_adapter is None and opaque.state_adapter is None
    warned = {r.getMessage() for r in caplog.records}
    assert any("event store missing takes no snapshots" in m and "NoSuchState" in m
               for m in warned), warned
    assert any("event store opaque takes no snapshots" in m and "_Opaque" in m
               for m in warned), warned
    caplog.clear()
    # no return annotation: no snapshots, nothing to warn about; a model state: an adapter
    assert EventStore("bare", [added], lambda s, e: s).state_adapter is None
    assert EventStore("fine", [added], reduce).state_adapter is not None
    assert not caplog.records
