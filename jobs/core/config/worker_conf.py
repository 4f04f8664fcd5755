"""``/etc/rebuilderd-worker.conf``: one build worker's settings.

Key names are rebuilderd-worker's (``worker/src/config.rs``). ``endpoint`` is accepted and ignored:
our workers talk to the store, never to a daemon. ``supported_backends``, ``key_path`` and
``work_dir`` are ours.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, replace

from jobs.core.bounded import LIMITS
from jobs.core.config.fields import Table, TableMap, parse_table, setting
from jobs.core.config.kinds import Bool, Int, Secret, Str, StrList, Where, check_safe_name


@dataclass(frozen=True)
class BuildConfig:
    """``[build]``: limits of one backend run."""

    timeout: int = setting(
        Int(1), "Seconds before the backend's process group is terminated (SIGTERM, SIGKILL "
        "10 s later) and the log gets a timeout marker.", default=86400)
    max_bytes: int | None = setting(
        Int(0), "Build log limit in bytes: further output is dropped and a truncation marker "
        "appended, the build is *not* stopped; unset: no limit.", default=None)
    silent: bool = setting(
        Bool(), "Do not mirror build output to the worker's own stdout/stderr.", default=False)
    download_deadline: int = setting(
        Int(1), "Seconds each file the worker downloads before the build (package, `.buildinfo`) may take "
        "in total, however slowly the mirror sends (ours); past it the attempt is FAIL with the URL and "
        "the deadline, and the job is retried as usual.", default=LIMITS["download_deadline"].value)


@dataclass(frozen=True)
class DiffoscopeConfig:
    """``[diffoscope]``: explaining BAD results."""

    enabled: bool = setting(
        Bool(), "Run diffoscope on artifacts that did not reproduce and attach its output.",
        default=False)
    args: tuple[str, ...] = setting(
        StrList(), "Extra diffoscope arguments, e.g. `[\"--max-container-depth\", \"2\"]`.",
        default=())
    timeout: int = setting(
        Int(1), "Seconds diffoscope may run (passed as `diffoscope --timeout`; the process is killed a "
        "while later).", default=3600)
    max_bytes: int | None = setting(
        Int(0), "Diffoscope output limit in bytes: diffoscope is killed and the output "
        "truncated at the limit; unset: no limit.", default=None)


@dataclass(frozen=True)
class BackendConfig:
    """``[backend."<name>"]``: the script that rebuilds one kind of build input."""

    path: str = setting(
        Str(), "Backend script, run as `<path> <input-file>` with `REBUILDERD_OUTDIR` set "
        "(rebuilderd's contract), e.g. `/usr/libexec/rebuilderd/rebuilder-archlinux.sh`.")


@dataclass(frozen=True)
class WorkerConfig:
    """The whole of ``/etc/rebuilderd-worker.conf``."""

    endpoint: str | None = setting(
        Str(), "Accepted for compatibility and ignored: workers read and write the store "
        "(`[store] url` of rebuilderd.conf), there is no daemon to connect to.", default=None)
    signup_secret: str | None = setting(
        Secret(), "Secret this worker presents when it enrols; publish accepts the worker's results "
        "if it equals `[worker] signup_secret` of rebuilderd.conf (at least 128 bits: `pwgen -1s 32`).",
        default=None)
    supported_architectures: tuple[str, ...] = setting(
        StrList(), "Architectures this worker builds, e.g. `[\"x86_64\", \"any\"]`; `\"*\"` matches "
        "any. Empty or unset: the machine's own.", default=(),
        default_text="native (`platform.machine()`)")
    supported_backends: tuple[str, ...] | None = setting(
        StrList(), "Backends (distros) this worker claims jobs for.", default=None,
        default_text="names of `[backend]`")
    idle_delay: int = setting(
        Int(0), "Seconds to sleep when no job is due before looking again.", default=180)
    key_path: str = setting(
        Str(), "The worker's Ed25519 PKCS#8 key, created on first run; its public key identifies "
        "the worker. Relative to `work_dir`.", default="rebuilder.v2.key")
    work_dir: str | None = setting(
        Str(), "The worker's own directory (key, scratch space for builds); unset: the current "
        "directory, like rebuilderd-worker.", default=None)
    gen_diffoscope: bool = setting(
        Bool(), "Legacy (rebuilderd <= 0.13): `true` means `[diffoscope] enabled = true`.",
        default=False)
    build: BuildConfig = setting(Table(BuildConfig), "", default_factory=BuildConfig)
    diffoscope: DiffoscopeConfig = setting(Table(DiffoscopeConfig), "", default_factory=DiffoscopeConfig)
    backend: dict[str, BackendConfig] = setting(
        TableMap(BackendConfig, "name", check_name=check_safe_name), "", default_factory=dict)

    def __post_init__(self) -> None:
        # Defaults that depend on other keys or on the machine are filled in here, once, so every
        # reader sees the effective value (frozen dataclass: object.__setattr__ is the only way).
        if not self.supported_architectures:
            object.__setattr__(self, "supported_architectures", (platform.machine(),))
        if self.supported_backends is None:
            object.__setattr__(self, "supported_backends", tuple(self.backend))
        if self.gen_diffoscope and not self.diffoscope.enabled:
            object.__setattr__(self, "diffoscope", replace(self.diffoscope, enabled=True))


def parse_worker_config(raw: dict, path: str = "") -> WorkerConfig:
    """Validate a parsed ``rebuilderd-worker.conf`` table; ``path`` names the file in errors."""
    return parse_table(WorkerConfig, raw, Where(path))
