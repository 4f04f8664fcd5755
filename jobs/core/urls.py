"""Where every published file lives under the site prefix: the one source of truth for site keys.

Names come from distro indexes and worker results, both untrusted: they become key
segments only through `segment` (jobs.core.model.safe_segment, plus a hashed form for
names too long for one segment), and hrefs only through `href`, which URL-quotes the key
(so the "%" of an escaped segment travels as "%25" and the host finds the file).
"""

from __future__ import annotations

import functools
from urllib.parse import quote

from jobs.core.model import SegmentError, Status, safe_segment

PAGE_SIZE = 100  # most rows of one list part (jobs.publish.site.plan): small, so one change rewrites little

# v0 paths rebuilderd's consumers build themselves (docs/design.md#feeds-that-existing-tools-read)
PKGS_LIST = "api/v0/pkgs/list"
DASHBOARD = "api/v0/dashboard"
PUBLIC_KEYS = "api/v0/public-keys"
V1_PUBLIC_KEYS = "api/v1/meta/public-keys"
INDEX_FEED = "api/v1/index.json"
QUEUE_FEED = "api/v1/queue.json"
WORKERS_FEED = "api/v1/workers.json"
REJECTED_FEED = "api/v1/rejected.json"  # results publish refused, for operators (docs/trust.md)
STATUS_FEED = "api/v1/status.json"  # written by every publish: when it ran, how old the newest result is
MAINTAINERS_FEED = "api/v1/maintainers/index.json"
INDEX_PAGE = "index.html"
FEEDS_PAGE = "feeds.html"
MAINTAINERS_PAGE = "maintainers/index.html"
SEARCH_PAGE = "search.html"
SEARCH_PREFIX = "api/v1/search/"  # the search index and its shards (jobs.publish.site.search)
SEARCH_INDEX = "api/v1/search/index.json"
REJECTED_PAGE = "rejected.html"
REGRESSIONS = "regressions.atom"
MANIFEST = "_manifest.parquet"
PENDING = "_pending.json"
LEGACY_MANIFEST = "_manifest.json"  # the JSON manifest of earlier versions
BUILDS_PREFIX = "api/v0/builds/"


def segment(value: str | None) -> str:
    """One key segment for a name; "-" stands for None (no release, no component)."""
    if value is None:
        return "-"
    if value == "-":
        return "%2D"  # keep the mapping one-to-one: a real "-" is not "no value"
    try:
        return safe_segment(value)
    except SegmentError:
        # Empty or too long to be a segment: a readable prefix and a digest. "," never
        # appears unescaped in a safe segment, so this cannot collide with a real name.
        import hashlib  # here, not at the top: OpenSSL's load is 5% of a `rebuildctl pkgs ls --name N`

        digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        try:
            prefix = safe_segment(value[:16])  # at most 16 * 12 escaped bytes
        except SegmentError:
            prefix = "name"
        return prefix + "," + digest


def href(key: str, root: str = "") -> str:
    """The URL of a site key relative to a page whose way back to the site root is `root`."""
    return root + quote(key, safe="/")


def relative(key: str, page: str) -> str:
    """The URL of site key `key` from the page at site key `page` (both untrusted-name-safe keys)."""
    # A key's segments never begin with "/" or contain ":" unescaped (safe_segment escapes
    # both, and quote() again), so the result can never read as an absolute or scheme URL.
    # Keys are normalised (no "", "." or ".." segments): the common directory prefix is
    # all there is to it (posixpath.relpath, which resolves against the cwd, took a third
    # of the time of rendering a package list).
    target, here = key.split("/"), page.split("/")[:-1]
    common = 0
    while common < min(len(here), len(target) - 1) and here[common] == target[common]:
        common += 1
    return quote("/".join([".."] * (len(here) - common) + target[common:]), safe="/")


def paged(base: str, page: int) -> str:
    """Page `page` (from 1) of a paginated list whose first page is `<base>.html`."""
    return f"{base}.html" if page == 1 else f"{base}-{page}.html"


@functools.lru_cache(maxsize=4096)  # a few suites, asked for by every row of their lists
def suite_path(distro: str, release: str | None, component: str | None, architecture: str) -> str:
    """The path of one suite (distro/release/component/architecture), "-" for a missing part."""
    return "/".join(segment(v) for v in (distro, release, component, architecture))


def status_base(path: str, status: Status) -> str:
    return f"suites/{path}/{status.value}"


def names_base(path: str) -> str:
    return f"suites/{path}/names"


def class_base(path: str, failure_class: str) -> str:
    return f"suites/{path}/class/{failure_class}"


def suite_page(path: str) -> str:
    return f"suites/{path}/index.html"


def suite_feed(path: str, what: str) -> str:
    """A suite's JSON feed: "index", a list ("BAD", "names", "class/<slug>") or a part ("BAD/py")."""
    return f"api/v1/suites/{path}/{what}.json"


def status_all_feed(path: str, status: Status) -> str:
    """A suite's whole status list in one columnar feed, for clients (jobs.publish.site.allfeeds).

    It sits beside the list's own feed "<STATUS>.json" (its parts live under "<STATUS>/", the
    suite's failure-class lists under "class/"): a status is one of four fixed words, so
    "<STATUS>.all.json" can be no other file's key.
    """
    return f"api/v1/suites/{path}/{status.value}.all.json"


def package_page(distro: str, name: str) -> str:
    return f"packages/{segment(distro)}/{segment(name)}.html"


def package_feed(distro: str, name: str) -> str:
    return f"api/v1/packages/{segment(distro)}/{segment(name)}.json"


def maintainer_page(name: str) -> str:
    """A maintainer's (Arch packager, Debian maintainer or uploader) page; "index" is the index's."""
    return f"maintainers/{_maintainer_segment(name)}.html"


def maintainer_atom(name: str) -> str:
    """A maintainer's Atom feed: their packages' latest verdicts, newest first."""
    return f"maintainers/{_maintainer_segment(name)}.atom"


def maintainer_feed(name: str) -> str:
    return f"api/v1/maintainers/{_maintainer_segment(name)}.json"


def _maintainer_segment(name: str) -> str:
    seg = segment(name)
    return "%69ndex" if seg == "index" else seg  # the index's own key stays the index's


def build_file(v0_id: int, what: str) -> str:
    """A build's file under the v0 path consumers know: log, diffoscope, attestation, diffoscope.html."""
    return f"api/v0/builds/{int(v0_id)}/{what}"
