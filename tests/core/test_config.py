"""Config models: rebuilderd's own example files parse verbatim; bad files fail precisely."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

import pytest

from jobs.core.config import (
    IncludeRule,
    RebuilderConfig,
    Release,
    SyncConfig,
    WorkerConfig,
    load_rebuilder_config,
    load_sync_config,
    load_worker_config,
    parse_rebuilder_config,
    parse_sync_config,
    parse_worker_config,
)
from jobs.core.config.load import TOML_1_1, read_toml
from jobs.core.errors import ConfigError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "config"
NO_ENV: dict[str, str] = {}


def uncomment(text: str) -> str:
    """Enable every commented-out setting of an example file (``#key``, not ``## prose``)."""
    return re.sub(r"(?m)^#(?!#)", "", text)


def write(tmp_path: Path, text: str, name: str = "test.conf") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- rebuilderd's example files -----------------------------------------------------------------

STRONG = "Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA"  # what `pwgen -1s 32` prints


def with_strong_secrets(text: str) -> str:
    """An example file with its placeholder secrets replaced as its comments ask."""
    return re.sub(r'"INSECURE(-CHANGE-ME)?"', f'"{STRONG}"', text)


@pytest.mark.parametrize(("name", "load", "key"), [
    ("rebuilderd.conf", load_rebuilder_config, "worker.signup_secret"),
    ("rebuilderd-worker.conf", load_worker_config, "signup_secret"),
])
def test_example_files_verbatim_are_refused_for_their_placeholder_secret(name, load, key) -> None:
    """Issue #14 item 5: their `signup_secret = "INSECURE"` is a guessable secret, refused by name."""
    with pytest.raises(ConfigError, match="pwgen -1s 32") as info:
        load(FIXTURES / name, NO_ENV)
    assert info.value.key == key and "INSECURE" not in str(info.value)


def test_example_rebuilderd_conf(tmp_path: Path) -> None:
    text = with_strong_secrets((FIXTURES / "rebuilderd.conf").read_text())
    config = load_rebuilder_config(write(tmp_path, text), NO_ENV)
    assert config.http.bind_addr == "0.0.0.0:8484"
    assert config.http.endpoint is None
    assert config.worker.signup_secret == STRONG
    assert config.worker.authorized_workers == ()
    assert config.auth.cookie is None
    assert config.schedule.retry_delay_base == 24
    assert config.schedule.max_retries is None
    assert config.http.transparently_sign_attestations is True


def test_example_rebuilderd_conf_with_every_comment_enabled(tmp_path: Path) -> None:
    text = with_strong_secrets(uncomment((FIXTURES / "rebuilderd.conf").read_text()))
    config = load_rebuilder_config(write(tmp_path, text), NO_ENV)
    assert config.http.real_ip_header == "X-Real-IP"
    assert config.http.endpoint == "http://127.0.0.1:8484"
    assert config.auth.cookie == STRONG
    assert config.endpoint_cookie("https://rebuilder.example.com") == STRONG
    assert config.worker.authorized_workers == ("key1", "key2")
    assert config.schedule.retry_delay_base == 24


def test_example_worker_conf(tmp_path: Path) -> None:
    text = with_strong_secrets((FIXTURES / "rebuilderd-worker.conf").read_text())
    config = load_worker_config(write(tmp_path, text), NO_ENV)
    assert config.endpoint == "https://rebuilder.example.com"
    assert config.signup_secret == STRONG
    assert config.build.timeout == 86400
    assert config.build.max_bytes == 10485760
    assert config.build.silent is False
    assert config.diffoscope.enabled is True
    assert config.diffoscope.args == ()
    assert config.diffoscope.timeout == 3600
    assert config.diffoscope.max_bytes == 41943040
    assert config.supported_architectures == (platform.machine(),)
    assert config.backend == {} and config.supported_backends == ()
    assert config.idle_delay == 180 and config.key_path == "rebuilder.v2.key"


def test_example_worker_conf_with_every_comment_enabled(tmp_path: Path) -> None:
    text = with_strong_secrets(uncomment((FIXTURES / "rebuilderd-worker.conf").read_text()))
    config = load_worker_config(write(tmp_path, text), NO_ENV)
    assert config.build.silent is True
    assert config.diffoscope.args == ("--max-container-depth", "2", "--fuzzy-threshold", "0")
    assert config.diffoscope.timeout == 600


@pytest.mark.parametrize("raw", [
    {"worker": {"signup_secret": "a"}}, {"auth": {"cookie": "x"}}, {"worker": {"signup_secret": "abcd"}},
    {"endpoints": {"https://r.example": {"cookie": "INSECURE"}}}, {"auth": {"cookie": "ab" * 32}},
])
def test_weak_secrets_are_refused_naming_the_generator(raw) -> None:
    """Issue #14 item 5: `signup_secret = "a"` and `[auth] cookie = "x"` were accepted silently."""
    with pytest.raises(ConfigError, match=r"too weak.*pwgen -1s 32"):
        parse_rebuilder_config(raw, "rebuilderd.conf")
    with pytest.raises(ConfigError, match=r"signup_secret: too weak.*pwgen -1s 32"):
        parse_worker_config({"signup_secret": "abcd"}, "rebuilderd-worker.conf")


def test_example_sync_conf() -> None:
    config = load_sync_config(FIXTURES / "rebuilderd-sync.conf", NO_ENV)
    assert list(config.profiles) == ["archlinux-core"]
    core = config.profile("archlinux-core")
    assert core.name == "archlinux-core"
    assert core.distro == "archlinux" and core.sync_method == "archlinux"
    assert core.components == ("core",)
    assert core.architectures == ("x86_64",)
    assert core.source == "https://ftp.halifax.rwth-aachen.de/archlinux/$repo/os/$arch"
    assert core.releases == () and core.include == ()
    assert core.maintainers == () and core.pkgs == () and core.excludes == ()


def test_example_sync_conf_with_every_comment_enabled(tmp_path: Path) -> None:
    text = uncomment((FIXTURES / "rebuilderd-sync.conf").read_text())
    community = load_sync_config(write(tmp_path, text), NO_ENV).profile("archlinux-community")
    assert community.components == ("community",)
    assert community.maintainers == ("somebody",)
    assert community.pkgs == ("some-pkg", "python-*")
    assert community.excludes == ("tensorflow*",)


def test_full_sync_profile() -> None:
    # The example spreads an inline table over two lines: TOML 1.1, read by tomli >= 2.4.
    if not TOML_1_1:
        if os.environ.get("CI") == "true":
            pytest.fail("tomli >= 2.4 is not installed: TOML 1.1 config files cannot be read")
        pytest.skip("tomli >= 2.4 not installed")
    profile = load_sync_config(FIXTURES / "rebuilderd-sync-full.conf", NO_ENV).profile("debian-telegram")
    assert profile.distro == "debian" and profile.sync_method == "debian"
    assert profile.components == ("main", "main/debian-installer")
    assert profile.architectures == ("all", "amd64")
    assert profile.releases == (
        Release("trixie-backports"),
        Release("trixie-backports-debug", "http://debian-mirror.example/debian-debug"),
    )
    assert profile.source == "http://debian-mirror.example/debian"
    assert profile.include == (IncludeRule(exclude=False, component="main", binary_pkgs=("telegram-*",),
                                           source_pkgs=("*",), maintainer="Jane Doe"),)
    assert profile.maintainers == ("kpcyrd",)
    assert profile.pkgs == ("telegram-desktop*",)
    assert profile.excludes == ("tensorflow*",)
    assert profile.keyring is None
    assert profile.buildinfo_base_url == "https://buildinfos.debian.net/buildinfo-pool"


def test_our_keys_in_rebuilderd_conf() -> None:
    config = load_rebuilder_config(FIXTURES / "rebuilderd-full.conf", NO_ENV)
    assert config.http.bind_addr == "[::1]:9000"
    assert config.http.post_body_size_limit == 1024
    assert config.http.transparently_sign_attestations is False
    assert config.schedule.max_retries == 5 and config.schedule.initial_delay == 3600
    assert config.store.url == "s3://rebuilder-state/prod"
    assert config.store.site_url == "s3://rebuilder-site"
    assert config.publish.signing_key == "/etc/rebuilder/sign.key"
    assert (config.lease.ttl, config.lease.clock_skew) == (900, 60)


def test_our_keys_in_worker_conf() -> None:
    config = load_worker_config(FIXTURES / "rebuilderd-worker-full.conf", NO_ENV)
    assert config.supported_architectures == ("x86_64", "any")
    assert config.supported_backends == ("archlinux",)
    assert config.backend["debian"].path == "/usr/libexec/rebuilderd/rebuilder-debian.sh"
    assert config.work_dir == "/var/lib/rebuilder-worker/w1"


def test_defaults_without_any_file() -> None:
    assert parse_rebuilder_config({}) == RebuilderConfig()
    config = RebuilderConfig()
    assert config.http.bind_addr == "127.0.0.1:8484"
    assert config.store.url is None and config.store.site_url is None
    assert config.publish.signing_key is None
    assert config.publish.signing_key_path == "/var/lib/rebuilderd/rebuilderd.sign.key"
    assert (config.lease.ttl, config.lease.clock_skew) == (600, 30)
    assert config.http.post_body_size_limit == 2**30
    assert parse_sync_config({}) == SyncConfig()
    assert parse_worker_config({}) == WorkerConfig()


# --- normalisation -------------------------------------------------------------------------------

def test_legacy_and_new_spellings_are_merged() -> None:
    raw = {"profile": {"p": {"distro": "archlinux", "source": "file:///mirror",
                             "suite": "core", "suites": ["extra", "core"], "components": ["multilib"],
                             "architecture": "x86_64", "architectures": ["x86_64", "aarch64"],
                             "maintainer": ["a"], "maintainers": ["b"], "sync_method": "custom"}}}
    profile = parse_sync_config(raw).profile("p")
    assert profile.components == ("core", "extra", "multilib")
    assert profile.architectures == ("x86_64", "aarch64")
    assert profile.maintainers == ("a", "b")
    assert profile.sync_method == "custom"


def test_worker_backends_default_to_backend_tables() -> None:
    config = parse_worker_config({"backend": {"archlinux": {"path": "/a"}, "debian": {"path": "/d"}},
                                  "supported_architectures": []})
    assert config.supported_backends == ("archlinux", "debian")
    assert config.supported_architectures == (platform.machine(),)


def test_legacy_gen_diffoscope() -> None:
    assert parse_worker_config({"gen_diffoscope": True}).diffoscope.enabled is True


def test_endpoint_cookie_ignores_trailing_slash() -> None:
    config = parse_rebuilder_config({"endpoints": {"https://r.example/": {"cookie": STRONG}}})
    assert config.endpoint_cookie("https://r.example") == STRONG
    assert config.endpoint_cookie("https://r.example//") == STRONG
    assert config.endpoint_cookie("https://other.example") is None


# --- errors: file, dotted key, expectation -------------------------------------------------------

def error_for(tmp_path: Path, text: str, loader=load_rebuilder_config) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        loader(path, NO_ENV)
    assert info.value.path == str(path), "every error names the file"
    assert str(path) in str(info.value)
    return info.value


def test_wrong_type(tmp_path: Path) -> None:
    err = error_for(tmp_path, '[schedule]\nretry_delay_base = "24"\n')
    assert err.key == "schedule.retry_delay_base"
    assert err.expected == "an integer >= 0"
    assert 'a string ("24")' in str(err)


def test_bool_is_not_an_integer(tmp_path: Path) -> None:
    err = error_for(tmp_path, "[lease]\nttl = true\n")
    assert (err.key, err.expected) == ("lease.ttl", "an integer >= 1")
    assert "boolean" in str(err)


def test_negative_timeout(tmp_path: Path) -> None:
    err = error_for(tmp_path, "[build]\ntimeout = -5\n", load_worker_config)
    assert (err.key, err.expected) == ("build.timeout", "an integer >= 1")
    assert "-5 is out of range" in str(err)


def test_float_is_not_an_integer(tmp_path: Path) -> None:
    err = error_for(tmp_path, "idle_delay = 1.5\n", load_worker_config)
    assert err.key == "idle_delay" and "float" in str(err)


def test_list_item_of_wrong_type(tmp_path: Path) -> None:
    text = '[profile."arch-core"]\ndistro = "archlinux"\nsource = "x"\narchitectures = ["x86_64", 3]\n'
    err = error_for(tmp_path, text, load_sync_config)
    assert err.key == 'profile."arch-core".architectures[1]'
    assert err.expected == "a list of strings"


def test_string_where_list_expected(tmp_path: Path) -> None:
    text = '[profile."arch-core"]\ndistro = "archlinux"\nsource = "x"\narchitectures = "x86_64"\n'
    err = error_for(tmp_path, text, load_sync_config)
    assert err.key == 'profile."arch-core".architectures'
    assert err.expected == "a list of strings"


def test_unknown_key_suggests(tmp_path: Path) -> None:
    err = error_for(tmp_path, "[schedule]\nretry_delay_bas = 24\n")
    assert err.key == "schedule.retry_delay_bas"
    assert "did you mean 'retry_delay_base'?" in str(err)
    assert "initial_delay" in err.expected


def test_unknown_table_suggests(tmp_path: Path) -> None:
    err = error_for(tmp_path, "[shedule]\nretry_delay_base = 24\n")
    assert err.key == "shedule" and "did you mean 'schedule'?" in str(err)


def test_unknown_key_in_profile(tmp_path: Path) -> None:
    text = '[profile."p"]\ndistro = "debian"\nsource = "x"\nexclude = ["a*"]\n'
    err = error_for(tmp_path, text, load_sync_config)
    assert err.key == 'profile."p".exclude' and "did you mean 'excludes'?" in str(err)


def test_unknown_key_in_include_rule(tmp_path: Path) -> None:
    text = '[profile."p"]\ndistro = "debian"\nsource = "x"\ninclude = [{ binary_pkg = ["a"] }]\n'
    err = error_for(tmp_path, text, load_sync_config)
    assert err.key == 'profile."p".include[0].binary_pkg'
    assert "did you mean 'binary_pkgs'?" in str(err)


def test_toml_syntax_error_names_line(tmp_path: Path) -> None:
    err = error_for(tmp_path, "[http]\nbind_addr = \"x:1\"\nendpoint = \n")
    assert "line 3" in str(err) and "TOML syntax error" in str(err)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bad.conf"
    path.write_bytes(b'[auth]\ncookie = "\xff"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_toml(path)


@pytest.mark.parametrize("name", ["../etc", "a/b", ".hidden", "with space", "", "é", "x\n"])
def test_unsafe_profile_name(tmp_path: Path, name: str) -> None:
    raw = {"profile": {name: {"distro": "debian", "source": "x"}}}
    with pytest.raises(ConfigError, match="not allowed") as info:
        parse_sync_config(raw, "sync.conf")
    assert info.value.key.startswith("profile.")
    assert "letters, digits" in info.value.expected


def test_bad_profile_name_in_file(tmp_path: Path) -> None:
    text = '[profile."arch core"]\ndistro = "archlinux"\nsource = "x"\n'
    err = error_for(tmp_path, text, load_sync_config)
    assert err.key == 'profile."arch core"'


@pytest.mark.parametrize("missing", ["distro", "source"])
def test_missing_required_profile_key(tmp_path: Path, missing: str) -> None:
    keys = {"distro": '"debian"', "source": '"http://deb.example/debian"'}
    del keys[missing]
    text = '[profile."debian-main"]\n' + "".join(f"{k} = {v}\n" for k, v in keys.items())
    err = error_for(tmp_path, text, load_sync_config)
    assert err.key == f'profile."debian-main".{missing}'
    assert "missing required key" in str(err)


def test_release_table_needs_a_name(tmp_path: Path) -> None:
    text = '[profile."d"]\ndistro = "debian"\nsource = "x"\nreleases = ["sid", { source = "y" }]\n'
    err = error_for(tmp_path, text, load_sync_config)
    assert err.key == 'profile."d".releases[1].name'


def test_backend_needs_a_path(tmp_path: Path) -> None:
    err = error_for(tmp_path, '[backend."debian"]\npatth = "/x"\n', load_worker_config)
    assert err.key == 'backend."debian".patth' and "did you mean 'path'?" in str(err)


def test_bad_glob(tmp_path: Path) -> None:
    text = '[profile."d"]\ndistro = "debian"\nsource = "x"\nexcludes = ["ok*", "[unclosed"]\n'
    err = error_for(tmp_path, text, load_sync_config)
    assert err.key == 'profile."d".excludes[1]' and "unclosed" in str(err)


def test_empty_secret_is_refused(tmp_path: Path) -> None:
    err = error_for(tmp_path, '[worker]\nsignup_secret = ""\n')
    assert err.key == "worker.signup_secret" and "empty" in str(err)


@pytest.mark.parametrize("text, key", [
    ('[store]\nurl = "/var/lib/rebuilder"\n', "store.url"),
    ('[http]\nbind_addr = "8484"\n', "http.bind_addr"),
    ('[http]\nbind_addr = "localhost:99999"\n', "http.bind_addr"),
    ('[http]\nendpoint = "rebuilder.example.com"\n', "http.endpoint"),
])
def test_bad_addresses(tmp_path: Path, text: str, key: str) -> None:
    assert error_for(tmp_path, text).key == key


def test_clock_skew_must_be_below_ttl(tmp_path: Path) -> None:
    err = error_for(tmp_path, "[lease]\nttl = 30\nclock_skew = 30\n")
    assert err.key == "lease.clock_skew" and "smaller than lease.ttl" in err.expected


def test_unknown_profile_suggests() -> None:
    config = load_sync_config(FIXTURES / "rebuilderd-sync.conf", NO_ENV)
    with pytest.raises(ConfigError, match="did you mean 'archlinux-core'"):
        config.profile("archlinux-cor")
