"""Where config files are found: flags, environment, /etc; rebuildctl's merge and cookie search."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.core.config import (
    find_auth_cookie,
    load_ctl_config,
    load_rebuilder_config,
    load_sync_config,
    load_worker_config,
    parse_rebuilder_config,
)
from jobs.core.errors import ConfigError


@pytest.fixture
def roots(tmp_path: Path) -> dict[str, Path]:
    """Empty stand-ins for /etc, $HOME and /var/lib/rebuilderd."""
    out = {name: tmp_path / name for name in ("etc", "home", "var")}
    for path in out.values():
        path.mkdir()
    return out


def put(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- the three files: explicit path > environment > /etc default ---------------------------------

LOADERS = [
    (load_rebuilder_config, "rebuilderd.conf", "REBUILDER_CONFIG",
     "[schedule]\nretry_delay_base = {n}\n", lambda c: c.schedule.retry_delay_base),
    (load_worker_config, "rebuilderd-worker.conf", "REBUILDER_WORKER_CONFIG",
     "idle_delay = {n}\n", lambda c: c.idle_delay),
    (load_sync_config, "rebuilderd-sync.conf", "REBUILDER_SYNC_CONFIG",
     '[profile."p{n}"]\ndistro = "d"\nsource = "s"\n', lambda c: int(next(iter(c.profiles))[1:])),
]


@pytest.mark.parametrize("load, filename, var, template, value", LOADERS)
def test_search_order(roots, load, filename, var, template, value) -> None:
    etc = roots["etc"]
    default = load(None, {}, etc_dir=etc)  # nothing anywhere: defaults, no error
    assert default == load(None, {}, etc_dir=etc)
    put(etc / filename, template.format(n=1))
    env_file = put(roots["home"] / "env.conf", template.format(n=2))
    flag_file = put(roots["home"] / "flag.conf", template.format(n=3))
    assert value(load(None, {}, etc_dir=etc)) == 1
    assert value(load(None, {var: str(env_file)}, etc_dir=etc)) == 2
    assert value(load(flag_file, {var: str(env_file)}, etc_dir=etc)) == 3
    assert value(load(None, {var: ""}, etc_dir=etc)) == 1, "an empty variable counts as unset"


@pytest.mark.parametrize("load, filename, var, template, value", LOADERS)
def test_named_file_must_exist(roots, load, filename, var, template, value) -> None:
    missing = roots["home"] / "nope.conf"
    with pytest.raises(ConfigError, match="file not found") as info:
        load(missing, {}, etc_dir=roots["etc"])
    assert info.value.path == str(missing)
    with pytest.raises(ConfigError, match="file not found"):
        load(None, {var: str(missing)}, etc_dir=roots["etc"])


def test_rebuilderd_worker_variable_is_honoured(roots) -> None:
    old = put(roots["home"] / "old.conf", "idle_delay = 7\n")
    new = put(roots["home"] / "new.conf", "idle_delay = 8\n")
    env = {"REBUILDERD_WORKER_CONFIG": str(old)}
    assert load_worker_config(None, env, etc_dir=roots["etc"]).idle_delay == 7
    env["REBUILDER_WORKER_CONFIG"] = str(new)
    assert load_worker_config(None, env, etc_dir=roots["etc"]).idle_delay == 8


def test_unreadable_default_file_is_an_error(roots) -> None:
    (roots["etc"] / "rebuilderd.conf").mkdir()  # exists but cannot be read as a file
    with pytest.raises(ConfigError, match="cannot read"):
        load_rebuilder_config(None, {}, etc_dir=roots["etc"])


# --- rebuildctl: /etc, ~/.config, -c merged table by table ---------------------------------------

def test_ctl_merge(roots) -> None:
    put(roots["etc"] / "rebuilderd.conf",
        '[http]\nendpoint = "https://etc.example"\nbind_addr = "0.0.0.0:1"\n'
        '[auth]\ncookie = "etc-Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"\n[endpoints."https://a.example"]\ncookie = "a-etc-Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"\n')
    put(roots["home"] / ".config" / "rebuilderd.conf",
        '[http]\nendpoint = "https://home.example"\n[endpoints."https://b.example"]\ncookie = "b-Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"\n')
    extra = put(roots["home"] / "extra.conf", '[endpoints."https://a.example"]\ncookie = "a-extra-Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"\n')

    config = load_ctl_config(None, {}, roots["home"], etc_dir=roots["etc"])
    assert config.http.endpoint == "https://home.example"
    assert config.http.bind_addr == "0.0.0.0:1", "tables merge key by key"
    assert config.auth.cookie == "etc-Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"
    assert config.endpoint_cookie("https://a.example") == "a-etc-Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"

    config = load_ctl_config(extra, {}, roots["home"], etc_dir=roots["etc"])
    assert config.endpoint_cookie("https://a.example") == "a-extra-Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"
    assert config.endpoint_cookie("https://b.example") == "b-Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"
    assert config.http.endpoint == "https://home.example"


def test_ctl_honours_xdg_config_home(roots) -> None:
    put(roots["home"] / "xdg" / "rebuilderd.conf", '[auth]\ncookie = "xdg-Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"\n')
    env = {"XDG_CONFIG_HOME": str(roots["home"] / "xdg")}
    assert load_ctl_config(None, env, roots["home"], etc_dir=roots["etc"]).auth.cookie == "xdg-Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"


def test_ctl_errors_name_the_file_that_holds_them(roots) -> None:
    put(roots["etc"] / "rebuilderd.conf", '[auth]\ncookie = "ok-Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"\n')
    bad = put(roots["home"] / ".config" / "rebuilderd.conf", "[auth]\ncookie = 1\n")
    with pytest.raises(ConfigError) as info:
        load_ctl_config(None, {}, roots["home"], etc_dir=roots["etc"])
    assert (info.value.path, info.value.key) == (str(bad), "auth.cookie")


def test_ctl_extra_file_must_exist(roots) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_ctl_config(roots["home"] / "missing.conf", {}, roots["home"], etc_dir=roots["etc"])


# --- rebuildctl's auth cookie (docs/design.md#rebuildctls-config-and-cookie) ---------------------

def cookie(roots, endpoint=None, env=None, extra=None) -> str | None:
    env = env or {}
    config = load_ctl_config(extra, env, roots["home"], etc_dir=roots["etc"])
    return find_auth_cookie(endpoint, config, env, roots["home"], var_dir=roots["var"])


def test_cookie_search_order_for_default_endpoint(roots) -> None:
    assert cookie(roots) is None
    put(roots["home"] / ".local" / "share" / "rebuilderd-auth-cookie", "from-data-dir-Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA\n")
    assert cookie(roots) == "from-data-dir-Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"
    put(roots["var"] / "auth-cookie", "  from-var-Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA  \n")
    assert cookie(roots) == "from-var-Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"
    put(roots["etc"] / "rebuilderd.conf", '[auth]\ncookie = "from-etc-Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"\n')
    assert cookie(roots) == "from-etc-Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"
    put(roots["home"] / ".config" / "rebuilderd.conf", '[auth]\ncookie = "from-home-Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"\n')
    assert cookie(roots) == "from-home-Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"
    extra = put(roots["home"] / "c.conf", '[auth]\ncookie = "from-c-Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"\n')
    assert cookie(roots, extra=extra) == "from-c-Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"
    env_file = put(roots["home"] / "cookie-file", "from-env-Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA\n")
    assert cookie(roots, env={"REBUILDERD_COOKIE_PATH": str(env_file)}) == "from-env-Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"


def test_empty_cookie_file_is_skipped(roots) -> None:
    put(roots["var"] / "auth-cookie", "\n")
    put(roots["home"] / ".local" / "share" / "rebuilderd-auth-cookie", "data-Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA\n")
    assert cookie(roots) == "data-Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"


def test_cookie_for_explicit_endpoint(roots) -> None:
    put(roots["etc"] / "rebuilderd.conf",
        '[auth]\ncookie = "default-Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"\n[endpoints."https://r.example/"]\ncookie = "r-Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"\n')
    put(roots["var"] / "auth-cookie", "var-Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA\n")
    assert cookie(roots, "https://r.example") == "r-Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"
    assert cookie(roots, "https://r.example/") == "r-Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"
    assert cookie(roots, "https://elsewhere.example") is None, "default cookies are not sent elsewhere"


def test_cookie_path_variable_always_wins(roots) -> None:
    put(roots["etc"] / "rebuilderd.conf", '[endpoints."https://r.example"]\ncookie = "r-Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"\n')
    env_file = put(roots["home"] / "cookie-file", "from-env-Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA")
    env = {"REBUILDERD_COOKIE_PATH": str(env_file)}
    assert cookie(roots, "https://r.example", env=env) == "from-env-Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"


def test_cookie_path_variable_naming_a_missing_file(roots) -> None:
    env = {"REBUILDERD_COOKIE_PATH": str(roots["home"] / "missing")}
    with pytest.raises(ConfigError, match="REBUILDERD_COOKIE_PATH"):
        find_auth_cookie(None, parse_rebuilder_config({}), env, roots["home"], var_dir=roots["var"])


def test_xdg_data_home_for_cookie(roots) -> None:
    put(roots["home"] / "data" / "rebuilderd-auth-cookie", "xdg-data-Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA\n")
    env = {"XDG_DATA_HOME": str(roots["home"] / "data")}
    assert cookie(roots, env=env) == "xdg-data-Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"


def test_weak_cookies_are_refused_naming_where_they_are(roots) -> None:
    """Issue #14 item 5: `[auth] cookie = "x"` was accepted silently; a short cookie file too."""
    etc = put(roots["etc"] / "rebuilderd.conf", '[auth]\ncookie = "x"\n')
    with pytest.raises(ConfigError, match="pwgen -1s 32") as info:
        cookie(roots)
    assert (info.value.path, info.value.key) == (str(etc), "auth.cookie")
    etc.write_text('[endpoints."https://r.example"]\ncookie = "r"\n')
    with pytest.raises(ConfigError, match="pwgen -1s 32"):
        cookie(roots, "https://r.example")
    etc.unlink()
    weak = put(roots["var"] / "auth-cookie", "INSECURE\n")
    with pytest.raises(ConfigError, match="pwgen -1s 32") as info:
        cookie(roots)
    assert info.value.path == str(weak) and "INSECURE" not in str(info.value)
    env_file = put(roots["home"] / "cookie-file", "short\n")
    with pytest.raises(ConfigError, match="pwgen -1s 32"):
        cookie(roots, env={"REBUILDERD_COOKIE_PATH": str(env_file)})
