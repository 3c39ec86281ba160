"""pytest fixtures (no tests) for integration tests that need MongoDB, Omniboard or a headless browser.

They run real processes on 127.0.0.1, started and stopped by pid through ``mongo/blowtorch_mongo``:
SecantusDB (a MongoDB-wire server from PyPI; ``mongod`` has no package here), Omniboard 2.16.1 from npm
(cached in ``mongo/.omniboard/``) and Debian's headless Chromium. A missing tool fails the test with
the command that installs it; nothing is skipped. Enable them in tests/conftest.py (pytest refuses
``pytest_plugins`` in a deeper conftest)::

    pytest_plugins = ["tests.integration.mongo_servers"]

or in tests/integration/conftest.py: ``from tests.integration.mongo_servers import *  # noqa: F403``.

Fixtures:
    mongo_server        session: a running server; ``.uri`` (with retryWrites=false), ``.host``,
                        ``.port``, ``.pid``, ``.sacred_m_arg(db)`` for sacred's ``-m``, ``.client()``
    mongo_db_name       function: a fresh database name on that server, dropped afterwards
    omniboard           function: factory ``omniboard(db_name) -> OmniboardHandle`` (``.url``,
                        ``.run_url(run_id)``, ``.get_json("/Runs")``); stopped after the test
    page_screenshot     function: factory ``page_screenshot(url, name="page.png", **kw) -> Path``
                        writing a PNG under the test's tmp_path
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "mongo"))
from blowtorch_mongo import (  # noqa: E402
    OmniboardHandle,
    ServerHandle,
    find_chromium,
    find_secantusd,
    install_omniboard,
    screenshot,
    start_omniboard,
    start_server,
)

__all__ = ["mongo_db_name", "mongo_server", "omniboard", "omniboard_entry", "page_screenshot"]


def _require(find: Callable[[], object]) -> None:
    """Turn "tool not installed" into a test failure that says what to install (CI installs them)."""
    try:
        find()
    except FileNotFoundError as err:
        pytest.fail(str(err), pytrace=False)


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    # One in-memory server per session (per xdist worker): ~0.5 s to start. A fresh server per
    # session also keeps SecantusDB clear of its slowdown after ~10,000 retryable writes, which
    # sacred's `-m host:port:db` cannot switch off.
    _require(find_secantusd)
    handle = start_server(log_path=tmp_path_factory.mktemp("secantusd") / "secantusd.log")
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def mongo_db_name(mongo_server: ServerHandle) -> Iterator[str]:
    name = f"bt_{uuid.uuid4().hex[:16]}"  # sacred numbers runs per database: fresh db, run ids from 1
    yield name
    with mongo_server.client() as client:
        client.drop_database(name)


@pytest.fixture(scope="session")
def omniboard_entry() -> Path:
    """Omniboard installed once (npm, ~40 s the first time, then cached in mongo/.omniboard/)."""
    try:
        return install_omniboard()
    except FileNotFoundError as err:  # npm missing
        pytest.fail(str(err), pytrace=False)


@pytest.fixture
def omniboard(
    mongo_server: ServerHandle, omniboard_entry: Path, tmp_path: Path
) -> Iterator[Callable[[str], OmniboardHandle]]:
    started: list[OmniboardHandle] = []

    def start(db_name: str) -> OmniboardHandle:
        log_path = tmp_path / f"omniboard-{len(started)}.log"
        try:
            handle = start_omniboard(mongo_server.host, mongo_server.port, db_name, log_path=log_path)
        except FileNotFoundError as err:  # node itself missing
            pytest.fail(str(err), pytrace=False)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop()


@pytest.fixture
def page_screenshot(tmp_path: Path) -> Callable[..., Path]:
    _require(find_chromium)

    def take(url: str, name: str = "page.png", **kwargs: Any) -> Path:
        return screenshot(url, tmp_path / name, **kwargs)

    return take
