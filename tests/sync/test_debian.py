"""Debian index sync: source ↔ binary, InRelease authenticity, hostile input (docs/design.md#sync-import-and-friends)."""

from __future__ import annotations

import http.server
import json
import logging
import lzma
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from jobs.core.config import IncludeRule, Release, SyncProfile
from jobs.core.errors import ConfigError, TerminalError
from jobs.core.model import job_id
from jobs.sync.debian import buildinfo_url, read_index
from jobs.sync.decompress import CorruptIndex
from jobs.sync.fetch import Fetcher, FetchFailed
from jobs.sync.gpgv import BadSignature
from jobs.sync.inrelease import IndexNotAuthentic
from tests.httpd import serve
from tests.sync.debian_mirror import (
    FIXTURE,
    SUITES,
    clearsign,
    compress,
    copy_mirror,
    release_text,
    write_inrelease,
)
from tests.tools import require_tool

BASE = "https://buildinfos.debian.net/buildinfo-pool"


def profile(mirror: Path | str, **kw) -> SyncProfile:
    source = mirror.as_uri() if isinstance(mirror, Path) else mirror
    kw.setdefault("components", ("main",))
    kw.setdefault("architectures", ("amd64",))
    kw.setdefault("releases", (Release("sid"),))
    return SyncProfile(name="debian-test", distro="debian", source=source, **kw)


def by_source(result) -> dict[tuple[str | None, str, str], object]:
    return {(bi.release, bi.architecture, bi.source_name): bi for bi in result.inputs}


@pytest.fixture
def mirror(tmp_path: Path) -> Path:
    return copy_mirror(tmp_path / "mirror")


@pytest.fixture
def fetcher() -> Fetcher:
    return Fetcher(retries=0, timeout=10)


# --- the committed fixtures ---------------------------------------------------------------------------------------

def test_committed_debian_inrelease_lists_the_fixtures():
    for name in SUITES:
        dist = FIXTURE / "dists" / name
        assert (dist / "InRelease").read_text() == release_text(dist), (
            f"{dist}/InRelease is stale: run .venv/bin/python -m tests.sync.debian_mirror")


# --- mapping ------------------------------------------------------------------------------------------------------

def test_debian_sources_and_binaries_map_to_build_inputs(mirror, fetcher):
    result = read_index(profile(mirror), fetcher)
    inputs = by_source(result)
    assert sorted(k[2] for k in inputs) == ["acl", "hello", "libbsd", "shadow", "zlib"]
    hello = inputs[("sid", "amd64", "hello")]
    assert (hello.distro, hello.backend, hello.source_version) == ("debian", "debian", "2.10-3")
    assert hello.input_url == f"{BASE}/h/hello/hello_2.10-3_amd64.buildinfo"
    [art] = hello.artifacts
    assert art.url == f"{mirror.as_uri()}/pool/main/h/hello/hello_2.10-3_amd64.deb"
    assert (art.name, art.version, art.architecture, art.component) == ("hello", "2.10-3", "amd64", "main")
    assert (art.filename, art.size) == ("hello_2.10-3_amd64.deb", 53260)
    assert art.sha256 is not None and len(art.sha256) == 64
    assert art.maintainers == ("Santiago Vila <sanvila@debian.org>",)
    libbsd = inputs[("sid", "amd64", "libbsd")]
    assert libbsd.input_url == f"{BASE}/libb/libbsd/libbsd_0.12.2-2_amd64.buildinfo"  # lib* → 4 characters
    assert [a.name for a in libbsd.artifacts] == ["libbsd0", "libbsd-dev"]  # a multi-binary source


def test_debian_binnmu_suffix_goes_onto_the_source_version(mirror, fetcher):
    acl = by_source(read_index(profile(mirror), fetcher))[("sid", "amd64", "acl")]
    assert acl.source_version == "2.3.2-2+b1"
    assert acl.input_url == f"{BASE}/a/acl/acl_2.3.2-2+b1_amd64.buildinfo"
    assert [(a.name, a.version) for a in acl.artifacts] == [
        ("acl", "2.3.2-2+b1"), ("libacl1", "2.3.2-2+b1"), ("libacl1-dev", "2.3.2-2+b1")]


