"""`rebuilder sync` of a local Arch mirror into a local store loads only what that job uses.

boto3 (an S3 store), duckdb (a history to summarise), requests/urllib3 (an HTTP mirror),
python-debian (a Debian profile), libarchive (an odd Arch database), pyarrow.compute and cryptography are a quarter of a second
of a sync's start between them; each is loaded when a job needs it, not before. (That a sync
over HTTP or into S3 still works is what the rest of tests/sync shows.)
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.sync import alpm_builders as alpm

# pydantic too: typer 0.29 loads it to convert a command's parameters, which `jobs.core.typer_params` does
# without it for sync's.
# libarchive (and libarchive-c): only for a database `jobs.sync.tar_fast` hands over (a usual one never is).
HEAVY = ("boto3", "botocore", "duckdb", "requests", "urllib3", "debian", "pyarrow.compute", "cryptography",
         "pydantic", "libarchive")

_RUN = """
import json, sys
import jobs.cli
try:
    jobs.cli.app(sys.argv[1:], prog_name="rebuilder", standalone_mode=False)
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""
# The console script's way (`jobs.cli_fast.main`): the fast start, which loads neither typer nor click either.
_CONSOLE = """
import atexit, json, sys
atexit.register(lambda: print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules))))
from jobs.cli_fast import main
sys.argv = ["rebuilder", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("code, heavy", [(_RUN, HEAVY), (_CONSOLE, (*HEAVY, "typer", "click"))],
                         ids=["typer", "console-script"])
def test_a_local_arch_sync_loads_none_of_the_heavy_modules(tmp_path, code, heavy):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "core.db").write_bytes(alpm.db(alpm.package("foo", "1.0-1") + alpm.package("bar", "2.0-1")))
    conf = tmp_path / "sync.conf"
    conf.write_text(f'[profile."core"]\ndistro = "archlinux"\ncomponents = ["core"]\narchitectures = ["x86_64"]\n'
                    f'source = "{mirror.as_uri()}"\n')
    res = subprocess.run([sys.executable, "-c", code.format(heavy=heavy), "--store", (tmp_path / "store").as_uri(),
                          "sync", "--profiles", str(conf)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("sync core: updated, 2 packages in 2 build inputs"), res.stdout
    assert json.loads(lines[-1]) == []
    assert (tmp_path / "store" / "queue" / "HEAD.json").exists()
