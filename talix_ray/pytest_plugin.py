"""A pytest plugin for suites that touch Delta Lake views: ``-p talix_ray.pytest_plugin``.

``deltalake`` can abort the interpreter while it tears down its native thread pools at exit
(SIGABRT, "terminate called without an active exception") after all the work is done. With
this plugin the session ends, once every other plugin has finished and the summary is
printed, with ``os._exit(exit status)``: the exit code is pytest's, never the teardown's.
"""

from __future__ import annotations

import logging
import os
import sys

import pytest

_STATUS = pytest.StashKey[int]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remember pytest's exit status."""
    session.config.stash[_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave with pytest's exit status, skipping the interpreter's native teardown."""
    status = config.stash.get(_STATUS, None)
    if status is None or os.environ.get("TALIX_PYTEST_NORMAL_EXIT"):
        return
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
