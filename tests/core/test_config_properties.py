"""Property tests: the parser only ever answers with a config or a ConfigError, never a crash."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.core.config import (
    load_sync_config,
    merge_tables,
    parse_rebuilder_config,
    parse_sync_config,
    parse_worker_config,
)
from jobs.core.config.sync_conf import SYNC_METHODS
from jobs.core.errors import ConfigError

# Values tomllib can produce (minus dates, which no setting accepts and which describe() names).
scalars = st.one_of(st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False),
                    st.text(max_size=8))
toml_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)), max_leaves=8)

# Real key names make the fuzzer reach deep validation instead of stopping at "unknown key".
KEYS = ["http", "auth", "endpoints", "worker", "schedule", "store", "publish", "lease", "bind_addr",
        "cookie", "retry_delay_base", "max_retries", "ttl", "clock_skew", "url", "build", "diffoscope",
        "backend", "path", "timeout", "max_bytes", "args", "enabled", "profile", "distro", "source",
        "suite", "components", "architectures", "releases", "name", "include", "binary_pkgs",
        "supported_architectures", "idle_delay"]
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)),
                                            inner, max_size=4)),
    max_leaves=12,
).filter(lambda v: isinstance(v, dict))


@settings(max_examples=300)
@given(documents)
def test_parsers_fail_only_with_config_error(raw: dict) -> None:
    for parse in (parse_rebuilder_config, parse_worker_config, parse_sync_config):
        try:
            parse(raw, "fuzz.conf")
        except ConfigError as e:
            assert e.path == "fuzz.conf"
            assert str(e).startswith("fuzz.conf")


SAFE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


@given(st.text(max_size=12))
def test_profile_names(name: str) -> None:
    raw = {"profile": {name: {"distro": "debian", "source": "http://deb.example", "releases": ["sid"],
                              "components": ["main"], "architectures": ["amd64"]}}}
    try:
        config = parse_sync_config(raw)
    except ConfigError as e:
        assert not SAFE.fullmatch(name)
        assert e.key == f"profile.{json.dumps(name, ensure_ascii=False)}"
    else:
        assert SAFE.fullmatch(name)
        assert config.profile(name).name == name


@given(st.integers(-(2**40), 2**40))
def test_integer_bounds(n: int) -> None:
    try:
        config = parse_worker_config({"build": {"timeout": n}, "idle_delay": n})
    except ConfigError as e:
        assert e.key in ("idle_delay", "build.timeout")
        assert n < 1
    else:
        assert n >= 1 and config.build.timeout == config.idle_delay == n


leaf_tables = st.dictionaries(st.text(max_size=3), st.one_of(
    st.integers(), st.dictionaries(st.text(max_size=3), st.integers(), max_size=3)), max_size=4)


@given(leaf_tables, leaf_tables)
def test_merge_tables(a: dict, b: dict) -> None:
    assert merge_tables(a, {}) == a and merge_tables({}, b) == b
    assert merge_tables(a, a) == a
    assert merge_tables(merge_tables(a, b), b) == merge_tables(a, b), "applying a file twice changes nothing"
    merged = merge_tables(a, b)
    for key, value in b.items():
        if not isinstance(value, dict):
            assert merged[key] == value, "the later file wins"
    for key in a.keys() - b.keys():
        assert merged[key] == a[key], "keys only in the earlier file survive"


# Printable text only: TOML forbids raw control characters and lone surrogates in strings.
words = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=10).filter(str.strip)
globs = words.filter(lambda w: "[" not in w)


@settings(max_examples=100)
# Any distro but the ones with a sync method: those also check which keys fit (test_config_check.py).
@given(distro=words.filter(lambda w: w not in SYNC_METHODS), source=words, components=st.lists(words, max_size=3, unique=True),
       architectures=st.lists(words, max_size=3, unique=True), pkgs=st.lists(globs, max_size=3),
       releases=st.lists(st.tuples(words, st.none() | words), max_size=3))
def test_sync_profile_round_trips_through_toml(distro, source, components, architectures, pkgs,
                                               releases) -> None:
    def s(value: str) -> str:
        return json.dumps(value, ensure_ascii=False)  # a valid TOML basic string for these values

    def items(values) -> str:
        return "[" + ", ".join(values) + "]"

    release_items = [s(name) if src is None else f"{{ name = {s(name)}, source = {s(src)} }}"
                     for name, src in releases]
    text = (f'[profile."p"]\ndistro = {s(distro)}\nsource = {s(source)}\n'
            f"components = {items(map(s, components))}\narchitectures = {items(map(s, architectures))}\n"
            f"pkgs = {items(map(s, pkgs))}\nreleases = {items(release_items)}\n")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sync.conf"
        path.write_text(text, encoding="utf-8")
        profile = load_sync_config(path, {}).profile("p")
    assert (profile.distro, profile.source, profile.sync_method) == (distro, source, distro)
    assert profile.components == tuple(components)
    assert profile.architectures == tuple(architectures)
    assert profile.pkgs == tuple(pkgs)
    assert [(r.name, r.source) for r in profile.releases] == releases