def test_debian_epoch_is_kept_in_the_version_and_dropped_from_the_url(mirror, fetcher):
    inputs = by_source(read_index(profile(mirror), fetcher))
    shadow = inputs[("sid", "amd64", "shadow")]
    assert shadow.source_version == "1:4.16.0-7"
    assert shadow.input_url == f"{BASE}/s/shadow/shadow_4.16.0-7_amd64.buildinfo"
    zlib = inputs[("sid", "amd64", "zlib")]  # epoch and binNMU together
    assert zlib.source_version == "1:1.3.dfsg+really1.3.1-1+b1"
    assert zlib.input_url == f"{BASE}/z/zlib/zlib_1.3.dfsg+really1.3.1-1+b1_amd64.buildinfo"


def test_debian_extra_source_only_stanzas_are_not_sources(mirror, fetcher):
    result = read_index(profile(mirror), fetcher)
    zlib = by_source(result)[("sid", "amd64", "zlib")]
    assert [a.name for a in zlib.artifacts] == ["zlib1g"]
    [old] = [s for s in result.skipped if "zlib 1:1.2.13.dfsg-1" in s.reason]
    assert old.reason.startswith("No matching source package found")


def test_debian_binary_without_source_is_skipped_with_its_place(mirror, fetcher):
    result = read_index(profile(mirror), fetcher)
    [ghost] = [s for s in result.skipped if "ghost" in s.reason]
    assert ghost.location == f"sid/main/binary-amd64/Packages: stanza 12 (line {_line_of(mirror, 'Package: ghost')})"


def test_debian_malformed_stanzas_are_counted_as_skipped(mirror, fetcher):
    result = read_index(profile(mirror), fetcher)
    malformed = [s for s in result.skipped if "No matching source" not in s.reason]
    assert len(malformed) == 2
    line = _line_of(mirror, "Package: broken-line")
    assert malformed[0].location == f"sid/main/binary-amd64/Packages: stanza 13 (line {line})"
    assert f"line {line + 3}: not a field" in malformed[0].reason
    assert malformed[1].reason == "missing field(s): Filename"
    assert len(result.skipped) == 4  # + zlib1g-old and ghost


def test_debian_arch_all_only_when_listed(mirror, fetcher):
    assert not [bi for bi in read_index(profile(mirror), fetcher).inputs if bi.architecture == "all"]
    inputs = by_source(read_index(profile(mirror, architectures=("all", "amd64")), fetcher))
    tzdata = inputs[("sid", "all", "tzdata")]
    assert tzdata.input_url == f"{BASE}/t/tzdata/tzdata_2025b-1_all.buildinfo"
    assert [a.name for a in tzdata.artifacts] == ["tzdata"]  # in binary-all and binary-amd64: one artifact
    only_all = read_index(profile(mirror, architectures=("all",)), fetcher)
    assert [bi.source_name for bi in only_all.inputs] == ["tzdata"]


def test_debian_arch_all_in_binary_all_again_is_the_same_entry_and_a_changed_copy_is_checked(mirror, fetcher):
    """An arch:all stanza binary-all repeats field for field is the entry binary-amd64 gave (not checked and
    matched again); a copy that differs in any read field is checked on its own, with its own place."""
    archs = ("all", "amd64")
    tzdata = by_source(read_index(profile(mirror, architectures=archs), fetcher))[("sid", "all", "tzdata")]
    assert [(a.name, a.url.rsplit("/", 1)[1]) for a in tzdata.artifacts] == [("tzdata", "tzdata_2025b-1_all.deb")]
    sid = mirror / "dists" / "sid"
    all_packages = sid / "main" / "binary-all" / "Packages"
    text = all_packages.read_text()
    stanza = text.split("\n\n")[0]
    bad = stanza.replace("SHA256: fd84", "SHA256: zz84")  # binary-amd64's copy is fine
    ghost = stanza.replace("Package: tzdata", "Package: tzdata-ghost\nSource: ghost-all")
    all_packages.write_text(f"{bad}\n\n{text}\n{ghost}\n\n{ghost}\n")
    write_inrelease(sid)
    result = read_index(profile(mirror, architectures=archs), fetcher)
    assert [a.name for a in by_source(result)[("sid", "all", "tzdata")].artifacts] == ["tzdata"]
    reasons = [(s.location, s.reason) for s in result.skipped if "binary-all" in s.location]
    assert reasons[0][0] == "sid/main/binary-all/Packages: stanza 1 (line 1)"
    assert reasons[0][1].startswith("invalid SHA256 'zz8436d6ec")
    # a stanza without its source is reported each time it is listed, as before
    assert [r for _, r in reasons[1:]] == ["No matching source package found: ghost-all 2025b-1"] * 2
    assert reasons[1][0] != reasons[2][0]


