"""in-toto v0.9 link attestations for rebuilds, in rebuilderd's exact shape.

A rebuild attestation is a link metablock::

    {"signatures": [{"keyid": ..., "sig": ...}],
     "signed": {"_type": "link", "name": "rebuild <artifact>",
                "materials": {"<input file>": {"sha256": ..., "sha512": ...}},
                "products": {"<artifact>": {"sha256": ..., "sha512": ...}},
                "environment": {}, "byproducts": {}, "command": []}}

signed with Ed25519 over the canonical JSON of ``signed`` (securesystemslib encoder).

``environment``: rebuilderd (in-toto-rs) writes ``null``; the in-toto reference
implementation (Python, ``in_toto.models.link.Link``) rejects ``null`` with a FormatError
and requires an object.  We write ``{}``: the Python reference accepts it, and in-toto-rs
reads it as ``Some(empty map)`` and re-serialises it as ``{}``, so the signature still
verifies for repro-threshold.  ``verify_link`` accepts both, so rebuilderd's own
attestations verify too.

Signatures carry ``keys.link_key_id`` (in-toto-rs' keyid, which repro-threshold looks
up); ``verify_link`` also accepts the securesystemslib keyid for links signed by the
Python tooling.  The signed part must have exactly the seven fields above because both
reference implementations rebuild it from their own model before checking the signature:
an extra field would verify here and fail there, so it is refused as malformed.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from jobs.core.signing.canonical import canonical_bytes
from jobs.core.signing.envelope import parse_signatures, signature_valid
from jobs.core.signing.errors import SignatureError
from jobs.core.signing.keys import key_id, link_key_id

__all__ = ["rebuild_link_name", "hash_artifact", "make_link", "sign_link", "add_signature",
           "verify_link", "product_digests", "link_to_json", "link_from_json"]

LINK_FIELDS = frozenset({"_type", "name", "materials", "products", "environment", "byproducts",
                         "command"})
_CHUNK = 1 << 20  # hash in 1 MiB reads: artifacts can be GBs, memory stays flat
_HEX = re.compile(r"[0-9a-f]+")
_DIGEST = {"sha256": re.compile(r"[0-9a-f]{64}"), "sha512": re.compile(r"[0-9a-f]{128}")}

ArtifactSource = os.PathLike[str] | str | bytes | bytearray | memoryview


def _malformed(message: str) -> SignatureError:
    return SignatureError(message, reason=SignatureError.MALFORMED)


def rebuild_link_name(artifact: str) -> str:
    """The link name rebuilderd uses for an artifact: ``"rebuild <filename>"``."""
    return f"rebuild {artifact}"


def hash_artifact(source: ArtifactSource) -> dict[str, str]:
    """sha256 and sha512 (hex) of a file path or of in-memory bytes, streaming files."""
    sha256, sha512 = hashlib.sha256(), hashlib.sha512()
    if isinstance(source, (bytes, bytearray, memoryview)):
        sha256.update(source)
        sha512.update(source)
    else:
        with open(source, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                sha256.update(chunk)
                sha512.update(chunk)
    return {"sha256": sha256.hexdigest(), "sha512": sha512.hexdigest()}


def _check_artifact_name(name: Any) -> None:
    # in-toto-rs parses these as VirtualTargetPath and rebuilderd strips directories, so keep
    # to plain relative names; control characters would also break the canonical form
    # in-toto-rs uses (it un-escapes "\n" after encoding).
    if not isinstance(name, str) or not name:
        raise ValueError(f"artifact name must be a non-empty string, not {name!r}")
    if name.startswith("/") or ".." in name.split("/") or any(ord(c) < 0x20 for c in name):
        raise ValueError(f"artifact name {name!r} must be a relative path without '..' or control characters")


def make_link(name: str, materials: Mapping[str, ArtifactSource],
              products: Mapping[str, ArtifactSource], command: Sequence[str] = (),
              environment: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The unsigned ``signed`` part of a link, hashing every material and product."""
    if not isinstance(name, str) or not name:
        raise ValueError("link name must be a non-empty string")
    if isinstance(command, str) or not all(isinstance(c, str) for c in command):
        raise ValueError("command must be a list of strings")
    env = dict(environment or {})
    # in-toto-rs models environment as map<string, string>; anything else breaks its parser.
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise ValueError("environment must map strings to strings")
    hashed: dict[str, dict[str, dict[str, str]]] = {}
    for field, sources in (("materials", materials), ("products", products)):
        hashed[field] = {}
        for artifact, source in sources.items():
            _check_artifact_name(artifact)
            hashed[field][artifact] = hash_artifact(source)
    return {"_type": "link", "name": name, "materials": hashed["materials"],
            "products": hashed["products"], "environment": env, "byproducts": {},
            "command": list(command)}


