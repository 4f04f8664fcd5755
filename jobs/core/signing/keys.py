"""Ed25519 keys: files, PEM/DER/base64 forms and key ids, interchangeable with rebuilderd.

Compatibility facts (checked against rebuilderd, in-toto-rs and repro-threshold sources and
against real keys published by reproducible.archlinux.org and reproduce.debian.net):

* rebuilderd writes private keys as PKCS#8 **v2** (RFC 5958, public key embedded), the
  worker key ``rebuilder.v2.key`` as raw DER and the daemon key as PEM.  ``ring`` (used by
  in-toto-rs) only accepts v2, and ``cryptography`` only accepts v1, so both directions
  are done here by hand; the Ed25519 encodings are fixed byte strings.
* rebuilderd publishes public keys as an SPKI whose AlgorithmIdentifier carries an explicit
  NULL parameter (in-toto-rs ``write_spki``).  RFC 8410 forbids it and OpenSSL refuses it,
  but in-toto-rs' ``PublicKey::from_spki`` *requires* it, so repro-threshold cannot read a
  standard key.  ``public_key_pem`` therefore writes rebuilderd's form by default and
  ``load_public_key_pem`` reads both (and CRLF line endings, which rebuilderd emits).
* Key ids: ``key_id`` is securesystemslib's default keyid (sha256 of the canonical JSON of
  keytype/scheme/keyval).  in-toto-rs, and so every rebuilderd attestation and
  repro-threshold, adds ``"keyid_hash_algorithms": ["sha256", "sha512"]`` before hashing;
  that id is ``link_key_id`` and is what our in-toto link signatures carry.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import os
import re
import secrets
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from jobs.core.signing.canonical import canonical_bytes
from jobs.core.signing.errors import KeyFileError, KeyFormatError

__all__ = [
    "generate_key", "private_key_der", "private_key_pem", "parse_private_key", "load_private_key",
    "load_or_create_key", "ensure_key", "load_configured_key", "public_key_pem", "load_public_key_pem", "public_key_b64",
    "public_key_from_b64", "key_id", "link_key_id", "public_keys_feed", "load_public_keys_feed",
]

# DER prefixes of the only Ed25519 encodings in circulation (RFC 8410 / RFC 5958).
_PKCS8_V1 = bytes.fromhex("302e020100300506032b657004220420")       # + 32-byte seed
_PKCS8_V2 = bytes.fromhex("3051020101300506032b657004220420")       # + seed + _V2_PUB + pub
_PKCS8_V2_PUB = bytes.fromhex("812100")
_SPKI_RFC8410 = bytes.fromhex("302a300506032b6570032100")           # + 32-byte public key
_SPKI_INTOTO = bytes.fromhex("302c300706032b65700500032100")        # same, with NULL params

_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z ]+)-----(.*?)-----END \1-----", re.S)
_MAX_KEY_FILE = 64 * 1024  # a key file is ~120 bytes; never slurp an arbitrary big file
_LEGACY_KEYID_HASH_ALGORITHMS = ["sha256", "sha512"]


def generate_key() -> Ed25519PrivateKey:
    """A new random Ed25519 private key."""
    return Ed25519PrivateKey.generate()


def _raw_public(pub: Ed25519PublicKey) -> bytes:
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _seed(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())


def _pem(label: str, der: bytes) -> str:
    body = base64.b64encode(der).decode("ascii")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


def private_key_der(key: Ed25519PrivateKey) -> bytes:
    """PKCS#8 v2 DER (public key embedded), byte-compatible with rebuilderd's ``rebuilder.v2.key``."""
    return _PKCS8_V2 + _seed(key) + _PKCS8_V2_PUB + _raw_public(key.public_key())


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    """Unencrypted PKCS#8 v2 PEM, the form of rebuilderd's ``rebuilderd.sign.key``."""
    return _pem("PRIVATE KEY", private_key_der(key)).encode("ascii")


def _pem_blocks(text: str) -> list[tuple[str, bytes]]:
    blocks = []
    for label, body in _PEM_BLOCK.findall(text):
        try:
            blocks.append((label, base64.b64decode("".join(body.split()), validate=True)))
        except binascii.Error as exc:
            raise KeyFormatError(f"PEM block {label!r} is not valid base64: {exc}") from None
    return blocks