def test_debian_friends_across_two_releases_share_the_job(mirror, fetcher):
    result = read_index(profile(mirror, releases=(Release("sid"), Release("forky"))), fetcher)
    inputs = by_source(result)
    sid, forky = inputs[("sid", "amd64", "hello")], inputs[("forky", "amd64", "hello")]
    assert (sid.input_url, sid.backend, sid.architecture) == (forky.input_url, forky.backend, forky.architecture)
    assert job_id(sid.backend, sid.architecture, sid.input_url) == \
        job_id(forky.backend, forky.architecture, forky.input_url)
    assert {u for u in result.sources if u.endswith("InRelease")} == {
        f"{mirror.as_uri()}/dists/sid/InRelease", f"{mirror.as_uri()}/dists/forky/InRelease"}


def test_debian_release_with_its_own_mirror(mirror, tmp_path, fetcher):
    other = copy_mirror(tmp_path / "other")
    shutil.rmtree(mirror / "dists" / "forky")
    result = read_index(profile(mirror, releases=(Release("sid"), Release("forky", other.as_uri()))), fetcher)
    forky = by_source(result)[("forky", "amd64", "hello")]
    assert forky.artifacts[0].url.startswith(other.as_uri() + "/pool/")


def test_debian_installer_component_reads_the_base_components_sources(mirror, fetcher):
    result = read_index(profile(mirror, components=("main", "main/debian-installer"),
                                architectures=("all", "amd64")), fetcher)
    zlib = by_source(result)[("sid", "amd64", "zlib")]
    assert [(a.name, a.component) for a in zlib.artifacts] == [
        ("zlib1g", "main"), ("zlib1g-udeb", "main/debian-installer")]
    assert not any("debian-installer/binary-all" in u for u in result.sources)  # listed empty: not fetched


def test_debian_filters_apply_to_binaries(mirror, fetcher):
    libs = read_index(profile(mirror, pkgs=("lib*",), excludes=("*-dev",)), fetcher)
    assert sorted(a.name for bi in libs.inputs for a in bi.artifacts) == ["libacl1", "libbsd0"]
    assert not [s for s in libs.skipped if "ghost" in s.reason]  # filtered out before source matching
    # maintainer filters see the source's Uploaders too
    shadow = read_index(profile(mirror, maintainers=("Serge Hallyn",)), fetcher)
    assert [bi.source_name for bi in shadow.inputs] == ["shadow"]
    rules = (IncludeRule(source_pkgs=("zlib",), exclude=True), IncludeRule(binary_pkgs=("zlib*", "hello")))
    only = read_index(profile(mirror, include=rules), fetcher)
    assert [bi.source_name for bi in only.inputs] == ["hello"]


def test_debian_profile_needs_releases(mirror, fetcher):
    with pytest.raises(ConfigError, match="releases"):
        read_index(profile(mirror, releases=()), fetcher)


# --- index authenticity -------------------------------------------------------------------------------------------

def test_debian_compressed_indexes_are_preferred_and_checked(mirror, fetcher):
    sid = mirror / "dists" / "sid"
    compress(sid, keep_plain=False)
    write_inrelease(sid)
    result = read_index(profile(mirror), fetcher)
    assert f"{sid.as_uri()}/main/binary-amd64/Packages.xz" in result.sources
    assert f"{sid.as_uri()}/main/source/Sources.xz" in result.sources
    assert len(result.inputs) == 5
    (sid / "main" / "binary-amd64" / "Packages.xz").unlink()  # listed but gone: the .gz is next
    result = read_index(profile(mirror), fetcher)
    assert f"{sid.as_uri()}/main/binary-amd64/Packages.gz" in result.sources
    assert len(result.inputs) == 5


