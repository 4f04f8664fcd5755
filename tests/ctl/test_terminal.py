"""The pager (real `rebuildctl` processes on a pseudo-terminal) and the shell completion scripts (real bash)."""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jobs.ctl.pager import pager_command
from tests.ctl.support import ctl

RUN_CTL = [sys.executable, "-c", "from jobs.ctl.cli import main; main()"]
BIN = Path(sys.executable).parent  # the venv's bin/: where the console script `rebuildctl` is


def _on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run rebuildctl with stdout on a pseudo-terminal; returns its exit code and what reached the terminal."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(RUN_CTL + args, stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE,
                            env=env, close_fds=True)
    os.close(slave)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            proc.kill()
            raise AssertionError("rebuildctl on a terminal did not finish in 60 s")
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every writer closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    return proc.wait(timeout=60), seen.decode("utf-8", "replace")


@pytest.fixture
def pager_env(tmp_path):
    """An environment whose $PAGER records what it was given, so a test can see whether it ran."""
    capture = tmp_path / "paged.txt"
    env = {k: v for k, v in os.environ.items() if k not in ("NOPAGER", "LESS")}
    env["PAGER"] = f"sh -c 'cat > {capture}'"
    return env, capture


def test_piped_output_is_never_paged(base, pager_env, monkeypatch):
    env, capture = pager_env
    monkeypatch.setenv("PAGER", env["PAGER"])
    res = ctl("-H", base, "pkgs", "log", "unrepro")
    assert res.exit_code == 0 and "unrepro" in res.stdout
    assert not capture.exists()


def test_terminal_output_goes_through_the_pager(http_base, pager_env):
    env, capture = pager_env
    code, screen = _on_a_terminal(["-H", http_base, "pkgs", "diffoscope", "unrepro"], env)
    assert code == 0
    assert "unrepro-1.0-1-any.pkg.tar.zst" in capture.read_text()  # the pager got the report
    assert "unrepro-1.0-1-any.pkg.tar.zst" not in screen  # and rebuildctl did not print it itself


@pytest.mark.parametrize("how", ["--no-pager", "NOPAGER", "PAGER=cat"])
def test_no_pager_on_a_terminal(http_base, pager_env, how):
    env, capture = pager_env
    args = ["-H", http_base, "pkgs", "log", "unrepro"]
    if how == "--no-pager":
        args.append(how)
    elif how == "NOPAGER":
        env["NOPAGER"] = "1"
    else:
        env["PAGER"] = "cat"
    code, screen = _on_a_terminal(args, env)
    assert code == 0 and "unrepro" in screen
    assert not capture.exists()


def test_pager_command():
    assert pager_command({}) == ["less", "-R"]
    assert pager_command({"PAGER": "most -s"}) == ["most", "-s"]
    assert pager_command({"PAGER": ""}) is None and pager_command({"PAGER": "cat"}) is None
    assert pager_command({"NOPAGER": "", "PAGER": "less"}) is None


# --- completions ---------------------------------------------------------------------------

def test_bash_completion_script_is_valid_and_completes(tmp_path):
    res = ctl("completions", "bash")
    assert res.exit_code == 0
    script = tmp_path / "rebuildctl.bash"
    script.write_text(res.stdout)
    assert "_rebuildctl_completion()" in res.stdout
    assert "complete -o default -F _rebuildctl_completion rebuildctl" in res.stdout
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    # The script calls `rebuildctl` back; check what it answers, through the script itself.
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}

    def complete(*words: str) -> list[str]:
        line = " ".join(f"'{w}'" for w in words)
        out = subprocess.run(["bash", "-c", f"source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; "
                              '_rebuildctl_completion rebuildctl; printf "%s\\n" "${COMPREPLY[@]}"'],
                             capture_output=True, text=True, env=env, timeout=60)
        return out.stdout.split()

    assert complete("rebuildctl", "pk") == ["pkgs"]
    assert set(complete("rebuildctl", "pkgs", "l")) == {"log", "ls"}
    assert "--threshold" in complete("rebuildctl", "verify", "--th")


@pytest.mark.parametrize(("shell", "marker", "check"), [
    ("zsh", "compdef _rebuildctl_completion rebuildctl", ["zsh", "-n"]),
    ("fish", "complete --command rebuildctl", ["fish", "--no-execute"]),
])
def test_zsh_and_fish_scripts(tmp_path, shell, marker, check):
    res = ctl("completions", shell)
    assert res.exit_code == 0 and marker in res.stdout and "_REBUILDCTL_COMPLETE=complete_" in res.stdout
    if shutil.which(check[0]):  # checked with the shell when it is installed
        script = tmp_path / f"rebuildctl.{shell}"
        script.write_text(res.stdout)
        assert subprocess.run([*check, str(script)], capture_output=True).returncode == 0


def test_unknown_shell_is_a_usage_error():
    res = ctl("completions", "tcsh")
    assert res.exit_code == 2
    assert "Invalid value for 'bash|zsh|fish': 'tcsh' is not one of 'bash', 'zsh', 'fish'." in res.stderr
    assert "Value error" not in res.stderr  # pydantic's prefix, which typer's Enum choices carried


def test_clean_lines_is_each_line_cleaned():
    from jobs.ctl.escape import clean, clean_lines

    for lines in (["a", "b"], ["a\nb", "c"], ["x\x1b[2J", "y"], ["\u202eevil", ""], [""], ["tab\there"],
                  ["a\r", "b\u2028"], ["\x85", "ok"], ["one"]):
        assert clean_lines(lines) == "\n".join(map(clean, lines)), lines
    # every ASCII and Latin-1 character, and the bidi and separator ones, in ASCII text and in other text
    for char in [*map(chr, range(0x100)), "\u061c", "\u200e", "\u202a", "\u2066", "\u2069", "\u2028", "\ufeff"]:
        for lines in (["pkg" + char + "x", "y"], ["é" + char, "y"]):
            assert clean_lines(lines) == "\n".join(map(clean, lines)), repr(char)
