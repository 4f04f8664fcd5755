"""Keys, key ids, signed JSON documents and HMAC tags (jobs.core.signing)."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from securesystemslib.signer import SSlibKey

from jobs.core.errors import TerminalError
from jobs.core.signing import (
    KeyFileError,
    KeyFormatError,
    SignatureError,
    generate_key,
    hmac_tag,
    hmac_verify,
    key_id,
    link_key_id,
    load_or_create_key,
    load_private_key,
    load_public_key_pem,
    load_public_keys_feed,
    parse_private_key,
    private_key_der,
    private_key_pem,
    public_key_b64,
    public_key_from_b64,
    public_key_pem,
    public_keys_feed,
    sign_document,
    verify_document,
)
from tests.core.signing_child import create_after_barrier

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "signing"


def raw(pub: Ed25519PublicKey) -> bytes:
    return pub.public_bytes_raw()


# --- keys -------------------------------------------------------------------------------------

def test_private_key_pem_and_der_round_trip() -> None:
    key = generate_key()
    pem = private_key_pem(key)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n") and b"ENCRYPTED" not in pem
    assert raw(parse_private_key(pem).public_key()) == raw(key.public_key())
    der = private_key_der(key)
    assert len(der) == 83  # PKCS#8 v2: seed and public key
    assert raw(parse_private_key(der).public_key()) == raw(key.public_key())


def test_parses_pkcs8_v1_as_written_by_cryptography_and_openssl() -> None:
    key = generate_key()
    for encoding in (serialization.Encoding.PEM, serialization.Encoding.DER):
        data = key.private_bytes(encoding, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
        assert raw(parse_private_key(data).public_key()) == raw(key.public_key())


def test_rebuilderd_key_vector_round_trips_byte_for_byte() -> None:
    # rebuilderd's test_load_privkey: its PKCS#8 v2 key and the public PEM it derives.
    stored = (FIXTURES / "rebuilderd-test-signing.key").read_bytes()
    key = parse_private_key(stored)
    expected_pub = (FIXTURES / "rebuilderd-test-signing.pub").read_bytes().decode()
    assert "\r\n" in expected_pub
    assert public_key_pem(key.public_key()) == expected_pub.replace("\r\n", "\n")
    assert private_key_pem(key) == stored  # what we write, rebuilderd (ring: v2 only) can read


def test_corrupt_v2_key_is_refused() -> None:
    der = bytearray(private_key_der(generate_key()))
    der[-1] ^= 1  # embedded public key no longer matches the seed
    with pytest.raises(KeyFormatError, match="does not match"):
        parse_private_key(bytes(der))


@pytest.mark.parametrize("data", [b"", b"garbage", b"-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----\n",
                                  b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"])
def test_unparseable_private_keys(data: bytes) -> None:
    with pytest.raises(KeyFormatError):
        parse_private_key(data)


def test_public_pem_forms() -> None:
    pub = generate_key().public_key()
    intoto = public_key_pem(pub)
    standard = public_key_pem(pub, rfc8410=True)
    # rebuilderd's form (NULL parameters): what in-toto-rs / repro-threshold require.
    assert intoto.splitlines()[1].startswith("MCwwBwYDK2VwBQADIQ")
    assert "\r" not in intoto and intoto.endswith("-----END PUBLIC KEY-----\n")
    # The RFC 8410 form is what OpenSSL/cryptography read.
    assert raw(serialization.load_pem_public_key(standard.encode())) == raw(pub)
    for text in (intoto, standard, intoto.replace("\n", "\r\n"), "  \n" + standard):
        assert raw(load_public_key_pem(text)) == raw(pub)


def test_published_rebuilder_keys_load() -> None:
    for name in ("reproducible-archlinux.pub", "reproduce-debian-net-amd64.pub"):
        load_public_key_pem((FIXTURES / name).read_text())


def test_bad_public_pems() -> None:
    rsa_pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    pem = public_key_pem(generate_key().public_key())
    for text in ("", "not a key", rsa_pem, pem + pem, pem.replace("MCww", "M!ww")):
        with pytest.raises(KeyFormatError):
            load_public_key_pem(text)


def test_public_key_b64_is_raw_32_bytes() -> None:
    pub = generate_key().public_key()
    text = public_key_b64(pub)
    assert len(text) == 44 and text.endswith("=")
    assert raw(public_key_from_b64(text)) == raw(pub)
    for bad in ("", "%%%", "AAAA"):
        with pytest.raises(KeyFormatError):
            public_key_from_b64(bad)


def test_key_id_equals_securesystemslib() -> None:
    for _ in range(5):
        pub = generate_key().public_key()
        assert key_id(pub) == SSlibKey.from_crypto(pub).keyid


def test_key_ids_match_in_toto_rs_vectors() -> None:
    # in-toto-rs src/crypto.rs tests: ed25519-1.pub with and without keyid_hash_algorithms.
    pub = Ed25519PublicKey.from_public_bytes(
        bytes.fromhex("eb8ac26b5c9ef0279e3be3e82262a93bce16fe58ee422500d38caf461c65a3b6"))
    assert key_id(pub) == "e0294a3f17cc8563c3ed5fceb3bd8d3f6bfeeaca499b5c9572729ae015566554"
    assert link_key_id(pub) == "a9f3ebc9b138762563a9c27b6edd439959e559709babd123e8d449ba2c18c61a"
    # repro-threshold's test_parse_signing_key: the id it computes for Arch's published key.
    arch = load_public_key_pem((FIXTURES / "reproducible-archlinux.pub").read_text())
    assert link_key_id(arch) == "1ae6d32cb5bb8a98312106de28e50af7e09a9b294d51df459537908ac1288b8f"


def test_public_keys_feed_round_trip_and_rebuilderd_crlf() -> None:
    pubs = [generate_key().public_key() for _ in range(2)]
    feed = json.loads(json.dumps(public_keys_feed(pubs)))
    assert list(feed) == ["current"]
    assert [raw(p) for p in load_public_keys_feed(feed)] == [raw(p) for p in pubs]
    rebuilderd_feed = {"current": [(FIXTURES / "rebuilderd-test-signing.pub").read_bytes().decode()]}
    assert len(load_public_keys_feed(rebuilderd_feed)) == 1
    for bad in (None, [], {"current": "x"}, {"current": [1]}):
        with pytest.raises(KeyFormatError):
            load_public_keys_feed(bad)


# --- key files --------------------------------------------------------------------------------

@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_load_or_create_key_creates_0640_once(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "rebuilder.v2.key"
    old = os.umask(umask)
    try:
        key = load_or_create_key(path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    again = load_or_create_key(path)
    assert raw(again.public_key()) == raw(key.public_key())
    assert raw(load_private_key(path).public_key()) == raw(key.public_key())
    assert [p.name for p in tmp_path.iterdir()] == ["rebuilder.v2.key"]


def test_load_or_create_key_der_is_rebuilderd_worker_format(tmp_path: Path) -> None:
    path = tmp_path / "rebuilder.v2.key"
    key = load_or_create_key(path, 0o600, encoding="der")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == private_key_der(key)


def test_load_or_create_key_refuses_world_accessible_mode(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="world"):
        load_or_create_key(tmp_path / "k", 0o644)
    assert not (tmp_path / "k").exists()


def test_world_readable_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rebuilder.v2.key"
    load_or_create_key(path)
    path.chmod(0o644)
    for load in (load_private_key, load_or_create_key):
        with pytest.raises(KeyFileError, match="chmod o-rwx") as info:
            load(path)
        assert info.value.path == str(path) and isinstance(info.value, TerminalError)


def test_wrong_kind_of_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rsa.key"
    path.write_bytes(rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match="Ed25519") as info:
        load_or_create_key(path)
    assert info.value.path == str(path)
    garbage = tmp_path / "garbage.key"
    garbage.write_bytes(b"not a key")
    garbage.chmod(0o600)
    with pytest.raises(KeyFileError, match="Ed25519"):
        load_private_key(garbage)


def test_non_regular_or_missing_key_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir(mode=0o750)
    os.mkfifo(tmp_path / "fifo", 0o640)
    for name in ("dir", "fifo"):
        with pytest.raises(KeyFileError, match="not a regular file"):
            load_or_create_key(tmp_path / name)
    with pytest.raises(KeyFileError, match="does not exist"):
        load_private_key(tmp_path / "missing")
    with pytest.raises(KeyFileError, match="cannot create"):
        load_or_create_key(tmp_path / "no" / "such" / "dir" / "k")


@pytest.mark.parametrize("all_see_missing", [False, True])
def test_concurrent_creation_ends_with_one_key(tmp_path: Path, all_see_missing: bool) -> None:
    path = tmp_path / "rebuilder.v2.key"
    n = 12
    # spawn, not fork: forking a threaded pytest-xdist worker is deprecated (Python 3.12+)
    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=create_after_barrier, args=(barrier, str(path), queue, all_see_missing))
             for _ in range(n)]
    for p in procs:
        p.start()
    seen = [queue.get(timeout=60) for _ in range(n)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len({pub for pub, _ in seen}) == 1
    assert seen[0][0] == public_key_b64(load_private_key(path).public_key())
    if all_see_missing:
        assert all(created for _, created in seen)  # 12 keys generated, one survived
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary files left
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


# --- signed documents -------------------------------------------------------------------------

KEY = generate_key()
OTHER = generate_key()
TRUSTED = {key_id(KEY.public_key()): KEY.public_key()}


def reason(doc: object, trusted: dict = TRUSTED) -> str:
    with pytest.raises(SignatureError) as info:
        verify_document(doc, trusted)
    assert isinstance(info.value, TerminalError)
    return info.value.reason


def test_sign_and_verify_document() -> None:
    payload = {"job": "abc", "attempt": 2, "status": "GOOD", "nested": {"list": [1, None, True]}}
    doc = sign_document(payload, KEY)
    assert list(doc) == ["signed", "signatures"]
    assert doc["signatures"][0]["keyid"] == key_id(KEY.public_key())
    got, signer = verify_document(json.loads(json.dumps(doc)), TRUSTED)
    assert got == payload and signer == key_id(KEY.public_key())
    payload["status"] = "BAD"  # the document holds its own copy
    assert verify_document(doc, TRUSTED)[0]["status"] == "GOOD"


def test_tampered_document_is_rejected() -> None:
    doc = sign_document({"status": "BAD"}, KEY)
    doc["signed"]["status"] = "GOOD"
    assert reason(doc) == SignatureError.BAD_SIGNATURE


def test_document_by_another_key_is_rejected() -> None:
    assert reason(sign_document({"a": 1}, OTHER)) == SignatureError.UNKNOWN_KEY
    # A forger claiming a trusted key id still fails on the signature itself.
    forged = sign_document({"a": 1}, OTHER)
    forged["signatures"][0]["keyid"] = key_id(KEY.public_key())
    assert reason(forged) == SignatureError.BAD_SIGNATURE


def test_one_good_signature_among_unknown_ones_is_enough() -> None:
    doc = sign_document({"a": 1}, KEY)
    doc["signatures"].insert(0, sign_document({"a": 1}, OTHER)["signatures"][0])
    assert verify_document(doc, TRUSTED)[1] == key_id(KEY.public_key())


def test_unsigned_document() -> None:
    assert reason({"signed": {"a": 1}, "signatures": []}) == SignatureError.UNSIGNED


def _doc(**change: object) -> dict:
    doc = sign_document({"a": 1}, KEY)
    sig = doc["signatures"][0]
    for field, value in change.items():
        if field in ("keyid", "sig"):
            sig[field] = value
        else:
            doc[field] = value
    return doc


@pytest.mark.parametrize("doc", [
    None, [], "signed", 42, {}, {"signed": {"a": 1}}, {"signatures": []},
    _doc(signed=[1]), _doc(signed="x"), _doc(signatures={}), _doc(signatures=["x"]),
    _doc(extra=1), _doc(sig="zz"), _doc(sig=_doc()["signatures"][0]["sig"].upper()),
    _doc(sig=""), _doc(keyid=None), _doc(keyid="ABC"), _doc(signed={"a": 1.5}),
    {"signed": {"a": 1}, "signatures": [{"keyid": "0" * 64, "sig": "0" * 128, "extra": 1}]},
])
def test_garbage_documents_are_malformed(doc: object) -> None:
    assert reason(doc) == SignatureError.MALFORMED


def test_sign_document_refuses_non_canonical_payloads() -> None:
    for payload in ({"a": 1.0}, {1: "x"}, {"a": {"b": [float("nan")]}}, {"a": "\ud800"}, {"a": object()}):
        with pytest.raises(ValueError):
            sign_document(payload, KEY)
    with pytest.raises(ValueError):
        sign_document(["not", "an", "object"], KEY)  # type: ignore[arg-type]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
payloads = st.dictionaries(st.text(), json_values, max_size=6)


@settings(max_examples=150, deadline=None)
@given(payloads)
def test_property_any_json_payload_round_trips(payload: dict) -> None:
    doc = json.loads(json.dumps(sign_document(payload, KEY)))
    assert verify_document(doc, TRUSTED) == (payload, key_id(KEY.public_key()))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads, st.data())
def test_property_any_single_byte_change_breaks_verification(payload: dict, data: st.DataObject) -> None:
    doc = sign_document(payload, KEY)
    blob = json.dumps(doc).encode()
    i = data.draw(st.integers(0, len(blob) - 1), label="position")
    b = data.draw(st.integers(0, 255).filter(lambda v: v != blob[i]), label="byte")
    mutated = blob[:i] + bytes([b]) + blob[i + 1:]
    try:
        parsed = json.loads(mutated)
    except ValueError:
        return  # not even JSON any more: nobody will accept it
    if parsed == doc:
        return  # the same document spelled differently (e.g. "\u00e9" vs "\u00E9")
    with pytest.raises(SignatureError):
        verify_document(parsed, TRUSTED)


# --- HMAC -------------------------------------------------------------------------------------

SECRET, OTHER_SECRET = "Fk3q9ZmT7vXc2LpW8nRb4HsY6dJg5QeA", "Wq7Lm2Xv9Rt4Kc8Pz3Nd6Hb5Jf1Gs0Ya"


def test_hmac_tag_and_verify() -> None:
    payload = {"worker": "w1", "key": public_key_b64(KEY.public_key())}
    tag = hmac_tag(SECRET, payload)
    assert len(tag) == 64 and tag == hmac_tag(SECRET, dict(reversed(payload.items())))
    assert hmac_verify(SECRET, payload, tag)
    assert not hmac_verify(OTHER_SECRET, payload, tag)
    assert not hmac_verify(SECRET, {**payload, "worker": "w2"}, tag)
    for bad in (tag[:-1], tag.upper(), "", None, 123, "z" * 64):
        assert not hmac_verify(SECRET, payload, bad)
    assert not hmac_verify(SECRET, {"a": 1.5}, tag)


def test_hmac_refuses_empty_and_weak_secrets() -> None:
    for weak in ("", "a", "s3cret", "INSECURE", "ab" * 32, "Password1" * 4):
        with pytest.raises(ValueError, match="pwgen -1s 32|non-empty"):
            hmac_tag(weak, {"a": 1})
        with pytest.raises(ValueError, match="pwgen -1s 32|non-empty"):
            hmac_verify(weak, {"a": 1}, "0" * 64)


def test_the_hmac_key_is_a_slow_derivation_of_the_secret() -> None:
    """Issue #14 item 5: a stored tag is no fast oracle for guesses of the secret.

    A plain HMAC keyed by the secret let an attacker test 552,744 guesses a second; the key
    is scrypt of the secret, so a tag made the old way does not verify, and one guess costs
    tens of milliseconds (measured uncached here).
    """
    import hashlib
    import hmac as std_hmac
    import time

    from jobs.core.signing.canonical import canonical_bytes
    from jobs.core.signing.strength import secret_key

    payload = {"name": "w1", "public_key": public_key_b64(KEY.public_key())}
    fast = std_hmac.new(SECRET.encode(), canonical_bytes(payload), hashlib.sha256).hexdigest()
    assert hmac_tag(SECRET, payload) != fast and not hmac_verify(SECRET, payload, fast)
    guess = "Zr5Kq8Wm2Tx7Lc3Vn9Pd4Hb6Jg1Fs0Ye"
    start = time.perf_counter()
    secret_key.__wrapped__(guess)
    assert time.perf_counter() - start > 0.01


@pytest.mark.parametrize(("secret", "strong"), [
    ("a", False), ("x", False), ("INSECURE", False), ("demo-signup-secret", False),
    ("a" * 64, False), ("abcdefgh" * 8, False), ("0123456789abcdef0123", False),
    ("3a8d9ba05f569ac92ea2342adb736e54", True),  # openssl rand -hex 16: exactly 128 bits
    ("Plv4yBRWq2xtRc3xqaDQzQ", True),  # 22 base64 characters
    ("sPc7TfK2wQ9xLm4RbN8vHj3ZdY6gAe5U", True),  # pwgen -1s 32
])
def test_secret_strength_estimate(secret: str, strong: bool) -> None:
    from jobs.core.signing.strength import secret_problem
    problem = secret_problem(secret)
    assert (problem is None) is strong
    if problem is not None:
        assert "pwgen -1s 32" in problem and (len(secret) < 4 or secret not in problem)