def test_debian_index_sources_record_every_file_read(mirror, fetcher):
    import hashlib
    result = read_index(profile(mirror), fetcher)
    sid = mirror / "dists" / "sid"
    assert result.sources == {
        (sid / rel).as_uri(): hashlib.sha256((sid / rel).read_bytes()).hexdigest()
        for rel in ("InRelease", "main/source/Sources", "main/binary-amd64/Packages")}


def test_debian_sha256_mismatch_fails_the_sync(mirror, fetcher):
    packages = mirror / "dists" / "sid" / "main" / "binary-amd64" / "Packages"
    packages.write_text(packages.read_text().replace("Version: 2.10-3", "Version: 2.10-4"))  # same size
    with pytest.raises(IndexNotAuthentic, match="does not match InRelease") as info:
        read_index(profile(mirror), fetcher)
    assert info.value.url.endswith("/dists/sid/main/binary-amd64/Packages")
    assert not info.value.transient


def test_debian_file_missing_from_inrelease_fails_the_sync(mirror, fetcher):
    sid = mirror / "dists" / "sid"
    write_inrelease(sid, omit=("main/binary-amd64/Packages",))
    with pytest.raises(IndexNotAuthentic, match="not listed in InRelease"):
        read_index(profile(mirror), fetcher)


def test_debian_unlisted_architecture_or_component_is_skipped_not_fatal(mirror, fetcher, caplog):
    with caplog.at_level(logging.WARNING):
        result = read_index(profile(mirror, architectures=("amd64", "riscv64"),
                                    components=("main", "contrib")), fetcher)
    assert len(result.inputs) == 5
    assert "no architecture 'riscv64'" in caplog.text and "no component 'contrib'" in caplog.text


def test_debian_by_hash_rescues_a_mirror_in_the_middle_of_an_update(mirror, fetcher):
    sid = mirror / "dists" / "sid"
    good = (sid / "main" / "binary-amd64" / "Packages").read_bytes()
    write_inrelease(sid, extra={"Acquire-By-Hash": "yes"})
    import hashlib
    by_hash = sid / "main" / "binary-amd64" / "by-hash" / "SHA256"
    by_hash.mkdir(parents=True)
    (by_hash / hashlib.sha256(good).hexdigest()).write_bytes(good)
    (sid / "main" / "binary-amd64" / "Packages").write_bytes(good.replace(b"2.10-3", b"2.10-9"))
    result = read_index(profile(mirror), fetcher)
    assert len(result.inputs) == 5
    assert any("/by-hash/SHA256/" in u for u in result.sources)


def test_debian_expired_inrelease_fails(mirror, fetcher):
    write_inrelease(mirror / "dists" / "sid", extra={"Valid-Until": "Sat, 08 Mar 2025 08:12:34 UTC"})
    read_index(profile(mirror), fetcher, now=datetime(2025, 3, 2, tzinfo=timezone.utc))
    with pytest.raises(IndexNotAuthentic, match="expired"):
        read_index(profile(mirror), fetcher, now=datetime(2025, 3, 9, tzinfo=timezone.utc))


def test_debian_truncated_xz_fails(mirror, fetcher):
    sid = mirror / "dists" / "sid"
    compress(sid, ("xz",), keep_plain=False)
    xz = sid / "main" / "binary-amd64" / "Packages.xz"
    xz.write_bytes(xz.read_bytes()[:-40])
    write_inrelease(sid)  # the truncated file is what InRelease lists: the hash check passes
    with pytest.raises(CorruptIndex, match="truncated xz") as info:
        read_index(profile(mirror), fetcher)
    assert info.value.url.endswith("Packages.xz")


def test_debian_xz_bomb_is_stopped_at_the_limit(mirror, fetcher):
    sid = mirror / "dists" / "sid"
    compress(sid, ("xz",), keep_plain=False)
    (sid / "main" / "binary-amd64" / "Packages.xz").write_bytes(lzma.compress(b"\n" * (64 << 20)))
    write_inrelease(sid)
    with pytest.raises(CorruptIndex, match="more than the 1048576-byte limit"):
        read_index(profile(mirror), fetcher, max_index_bytes=1 << 20)


