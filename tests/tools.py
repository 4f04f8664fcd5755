"""Tests that need an external tool skip on a laptop but fail in CI (CI=true)."""

from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    """True when running under CI, where a missing tool is an error, not a skip."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(what: str, hint: str) -> None:
    """Skip (laptop) or fail (CI) because `what` is not available."""
    message = f"{what} is not available ({hint})"
    if in_ci():
        pytest.fail(f"{message}; CI must install it (infra/test.sh)")
    pytest.skip(message)


def require_tool(tool: str, package: str) -> str:
    """Path of `tool`, or skip/fail naming the Debian package that provides it."""
    path = shutil.which(tool)
    if path is None:
        missing(f"tool {tool!r}", f"apt-get install {package}")
    return path
