"""A shipped backend script run as the worker runs it: one input file, REBUILDERD_OUTDIR, output merged."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from jobs.work.backends import failure_reason


@dataclass
class Run:
    """One backend run: exit status, merged output, the out directory."""

    status: int
    output: str
    outdir: Path

    @property
    def reason(self) -> str | None:
        return failure_reason(self.output.encode())

    def built(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(self.outdir.iterdir())} if self.outdir.exists() else {}


def run_script(script: Path, input_file: Path, outdir: Path, env: dict[str, str], *, timeout: float) -> Run:
    """Run `script input_file` as a subprocess with the worker's interpreter and `env` besides PATH."""
    env = {"PATH": os.environ["PATH"], "REBUILDERD_OUTDIR": str(outdir), "REBUILDER_PYTHON": sys.executable, **env}
    done = subprocess.run([str(script), str(input_file)], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=timeout)
    return Run(done.returncode, done.stdout.decode(errors="replace"), outdir)
