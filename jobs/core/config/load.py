"""Finding, reading and validating the three config files, and rebuildctl's cookie search.

Search order for each file: an explicit path (a command-line flag), else an environment variable,
else the rebuilderd default under ``/etc``. A missing default file means "all defaults"; a missing
file that was asked for by name is an error. Every filesystem root is a parameter so tests run
in temporary directories.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.core.config.rebuilderd_conf import RebuilderConfig, parse_rebuilder_config
from jobs.core.config.sync_conf import SyncConfig, parse_sync_config
from jobs.core.config.worker_conf import WorkerConfig, parse_worker_config
from jobs.core.errors import ConfigError
from jobs.core.signing.strength import secret_problem

try:
    # rebuilderd parses with Rust's toml crate, which reads TOML 1.1: the documented profile
    # example `include = [ { ...,\n ... } ]` spreads an inline table over two lines, which TOML 1.0
    # forbids. Python's tomllib reads 1.1 only from 3.15 on, tomli from 2.4 on.
    import tomli as _toml
except ImportError:  # pragma: no cover - TOML 1.0 files still work
    import tomllib as _toml  # type: ignore[no-redef]

TOML_1_1 = _toml.__name__ == "tomli"
ETC_DIR = Path("/etc")
VAR_DIR = Path("/var/lib/rebuilderd")
COOKIE_PATH_ENV = "REBUILDERD_COOKIE_PATH"


@dataclass(frozen=True)
class ConfigFileSpec:
    """One config file: its default name under /etc, what overrides it, and its parser."""

    filename: str
    env: tuple[str, ...]  # first one set wins
    flag: str
    parse: Callable[[dict, str], Any]
    summary: str

    def default_path(self, etc_dir: Path = ETC_DIR) -> Path:
        """Where the file is when nothing names it."""
        return etc_dir / self.filename


REBUILDER_FILE = ConfigFileSpec(
    "rebuilderd.conf", ("REBUILDER_CONFIG",), "--config FILE", parse_rebuilder_config,
    "Settings shared by sync, work and publish (rebuilderd's daemon config; its keys are accepted "
    "as they are).")
WORKER_FILE = ConfigFileSpec(
    "rebuilderd-worker.conf", ("REBUILDER_WORKER_CONFIG", "REBUILDERD_WORKER_CONFIG"),
    "--worker-config FILE", parse_worker_config,
    "One build worker (rebuilderd-worker's config; `REBUILDERD_WORKER_CONFIG` is honoured too).")
SYNC_FILE = ConfigFileSpec(
    "rebuilderd-sync.conf", ("REBUILDER_SYNC_CONFIG",), "--profiles FILE", parse_sync_config,
    "Sync profiles, one `[profile.\"<name>\"]` table each (rebuildctl's sync config). A profile "
    "name becomes part of object keys: letters, digits, `-`, `_` and `.`, not starting with `.`.")

# The position is in the message ("Invalid value (at line 2, column 5)"); tomllib 3.11 has no
# lineno attribute, so the message is the one source both parsers share.
_TOML_POSITION = re.compile(r"^(?P<reason>.*?)\s*\(at line (?P<line>\d+), column (?P<col>\d+)\)$")


def read_toml(path: Path) -> dict[str, Any]:
    """Parse one TOML file; every failure is a ConfigError naming the file (and line)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError("file not found", path=str(path)) from None
    except OSError as e:
        raise ConfigError(f"cannot read file: {e.strerror or e}", path=str(path)) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"not UTF-8 text (byte {e.start})", path=str(path)) from None
    try:
        return _toml.loads(text)
    except _toml.TOMLDecodeError as e:
        m = _TOML_POSITION.match(str(e))
        where = f"line {m['line']}, column {m['col']}: " if m else ""
        reason = m["reason"] if m else str(e)
        raise ConfigError(f"{where}TOML syntax error: {reason}", path=str(path)) from None


def locate_config(spec: ConfigFileSpec, path: str | Path | None, env: Mapping[str, str],
                  etc_dir: Path = ETC_DIR) -> tuple[Path, bool]:
    """The file to read and whether it was named explicitly (then it must exist)."""
    if path is not None and str(path) != "":
        return Path(path), True
    for name in spec.env:
        if env.get(name):
            return Path(env[name]), True
    return spec.default_path(etc_dir), False


def _read_layer(path: Path, required: bool) -> dict[str, Any] | None:
    if not required and not path.exists():
        return None
    return read_toml(path)


def _load(spec: ConfigFileSpec, path: str | Path | None, env: Mapping[str, str], etc_dir: Path) -> Any:
    file, explicit = locate_config(spec, path, env, etc_dir)
    raw = _read_layer(file, explicit)
    return spec.parse({} if raw is None else raw, str(file))


def load_rebuilder_config(path: str | Path | None = None, env: Mapping[str, str] = os.environ, *,
                          etc_dir: Path = ETC_DIR) -> RebuilderConfig:
    """Load rebuilderd.conf: ``path`` > ``$REBUILDER_CONFIG`` > ``/etc/rebuilderd.conf``."""
    return _load(REBUILDER_FILE, path, env, etc_dir)


