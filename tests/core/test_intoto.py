"""in-toto link attestations (jobs.core.signing.intoto), checked against the in-toto reference
implementation and against real attestations published by rebuilderd instances."""

from __future__ import annotations

import copy
import hashlib
import json
import tracemalloc
from pathlib import Path

import pytest
from in_toto.exceptions import SignatureVerificationError, ThresholdVerificationError
from in_toto.models.layout import Layout, Step
from in_toto.models.link import Link
from in_toto.models.metadata import Metablock, Metadata
from in_toto.runlib import record_artifacts_as_dict
from in_toto.verifylib import in_toto_verify
from securesystemslib.exceptions import FormatError
from securesystemslib.signer import CryptoSigner, SSlibKey

from jobs.core.signing import (
    SignatureError,
    add_signature,
    generate_key,
    hash_artifact,
    key_id,
    link_from_json,
    link_key_id,
    link_to_json,
    load_public_key_pem,
    make_link,
    product_digests,
    rebuild_link_name,
    sign_link,
    verify_and_countersign,
    verify_link,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "signing"
ARCH_LINK = FIXTURES / "filesystem-2025.10.12-1-any.in-toto.link"
ARCH_PUB = FIXTURES / "reproducible-archlinux.pub"
DEBIAN_LINK = FIXTURES / "librust-as-slice-dev_0.2.1-1+b2_amd64.in-toto.link"
DEBIAN_PUB = FIXTURES / "reproduce-debian-net-amd64.pub"

WORKER = generate_key()
REBUILDER = generate_key()


@pytest.fixture
def build(tmp_path: Path) -> dict[str, Path]:
    """A rebuild's input and output files on disk."""
    files = {"foo_1.0-1.buildinfo": b"Source: foo\nVersion: 1.0-1\n",
             "foo_1.0-1_amd64.deb": bytes(range(256)) * 4099}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return {name: tmp_path / name for name in files}


def rebuild_link(build: dict[str, Path]) -> dict:
    return make_link(rebuild_link_name("foo_1.0-1_amd64.deb"),
                     materials={"foo_1.0-1.buildinfo": build["foo_1.0-1.buildinfo"]},
                     products={"foo_1.0-1_amd64.deb": build["foo_1.0-1_amd64.deb"]})


def intoto_key(pub, keyid: str | None = None) -> dict:
    """The public key dict in-toto verifies with, built by securesystemslib from our public key."""
    key = SSlibKey.from_crypto(pub, keyid=keyid)
    return {**key.to_dict(), "keyid": key.keyid}


def reason(metablock, trusted, **kw) -> str:
    with pytest.raises(SignatureError) as info:
        verify_link(metablock, trusted, **kw)
    return info.value.reason


# --- making links -----------------------------------------------------------------------------

def test_link_has_rebuilderds_shape(build: dict[str, Path]) -> None:
    link = rebuild_link(build)
    assert list(link) == ["_type", "name", "materials", "products", "environment", "byproducts",
                          "command"]
    assert link["_type"] == "link" and link["name"] == "rebuild foo_1.0-1_amd64.deb"
    assert link["environment"] == {} and link["byproducts"] == {} and link["command"] == []
    metablock = sign_link(link, WORKER)
    assert list(metablock) == ["signatures", "signed"]  # rebuilderd's key order
    assert metablock["signatures"][0]["keyid"] == link_key_id(WORKER.public_key())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # in-toto's use of pathspec, not ours
def test_digests_match_hashlib_and_in_toto_runlib(build: dict[str, Path]) -> None:
    link = rebuild_link(build)
    for section, name in (("materials", "foo_1.0-1.buildinfo"), ("products", "foo_1.0-1_amd64.deb")):
        data = build[name].read_bytes()
        assert link[section][name] == {"sha256": hashlib.sha256(data).hexdigest(),
                                       "sha512": hashlib.sha512(data).hexdigest()}
    # in-toto's own artifact recorder (sha256) agrees on the same files.
    base = build["foo_1.0-1.buildinfo"].parent
    recorded = record_artifacts_as_dict(list(build), base_path=str(base))
    assert {n: d["sha256"] for n, d in recorded.items()} == \
        {n: d["sha256"] for n, d in {**link["materials"], **link["products"]}.items()}
    assert product_digests(sign_link(link, WORKER)) == link["products"]


def test_bytes_sources_hash_like_files(build: dict[str, Path]) -> None:
    path = build["foo_1.0-1_amd64.deb"]
    assert hash_artifact(path) == hash_artifact(path.read_bytes()) == hash_artifact(str(path))


def test_hashing_streams_large_files(tmp_path: Path) -> None:
    big = tmp_path / "big.pkg.tar.zst"
    with big.open("wb") as fh:
        for i in range(48):
            fh.write(bytes([i]) * (1 << 20))
    tracemalloc.start()
    try:
        digests = hash_artifact(big)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20  # 48 MiB hashed, never more than a few MiB held
    assert digests["sha256"] == hashlib.sha256(big.read_bytes()).hexdigest()


@pytest.mark.parametrize("kwargs", [
    {"materials": {"../etc/passwd": b"x"}}, {"materials": {"/abs": b"x"}}, {"products": {"": b"x"}},
    {"products": {"a\nb": b"x"}}, {"command": "make"}, {"command": ["make", 1]},
    {"environment": {"LANG": 1}}, {"name": ""},
])
def test_make_link_refuses_bad_input(kwargs: dict) -> None:
    args = {"name": "rebuild x", "materials": {}, "products": {"x": b"x"}, **kwargs}
    with pytest.raises(ValueError):
        make_link(**args)


def test_missing_artifact_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        make_link("rebuild x", {}, {"x": tmp_path / "missing"})


# --- the in-toto reference implementation accepts our bytes -----------------------------------

def test_in_toto_reference_verifies_our_link_and_rejects_tampering(build: dict[str, Path],
                                                                     tmp_path: Path) -> None:
    path = tmp_path / "rebuild.link"
    path.write_bytes(link_to_json(sign_link(rebuild_link(build), WORKER)))
    metablock = Metadata.load(str(path))  # in-toto parses and validates our JSON
    assert isinstance(metablock, Metablock) and isinstance(metablock.signed, Link)
    pub = WORKER.public_key()
    metablock.verify_signature(intoto_key(pub, keyid=link_key_id(pub)))

    tampered = json.loads(path.read_bytes())
    tampered["signed"]["products"]["foo_1.0-1_amd64.deb"]["sha256"] = "0" * 64
    path.write_text(json.dumps(tampered))
    with pytest.raises(SignatureVerificationError):
        Metadata.load(str(path)).verify_signature(intoto_key(pub, keyid=link_key_id(pub)))
    with pytest.raises(SignatureVerificationError):  # and a different key does not verify it
        Metadata.load(str(path)).verify_signature(intoto_key(REBUILDER.public_key()))


def _layout_for(step_name: str, worker_key: dict, owner) -> tuple[Metablock, dict]:
    """A one-step in-toto layout: the product must be created by a rebuild signed by the worker."""
    layout = Layout()
    layout.set_relative_expiration(days=1)
    layout.keys = {worker_key["keyid"]: worker_key}
    layout.steps = [Step(name=step_name, pubkeys=[worker_key["keyid"]], threshold=1,
                         expected_materials=[["ALLOW", "foo_1.0-1.buildinfo"], ["DISALLOW", "*"]],
                         expected_products=[["CREATE", "foo_1.0-1_amd64.deb"], ["DISALLOW", "*"]])]
    metablock = Metablock(signed=layout)
    owner_key = SSlibKey.from_crypto(owner.public_key())
    metablock.create_signature(CryptoSigner(owner, owner_key))
    return metablock, {owner_key.keyid: intoto_key(owner.public_key())}


def test_in_toto_verify_accepts_our_link_as_supply_chain_evidence(build: dict[str, Path],
                                                                 tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    links = tmp_path / "links"
    links.mkdir()
    monkeypatch.chdir(links)  # in_toto_verify resolves relative paths from the working directory
    pub = WORKER.public_key()
    link = rebuild_link(build)
    # in-toto's link file naming: "<step name>.<first 8 hex digits of keyid>.link"
    link_file = links / f"{link['name']}.{link_key_id(pub)[:8]}.link"
    link_file.write_bytes(link_to_json(sign_link(link, WORKER)))
    layout, layout_keys = _layout_for(link["name"], intoto_key(pub, keyid=link_key_id(pub)),
                                      generate_key())
    summary = in_toto_verify(layout, layout_keys, link_dir_path=str(links))
    assert summary.products == link["products"]

    tampered = json.loads(link_file.read_bytes())
    tampered["signed"]["products"]["foo_1.0-1_amd64.deb"]["sha512"] = "f" * 128
    link_file.write_text(json.dumps(tampered))
    # in-toto drops the link whose signature fails, so the step lacks its one signed link.
    with pytest.raises(ThresholdVerificationError, match="Only found '0'"):
        in_toto_verify(layout, layout_keys, link_dir_path=str(links))


def test_in_toto_rejects_null_environment_which_is_why_we_write_an_object() -> None:
    # rebuilderd writes "environment": null; the Python reference refuses it.
    with pytest.raises(FormatError, match="environment"):
        Metablock.from_dict(json.loads(ARCH_LINK.read_bytes()))


def test_we_verify_links_signed_by_in_toto(build: dict[str, Path]) -> None:
    link = Link(name="rebuild foo_1.0-1_amd64.deb", materials={}, command=[],
                products={"foo_1.0-1_amd64.deb": hash_artifact(build["foo_1.0-1_amd64.deb"])})
    metablock = Metablock(signed=link)
    metablock.create_signature(CryptoSigner(WORKER, SSlibKey.from_crypto(WORKER.public_key())))
    doc = json.loads(json.dumps(metablock.to_dict()))
    assert verify_link(doc, [WORKER.public_key()]) == {key_id(WORKER.public_key())}


# --- countersigning ---------------------------------------------------------------------------

def test_countersigned_link_verifies_with_both_keys(build: dict[str, Path]) -> None:
    signed = sign_link(rebuild_link(build), WORKER)
    both = add_signature(signed, REBUILDER)
    assert len(signed["signatures"]) == 1  # input untouched
    assert [s["keyid"] for s in both["signatures"]] == [link_key_id(WORKER.public_key()),
                                                        link_key_id(REBUILDER.public_key())]
    trusted = {"worker": WORKER.public_key(), "rebuilder": REBUILDER.public_key()}
    assert verify_link(both, trusted, threshold=2) == {"worker", "rebuilder"}
    assert verify_link(both, [REBUILDER.public_key()]) == {key_id(REBUILDER.public_key())}
    metablock = Metablock.from_dict(copy.deepcopy(both))
    for key in (WORKER, REBUILDER):
        pub = key.public_key()
        metablock.verify_signature(intoto_key(pub, keyid=link_key_id(pub)))


def test_add_signature_is_idempotent_and_replaces_a_broken_own_signature(build: dict[str, Path]) -> None:
    once = add_signature(sign_link(rebuild_link(build), WORKER), REBUILDER)
    assert add_signature(once, REBUILDER) == once
    assert add_signature(once, WORKER) == once
    broken = copy.deepcopy(once)
    broken["signatures"][1]["sig"] = "00" * 64
    repaired = add_signature(broken, REBUILDER)
    assert len(repaired["signatures"]) == 2
    assert verify_link(repaired, [WORKER.public_key(), REBUILDER.public_key()], threshold=2)


def test_countersigning_a_rebuilderd_attestation_keeps_its_signatures() -> None:
    theirs = link_from_json(ARCH_LINK.read_bytes())
    ours = add_signature(theirs, REBUILDER)
    arch = load_public_key_pem(ARCH_PUB.read_text())
    assert verify_link(ours, {"arch": arch, "us": REBUILDER.public_key()}, threshold=2) == {"arch", "us"}


# --- verification failures --------------------------------------------------------------------

def test_verify_link_failures(build: dict[str, Path]) -> None:
    metablock = sign_link(rebuild_link(build), WORKER)
    worker, rebuilder = WORKER.public_key(), REBUILDER.public_key()
    assert reason(metablock, [rebuilder]) == SignatureError.UNKNOWN_KEY
    assert reason(metablock, [worker, rebuilder], threshold=2) == SignatureError.THRESHOLD
    # the same key under two labels is still one vote
    assert reason(metablock, {"a": worker, "b": worker}, threshold=2) == SignatureError.THRESHOLD
    tampered = copy.deepcopy(metablock)
    tampered["signed"]["name"] = "rebuild evil.deb"
    assert reason(tampered, [worker]) == SignatureError.BAD_SIGNATURE
    assert reason({**metablock, "signatures": []}, [worker]) == SignatureError.UNSIGNED
    with pytest.raises(ValueError):
        verify_link(metablock, [worker], threshold=0)


def _mangled(metablock: dict, path: tuple, value: object) -> dict:
    doc = copy.deepcopy(metablock)
    target = doc
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return doc


@pytest.mark.parametrize("path,value", [
    (("signed", "extra"), 1), (("signed", "_type"), "layout"), (("signed", "environment"), []),
    (("signed", "products"), []), (("signed", "products", "x"), {"sha256": "XYZ"}),
    (("signed", "products", "x"), {"sha256": "ab"}), (("signed", "products", "x"), {}),
    (("signed", "materials", "x"), {"md5": 5}), (("signed", "byproducts"), None),
    (("signed", "command"), None), (("signed", "name"), 3), (("signed", "byproducts"), {"f": 1.5}),
    (("signatures",), {}), (("signatures", 0, "sig"), "nothex"), (("extra",), 1),
])
def test_malformed_links(build: dict[str, Path], path: tuple, value: object) -> None:
    doc = _mangled(sign_link(rebuild_link(build), WORKER), path, value)
    assert reason(doc, [WORKER.public_key()]) == SignatureError.MALFORMED
    with pytest.raises(SignatureError):
        product_digests(doc)


@pytest.mark.parametrize("doc", [None, [], "x", {}, {"signed": {}}, {"signatures": [], "signed": None}])
def test_garbage_links(doc: object) -> None:
    assert reason(doc, [WORKER.public_key()]) == SignatureError.MALFORMED


def test_sign_link_refuses_malformed_links(build: dict[str, Path]) -> None:
    with pytest.raises(SignatureError):
        sign_link({**rebuild_link(build), "extra": 1}, WORKER)


# --- real attestations from rebuilderd instances ----------------------------------------------

@pytest.mark.parametrize("link_file,pub_file", [(ARCH_LINK, ARCH_PUB), (DEBIAN_LINK, DEBIAN_PUB)])
def test_real_rebuilderd_attestations_verify(link_file: Path, pub_file: Path) -> None:
    metablock = link_from_json(link_file.read_bytes())
    pub = load_public_key_pem(pub_file.read_text())
    assert verify_link(metablock, {"rebuilder": pub}) == {"rebuilder"}
    # repro-threshold finds the signature by in-toto-rs' key id of the published key
    assert link_key_id(pub) in {s["keyid"] for s in metablock["signatures"]}


def test_real_attestation_products_and_corruption() -> None:
    metablock = link_from_json(ARCH_LINK.read_bytes())
    digests = product_digests(metablock)
    assert digests["filesystem-2025.10.12-1-any.pkg.tar.zst"]["sha256"] == \
        "6b6c3fee7432204840d3b6afc9bc1a68c28f591a47fb220071715c40cca956df"
    arch = load_public_key_pem(ARCH_PUB.read_text())
    invalid = link_from_json((FIXTURES / "filesystem-2025.10.12-1-any.INVALID.in-toto.link").read_bytes())
    assert reason(invalid, [arch]) == SignatureError.BAD_SIGNATURE
    debian = load_public_key_pem(DEBIAN_PUB.read_text())
    assert reason(metablock, [debian]) == SignatureError.UNKNOWN_KEY


def test_link_json_round_trip(build: dict[str, Path]) -> None:
    metablock = sign_link(rebuild_link(build), WORKER)
    data = link_to_json(metablock)
    assert data.startswith(b'{"signatures":[{"keyid":') and b" " not in data.replace(b"rebuild foo", b"")
    assert link_from_json(data) == metablock
    for bad in (b"", b"{", b"\xff", b"[]", b'{"signatures":[],"signed":{}}'):
        with pytest.raises(SignatureError):
            link_from_json(bad)


# --- verify_and_countersign: verify_link then add_signature, in one pass ------------------------

def _both_ways(metablock: object, trusted: object, key=REBUILDER) -> tuple[object, object]:
    """(verify_link then add_signature, verify_and_countersign): each a result or the error raised."""
    def outcome(f):
        try:
            return f()
        except (SignatureError, ValueError) as exc:
            return (type(exc), str(exc), getattr(exc, "reason", None))

    def old():
        verify_link(metablock, trusted)
        return add_signature(metablock, key)
    return outcome(old), outcome(lambda: verify_and_countersign(metablock, trusted, key))


def test_verify_and_countersign_is_verify_then_add_signature(build: dict[str, Path]) -> None:
    worker, rebuilder = WORKER.public_key(), REBUILDER.public_key()
    signed = sign_link(rebuild_link(build), WORKER)
    once = add_signature(signed, REBUILDER)
    broken = copy.deepcopy(once)
    broken["signatures"][1]["sig"] = "00" * 64
    tampered = copy.deepcopy(signed)
    tampered["signed"]["name"] = "rebuild evil.deb"
    cases = [signed, once, broken, tampered, {**signed, "signatures": []}, link_from_json(ARCH_LINK.read_bytes()),
             None, {}, {"signed": {}}]
    cases += [_mangled(signed, ("signed", "extra"), 1), _mangled(signed, ("signed", "byproducts"), {"f": 1.5}),
              _mangled(signed, ("signatures", 0, "sig"), "nothex"), _mangled(signed, ("signed", "name"), "\ud800")]
    arch = load_public_key_pem(ARCH_PUB.read_text())
    for metablock in cases:
        before = copy.deepcopy(metablock)
        for trusted in ({"w": worker}, [worker], {"r": rebuilder}, {"arch": arch}, []):
            old, new = _both_ways(metablock, trusted)
            assert new == old, (metablock, trusted)
        assert metablock == before  # the input untouched
    assert verify_and_countersign(signed, [worker], REBUILDER) == once