def _private_from_der(der: bytes) -> Ed25519PrivateKey:
    if der.startswith(_PKCS8_V2) and len(der) == 83 and der[48:51] == _PKCS8_V2_PUB:
        key = Ed25519PrivateKey.from_private_bytes(der[16:48])
        # A v2 file whose embedded public key does not match its seed is corrupt: refuse it
        # rather than sign with a key whose published identity would be wrong.
        if _raw_public(key.public_key()) != der[51:]:
            raise KeyFormatError("PKCS#8 v2 key: embedded public key does not match the private key")
        return key
    if der.startswith(_PKCS8_V1) and len(der) == 48:
        return Ed25519PrivateKey.from_private_bytes(der[16:])
    try:  # any other valid PKCS#8 (e.g. with attributes): let cryptography decide
        key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFormatError(f"not an unencrypted PKCS#8 private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFormatError(f"expected an Ed25519 key, found {type(key).__name__}")
    return key


def parse_private_key(data: bytes) -> Ed25519PrivateKey:
    """Ed25519 private key from PKCS#8 PEM or DER, v1 or v2 (rebuilderd writes v2)."""
    if data.lstrip().startswith(b"-----BEGIN"):
        blocks = [der for label, der in _pem_blocks(data.decode("ascii", "replace"))
                  if label == "PRIVATE KEY"]
        if not blocks:
            raise KeyFormatError("PEM has no 'PRIVATE KEY' block (encrypted keys are not supported)")
        return _private_from_der(blocks[0])
    return _private_from_der(data)


def load_private_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """Read a private key file, refusing non-regular or world-accessible files."""
    where = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise KeyFileError("key file does not exist", path=where) from None
    except OSError as exc:
        raise KeyFileError(f"cannot open key file: {exc.strerror}", path=where) from None
    try:
        st = os.fstat(fd)  # check the file we opened, not a name that may have changed since
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError("key file is not a regular file", path=where)
        if st.st_mode & 0o007:
            raise KeyFileError(f"key file is accessible to everyone (mode {stat.S_IMODE(st.st_mode):04o});"
                               f" run: chmod o-rwx {where}", path=where)
        if st.st_size > _MAX_KEY_FILE:
            raise KeyFileError(f"key file is {st.st_size} bytes, too large for a key", path=where)
        data = os.read(fd, _MAX_KEY_FILE + 1)
    finally:
        os.close(fd)
    try:
        return parse_private_key(data)
    except KeyFormatError as exc:
        raise KeyFileError(f"not an Ed25519 private key: {exc.message}", path=where) from None


def load_or_create_key(path: str | os.PathLike[str], mode: int = 0o640, *,
                       encoding: Literal["pem", "der"] = "pem") -> Ed25519PrivateKey:
    """Load the key at ``path``, creating it (with ``mode``) first if missing; race-free across processes."""
    return ensure_key(path, mode, encoding=encoding)[0]


def ensure_key(path: str | os.PathLike[str], mode: int = 0o640, *,
               encoding: Literal["pem", "der"] = "pem") -> tuple[Ed25519PrivateKey, bool]:
    """``load_or_create_key``, also saying whether this call created the file."""
    if mode & 0o007:
        raise ValueError(f"refusing to create a world-accessible key file (mode {mode:04o})")
    if encoding not in ("pem", "der"):
        raise ValueError(f"encoding must be 'pem' or 'der', not {encoding!r}")
    path = Path(path)
    created = False
    if not os.path.lexists(path):
        key = generate_key()
        data = private_key_pem(key) if encoding == "pem" else private_key_der(key)
        try:
            created = _create_exclusive(path, data, mode)
        except OSError as exc:
            raise KeyFileError(f"cannot create key file: {exc.strerror or exc}", path=str(path)) from None
    return load_private_key(path), created


def load_configured_key(path: str | os.PathLike[str], *, setting: str) -> Ed25519PrivateKey:
    """The key an operator named in ``setting``: it must exist, a typo never makes a new identity."""
    if not os.path.lexists(path):
        raise KeyFileError(f"{setting} names a key file that does not exist; create it with: "
                           f"rebuilder keygen {path}", path=str(path))
    return load_private_key(path)


def _create_exclusive(path: Path, data: bytes, mode: int) -> bool:
    # Write the whole key under a private temporary name, then hard-link it into place:
    # link() fails if the name exists, so of several processes starting at once exactly
    # one wins, and nobody can ever read a half-written key (rebuilderd's create_new +
    # write has that window). Losers simply load the winner's key afterwards.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        try:
            os.fchmod(fd, mode)  # the umask must not change the documented mode
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
    finally:
        os.unlink(tmp)
    # Persist the new directory entry too, so a crash cannot lose a key already in use.
    dfd = os.open(path.parent, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return True


def _public_from_der(der: bytes) -> Ed25519PublicKey:
    for prefix in (_SPKI_INTOTO, _SPKI_RFC8410):
        if der.startswith(prefix) and len(der) == len(prefix) + 32:
            return Ed25519PublicKey.from_public_bytes(der[len(prefix):])
    raise KeyFormatError("not an Ed25519 SubjectPublicKeyInfo")


def public_key_pem(pub: Ed25519PublicKey, *, rfc8410: bool = False) -> str:
    """SPKI PEM with ``\\n`` line ends; rebuilderd's NULL-parameter form unless ``rfc8410``."""
    prefix = _SPKI_RFC8410 if rfc8410 else _SPKI_INTOTO
    return _pem("PUBLIC KEY", prefix + _raw_public(pub))


def load_public_key_pem(text: str) -> Ed25519PublicKey:
    """Ed25519 public key from an SPKI PEM in either form, LF or CRLF."""
    blocks = [der for label, der in _pem_blocks(text) if label == "PUBLIC KEY"]
    if len(blocks) != 1:
        raise KeyFormatError(f"expected exactly one 'PUBLIC KEY' PEM block, found {len(blocks)}")
    return _public_from_der(blocks[0])


def public_key_b64(pub: Ed25519PublicKey) -> str:
    """Base64 of the raw 32-byte key: rebuilderd's ``X-Worker-Key`` form."""
    return base64.b64encode(_raw_public(pub)).decode("ascii")


def public_key_from_b64(text: str) -> Ed25519PublicKey:
    """Inverse of ``public_key_b64``."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyFormatError("worker key is not valid base64", source=text[:64]) from None
    if len(raw) != 32:
        raise KeyFormatError(f"worker key is {len(raw)} bytes, expected 32", source=text[:64])
    return Ed25519PublicKey.from_public_bytes(raw)


def _keyid(raw: bytes, extra: Mapping[str, Any]) -> str:
    doc = {"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": raw.hex()}, **extra}
    return hashlib.sha256(canonical_bytes(doc)).hexdigest()


@functools.lru_cache(maxsize=1024)  # the same few keys, asked for by every attestation verified or countersigned
def _keyids(raw: bytes) -> tuple[str, str]:
    return _keyid(raw, {}), _keyid(raw, {"keyid_hash_algorithms": _LEGACY_KEYID_HASH_ALGORITHMS})


def key_id(pub: Ed25519PublicKey) -> str:
    """securesystemslib's default keyid; names workers and signs our JSON documents."""
    return _keyids(_raw_public(pub))[0]


def link_key_id(pub: Ed25519PublicKey) -> str:
    """The keyid in-toto-rs computes (rebuilderd attestations, repro-threshold look-ups)."""
    return _keyids(_raw_public(pub))[1]


def public_keys_feed(pubs: Iterable[Ed25519PublicKey]) -> dict[str, list[str]]:
    """The ``api/v0/public-keys`` document: ``{"current": [PEM, ...]}``."""
    return {"current": [public_key_pem(p) for p in pubs]}


def load_public_keys_feed(doc: Any) -> list[Ed25519PublicKey]:
    """Public keys from a ``{"current": [PEM, ...]}`` feed (ours or rebuilderd's)."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("current"), list):
        raise KeyFormatError("public-keys feed must be an object with a 'current' list")
    if not all(isinstance(p, str) for p in doc["current"]):
        raise KeyFormatError("public-keys feed entries must be PEM strings")
    return [load_public_key_pem(p) for p in doc["current"]]
