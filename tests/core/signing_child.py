"""Child process for tests/core/test_signing.py's key-creation race (kept tiny: spawn imports it)."""

from __future__ import annotations


def create_after_barrier(barrier, path: str, queue, all_see_missing: bool) -> None:
    """Wait for every sibling, then load-or-create the key; report (public key, took create path)."""
    from jobs.core.signing import keys

    created = []
    real = keys._create_exclusive

    def spy(*args: object) -> None:
        created.append(True)
        real(*args)

    keys._create_exclusive = spy
    if all_see_missing:  # make every process take the create path: link() alone must arbitrate
        keys.os.path.lexists = lambda _path: False
    barrier.wait()
    queue.put((keys.public_key_b64(keys.load_or_create_key(path).public_key()), bool(created)))