def test_debian_html_instead_of_an_index_fails(mirror, fetcher):
    sid = mirror / "dists" / "sid"
    html = b"<!DOCTYPE html>\n<html><body>Captive portal: please log in</body></html>\n"
    (sid / "InRelease").write_bytes(html)
    with pytest.raises(CorruptIndex, match="not a Release file"):
        read_index(profile(mirror), fetcher)
    (sid / "main" / "binary-amd64" / "Packages").write_bytes(html)
    write_inrelease(sid)  # even when InRelease vouches for it, an HTML page is no index
    with pytest.raises(CorruptIndex, match="HTML"):
        read_index(profile(mirror), fetcher)


# --- over HTTP ----------------------------------------------------------------------------------------------------

class _Handler(http.server.SimpleHTTPRequestHandler):
    html_paths: set[str] = set()

    def do_GET(self):  # noqa: N802 (http.server's name)
        if urlsplit(self.path).path in self.html_paths:
            body = b"<html><head><title>Mirror maintenance</title></head><body>Back soon.</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_mirror(mirror) -> Iterator[tuple[str, set[str]]]:
    """The mirror on a loopback HTTP server; paths added to the returned set answer with an HTML page."""
    html: set[str] = set()
    with serve(mirror, type("Handler", (_Handler,), {"html_paths": html})) as url:
        yield url, html


def test_debian_sync_over_http(http_mirror, mirror, fetcher):
    url, _ = http_mirror
    compress(mirror / "dists" / "sid", ("xz",))
    write_inrelease(mirror / "dists" / "sid")
    result = read_index(profile(url), fetcher)
    assert len(result.inputs) == 5
    assert f"{url}/dists/sid/main/binary-amd64/Packages.xz" in result.sources
    assert by_source(result)[("sid", "amd64", "hello")].artifacts[0].url == \
        f"{url}/pool/main/h/hello/hello_2.10-3_amd64.deb"


def test_debian_html_answer_over_http_fails(http_mirror, fetcher):
    url, html = http_mirror
    html.add("/dists/sid/main/binary-amd64/Packages")
    with pytest.raises(IndexNotAuthentic):
        read_index(profile(url), fetcher)
    html.add("/dists/sid/InRelease")
    with pytest.raises(CorruptIndex):
        read_index(profile(url), fetcher)


def test_debian_missing_inrelease_fails(http_mirror, mirror, fetcher):
    url, _ = http_mirror
    (mirror / "dists" / "sid" / "InRelease").unlink()
    with pytest.raises(FetchFailed) as info:
        read_index(profile(url), fetcher)
    assert info.value.status == 404


# --- signatures ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gpg_keys(tmp_path_factory) -> Iterator[dict[str, Path]]:
    """Two throwaway signing keys (A, B) in a temporary GNUPGHOME, and their public keyrings."""
    require_tool("gpg", "gnupg")
    require_tool("gpgv", "gpgv")
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    env = dict(os.environ, GNUPGHOME=str(home))
    out: dict[str, Path] = {"home": home}
    try:
        for user in ("a", "b"):
            subprocess.run(["gpg", "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", "",
                            "--quick-gen-key", f"Test archive key {user} <{user}@example.org>", "ed25519", "sign",
                            "never"], check=True, env=env, capture_output=True, timeout=60)
            ring = home / f"{user}.gpg"
            ring.write_bytes(subprocess.run(["gpg", "--batch", "--export", f"{user}@example.org"], check=True, env=env,
                                            capture_output=True, timeout=60).stdout)
            out[user] = ring
            armored = subprocess.run(["gpg", "--batch", "--armor", "--export", f"{user}@example.org"], check=True,
                                     env=env, capture_output=True, timeout=60).stdout
            out[f"{user}.asc"] = home / f"{user}.asc"
            out[f"{user}.asc"].write_bytes(armored)
        yield out
    finally:
        if shutil.which("gpgconf"):  # stop the agent gpg started for this home
            subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, capture_output=True, timeout=60)


