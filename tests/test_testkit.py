"""The testkit as the README shows it: no warnings at exit, no views unless asked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from talix_ray import ConfigurationError, Testkit

from . import domain

ROOT = Path(__file__).parent.parent


def test_a_testkit_left_open_exits_quietly():
    script = (
        "from tests import domain\n"
        "from talix_ray import Testkit\n"
        "kit = Testkit(domain.service)\n"
        "kit.run(domain.add, 'a', domain.Add(amount=1))\n"
        "kit.settle()\n"
        "assert kit.state(domain.counters, 'a').total == 1\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # no "Task was destroyed but it is pending!"


def test_views_run_only_when_asked():
    from services import expenses

    with Testkit(expenses.service) as kit, pytest.raises(ConfigurationError,
                                                         match="runs no views"):
        kit.runtime.views  # noqa: B018
    with Testkit(expenses.service, views=True) as kit:
        assert "expenses" in kit.runtime.views.names


def test_close_is_idempotent_and_the_kit_can_be_used_as_a_context():
    with Testkit(domain.service) as kit:
        kit.run(domain.add, "a", domain.Add(amount=2))
        assert kit.state(domain.counters, "a").total == 2
    kit.close()
