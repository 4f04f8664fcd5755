"""Files that ship inside the package: the site's templates and static assets.

`site/` sits at the top of the repository (design card) and is installed as the
package `jobs.site`, so the same lookup works from a wheel and from a checkout.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable


def site_root() -> Traversable:
    """The installed `site/` directory (templates/ and static/)."""
    return files("jobs.site")


def site_templates() -> Traversable:
    """The Jinja2 templates of the published site."""
    return site_root() / "templates"


def site_static() -> Traversable:
    """Static assets copied verbatim into the published site."""
    return site_root() / "static"
