"""Real git repositories for the tests of what sacred records about a script's code."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git(directory: Path, *args: str) -> str:
    identity = ["-c", "user.name=test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false"]
    return subprocess.run(["git", *identity, *args], cwd=directory, check=True, capture_output=True, text=True).stdout.strip()


def repository(directory: Path, files: dict[str, str], remote: str | None = None) -> str:
    """A git repository with ``files`` committed; returns the commit."""
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(directory, "init", "-q")
    git(directory, "add", *files)
    git(directory, "commit", "-q", "-m", "first")
    if remote is not None:
        git(directory, "remote", "add", "origin", remote)
    return git(directory, "rev-parse", "HEAD")
