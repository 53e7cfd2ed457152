"""Shared fixtures."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from talix_ray import Testkit


@pytest.fixture
def testkit():
    """A testkit with the example services and a text analyzer."""
    from services import documents, expenses
    from services.documents import DocumentAnalyzer, TextAnalyzer

    kit = Testkit(documents.service, expenses.service).register(DocumentAnalyzer, TextAnalyzer())
    yield kit
    kit.close()
