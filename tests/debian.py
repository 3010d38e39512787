"""Programs the tests need from Debian's packages (Chromium, pgbouncer): installed with
apt-get when missing, as a new machine's first `make test` would (root, no prompts), or the
test is skipped with the reason."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def _apt(args: list[str]) -> bool:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        done = subprocess.run(
            args, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=900
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def ensure(program: Path, *packages: str) -> str:
    """`program`'s path, installing `packages` first if it is missing; else skip."""
    if program.exists():
        return str(program)
    install = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    if shutil.which("apt-get") is None:
        pytest.skip(f"{program.name} is not installed and this system has no apt-get")
    if os.geteuid() != 0:
        pytest.skip(f"{program.name} is not installed and installing it needs root: {install}")
    if not _apt(install):
        _apt(["apt-get", "update"])
        _apt(install)
    if not program.exists():
        pytest.skip(f"{program.name} could not be installed with apt-get (no package source?)")
    return str(program)
