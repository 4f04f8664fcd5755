"""`rebuilder sync`: distro indexes → package-state snapshots and the queue.

Arrow's allocator for a sync process is jemalloc (on Linux, unless ARROW_DEFAULT_MEMORY_POOL
says otherwise): pyarrow's default there, mimalloc, keeps the memory of each freed table and
Parquet write for reuse, so a sync's snapshot and queue, made one after the other, add up
(bookworm main amd64: peak RSS 312 MiB with mimalloc, 285 MiB with jemalloc; docs/benchmarks.md).
Arrow reads the choice once, when pyarrow is first imported, so it is made here, before any sync
module imports pyarrow, and not left in the environment for child processes. A process that
had already imported pyarrow keeps its allocator.
"""

import os
import sys

if sys.platform == "linux" and "pyarrow" not in sys.modules and "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
    os.environ["ARROW_DEFAULT_MEMORY_POOL"] = "jemalloc"
    try:
        import pyarrow  # noqa: F401 - reads the variable
    finally:
        del os.environ["ARROW_DEFAULT_MEMORY_POOL"]
