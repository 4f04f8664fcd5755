"""Rebuild one job: download its inputs, run its backend, compare, explain (BAD) or attest (GOOD).

This is rebuilderd's ``worker/src/rebuild.rs`` (docs/design.md#build-execution-and-the-backend-contract)
with the status rules of our
issue #4: a backend that exits non-zero, times out or cannot be started is FAIL (rebuilderd
ignores the exit status and reports BAD for the missing files, which hides broken builders among
unreproducible packages); after a clean exit every expected artifact is compared byte for byte
and the build is GOOD only if all match. Nothing here knows a distro (docs/design.md#invariants, invariant 8).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import stat
import sys
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, cast

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from jobs.core import proc
from jobs.core.config import WorkerConfig
from jobs.core.errors import MissingToolError, TerminalError
from jobs.core.model import ArtifactResult, JobRow, Status, fit_text
from jobs.core.signing import make_link, rebuild_link_name, sign_link
from jobs.work import diffoscope
from jobs.work.backends import SETUP_EXIT, backend_argv, failure_reason
from jobs.work.download import (
    ChecksumMismatch,
    DownloadCancelled,
    DownloadError,
    Inputs,
    UnsafeFileName,
    default_session,
    download_inputs,
)

LOG_NAME = "build.log"
TAIL_BYTES = 64 * 1024  # enough to find the backend's last FAIL line, even past the log's size cap
SAY = b"rebuilder: "


class BuildCancelled(Exception):
    """The cancel event fired (lease lost, worker stopping): the caller reports nothing."""


@dataclass
class BuildOutcome:
    """The result of one rebuild attempt, with the files the caller uploads."""

    status: Status  # GOOD, BAD or FAIL
    reason: str | None  # why not GOOD, one line
    artifacts: list[ArtifactResult]  # one per expected artifact for GOOD/BAD; [] for FAIL
    # The full build log: download notes and backend output with proc's markers; the log's
    # bytes themselves when the work dir could not even hold a log file.
    log: Path | bytes
    diffoscope_text: Path | None
    diffoscope_html: Path | None
    diffoscope_truncated: bool
    attestation: dict | None  # GOOD only: one in-toto link over every artifact, signed by the worker
    started_at: datetime
    built_at: datetime

    def __post_init__(self) -> None:
        # one printable line within the limit publish checks (jobs.core.model.limits)
        self.reason = fit_text(self.reason)


class BackendSetupError(TerminalError):
    """The backend exited with `SETUP_EXIT`: this host is not set up to build. The job gets no verdict
    (a FAIL would replace the package's last one for a fault of the worker's); the worker stops."""


class _Fail(Exception):
    """Ends the attempt as FAIL with this reason."""


class _Tail(io.RawIOBase):
    """proc's mirror: keeps the last bytes of all output and forwards them to the worker's stdout."""

    def __init__(self, forward: BinaryIO | None) -> None:
        super().__init__()
        self.forward, self.data = forward, bytearray()

    def writable(self) -> bool:
        return True

    def write(self, chunk: bytes) -> int:  # type: ignore[override]
        self.data += chunk
        del self.data[:-TAIL_BYTES]
        if self.forward is not None:
            self.forward.write(chunk)
        return len(chunk)

    def flush(self) -> None:
        if self.forward is not None:
            self.forward.flush()


def rebuild(job: JobRow, *, backend: Path, config: WorkerConfig, key: Ed25519PrivateKey, workdir: Path,
            cancel: threading.Event | None = None, env: Mapping[str, str] | None = None,
            session: requests.Session | None = None, kill_grace: float = 10.0,
            diffoscope_grace: float = diffoscope.PROCESS_GRACE) -> BuildOutcome:
    """Rebuild ``job`` with ``backend`` under ``workdir``; raise BuildCancelled if ``cancel`` fires."""
    started_at = _now()
    # What the caller uploads (log, reports) stays in ``keep``; ``scratch`` (inputs, out) goes.
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        keep = Path(tempfile.mkdtemp(prefix="rebuild-", dir=workdir))
        log = open(keep / LOG_NAME, "wb")
    except OSError as e:
        # An unwritable or full work dir is the worker's problem, but the attempt must still end
        # (FAIL, saying why) rather than leave its claim to expire (issue #8).
        reason = f"work dir unusable: {e}"
        return BuildOutcome(status=Status.FAIL, reason=reason, artifacts=[], log=SAY + f"FAIL: {reason}\n".encode(),
                            diffoscope_text=None, diffoscope_html=None, diffoscope_truncated=False,
                            attestation=None, started_at=started_at, built_at=_now())
    scratch = keep / "tmp"
    own_session = session is None
    http = session if session is not None else default_session()
    run = _Attempt(job, backend=backend, config=config, key=key, keep=keep, scratch=scratch, cancel=cancel,
                   env=env or {}, session=http, kill_grace=kill_grace, diffoscope_grace=diffoscope_grace,
                   started_at=started_at)
    run.log = log
    try:
        try:
            return run.execute()
        except (_Fail, OSError) as e:
            # As rebuilderd: any error of the worker's own ends the attempt as FAIL, with the error.
            reason = str(e) if isinstance(e, _Fail) else f"unexpected error while rebuilding: {e}"
            with contextlib.suppress(OSError):  # a full disk may refuse this line too
                run.say(f"FAIL: {reason}")
            return run.outcome(Status.FAIL, reason, [])
    finally:
        # Closing flushes; on a full disk that fails, and the log simply ends where it could.
        with contextlib.suppress(OSError):
            log.close()
        if own_session:
            http.close()
        shutil.rmtree(scratch, ignore_errors=True)


class _Attempt:
    """The state of one rebuild, so each step is a short method."""

    log: BinaryIO

    def __init__(self, job: JobRow, *, backend: Path, config: WorkerConfig, key: Ed25519PrivateKey, keep: Path,
                 scratch: Path, cancel: threading.Event | None, env: Mapping[str, str], session: requests.Session,
                 kill_grace: float, diffoscope_grace: float, started_at: datetime) -> None:
        self.job, self.backend, self.config, self.key = job, backend, config, key
        self.keep, self.scratch, self.cancel, self.env, self.session = keep, scratch, cancel, env, session
        self.kill_grace, self.diffoscope_grace, self.started_at = kill_grace, diffoscope_grace, started_at
        self.inputs, self.out = scratch / "inputs", scratch / "out"
        self.report: diffoscope.DiffoscopeReport | None = None
        self.at_line_start = True

    def say(self, line: str) -> None:
        """A note of ours in the build log (the backend's output is everything else)."""
        # The backend's output need not end with a newline; ours must start a line of its own.
        start = b"" if self.at_line_start else b"\n"
        self.log.write(start + SAY + line.encode("utf-8", errors="replace") + b"\n")
        self.log.flush()
        self.at_line_start = True

    def outcome(self, status: Status, reason: str | None, artifacts: list[ArtifactResult],
                attestation: dict | None = None) -> BuildOutcome:
        report = self.report
        return BuildOutcome(
            status=status, reason=reason, artifacts=artifacts, log=self.keep / LOG_NAME,
            diffoscope_text=report.text if report else None, diffoscope_html=report.html if report else None,
            diffoscope_truncated=report.truncated if report else False, attestation=attestation,
            started_at=self.started_at, built_at=_now(),
        )

    def execute(self) -> BuildOutcome:
        job = self.job
        self.say(f"rebuilding {job.source_name} {job.source_version} ({job.backend}, {job.architecture}), "
                 f"job {job.job_id}")
        if not job.artifacts:
            raise _Fail("the job lists no artifacts to compare")
        for directory in (self.inputs, self.out):
            directory.mkdir(parents=True)
        inputs = self.download()
        self.run_backend(inputs.input.path)
        return self.compare(inputs)

    def download(self) -> Inputs:
        try:
            return download_inputs(self.job, self.inputs, session=self.session, cancel=self.cancel, note=self.say,
                                   deadline=self.config.build.download_deadline)
        except DownloadCancelled:
            raise BuildCancelled(self.job.job_id) from None
        except (ChecksumMismatch, UnsafeFileName) as e:
            raise _Fail(e.message) from None
        except DownloadError as e:
            hint = " (transient)" if e.transient else ""
            raise _Fail(f"download failed: {e.url}: {e.message}{hint}") from None

    def run_backend(self, input_file: Path) -> None:
        build = self.config.build
        forward = None if build.silent else getattr(sys.stdout, "buffer", None)
        tail = _Tail(forward)
        env = {**os.environ, **self.env, "REBUILDERD_OUTDIR": str(self.out), "REBUILDER_PYTHON": sys.executable}
        if not self.backend.is_file():
            # backend_argv would run a missing script as ``sh <path>``, which only says "status 2".
            raise _Fail(f"tool missing: backend script {self.backend} does not exist")
        argv = backend_argv(self.backend, input_file)
        self.say(f"running backend: {' '.join(argv)}")
        try:
            result = proc.run(argv, log=self.log, timeout=build.timeout, max_bytes=build.max_bytes, env=env,
                              cwd=self.scratch, mirror=cast(BinaryIO, tail), kill_grace=self.kill_grace,
                              cancel=self.cancel, cancel_reason="build cancelled (lease lost or worker stopping)")
        except MissingToolError as e:
            raise _Fail(f"tool missing: {e.message}") from None
        self.at_line_start = False
        if result.cancelled:
            raise BuildCancelled(self.job.job_id)
        if result.timed_out:
            raise _Fail(f"build timed out after {build.timeout} s")
        if result.exit_code == SETUP_EXIT:  # the host, not the package: no verdict (docs/design.md)
            why = failure_reason(bytes(tail.data))
            raise BackendSetupError(f"backend {self.backend} cannot build on this host (exit status {SETUP_EXIT})"
                                    + (f": {why}" if why else ""))
        if result.exit_code != 0:
            how = f"exited with status {result.exit_code}" if result.exit_code is not None \
                else f"was killed by signal {result.signal}"
            why = failure_reason(bytes(tail.data))
            raise _Fail(f"backend {how}" + (f": {why}" if why else ""))

    def compare(self, inputs: Inputs) -> BuildOutcome:
        results: list[ArtifactResult] = []
        differ: list[diffoscope.Pair] = []
        problems: list[str] = []
        for artifact, fetched in inputs.artifacts:
            name = fetched.path.name
            rebuilt = self.out / name
            digest = _sha256_regular(rebuilt)
            status = Status.GOOD if digest == fetched.sha256 else Status.BAD
            results.append(ArtifactResult(name=artifact.name, status=status, sha256=digest))
            self.say(f"{name}: {status.value} (rebuilt sha256 {digest or 'none'}, published {fetched.sha256})")
            if digest is None:
                problems.append(f"{artifact.name} missing")
            elif status is Status.BAD:
                problems.append(f"{artifact.name} differs")
                differ.append(diffoscope.Pair(name, fetched.path, rebuilt))
        if not problems:
            return self.outcome(Status.GOOD, None, results, self.attest(inputs))
        reason = "not reproducible: " + ", ".join(problems)
        notes = self.explain(differ)
        return self.outcome(Status.BAD, reason + "".join(f"; {n}" for n in notes), results)

    def explain(self, differ: list[diffoscope.Pair]) -> list[str]:
        """Run diffoscope if enabled; its problems, one line each (the build stays BAD)."""
        if not differ or not self.config.diffoscope.enabled:
            return []
        self.say(f"running diffoscope on {len(differ)} artifact(s)")
        try:
            report = diffoscope.run_diffoscope(
                differ, scratch=self.scratch / "diffoscope", reports=self.keep, config=self.config.diffoscope,
                cancel=self.cancel, kill_grace=self.kill_grace, process_grace=self.diffoscope_grace)
        except MissingToolError as e:
            # A worker without diffoscope still reports the BAD result, just without the explanation.
            self.say(f"no diffoscope report: {e.message}")
            return [f"no diffoscope report: {e.tool} not installed"]
        if report.cancelled:
            raise BuildCancelled(self.job.job_id)
        self.report = report
        for problem in report.problems:
            self.say(problem)
        return report.problems

    def attest(self, inputs: Inputs) -> dict:
        """One link for the whole build, signed by the worker (docs/design.md#attestations-and-verification)."""
        names = [fetched.path.name for _, fetched in inputs.artifacts]
        link = make_link(rebuild_link_name(names[0]), materials={inputs.input.path.name: inputs.input.path},
                         products={name: self.out / name for name in names})
        return sign_link(link, self.key)


def _sha256_regular(path: Path) -> str | None:
    """sha256 of ``path`` if it is a regular file (not a symlink); None otherwise."""
    try:
        # O_NOFOLLOW: a backend's symlink to the original must not pass as a reproduced file;
        # O_NONBLOCK: a FIFO must not hang the worker (it is refused below).
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        digest = hashlib.sha256()
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _now() -> datetime:
    return datetime.now(timezone.utc)
