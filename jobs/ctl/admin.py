"""rebuildctl's admin verbs (`pkgs requeue`, `queue push`, `queue drop`): where a request goes and the cookie that
signs it (`admin_target`), and the signed request object the next publish applies (`submit`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.core.errors import TerminalError


class AdminSetupMissing(TerminalError):
    """An admin verb lacks its cookie or its store; the message names where to set it."""


@dataclass(frozen=True)
class AdminTarget:
    store_url: str
    cookie: str


def admin_target(endpoint: str | None, config_file: str | None, store_option: str | None,
                 env: Mapping[str, str] | None = None, home: str | Path | None = None,
                 *, etc_dir: Path | None = None, var_dir: Path | None = None) -> AdminTarget:
    """Where admin requests go and the cookie that signs them; AdminSetupMissing naming what to set."""
    from jobs.core.config import ctl_config_paths, find_auth_cookie, load_ctl_config
    from jobs.core.config.load import COOKIE_PATH_ENV, ETC_DIR, VAR_DIR

    env = dict(os.environ if env is None else env)
    etc, var = etc_dir or ETC_DIR, var_dir or VAR_DIR
    config = load_ctl_config(config_file, env, home, etc_dir=etc)
    files = " or ".join(str(p) for p in ctl_config_paths(config_file, env, home, etc_dir=etc))
    missing = []
    cookie = find_auth_cookie(endpoint, config, env, home, var_dir=var)
    if not cookie:
        if endpoint is not None:
            missing.append(f'no admin cookie for -H {endpoint}: set [endpoints."{endpoint}"] cookie in {files}, '
                           f"or ${COOKIE_PATH_ENV} to a file holding the rebuilder's [auth] cookie")
        else:
            missing.append(f"no admin cookie: set ${COOKIE_PATH_ENV} to a file holding it, or [auth] cookie in "
                           f"{files}, or write it to {var / 'auth-cookie'} or "
                           "$XDG_DATA_HOME/rebuilderd-auth-cookie")
    store_url = store_option or env.get("REBUILDER_STORE") or config.store.url
    if not store_url:
        missing.append(f"no store for requests: pass --store, set $REBUILDER_STORE, or set [store] url in {files}")
    if missing:
        raise AdminSetupMissing("; ".join(missing) + "; nothing was written")
    return AdminTarget(store_url, cookie)  # type: ignore[arg-type]


def submit(target: AdminTarget, verb: str, **fields: Any) -> str:
    """Write one signed request for the next publish; returns its store key."""
    from jobs.core.requests import write_request
    from jobs.core.store import open_store

    return write_request(open_store(target.store_url), target.cookie, verb, **fields)
