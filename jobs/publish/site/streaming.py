"""Writing a site's package pages while they are rendered, a batch at a time: `SiteStream`.

A full publish renders a page and a feed for every package name; held in the `Site` until
`sitewriter.write_site`, they were most of its memory (gigabytes at a million builds). With a
stream attached (`build_site(..., write_to=SiteStream(...))`), `build_site` hands each batch of
rendered package pages and feeds to it and keeps only their manifest entries. What
`write_site` guarantees still holds:

- nothing is written before every key the stream may write is listed in `site/_pending.json`
  (the files of the site so far and every package page and feed about to be rendered); the
  list only grows until `write_site` removes it after the new manifest, so a publish killed
  at any instant is finished by the next one;
- the files of the site so far are written first, in `write_site`'s order: the static assets,
  then (on a first publish) the placeholder dashboard, then the build files the pages link,
  then the package pages (which link only those, the suite pages and the dashboard);
- a file whose content did not change is not written; a copy that failed is listed with an
  empty digest, to be retried by the next publish.

`write_site` then writes the rest of the site, merging the stream's entries into the manifest
(its `force` does not reach the files the stream wrote: they were compared with the manifest).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from jobs.core import progress
from jobs.core.layout import SITE
from jobs.core.store import Store
from jobs.core.urls import PENDING
from jobs.publish.site.sitewriter import (
    DASHBOARD,
    HTML,
    JSON,
    PLACEHOLDER,
    WRITERS,
    Entry,
    Manifest,
    Site,
    SiteFile,
    _each,
    _prefix,
    _put,
    _rank,
)

BATCH = 2048  # files rendered before they are written: the memory of a streamed publish's pages


class SiteStream:
    """Writes files of one publish's site as `build_site` renders them (see the module docstring)."""

    def __init__(self, store: Store, prefix: str = SITE, *, previous: Manifest, writers: int = WRITERS,
                 batch: int = BATCH) -> None:
        self.store, self.prefix, self.previous = store, _prefix(prefix), previous
        self.writers, self.batch = writers, batch
        self.pending: set[str] = set()  # the keys listed in _pending.json so far
        self.entries: dict[str, Entry] = {}  # manifest entries of the files handled (failed copies: "")
        self.unlisted: set[str] = set()  # the build files handled (not listed, never deleted)
        self.written = 0
        self.unchanged = 0
        self.placeholder = False  # whether the first publish's placeholder dashboard was written

    def expect(self, keys: Iterable[str]) -> None:
        """List these keys as about to change before any of them is written."""
        more = set(keys) - self.pending
        if more:
            self.pending |= more
            body = {"keys": sorted(self.pending), "builds_upto": self.previous.builds_upto}
            self.store.put(self.prefix + PENDING, json.dumps(body).encode(), content_type=JSON)

    def flush(self, site: Site, *, then: Iterable[str] = ()) -> None:
        """Write the files the site holds so far (its leaves: static assets, keys, build files) and forget
        them; `then`: the keys to be written next, listed as pending with them."""
        files = list(site.files.values())
        if any(_rank(f) > 0 for f in files):
            raise ValueError("only leaves are written before the rest of the site")
        self.write(site, files, then=then)
        for f in files:
            del site.files[f.key]

    def write(self, site: Site, files: list[SiteFile], *, then: Iterable[str] = ()) -> None:
        """Write these files now (changed ones only), in write_site's order, and keep their manifest entries."""
        progress.advance("render", len(files))  # as Site.add counts a file
        old = self.previous.files
        for f in files:
            if f.key in self.entries or f.key in self.unlisted:
                raise ValueError(f"site key {f.key!r} is written twice")
            if f.listed:
                self.entries[f.key] = Entry(f.digest, f.input)
            else:
                self.unlisted.add(f.key)
        changed = [f for f in files if not f.listed or f.key not in old or old[f.key].digest != f.digest]
        self.unchanged += len(files) - len(changed)
        self.expect([*then, *(f.key for f in changed if not f.every_run)])
        steps: dict[tuple[int, bool], list[SiteFile]] = {}
        for f in sorted(changed, key=lambda f: (_rank(f), f.key in old, f.key)):
            steps.setdefault((_rank(f), f.key in old), []).append(f)
        for step in steps.values():
            if not old and not self.placeholder and _rank(step[0]) >= 0:
                # A first publish: pages may link the dashboard once the static assets have landed.
                self.store.put(self.prefix + DASHBOARD, PLACEHOLDER, content_type=HTML)
                self.placeholder = True
            landed = _each(step, lambda f: _put(self.store, site.source, self.prefix, f), self.writers)  # type: ignore[arg-type]
            for f, ok in zip(step, landed):
                if ok:
                    self.written += 1
                else:
                    self.entries[f.key] = Entry("")  # retried by the next publish
