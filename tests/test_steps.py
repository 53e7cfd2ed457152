"""Durable steps: a retried action replays what it did instead of acting again."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from pydantic import BaseModel

from talix_ray import Context, DomainError, Event, Retry, Service, Testkit, action, on_event
from talix_ray.engine.steps import InvocationRecord, invocation_id, invocations

from . import bank_domain as bank
from . import domain
from .test_runtime_semantics import (  # noqa: F401 - fixtures
    journal_kind,
    make_runtime,
    new_journal,
    storage,
)


async def _balance(rt, account: str) -> int:
    state = await rt.load_state(bank.accounts, account)
    return state.balance if state else 0


async def _wait_for(cond, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_a_retried_saga_never_takes_the_other_branch(make_runtime):  # noqa: F811
    """The saga's deposit to a missing account is rejected, it refunds, then crashes; the
    target account opens before the retry. The retry must replay the rejection (refunded),
    not deposit now: no money is created."""
    async with make_runtime(bank.service).create() as rt:
        await rt.run(bank.open_account, "src", bank.Open())
        await rt.run(bank.deposit, "src", bank.Amount(amount=100))
        await rt.run(bank.request_transfer, "t1", bank.Request(
            source="src", target="dst", amount=30, crash_after_refund=True))

        async def refunded() -> bool:
            events = await rt.get_events(bank.accounts, "src")
            return len(events) >= 4  # opened, deposited, withdrawn, refund

        await _wait_for(refunded)
        await rt.run(bank.open_account, "dst", bank.Open())  # meanwhile: the target opens
        await rt.settle(60)
        transfer = await rt.load_state(bank.transfers, "t1")
        assert transfer.status == "REFUNDED"
        assert await _balance(rt, "src") == 100 and await _balance(rt, "dst") == 0
        assert await rt.deadletters() == []


async def test_a_retry_replays_steps_without_sending_them_again(make_runtime):  # noqa: F811
    async with make_runtime(bank.service).create() as rt:
        await rt.run(bank.open_account, "a", bank.Open())
        await rt.run(bank.open_account, "b", bank.Open())
        await rt.run(bank.deposit, "a", bank.Amount(amount=50))
        await rt.run(bank.request_transfer, "t2", bank.Request(source="a", target="b",
                                                               amount=20))
        await rt.settle(60)
        assert (await _balance(rt, "a"), await _balance(rt, "b")) == (30, 20)
        record = await rt.load_state(invocations, invocation_id(
            "transfer_saga", "transfers:t2:1"))
        assert isinstance(record, InvocationRecord)
        assert [s.target for s in record.steps.values()] == [
            "accounts.withdraw@a", "accounts.deposit@b", "transfers.complete_transfer@t2"]


# -- in-process details (the testkit's LocalRuntime) -------------------------------------------
class Tick(BaseModel):
    n: int


calls: list[str] = []


class Outside:
    """An outside service whose calls are counted."""

    def quote(self, n: int) -> Tick:
        calls.append(f"quote:{n}")
        return Tick(n=n * 10)


@action(on_event(domain.added), retry=Retry(max_attempts=3, initial_backoff=0.01))
async def uses_a_step(event: Event[domain.Added], ctx: Context) -> None:
    quote = await ctx.step("quote", Outside().quote, event.payload.amount)
    assert isinstance(quote, Tick)
    await ctx.run(domain.book, event.aggregate_id,
                  domain.Book(source=f"{event.id}:{quote.n}", amount=quote.n))
    if ctx.attempt == 1:
        raise RuntimeError("crash after the booking")


def test_ctx_step_runs_once_and_replays_typed():
    calls.clear()
    kit = Testkit(Service("steps", stores=[domain.counters, domain.ledger],
                          actions=[uses_a_step]))
    with kit:
        kit.run(domain.add, "s1", domain.Add(amount=4))
        kit.settle()
        assert calls == ["quote:4"]  # not called again by the retry
        assert [e.source for e in kit.state(domain.ledger, "s1")] == ["counters:s1:1:40"]


@action(on_event(domain.added), retry=Retry(max_attempts=2, initial_backoff=0.01))
async def changes_its_mind(event: Event[domain.Added], ctx: Context) -> None:
    target = "first" if ctx.attempt == 1 else "second"  # not deterministic
    await ctx.run(domain.book, target, domain.Book(source=event.id, amount=1))
    if ctx.attempt == 1:
        raise RuntimeError("crash")


def test_a_retry_that_diverges_stops_with_non_deterministic_action():
    kit = Testkit(Service("diverge", stores=[domain.counters, domain.ledger],
                          actions=[changes_its_mind]))
    with kit:
        kit.run(domain.add, "d1", domain.Add(amount=1))
        kit.settle()
        [letter] = kit.deadletters()
        assert "NonDeterministicAction" in letter["error"]
        assert "step 1" in letter["error"] and "ledger.book@second" in letter["error"]
        assert kit.state(domain.ledger, "second") is None  # nothing sent to the new target


@action(on_event(domain.added), retry=Retry(max_attempts=3, initial_backoff=0.01))
async def rejected_then_retried(event: Event[domain.Added], ctx: Context) -> None:
    with contextlib.suppress(DomainError):
        await ctx.run(domain.add_below, event.aggregate_id + "-x", domain.Limit(
            amount=5, limit=3 if ctx.attempt == 1 else 100))
    if ctx.attempt == 1:
        raise RuntimeError("crash")


def test_a_recorded_rejection_is_replayed_even_if_the_command_would_pass_now():
    kit = Testkit(Service("rej", stores=[domain.counters], actions=[rejected_then_retried]))
    with kit:
        kit.run(domain.add, "r1", domain.Add(amount=1))
        kit.settle()
        assert kit.state(domain.counters, "r1-x") is None
        assert kit.deadletters() == []


def test_non_durable_actions_record_nothing():
    @action(on_event(domain.added), durable=False)
    async def plain(event: Event[domain.Added], ctx: Context) -> None:
        await ctx.run(domain.book, event.aggregate_id, domain.Book(source=event.id, amount=1))

    kit = Testkit(Service("plain", stores=[domain.counters, domain.ledger], actions=[plain]))
    with kit:
        kit.run(domain.add, "p1", domain.Add(amount=1))
        kit.settle()
        assert kit.state(invocations, invocation_id("plain", "counters:p1:1")) is None
        assert kit.state(domain.ledger, "p1") is not None


@pytest.mark.parametrize("bad", ["", "x" * 129])
def test_step_names_are_checked(bad):
    from talix_ray import ValidationError

    @action(on_event(domain.added), retry=Retry(max_attempts=1))
    async def named(event: Event[domain.Added], ctx: Context) -> None:
        await ctx.step(bad, lambda: 1)

    kit = Testkit(Service("names", stores=[domain.counters], actions=[named]))
    with kit:
        kit.run(domain.add, "n1", domain.Add(amount=1))
        kit.settle()
        [letter] = kit.deadletters()
        assert ValidationError.__name__ in letter["error"]
