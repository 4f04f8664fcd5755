"""The shell backends ``archlinux`` (archlinux-repro) and ``debian`` (debrebuild).

Neither tool can run here (they need an Arch host, or snapshot.debian.org), so these tests check
the scripts themselves: syntax, the message when the tool is missing, and, with stand-in
commands that record their arguments, the exact call and the exit-status rule.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from jobs.work.backends import FAIL_PREFIX, backend_argv, failure_reason, shipped_backend

SCRIPTS = ("archlinux", "debian")
# What the scripts may use besides the tools they check for (coreutils, and sed for debian).
BASE_TOOLS = ("dirname", "basename", "mkdir", "cp", "nice", "cat", "sha256sum")


def tool_dir(tmp_path: Path, *extra: str, stubs: dict[str, str] | None = None) -> Path:
    """A PATH directory with only the base tools, ``extra`` host tools and stub scripts."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    for tool in (*BASE_TOOLS, *extra):
        (bindir / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    for name, body in (stubs or {}).items():
        stub = bindir / name
        stub.write_text(f"#!/bin/sh\n{body}\n")
        stub.chmod(0o755)
    return bindir


def recorder(name: str, log: Path, then: str = "exit 0") -> str:
    """A stub body that appends its name, NOCHECK and arguments to ``log``."""
    return f'echo "{name} NOCHECK=${{NOCHECK:-}} $*" >> "{log}"\n{then}'


def run(name: str, argv: list[str], bindir: Path, outdir: Path, cwd: Path,
        **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/sh", str(shipped_backend(name)), *argv], cwd=cwd, text=True,
                          env={"PATH": str(bindir), "REBUILDERD_OUTDIR": str(outdir), **env},
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)


def last_line(output: str) -> str:
    return output.rstrip().splitlines()[-1]


@pytest.mark.parametrize("name", SCRIPTS)
def test_the_script_is_valid_posix_sh(name):
    subprocess.run(["sh", "-n", str(shipped_backend(name))], check=True)
    if shutil.which("shellcheck"):  # optional: not installed by CI
        subprocess.run(["shellcheck", "--shell=sh", str(shipped_backend(name))], check=True)


@pytest.mark.parametrize(("name", "message"), [
    ("archlinux", "archlinux-repro not found: the archlinux backend needs an Arch Linux host with archlinux-repro"),
    ("debian", "debrebuild not found: the debian backend needs a Debian host with debrebuild and access to "
               "snapshot.debian.org (apt-get install devscripts)"),
])
def test_a_missing_tool_is_named_on_the_last_line(tmp_path, name, message):
    package = tmp_path / "input"
    package.write_text("Source: hello\nVersion: 2.10-3\n")
    done = run(name, [str(package)], tool_dir(tmp_path), tmp_path / "out", tmp_path)
    assert done.returncode == 78  # the host is not set up: the worker reports no verdict
    assert last_line(done.stdout).startswith(FAIL_PREFIX + message)


@pytest.mark.parametrize("name", SCRIPTS)
def test_usage_errors_fail_with_a_reason(tmp_path, name):
    bindir = tool_dir(tmp_path)
    assert failure_reason(run(name, [], bindir, tmp_path, tmp_path).stdout.encode()).startswith("usage: ")
    done = subprocess.run(["/bin/sh", str(shipped_backend(name)), "x"], env={"PATH": str(bindir)},
                          capture_output=True, text=True)
    assert (done.returncode, failure_reason(done.stderr.encode())) == (78, "REBUILDERD_OUTDIR is not set")


# archlinux: NOCHECK=1 archlinux-repro -o "$REBUILDERD_OUTDIR" -- <package>

PACKAGE = "hello-c-1:2.1-3-x86_64.pkg.tar.zst"


@pytest.mark.parametrize("tool", ["archlinux-repro", "repro"])
def test_archlinux_calls_repro_like_rebuilderd(tmp_path, tool):
    calls, outdir = tmp_path / "calls", tmp_path / "out"
    package = tmp_path / "in" / PACKAGE
    package.parent.mkdir()
    package.write_bytes(b"package")
    # Called as: -o OUTDIR -- PACKAGE; the stub writes the rebuilt file where repro would.
    bindir = tool_dir(tmp_path, stubs={tool: recorder(tool, calls, 'cp "$4" "$2/"')})
    outdir.mkdir()
    done = run("archlinux", [str(package)], bindir, outdir, tmp_path)
    assert done.returncode == 0, done.stdout
    assert calls.read_text() == f"{tool} NOCHECK=1 -o {outdir} -- {package}\n"
    assert (outdir / PACKAGE).read_bytes() == b"package"


@pytest.mark.parametrize(("writes", "status", "reason"), [
    (True, 0, None),  # repro exits 1 for "not reproducible": the build still finished
    (False, 1, f"archlinux-repro exited with status 1 without writing {PACKAGE}"),
])
def test_archlinux_counts_a_non_zero_repro_as_finished_only_with_output(tmp_path, writes, status, reason):
    outdir = tmp_path / "out"
    outdir.mkdir()
    package = tmp_path / PACKAGE
    package.write_bytes(b"package")
    body = ('cp "$4" "$2/"\n' if writes else "") + "echo 'Package is not reproducible'\nexit 1"
    done = run("archlinux", [str(package)], tool_dir(tmp_path, stubs={"archlinux-repro": body}), outdir, tmp_path)
    assert done.returncode == status, done.stdout
    assert failure_reason(done.stdout.encode()) == reason


# debian: apt-get source SOURCE=VERSION, then debrebuild --buildresult=… --builder=sbuild+unshare

BUILDINFO = """\
Format: 1.0
Source: {source}
Binary: hello
Architecture: amd64
Version: {version}
Checksums-Sha256:
 0000000000000000000000000000000000000000000000000000000000000000 1 hello_2.10-3+b1_amd64.deb
Build-Path: /build/reproducible-path/hello-2.10
"""


def debian_stubs(calls: Path, debrebuild_then: str = "exit 0") -> dict[str, str]:
    return {"debrebuild": recorder("debrebuild", calls, debrebuild_then), "sbuild": "exit 0",
            "dcmd": recorder("dcmd", calls), "apt-get": recorder("apt-get", calls)}


@pytest.mark.parametrize(("source", "version", "wanted"), [
    ("hello", "2.10-3", "hello=2.10-3"),
    ("hello (2.10-3)", "2.10-3+b1", "hello=2.10-3"),  # binNMU: the source version
    ("hello", "1:2.10-3+b2", "hello=1:2.10-3"),  # rebuilderd's rule: drop +bN
])
def test_debian_derives_the_source_and_calls_debrebuild_like_rebuilderd(tmp_path, source, version, wanted):
    calls, outdir, inputs = tmp_path / "calls", tmp_path / "out", tmp_path / "inputs"
    inputs.mkdir()
    buildinfo = inputs / "hello_2.10-3+b1_amd64.buildinfo"
    buildinfo.write_text(BUILDINFO.format(source=source, version=version))
    done = run("debian", [str(buildinfo)], tool_dir(tmp_path, "sed", stubs=debian_stubs(calls)), outdir, tmp_path,
               REBUILDERD_CACHE_DIR=str(tmp_path / "cache"))
    assert done.returncode == 0, done.stdout
    assert calls.read_text().splitlines() == [
        "apt-get NOCHECK= -o Dir=. update -q",
        f"apt-get NOCHECK= -o Dir=. source -qq --download-only {wanted}",
        "dcmd NOCHECK= sha256sum ./*.dsc",
        f"debrebuild NOCHECK= --buildresult={outdir} --builder=sbuild+unshare --cache={tmp_path / 'cache'} "
        f"-- {buildinfo}",
    ]
    sources = (inputs / "etc/apt/sources.list").read_text().splitlines()
    assert len(sources) == 8 and all(line.startswith("deb-src [signed-by=") for line in sources)
    assert any(" trixie-security " in line for line in sources) and any(" sid " in line for line in sources)


@pytest.mark.parametrize(("source", "version", "reason"), [
    ("hello;reboot", "1.0-1", "no valid Source"),
    ("hello", "1.0-1$(id)", "no valid Version"),
])
def test_debian_refuses_a_hostile_source_or_version(tmp_path, source, version, reason):
    calls = tmp_path / "calls"
    buildinfo = tmp_path / "x.buildinfo"
    buildinfo.write_text(BUILDINFO.format(source=source, version=version))
    done = run("debian", [str(buildinfo)], tool_dir(tmp_path, "sed", stubs=debian_stubs(calls)), tmp_path / "o",
               tmp_path)
    assert done.returncode == 1 and reason in failure_reason(done.stdout.encode())
    assert not calls.exists()


@pytest.mark.parametrize(("writes", "status"), [(True, 0), (False, 1)])
def test_debian_counts_a_non_zero_debrebuild_as_finished_only_with_output(tmp_path, writes, status):
    calls, outdir = tmp_path / "calls", tmp_path / "out"
    outdir.mkdir()
    buildinfo = tmp_path / "hello_2.10-3_amd64.buildinfo"
    buildinfo.write_text(BUILDINFO.format(source="hello", version="2.10-3"))
    then = (f'echo deb > "{outdir}/hello_2.10-3_amd64.deb"\n' if writes else "") + "exit 1"
    done = run("debian", [str(buildinfo)], tool_dir(tmp_path, "sed", stubs=debian_stubs(calls, then)), outdir,
               tmp_path)
    assert done.returncode == status, done.stdout
    if not writes:
        assert failure_reason(done.stdout.encode()).startswith("debrebuild exited with status 1 without building "
                                                              "hello 2.10-3")


def test_a_script_without_its_exec_bit_runs_with_sh(tmp_path):
    script = tmp_path / "rebuilder-x.sh"
    shutil.copyfile(shipped_backend("archlinux"), script)
    assert backend_argv(script, tmp_path / "in") == ["sh", str(script), str(tmp_path / "in")]
    script.chmod(0o755)
    assert backend_argv(script, tmp_path / "in") == [str(script), str(tmp_path / "in")]
    assert os.access(shipped_backend("archlinux"), os.X_OK)


def test_failure_reason_takes_the_last_fail_line():
    log = b"build output\nrebuilder-backend: FAIL: first\nmore\r\nrebuilder-backend: FAIL: second reason\r\n"
    assert failure_reason(log) == "second reason"
    assert failure_reason(b"no failure here\n") is None
