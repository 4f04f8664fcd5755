"""The publish's writer pool: object writes in flight while the caller renders the next batch.

It knows nothing of the site: `Writer` runs calls on its threads in steps (a step starts once
the steps before it have landed), and `writers_for` says how many threads suit a store. The
site's writer (`jobs.publish.site.sitewriter`) and its stream (`jobs.publish.site.streaming`)
hand it their puts.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobs.core.store import Store

WRITERS = 8  # object writes in flight at once on S3 or a local store with fsync (a round trip or an fsync each)
LOCAL_WRITERS = 1  # on a local directory without fsync: one thread, writing while the next batch renders


def writers_for(store: Store) -> int:
    """How many object writes to keep in flight on `store`.

    A write to S3 is a round trip and one to a local directory with fsync waits for the disk:
    `WRITERS` at once hide that. A write to a local directory without fsync is a few cheap system
    calls and the interpreter's work between them: more threads only add lock hand-offs (the GIL,
    and the kernel's lock of the one directory every package page goes to), so one thread writes
    while the caller renders (measured: docs/benchmarks.md)."""
    if str(getattr(store, "url", "")).startswith("file:") and getattr(store, "fsync", True) is False:
        return LOCAL_WRITERS
    return WRITERS


_STOP = object()


class Writer:
    """Calls on up to `threads` threads, fed in order through a bounded queue, in steps.

    `submit(step, items, call, done)` queues `call(item)` for each item (blocking while `depth`
    items are waiting, so what is queued stays bounded) and returns: the caller renders the next
    batch while these are written. Items of one step run concurrently; an item of another step
    than the last one submitted starts only once everything submitted before it has finished
    (a step's files may link the previous steps' ones). `done(item, result)` is called on the
    writing thread, one call at a time. The first error stops every item that has not started
    and is raised by the next `submit` or `wait`. `threads` 0: each call runs in `submit` itself.
    Threads start with the first item and stop at `close` (or the end of a `with` block).
    """

    def __init__(self, threads: int, depth: int = 2048) -> None:
        self.size, self.depth = max(threads, 0), max(depth, 1)
        self.queue: queue.Queue[Any] = queue.Queue(self.depth)
        self.threads: list[threading.Thread] = []
        self.step: Hashable = None  # the step of the items submitted last
        self.error: BaseException | None = None  # the first error of a call (raised in the caller's thread)
        self.failed = False  # an error happened: nothing more is started
        self.lock = threading.Lock()

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is not None:
            self.failed = True  # the caller failed: what is queued is not written
        self.close()

    def submit(self, step: Hashable, items: Iterable[Any], call: Callable[[Any], Any],
               done: Callable[[Any, Any], None] | None = None) -> None:
        self._raise()
        if step != self.step:
            self.wait()
            self.step = step
        for item in items:
            if self.failed:
                return  # the caller failed before: nothing more is written
            if self.size == 0:
                try:
                    result = call(item)
                except BaseException as exc:
                    self.failed, self.error = True, exc
                    raise
                if done is not None:
                    done(item, result)
                continue
            if len(self.threads) < self.size:
                thread = threading.Thread(target=self._work, name=f"site-write-{len(self.threads)}", daemon=True)
                thread.start()
                self.threads.append(thread)
            self.queue.put((item, call, done))
            self._raise()

    def wait(self) -> None:
        """Until every item submitted has been handled; the first error is raised."""
        if self.threads:
            self.queue.join()
        self._raise()

    def close(self) -> None:
        """Stop the threads once what is queued is handled (skipped after an error)."""
        for _ in self.threads:
            self.queue.put(_STOP)
        for thread in self.threads:
            thread.join()
        self.threads = []

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def _work(self) -> None:
        while True:
            task = self.queue.get()
            try:
                if task is _STOP:
                    return
                if self.failed:
                    continue
                item, call, done = task
                try:
                    result = call(item)
                    if done is not None:
                        with self.lock:
                            done(item, result)
                except BaseException as exc:  # Killed stands for SIGKILL in the tests: it stops the rest too
                    with self.lock:
                        if not self.failed:
                            self.failed, self.error = True, exc
            finally:
                self.queue.task_done()
