"""The embedded demo: a fixture Arch Linux repository built on the spot with makepkg.

``rebuilder run`` on a fresh machine and the tests of sync, work and publish use it. It serves an
Arch mirror layout, and rebuilds of its packages reproduce them bit for bit, except the two that
are meant to fail. Package data: ``pkgbuilds/<pkgbase>/PKGBUILD``.
"""

from jobs.demo.archrepo import (
    FTBFS,
    PKGBASES,
    REPO,
    REPRODUCIBLE,
    UNREPRODUCIBLE,
    BuiltPackage,
    FixtureRepo,
    build_fixture_repo,
    load_fixture_repo,
)
from jobs.work.backends.makepkg import BuildFailed, BuildSettings, build_package

__all__ = [
    "FTBFS", "PKGBASES", "REPO", "REPRODUCIBLE", "UNREPRODUCIBLE", "BuildFailed", "BuildSettings",
    "BuiltPackage", "FixtureRepo", "build_fixture_repo", "build_package", "load_fixture_repo",
]