def load_worker_config(path: str | Path | None = None, env: Mapping[str, str] = os.environ, *,
                       etc_dir: Path = ETC_DIR) -> WorkerConfig:
    """Load rebuilderd-worker.conf: ``path`` > ``$REBUILDER_WORKER_CONFIG`` > the /etc default."""
    return _load(WORKER_FILE, path, env, etc_dir)


def load_sync_config(path: str | Path | None = None, env: Mapping[str, str] = os.environ, *,
                     etc_dir: Path = ETC_DIR) -> SyncConfig:
    """Load rebuilderd-sync.conf: ``path`` > ``$REBUILDER_SYNC_CONFIG`` > the /etc default."""
    return _load(SYNC_FILE, path, env, etc_dir)


def merge_tables(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Merge two TOML documents table by table: a key in ``over`` wins, tables merge recursively."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_tables(out[key], value)
        else:
            out[key] = value
    return out


def _home(env: Mapping[str, str], home: str | Path | None) -> Path:
    if home is not None:
        return Path(home)
    return Path(env["HOME"]) if env.get("HOME") else Path.home()


def _xdg_dir(env: Mapping[str, str], home: Path, var: str, fallback: str) -> Path:
    # The dirs crate rebuilderd uses ignores relative XDG paths, as the XDG spec demands.
    value = env.get(var, "")
    return Path(value) if os.path.isabs(value) else home / fallback


def user_config_path(env: Mapping[str, str] = os.environ, home: str | Path | None = None) -> Path:
    """``~/.config/rebuilderd.conf`` (``$XDG_CONFIG_HOME`` respected, like rebuilderd)."""
    return _xdg_dir(env, _home(env, home), "XDG_CONFIG_HOME", ".config") / "rebuilderd.conf"


def ctl_config_paths(extra: str | Path | None = None, env: Mapping[str, str] = os.environ,
                     home: str | Path | None = None, *, etc_dir: Path = ETC_DIR) -> list[Path]:
    """The files rebuildctl merges, lowest precedence first."""
    paths = [REBUILDER_FILE.default_path(etc_dir), user_config_path(env, home)]
    if extra is not None and str(extra) != "":
        paths.append(Path(extra))
    return paths


def load_ctl_config(extra: str | Path | None = None, env: Mapping[str, str] = os.environ,
                    home: str | Path | None = None, *, etc_dir: Path = ETC_DIR) -> RebuilderConfig:
    """rebuildctl's config: /etc/rebuilderd.conf, ~/.config/rebuilderd.conf, then ``-c`` (later wins)."""
    merged: dict[str, Any] = {}
    used = []
    paths = ctl_config_paths(extra, env, home, etc_dir=etc_dir)
    for i, path in enumerate(paths):
        # only the -c file (always last) was asked for by name
        raw = _read_layer(path, required=(i == 2))
        if raw is None:
            continue
        # Validate each file on its own first, so an error names the file that holds it.
        parse_rebuilder_config(raw, str(path))
        merged = merge_tables(merged, raw)
        used.append(str(path))
    return parse_rebuilder_config(merged, " + ".join(used))


def _read_cookie_file(path: Path) -> str | None:
    try:
        cookie = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return cookie or None


def _strong_cookie(cookie: str, path: Path) -> str:
    problem = secret_problem(cookie)
    if problem is not None:
        raise ConfigError(f"the admin cookie in this file is {problem}", path=str(path))
    return cookie


def find_auth_cookie(endpoint: str | None, config: RebuilderConfig,
                     env: Mapping[str, str] = os.environ, home: str | Path | None = None, *,
                     var_dir: Path = VAR_DIR) -> str | None:
    """rebuildctl's admin cookie for ``endpoint`` (None = the default endpoint), or None if none.

    ``config`` is rebuildctl's merged config (``load_ctl_config``). Order, as rebuilderd's
    ``find_auth_cookie``: ``$REBUILDERD_COOKIE_PATH``; then for the default endpoint ``[auth]
    cookie`` (the -c file, ~/.config/rebuilderd.conf, /etc/rebuilderd.conf: the merge order),
    ``/var/lib/rebuilderd/auth-cookie``, ``~/.local/share/rebuilderd-auth-cookie``; for an
    explicit endpoint only ``[endpoints."URL"] cookie``.
    """
    if env.get(COOKIE_PATH_ENV):
        path = Path(env[COOKIE_PATH_ENV])
        # Set means "use this file": failing to read it is an error, not a reason to look further.
        try:
            cookie = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"cannot read the auth cookie named by ${COOKIE_PATH_ENV}: {e}",
                              path=str(path)) from None
        if not cookie:
            raise ConfigError(f"the auth cookie file named by ${COOKIE_PATH_ENV} is empty",
                              path=str(path))
        return _strong_cookie(cookie, path)
    if endpoint is not None:
        return config.endpoint_cookie(endpoint)
    if config.auth.cookie:
        return config.auth.cookie
    data_home = _xdg_dir(env, _home(env, home), "XDG_DATA_HOME", ".local/share")
    for candidate in (var_dir / "auth-cookie", data_home / "rebuilderd-auth-cookie"):
        if found := _read_cookie_file(candidate):
            return _strong_cookie(found, candidate)
    return None