def test_debian_good_signature_passes(mirror, fetcher, gpg_keys, caplog):
    clearsign(mirror / "dists" / "sid", gpg_keys["home"], users=("a@example.org",))
    with caplog.at_level(logging.WARNING):
        result = read_index(profile(mirror, keyring=str(gpg_keys["a"])), fetcher)
    assert len(result.inputs) == 5
    assert "not signature-checked" not in caplog.text
    # an ASCII-armored keyring works too
    assert len(read_index(profile(mirror, keyring=str(gpg_keys["a.asc"])), fetcher).inputs) == 5


def test_debian_one_good_signature_of_several_is_enough(mirror, fetcher, gpg_keys):
    # Debian signs with several keys; a keyring holding only one of them must still verify (as apt).
    clearsign(mirror / "dists" / "sid", gpg_keys["home"], users=("a@example.org", "b@example.org"))
    assert len(read_index(profile(mirror, keyring=str(gpg_keys["b"])), fetcher).inputs) == 5


def test_debian_bad_signature_fails(mirror, fetcher, gpg_keys):
    inrelease = clearsign(mirror / "dists" / "sid", gpg_keys["home"], users=("a@example.org",))
    inrelease.write_text(inrelease.read_text().replace("Codename: sid", "Codename: sie"))
    with pytest.raises(BadSignature, match="bad signature"):
        read_index(profile(mirror, keyring=str(gpg_keys["a"])), fetcher)


def test_debian_signature_by_an_unknown_key_fails(mirror, fetcher, gpg_keys):
    clearsign(mirror / "dists" / "sid", gpg_keys["home"], users=("b@example.org",))
    with pytest.raises(BadSignature, match="NO_PUBKEY"):
        read_index(profile(mirror, keyring=str(gpg_keys["a"])), fetcher)


def test_debian_unsigned_inrelease_fails_when_a_keyring_is_set(mirror, fetcher, gpg_keys):
    with pytest.raises(BadSignature):
        read_index(profile(mirror, keyring=str(gpg_keys["a"])), fetcher)


def test_debian_only_the_signed_text_is_used(mirror, fetcher, gpg_keys):
    sid = mirror / "dists" / "sid"
    signed = clearsign(sid, gpg_keys["home"], users=("a@example.org",))
    honest = signed.read_text()
    # Text outside the signed block (before it) listing a tampered Packages must not be believed.
    packages = sid / "main" / "binary-amd64" / "Packages"
    packages.write_text(packages.read_text().replace("2.10-3", "9.99-9"))
    signed.write_text(release_text(sid) + "\n" + honest)
    with pytest.raises(IndexNotAuthentic, match="does not match"):
        read_index(profile(mirror, keyring=str(gpg_keys["a"])), fetcher)


def test_debian_unreadable_keyring_is_a_config_error(mirror, fetcher, tmp_path):
    with pytest.raises(ConfigError, match="keyring"):
        read_index(profile(mirror, keyring=str(tmp_path / "missing.gpg")), fetcher)


def test_debian_unsigned_index_warns(mirror, fetcher, caplog):
    with caplog.at_level(logging.WARNING):
        read_index(profile(mirror), fetcher)
    assert "not signature-checked" in caplog.text


# --- hostile input ------------------------------------------------------------------------------------------------

HOSTILE = ["../../etc", "<script>alert(1)</script>", "$(reboot)", "%2e%2e", "a'b\"c", "x/../../y", "`id`", "a b"]


