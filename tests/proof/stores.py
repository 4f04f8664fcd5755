"""Fresh stores for the proofs, from the shared `store_factory` fixture (local directory and SeaweedFS)."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from jobs.core.store import LocalStore, S3Store, Store, open_store


def open_fast(url: str) -> Store:
    """Open a store URL; a local one without fsync (see `fresh_store`)."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return LocalStore(unquote(parts.path), fsync=False)
    return open_store(url)


def fresh_store(store_factory, *, max_attempts: int | None = None) -> Store:
    """A new empty store of the factory's kind.

    The local store skips fsync: a simulated kill never loses the page cache, and the
    proofs run hundreds of cycles; atomicity (rename under a lock) is unchanged. For S3,
    `max_attempts` sets botocore's retry budget (the store URL's parameter).
    """
    url = store_factory.url()
    return open_fast(url + (f"&max_attempts={max_attempts}" if max_attempts and store_factory.kind == "s3" else ""))


def second_client(store: Store) -> Store:
    """The same store through its own connection (and, for S3, its own retry quota): another process."""
    if isinstance(store, S3Store):
        return S3Store(store.bucket, store.prefix, endpoint_url=store.client.meta.endpoint_url,
                       region=store.client.meta.region_name)
    assert isinstance(store, LocalStore)
    return LocalStore(store.root, fsync=False)
