"""Shared fixtures: in-process runs use sacred's "sys" capture, which cooperates with pytest's."""

from __future__ import annotations

from pathlib import Path

import pytest
from sacred import SETTINGS

SETTINGS.CAPTURE_MODE = "sys"

# MongoDB server, Omniboard and headless Chromium fixtures (real processes on 127.0.0.1); real runs for the blowtorch command.
pytest_plugins = ["tests.integration.mongo_servers", "tests.integration.cli_runs"]


def pytest_collection_modifyitems(items):
    """Everything under tests/unit is `fast`: no subprocess, no server, no sacred run (make test-fast)."""
    unit = Path(__file__).parent / "unit"
    for item in items:
        if unit in Path(item.path).parents:
            item.add_marker(pytest.mark.fast)


@pytest.fixture(autouse=True)
def _work_in_tmp_path(tmp_path, monkeypatch):
    """Every test runs in its own directory, so default save paths ('train_logs') never mix."""
    monkeypatch.chdir(tmp_path)
