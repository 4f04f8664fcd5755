"""Signed JSON documents (worker results, enrolment records, admin requests) and HMAC tags.

A signed document is ``{"signed": <payload object>, "signatures": [{"keyid", "sig"}]}``,
the same envelope in-toto and TUF use: Ed25519 over the canonical JSON of the payload,
signature and key id in lowercase hex, key id = ``keys.key_id``.  Everything read from
the bucket is untrusted input (docs/design.md#invariants, invariant 5), so verification is strict: any
shape it does not expect is ``SignatureError(reason="malformed")``, never a KeyError.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from jobs.core.signing.canonical import canonical_bytes
from jobs.core.signing.errors import SignatureError
from jobs.core.signing.keys import key_id
from jobs.core.signing.strength import check_secret, secret_key

__all__ = ["sign_document", "verify_document", "parse_signatures", "signature_valid", "hmac_tag",
           "hmac_verify"]

# Lowercase only: accepting "AB" and "ab" for the same bytes would make signed documents
# malleable (two different byte strings, both "valid").
_KEYID = re.compile(r"[0-9a-f]{64}")
_SIG = re.compile(r"[0-9a-f]{128}")
_TAG = re.compile(r"[0-9a-f]{64}")
_ENVELOPE_FIELDS = {"signed", "signatures"}


def _malformed(message: str) -> SignatureError:
    return SignatureError(message, reason=SignatureError.MALFORMED)


def parse_signatures(value: Any) -> list[tuple[str, bytes]]:
    """Validate a ``signatures`` list and return ``(keyid, raw signature)`` pairs."""
    if not isinstance(value, list):
        raise _malformed("'signatures' must be a list")
    parsed = []
    for i, entry in enumerate(value):
        if not isinstance(entry, Mapping) or set(entry) != {"keyid", "sig"}:
            raise _malformed(f"signature {i} must be an object with exactly 'keyid' and 'sig'")
        keyid, sig = entry["keyid"], entry["sig"]
        if not isinstance(keyid, str) or not _KEYID.fullmatch(keyid):
            raise _malformed(f"signature {i}: keyid is not 64 lowercase hex digits")
        if not isinstance(sig, str) or not _SIG.fullmatch(sig):
            raise _malformed(f"signature {i}: sig is not a 128-hex-digit Ed25519 signature")
        parsed.append((keyid, bytes.fromhex(sig)))
    return parsed


def signature_valid(pub: Ed25519PublicKey, sig: bytes, message: bytes) -> bool:
    """True if ``sig`` is ``pub``'s Ed25519 signature over ``message``."""
    try:
        pub.verify(sig, message)
    except InvalidSignature:
        return False
    return True


def sign_document(payload: Mapping[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """Wrap ``payload`` in a signed envelope; ValueError if it is not canonical-JSON-able."""
    if not isinstance(payload, Mapping):
        raise ValueError(f"payload must be a JSON object, not {type(payload).__name__}")
    # A private copy: later changes to the caller's dict must not silently un-sign the document.
    signed = copy.deepcopy(dict(payload))
    sig = key.sign(canonical_bytes(signed))
    return {"signed": signed,
            "signatures": [{"keyid": key_id(key.public_key()), "sig": sig.hex()}]}


def verify_document(doc: Any, trusted: Mapping[str, Ed25519PublicKey]) -> tuple[dict[str, Any], str]:
    """Check ``doc``'s signature against ``trusted`` (keyid -> key); return (payload, signer keyid)."""
    if not isinstance(doc, Mapping):
        raise _malformed(f"signed document must be a JSON object, not {type(doc).__name__}")
    if set(doc) != _ENVELOPE_FIELDS:
        raise _malformed("signed document must have exactly 'signed' and 'signatures'")
    payload = doc["signed"]
    if not isinstance(payload, dict):
        raise _malformed("'signed' must be a JSON object")
    signatures = parse_signatures(doc["signatures"])
    if not signatures:
        raise SignatureError("document carries no signature", reason=SignatureError.UNSIGNED)
    try:
        message = canonical_bytes(payload)
    except ValueError as exc:
        raise _malformed(f"payload is not canonical JSON: {exc}") from None
    rejected = None
    for keyid, sig in signatures:
        pub = trusted.get(keyid)
        if pub is None:
            continue
        if signature_valid(pub, sig, message):
            return payload, keyid
        rejected = keyid
    if rejected is not None:
        raise SignatureError("signature does not match the document (tampered or forged)",
                             reason=SignatureError.BAD_SIGNATURE, key_id=rejected)
    raise SignatureError("document is not signed by any trusted key",
                         reason=SignatureError.UNKNOWN_KEY, key_id=signatures[0][0])


def _check_secret(secret: Any) -> bytes:
    # An empty or guessable signup/admin secret would let anyone enrol or act as admin
    # (ValueError); the HMAC key is derived from it with scrypt (`strength.secret_key`).
    return secret_key(check_secret(secret))


def hmac_tag(secret: str, payload: Any) -> str:
    """HMAC-SHA256 (hex) of the canonical JSON of ``payload``, keyed by scrypt of ``secret``."""
    return hmac.new(_check_secret(secret), canonical_bytes(payload), hashlib.sha256).hexdigest()


def hmac_verify(secret: str, payload: Any, tag: Any) -> bool:
    """Constant-time check of ``tag`` against ``hmac_tag(secret, payload)``; False if malformed."""
    key = _check_secret(secret)  # a misconfigured secret is the operator's error: raise
    if not isinstance(tag, str) or not _TAG.fullmatch(tag):
        return False
    try:
        message = canonical_bytes(payload)
    except ValueError:
        return False
    expected = hmac.new(key, message, hashlib.sha256).digest()
    return hmac.compare_digest(expected, bytes.fromhex(tag))