def _check_hashes(field: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise _malformed(f"link '{field}' must be an object")
    for artifact, digests in value.items():
        if not isinstance(digests, dict) or not digests:
            raise _malformed(f"link '{field}' entry {artifact!r} must be a non-empty object")
        for algorithm, digest in digests.items():
            if not isinstance(digest, str) or not _DIGEST.get(algorithm, _HEX).fullmatch(digest):
                raise _malformed(f"link '{field}' {artifact!r}: {algorithm} is not lowercase hex")


def _check_link(signed: Any) -> dict[str, Any]:
    _canonical_link(signed)
    return signed


def _canonical_link(signed: Any) -> bytes:
    """The link's canonical bytes (what its signatures are over), once it is checked to be a link."""
    if not isinstance(signed, dict):
        raise _malformed("link 'signed' must be an object")
    if set(signed) != LINK_FIELDS:
        raise _malformed(f"link fields must be exactly {sorted(LINK_FIELDS)}, got {sorted(signed)}")
    if signed["_type"] != "link" or not isinstance(signed["name"], str):
        raise _malformed("not an in-toto link (_type must be 'link', name a string)")
    _check_hashes("materials", signed["materials"])
    _check_hashes("products", signed["products"])
    # null is what rebuilderd writes; we write {} (see the module docstring).
    if signed["environment"] is not None and not isinstance(signed["environment"], dict):
        raise _malformed("link 'environment' must be an object or null")
    if not isinstance(signed["byproducts"], dict):
        raise _malformed("link 'byproducts' must be an object")
    # A string is tolerated: in-toto-rs before 0.4 serialised the command that way.
    if not isinstance(signed["command"], (list, str)):
        raise _malformed("link 'command' must be a list")
    try:
        return canonical_bytes(signed)
    except ValueError as exc:
        raise _malformed(f"link is not canonical JSON: {exc}") from None


def _split(metablock: Any) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
    link, signatures, _message = _split_message(metablock)
    return link, signatures


def _split_message(metablock: Any) -> tuple[dict[str, Any], list[tuple[str, bytes]], bytes]:
    """The link, its signatures and the bytes they sign (encoded once)."""
    if not isinstance(metablock, Mapping) or set(metablock) != {"signatures", "signed"}:
        raise _malformed("link metablock must be an object with exactly 'signatures' and 'signed'")
    link = metablock["signed"]
    message = _canonical_link(link)
    return link, parse_signatures(metablock["signatures"]), message


def _signature(link: dict[str, Any], key: Ed25519PrivateKey, message: bytes | None = None) -> dict[str, str]:
    return {"keyid": link_key_id(key.public_key()),
            "sig": key.sign(canonical_bytes(link) if message is None else message).hex()}


def sign_link(link_signed: Mapping[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """A metablock holding ``link_signed`` with one signature by ``key``."""
    link = _check_link(copy.deepcopy(dict(link_signed)))
    return {"signatures": [_signature(link, key)], "signed": link}


def add_signature(metablock: Mapping[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """A copy of ``metablock`` countersigned by ``key``; unchanged if ``key`` already signed it.

    Does not judge the existing signatures: verify the worker's signature first.
    """
    return _countersigned(metablock, *_split_message(metablock), key)


def _countersigned(metablock: Mapping[str, Any], link: dict[str, Any], signatures: list[tuple[str, bytes]],
                   message: bytes, key: Ed25519PrivateKey) -> dict[str, Any]:
    pub = key.public_key()
    ours = {link_key_id(pub), key_id(pub)}
    result = copy.deepcopy(dict(metablock))
    if any(kid in ours and signature_valid(pub, sig, message) for kid, sig in signatures):
        return result
    # A stale or broken entry under our own key id would shadow the new one for
    # verifiers that only look at the first match (in-toto's Metablock does): drop it.
    result["signatures"] = [s for s in result["signatures"] if s["keyid"] not in ours]
    result["signatures"].append(_signature(link, key, message))
    return result


def verify_and_countersign(metablock: Any, trusted_keys: Mapping[str, Ed25519PublicKey] | Iterable[Ed25519PublicKey],
                           key: Ed25519PrivateKey) -> dict[str, Any]:
    """`verify_link(metablock, trusted_keys)`, then `add_signature(metablock, key)`: the same checks, errors
    and result, with the link checked and canonically encoded once rather than four times."""
    link, signatures, message = _split_message(metablock)
    _verified(link, signatures, message, trusted_keys, 1)
    return _countersigned(metablock, link, signatures, message, key)


def verify_link(metablock: Any, trusted_keys: Mapping[str, Ed25519PublicKey] | Iterable[Ed25519PublicKey],
                *, threshold: int = 1) -> set[str]:
    """Verify a link; return the trusted keys (mapping labels, else ``key_id``) whose signature holds."""
    if threshold < 1:
        raise ValueError("threshold must be at least 1")
    return _verified(*_split_message(metablock), trusted_keys, threshold)


def _verified(link: dict[str, Any], signatures: list[tuple[str, bytes]], message: bytes,
              trusted_keys: Mapping[str, Ed25519PublicKey] | Iterable[Ed25519PublicKey], threshold: int) -> set[str]:
    if threshold < 1:
        raise ValueError("threshold must be at least 1")
    if not signatures:
        raise SignatureError("link carries no signature", reason=SignatureError.UNSIGNED)
    items = (trusted_keys.items() if isinstance(trusted_keys, Mapping)
             else ((key_id(pub), pub) for pub in trusted_keys))
    verified: dict[bytes, str] = {}  # raw public key -> label: one vote per distinct key
    matched = None
    for label, pub in items:
        ids = {link_key_id(pub), key_id(pub)}
        for kid, sig in signatures:
            if kid not in ids:
                continue
            matched = kid
            if signature_valid(pub, sig, message):
                verified.setdefault(pub.public_bytes_raw(), label)
                break
    if len(verified) >= threshold:
        return set(verified.values())
    if verified:
        raise SignatureError(f"only {len(verified)} of {threshold} required trusted signatures verified",
                             reason=SignatureError.THRESHOLD)
    if matched is not None:
        raise SignatureError("link signature does not match its content (tampered or forged)",
                             reason=SignatureError.BAD_SIGNATURE, key_id=matched)
    raise SignatureError("link is not signed by any trusted key", reason=SignatureError.UNKNOWN_KEY,
                         key_id=signatures[0][0])


def product_digests(metablock: Any) -> dict[str, dict[str, str]]:
    """``{product name: {algorithm: hex}}`` of a well-formed link; does NOT check signatures."""
    link, _ = _split(metablock)
    return copy.deepcopy(link["products"])


def link_to_json(metablock: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON, as rebuilderd serves attestations (signatures first)."""
    return json.dumps(metablock, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def link_from_json(data: bytes | str) -> dict[str, Any]:
    """Parse and shape-check a link metablock (signatures are not verified here)."""
    try:
        metablock = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # nested too deeply: tests/hostile
        raise _malformed(f"attestation is not JSON: {exc}") from None
    _split(metablock)
    return metablock
