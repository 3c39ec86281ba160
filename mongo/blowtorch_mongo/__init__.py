"""Dev/test MongoDB tooling for blowtorch: a SecantusDB server, Omniboard and headless-Chromium screenshots.

Not part of the ``blowtorch`` package; the scripts in ``mongo/`` and ``tests/integration/mongo_servers.py``
import it by putting ``mongo/`` on ``sys.path``. Standard library + pymongo only.
"""

from .omniboard import (
    OMNIBOARD_VERSION,
    OmniboardHandle,
    install_omniboard,
    run_page_url,
    start_omniboard,
    stop_omniboard,
)
from .screenshot import find_chromium, screenshot
from .server import SECANTUS_PIN, ServerHandle, find_secantusd, mongo_uri, start_server, stop_server

__all__ = [
    "OMNIBOARD_VERSION",
    "SECANTUS_PIN",
    "OmniboardHandle",
    "ServerHandle",
    "find_chromium",
    "find_secantusd",
    "install_omniboard",
    "mongo_uri",
    "run_page_url",
    "screenshot",
    "start_omniboard",
    "start_server",
    "stop_omniboard",
    "stop_server",
]
