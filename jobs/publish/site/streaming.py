"""Writing a site's package pages while they are rendered, a batch at a time: `SiteStream`.

A full publish renders a page and a feed for every package name; held in the `Site` until
`sitewriter.write_site`, they were most of its memory (gigabytes at a million builds). With a
stream attached (`build_site(..., write_to=SiteStream(...))`), `build_site` hands each batch of
rendered package pages and feeds to it and keeps only their manifest entries. The stream
queues them for its writer threads (`writepool.Writer`, one set for the whole publish: as
many as suit the store, `writers_for`), which write them while the next batch is rendered; at
most one batch waits in the queue, so memory stays bounded. What `write_site` guarantees still
holds:

- nothing is written before every key the stream may write is listed in `site/_pending.json`
  (the files of the site so far and every package page and feed about to be rendered); the
  list only grows until `write_site` removes it after the new manifest, so a publish killed
  at any instant is finished by the next one;
- the files of the site so far are written first, in `write_site`'s order: the static assets,
  then (on a first publish) the placeholder dashboard, then the build files the pages link,
  and they have all landed before the first package page is queued (`flush`); then the
  package pages (which link only those, the suite pages, the maintainer pages and the
  dashboard), several batches' at once, except that a step of another kind (files new to the
  site after rewritten ones) starts only once what was queued before it has landed;
- a file whose content did not change is not written; a copy that failed is listed with an
  empty digest, to be retried by the next publish.

`write_site` then waits for the stream's writes, writes the rest of the site with the same
threads (and stops them), merging the stream's entries into the manifest (its `force` does not
reach the files the stream wrote: they were compared with the manifest).
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
    Entry,
    Manifest,
    Site,
    SiteFile,
    _prefix,
    _put,
    _rank,
)
from jobs.publish.site.writepool import Writer, writers_for

BATCH = 2048  # files rendered before they are written: the memory of a streamed publish's pages


class SiteStream:
    """Writes files of one publish's site as `build_site` renders them (see the module docstring).

    Its `writer` (`writepool.Writer`: `writers` threads, `writers_for(store)` if None) writes them
    while the next batch is rendered, at most `batch` files waiting; `write_site` writes the rest
    of the site with the same threads and stops them (`close`, or a `with` block, otherwise).
    """

    def __init__(self, store: Store, prefix: str = SITE, *, previous: Manifest, writers: int | None = None,
                 batch: int = BATCH) -> None:
        self.store, self.prefix, self.previous = store, _prefix(prefix), previous
        self.batch = batch
        self.writer = Writer(writers_for(store) if writers is None else writers, depth=batch)
        self.pending: set[str] = set()  # the keys listed in _pending.json so far
        self.entries: dict[str, Entry] = {}  # manifest entries of the files handled (failed copies: "")
        self.unlisted: set[str] = set()  # the build files handled (not listed, never deleted)
        self.written = 0
        self.unchanged = 0
        self.placeholder = False  # whether the first publish's placeholder dashboard was written

    def __enter__(self) -> SiteStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.writer.__exit__(*exc)

    def expect(self, keys: Iterable[str]) -> None:
        """List these keys as about to change before any of them is written."""
        more = set(keys) - self.pending
        if more:
            self.pending |= more
            body = {"keys": sorted(self.pending), "builds_upto": self.previous.builds_upto}
            self.store.put(self.prefix + PENDING, json.dumps(body).encode(), content_type=JSON)

    def flush(self, site: Site, *, then: Iterable[str] = ()) -> None:
        """Write the files the site holds so far (its leaves: static assets, keys, build files) and forget
        them; `then`: the keys to be written next, listed as pending with them. They have all landed
        when it returns (the next files may link them)."""
        files = list(site.files.values())
        if any(_rank(f) > 0 for f in files):
            raise ValueError("only leaves are written before the rest of the site")
        self.write(site, files, then=then)
        self.wait()
        for f in files:
            del site.files[f.key]

    def write(self, site: Site, files: list[SiteFile], *, then: Iterable[str] = ()) -> None:
        """Write these files (changed ones only), in write_site's order, and keep their manifest entries.

        They are queued: written while the caller renders the next ones (`wait` for them to land).
        Files of another step than those queued before (another tier, or new to the site after
        files that were not) start once those have landed.
        """
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
        for step, group in steps.items():
            if not old and not self.placeholder and step[0] >= 0:
                # A first publish: pages may link the dashboard once the static assets have landed.
                self.writer.wait()
                self.store.put(self.prefix + DASHBOARD, PLACEHOLDER, content_type=HTML)
                self.placeholder = True
            self.writer.submit(("write", *step), group, lambda f: _put(self.store, site.source, self.prefix, f),
                               self._landed)

    def wait(self) -> None:
        """Until every file queued has been written (or failed); the first error is raised."""
        self.writer.wait()

    def close(self) -> None:
        """Stop the writer's threads (what is queued is written first)."""
        self.writer.close()

    def _landed(self, file: SiteFile, ok: bool) -> None:  # on a writer thread, one at a time
        if ok:
            self.written += 1
        else:
            self.entries[file.key] = Entry("")  # retried by the next publish