def _hostile_mirror(mirror: Path) -> None:
    sid = mirror / "dists" / "sid"
    sources = (sid / "main" / "source" / "Sources").read_text()
    packages = (sid / "main" / "binary-amd64" / "Packages").read_text()
    for i, evil in enumerate(HOSTILE):
        sources += f"\nPackage: {evil}\nBinary: ok{i}\nVersion: 1.0-1\nArchitecture: any\nDirectory: pool/x\n"
        # as a binary name, as a source name, as a version and as a file name
        packages += (f"\nPackage: {evil}\nVersion: 1.0-1\nArchitecture: amd64\nFilename: pool/main/o/ok/ok_1_amd64.deb\n"
                     f"Size: 1\nSHA256: {'0' * 64}\n")
        packages += (f"\nPackage: ok{i}\nSource: {evil} (1.0-1)\nVersion: 1.0-1\nArchitecture: amd64\n"
                     f"Filename: pool/main/o/ok/ok{i}_1_amd64.deb\nSize: 1\nSHA256: {'0' * 64}\n")
        packages += (f"\nPackage: okv{i}\nSource: hello ({evil})\nVersion: 1.0-1\nArchitecture: amd64\n"
                     f"Filename: pool/main/o/ok/okv{i}_1_amd64.deb\nSize: 1\nSHA256: {'0' * 64}\n")
        packages += (f"\nPackage: okf{i}\nSource: hello\nVersion: 2.10-3\nArchitecture: amd64\n"
                     f"Filename: pool/main/{evil}/okf{i}.deb\nSize: 1\nSHA256: {'0' * 64}\n")
    (sid / "main" / "source" / "Sources").write_text(sources)
    (sid / "main" / "binary-amd64" / "Packages").write_text(packages)
    write_inrelease(sid)


def test_debian_hostile_names_never_reach_a_url(mirror, fetcher):
    _hostile_mirror(mirror)
    result = read_index(profile(mirror), fetcher)
    assert sorted(bi.source_name for bi in result.inputs) == ["acl", "hello", "libbsd", "shadow", "zlib"]
    hello = by_source(result)[("sid", "amd64", "hello")]
    assert [a.name for a in hello.artifacts] == ["hello"]
    urls = [bi.input_url for bi in result.inputs] + [a.url for bi in result.inputs for a in bi.artifacts]
    for url in urls:
        path = urlsplit(url).path
        assert ".." not in unquote(path).split("/"), url
        for bad in ("<", ">", "$", "`", "'", '"', " ", "%2e", "%2E"):
            assert bad not in url, url
    reasons = " | ".join(s.reason for s in result.skipped)
    assert len(result.skipped) == 4 + 4 * len(HOSTILE) + len(HOSTILE)  # fixtures' 4; 4 stanzas + 1 source each
    assert "invalid binary package name" in reasons and "invalid Source field" in reasons
    assert "invalid file name" in reasons and "invalid source package name" in reasons


def test_debian_buildinfo_url_quotes_every_segment():
    assert buildinfo_url(BASE, "libstdc++", "1:14.2.0-1+b1", "amd64") == \
        f"{BASE}/libs/libstdc++/libstdc++_14.2.0-1+b1_amd64.buildinfo"
    url = buildinfo_url(BASE, "a/../b", "1.0?x#y", "amd64")  # names are validated first; quoting is the backstop
    assert "/../" not in url and "?" not in url and "#" not in url


def test_debian_errors_are_terminal():
    for cls in (IndexNotAuthentic, CorruptIndex, BadSignature):
        assert issubclass(cls, TerminalError)


def _line_of(mirror: Path, text: str) -> int:
    lines = (mirror / "dists" / "sid" / "main" / "binary-amd64" / "Packages").read_text().split("\n")
    return lines.index(text) + 1



def test_debian_unsigned_sync_loads_neither_gpgv_nor_python_debian_until_needed(mirror):
    """gpgv's helpers (subprocess, ctypes) only with a keyring; python-debian only to compare a version spelt
    differently (the fixtures have one: zlib's epoch)."""
    script = f"""
import json, sys, logging
logging.disable(logging.WARNING)
from jobs.sync.debian import read_index
from jobs.sync.fetch import Fetcher
from jobs.core.config import Release, SyncProfile
profile = SyncProfile(name="debian-test", distro="debian", source={mirror.as_uri()!r}, components=("main",),
                      architectures=("amd64",), releases=(Release("sid"),))
loaded = {{"import": sorted(m for m in ("debian", "jobs.sync.gpgv", "jobs.core.proc") if m in sys.modules)}}
result = read_index(profile, Fetcher(retries=0, timeout=10))
assert result.inputs
loaded["read"] = sorted(m for m in ("debian", "jobs.sync.gpgv", "jobs.core.proc") if m in sys.modules)
print(json.dumps(loaded))
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[2])
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"import": [], "read": ["debian"]}
