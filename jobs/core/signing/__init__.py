"""Signing: Ed25519 keys, signed JSON documents, HMAC tags and in-toto link attestations.

- ``keys``: key files (rebuilderd-compatible PKCS#8 v2), PEM/base64 forms, key ids.
- ``envelope``: ``{"signed", "signatures"}`` documents and HMAC tags for shared secrets.
- ``intoto``: rebuild attestations (in-toto v0.9 links) as rebuilderd writes them.
"""

from __future__ import annotations

from jobs.core.lazy import lazy_attributes

# Each name is loaded from its submodule on first use (PEP 562): importing one submodule (the
# config's `strength`) does not load the others and cryptography's key and in-toto code.
_WHERE = {
    "KeyFileError": "errors",
    "KeyFormatError": "errors",
    "SignatureError": "errors",
    "add_signature": "intoto",
    "canonical_bytes": "canonical",
    "ensure_key": "keys",
    "generate_key": "keys",
    "hash_artifact": "intoto",
    "hmac_tag": "envelope",
    "hmac_verify": "envelope",
    "key_id": "keys",
    "link_from_json": "intoto",
    "link_key_id": "keys",
    "link_to_json": "intoto",
    "load_configured_key": "keys",
    "load_or_create_key": "keys",
    "load_private_key": "keys",
    "load_public_key_pem": "keys",
    "load_public_keys_feed": "keys",
    "make_link": "intoto",
    "parse_private_key": "keys",
    "private_key_der": "keys",
    "private_key_pem": "keys",
    "product_digests": "intoto",
    "public_key_b64": "keys",
    "public_key_from_b64": "keys",
    "public_key_pem": "keys",
    "public_keys_feed": "keys",
    "rebuild_link_name": "intoto",
    "sign_document": "envelope",
    "sign_link": "intoto",
    "verify_document": "envelope",
    "verify_and_countersign": "intoto",
    "verify_link": "intoto",
}

__all__ = [
    "KeyFileError", "KeyFormatError", "SignatureError",
    "canonical_bytes",
    "ensure_key", "generate_key", "key_id", "link_key_id", "load_configured_key", "load_or_create_key", "load_private_key",
    "load_public_key_pem", "load_public_keys_feed", "parse_private_key", "private_key_der",
    "private_key_pem", "public_key_b64", "public_key_from_b64", "public_key_pem", "public_keys_feed",
    "sign_document", "verify_document", "hmac_tag", "hmac_verify",
    "rebuild_link_name", "hash_artifact", "make_link", "sign_link", "add_signature", "verify_link",
    "verify_and_countersign", "product_digests", "link_to_json", "link_from_json",
]


__getattr__, __dir__ = lazy_attributes(__name__, _WHERE, globals(), __all__)
