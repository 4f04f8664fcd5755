"""`rebuildctl verify FILE…` against two rebuilders' really published, really countersigned attestations.

The files are the fixture repository's own packages (what a user downloads from the
mirror); the rebuilders reproduced them, so GOOD ones verify byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import zstandard

from jobs.core.signing import generate_key, public_keys_feed
from tests.ctl.support import copy_site, ctl


def _file(fixture_repo, name: str) -> str:
    return str(fixture_repo.package(name).path)


def _checks(res) -> dict[str, list[tuple[str, str]]]:
    """file → [(reason, rebuilder)] from the plain output."""
    out: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in res.stdout.splitlines():
        if line.startswith(("OK ", "FAIL ")):
            current = line.split(" ", 2)[2]
            out[current] = []
        elif line.startswith("  "):
            reason, rebuilder = line.split()[:2]
            out[current].append((reason, rebuilder.rstrip(":")))
    return out


def test_good_package_verified_by_one_rebuilder(base, fixture_repo):
    res = ctl("-H", base, "verify", _file(fixture_repo, "hello-c"), _file(fixture_repo, "split-b"))
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0] == f"OK 1/1 {_file(fixture_repo, 'hello-c')}"
    feed = json.loads(ctl("-H", base, "pkgs", "ls", "--name", "hello-c", "--json").stdout)
    assert lines[1].startswith(f"  confirmed {base}: key ")
    assert lines[1].endswith(f"{base}/{feed[0]['files']['attestation']}")
    assert lines[-1] == "2/2 files verified (threshold 1)"


def test_two_rebuilders_with_distinct_keys_meet_threshold_two(base, second_base, fixture_repo):
    files = [_file(fixture_repo, n) for n in ("hello-c", "hello-script", "split-a")]
    res = ctl("verify", "--rebuilder", base, "--rebuilder", second_base, "--threshold", "2", *files)
    assert res.exit_code == 0, res.output
    checks = _checks(res)
    assert all(checks[f] == [("confirmed", base), ("confirmed", second_base)] for f in files)
    verdicts = json.loads(ctl("verify", "-r", base, "-r", second_base, "-t", "2", "--json", *files).stdout)
    assert [v["confirmations"] for v in verdicts] == [2, 2, 2]
    keys = {c["key_ids"][0] for c in verdicts[0]["checks"]}
    assert len(keys) == 2  # two different rebuilder keys signed


def test_fewer_than_k_rebuilders_is_rejected(published, http_base, fixture_repo):
    hello = _file(fixture_repo, "hello-c")
    # One rebuilder at two URLs (HTTP and file://) is one vote: the same key signed both.
    res = ctl("verify", "-r", http_base, "-r", (published[0] / "site").as_uri(), "-t", "2", hello)
    assert res.exit_code == 1
    assert _checks(res)[hello] == [("confirmed", http_base), ("same-key", (published[0] / "site").as_uri())]
    assert res.stdout.splitlines()[0] == f"FAIL 1/2 {hello}"
    assert res.stdout.splitlines()[-1] == "0/1 files verified (threshold 2)"
    # A threshold no list of rebuilders can meet is a usage error.
    res = ctl("-H", http_base, "verify", "-t", "2", hello)
    assert res.exit_code == 2 and "needs at least 2 rebuilders" in res.stderr


def test_tampered_file_is_rejected(base, second_base, fixture_repo, tmp_path):
    original = fixture_repo.package("hello-c").path
    tampered = tmp_path / original.name
    # Same package contents, other bytes (recompressed): a valid package that is not the one rebuilt.
    tampered.write_bytes(zstandard.ZstdCompressor(level=19).compress(
        zstandard.ZstdDecompressor().decompressobj().decompress(original.read_bytes())))
    res = ctl("verify", "-r", base, "-r", second_base, str(tampered))
    assert res.exit_code == 1
    assert [r for r, _ in _checks(res)[str(tampered)]] == ["sha256-mismatch", "sha256-mismatch"]
    assert "the rebuilder reproduced sha256 " + fixture_repo.package("hello-c").sha256 in res.stdout


def _edit_attestation(site: Path, name: str, edit) -> None:
    """Rewrite the published attestation of package `name` with `edit(link)`."""
    feed = json.loads((site / "api/v1/packages/archlinux" / f"{name}.json").read_text())
    path = site / feed["packages"][0]["files"]["attestation"]
    link = json.loads(path.read_text())
    edit(link)
    path.write_text(json.dumps(link))


def test_forged_signature_is_rejected(published, fixture_repo, tmp_path):
    site = copy_site(published[0] / "site", tmp_path / "site")
    original = fixture_repo.package("hello-c").path
    evil = tmp_path / "evil" / original.name
    evil.parent.mkdir()
    evil.write_bytes(original.read_bytes() + b"\0backdoor")
    evil_sha = hashlib.sha256(evil.read_bytes()).hexdigest()

    def list_evil(link):  # the attacker rewrites the product's digest and keeps the signatures
        link["signed"]["products"][original.name]["sha256"] = evil_sha

    _edit_attestation(site, "hello-c", list_evil)
    res = ctl("-H", site.as_uri(), "verify", str(evil))
    assert res.exit_code == 1
    assert _checks(res)[str(evil)] == [("bad-signature", site.as_uri())]
    # A signature flipped under the rebuilder's key id is as bad.
    _edit_attestation(site, "hello-script", lambda link: link["signatures"][-1].update(
        sig=("0" if link["signatures"][-1]["sig"][0] != "0" else "1") + link["signatures"][-1]["sig"][1:]))
    res = ctl("-H", site.as_uri(), "verify", _file(fixture_repo, "hello-script"))
    assert res.exit_code == 1 and "bad-signature" in res.stdout


def test_unknown_key_is_rejected(published, fixture_repo, tmp_path):
    """A site whose published key did not sign the attestation (the worker's signature never counts)."""
    site = copy_site(published[0] / "site", tmp_path / "site")
    feed = json.dumps(public_keys_feed([generate_key().public_key()]))
    (site / "api/v0/public-keys").write_text(feed)
    res = ctl("-H", site.as_uri(), "verify", _file(fixture_repo, "hello-c"))
    assert res.exit_code == 1
    assert _checks(res)[_file(fixture_repo, "hello-c")] == [("unknown-key", site.as_uri())]
    assert "not signed by any trusted key" in res.stdout


def test_not_reproduced_not_listed_and_not_a_package(base, fixture_repo, tmp_path):
    unrepro, ftbfs = _file(fixture_repo, "unrepro"), _file(fixture_repo, "ftbfs")
    junk = tmp_path / "notes.txt"
    junk.write_text("not a package\n")
    renamed = tmp_path / "hello-c-renamed.pkg.tar.zst"
    shutil.copy(fixture_repo.package("hello-c").path, renamed)
    res = ctl("-H", base, "verify", unrepro, ftbfs, str(junk), str(renamed))
    assert res.exit_code == 1
    checks = _checks(res)
    assert checks[unrepro] == [("not-good", base)] and "unrepro 1.0-1 any is BAD" in res.stdout
    assert checks[ftbfs] == [("not-good", base)] and "is FAIL" in res.stdout
    assert checks[str(junk)] == [("not-a-package", "-")]
    assert checks[str(renamed)] == [("not-a-product", base)]  # the digest counts only under the file's name
    assert res.stdout.splitlines()[-1] == "0/4 files verified (threshold 1)"
    assert ctl("-H", base, "verify", str(tmp_path / "missing.pkg.tar.zst")).exit_code == 2
    assert ctl("-H", base, "verify").exit_code == 2


def test_v0_only_rebuilder(published, fixture_repo, tmp_path):
    """A rebuilder without our v1 feeds (rebuilderd): api/v0/pkgs/list and api/v0/builds/<id>/attestation."""
    from tests.httpd import serve

    site = copy_site(published[0] / "site", tmp_path / "site")
    shutil.rmtree(site / "api/v1")
    hello = _file(fixture_repo, "hello-c")
    with serve(site) as http:
        for url in (http, site.as_uri()):
            res = ctl("-H", url, "verify", hello, _file(fixture_repo, "unrepro"))
            assert res.exit_code == 1
            checks = _checks(res)
            assert checks[hello] == [("confirmed", url)]
            assert checks[_file(fixture_repo, "unrepro")] == [("not-good", url)]


def test_unreachable_rebuilder_and_one_without_keys(published, base, fixture_repo, tmp_path):
    site = copy_site(published[0] / "site", tmp_path / "site")
    (site / "api/v0/public-keys").unlink()
    (site / "api/v1/meta/public-keys").unlink()
    hello = _file(fixture_repo, "hello-c")
    res = ctl("verify", "-r", "http://127.0.0.1:9", "-r", site.as_uri(), "-r", base, hello)
    assert res.exit_code == 0, res.output  # one confirmation is enough for the default threshold
    assert _checks(res)[hello] == [("unreachable", "http://127.0.0.1:9"), ("no-public-keys", site.as_uri()),
                                   ("confirmed", base)]


def test_a_good_that_contradicts_the_index_is_not_counted(published, fixture_repo, tmp_path):
    """A rebuilder countersigned a worker's GOOD for a repacked file (issue #14): its vote must not count.

    The attestation is validly signed by the rebuilder's own key, but names the digest of a
    file with an extra /usr/bin/backdoor, while the index the rebuilder synced records the
    genuine digest (published as `artifact_sha256` in its package feed).
    """
    from jobs.core.signing import add_signature, load_or_create_key

    site = copy_site(published[0] / "site", tmp_path / "site")
    original = fixture_repo.package("hello-c").path
    evil = tmp_path / "evil" / original.name
    evil.parent.mkdir()
    evil.write_bytes(original.read_bytes() + b"/usr/bin/backdoor")
    evil_sha = hashlib.sha256(evil.read_bytes()).hexdigest()
    key = load_or_create_key(published[1].publish.signing_key)

    def countersign_evil(link):
        link["signed"]["products"][original.name]["sha256"] = evil_sha
        signed = add_signature({"signatures": [], "signed": link["signed"]}, key)
        link["signatures"] = signed["signatures"]

    _edit_attestation(site, "hello-c", countersign_evil)
    feed = json.loads((site / "api/v1/packages/archlinux/hello-c.json").read_text())
    assert feed["packages"][0]["artifact_sha256"] == fixture_repo.package("hello-c").sha256
    for path in (str(evil), str(original)):
        res = ctl("-H", site.as_uri(), "verify", path)
        assert res.exit_code == 1, res.output
        assert _checks(res)[path] == [("contradicts-index", site.as_uri())]
        assert f"its signed GOOD names sha256 {evil_sha}" in res.stdout
        assert "0/1 files verified" in res.stdout
