"""The package installs from a wheel with its site templates and console scripts."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # No build isolation: tests run offline, with setuptools from the test extras.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(ROOT)], check=True, cwd=out)
    (whl,) = out.glob("rebuilder-*.whl")
    return whl


def test_wheel_ships_every_package_and_the_site(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {str(p.parent.relative_to(ROOT)) for p in (ROOT / "jobs").rglob("__init__.py")}
    for pkg in packages:
        assert f"{pkg}/__init__.py" in names, f"{pkg} missing from the wheel: list it in pyproject.toml"
    for asset in (ROOT / "site").rglob("*"):
        if asset.is_file() and "__pycache__" not in asset.parts:
            assert f"jobs/site/{asset.relative_to(ROOT / 'site')}" in names
    for pkgbuild in (ROOT / "jobs" / "demo" / "pkgbuilds").glob("*/PKGBUILD"):
        assert str(pkgbuild.relative_to(ROOT)) in names  # the embedded demo builds from these
    for script in ("rebuilder-archlinux-local", "rebuilder-debian-local", "rebuilder-archlinux.sh",
                   "rebuilder-debian.sh"):
        info = zipfile.ZipFile(wheel).getinfo(f"jobs/work/backends/{script}")
        assert (info.external_attr >> 16) & 0o111, f"{script} lost its exec bit"
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "rebuilder = jobs.cli_fast:main" in text and "rebuildctl = jobs.ctl.fast:main" in text
    assert "rebuilder-backend-archlinux-local = jobs.work.backends.archlinux_local:main" in text
    assert "rebuilder-backend-debian-local = jobs.work.backends.debian_local:main" in text


def test_installed_wheel_finds_its_templates(wheel, tmp_path):
    target = tmp_path / "target"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                    str(wheel)], check=True)
    # -S: no site-packages, so neither the checkout nor an editable install can be found.
    code = ("import jobs, jobs.core.resources as r; print(jobs.__file__); "
            "print(sorted(p.name for p in r.site_templates().iterdir()))")
    out = subprocess.run([sys.executable, "-S", "-c", code], env={"PYTHONPATH": str(target)},
                         cwd=tmp_path, check=True, capture_output=True, text=True).stdout.splitlines()
    assert out[0].startswith(str(target))
    assert "base.html" in out[1]
