"""Files that ship inside the package: the site's templates and static assets.

`site/` sits at the top of the repository (design card) and is installed as the
package `jobs.site`, so the same lookup works from a wheel and from an editable install. Code
run straight from a checkout whose `jobs` is not the installed one (`python -m bench` in the
source directory next to a wheel install) has no `jobs.site`: it reads the checkout's `site/`.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

_CHECKOUT_SITE = Path(__file__).resolve().parents[2] / "site"


def site_root() -> Traversable:
    """The installed `site/` directory (templates/ and static/), else the checkout's."""
    try:
        return files("jobs.site")
    except ModuleNotFoundError:
        if (_CHECKOUT_SITE / "templates").is_dir():
            return _CHECKOUT_SITE
        raise


def site_templates() -> Traversable:
    """The Jinja2 templates of the published site."""
    return site_root() / "templates"


def site_static() -> Traversable:
    """Static assets copied verbatim into the published site."""
    return site_root() / "static"
