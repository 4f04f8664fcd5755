"""Signing: Ed25519 keys, signed JSON documents, HMAC tags and in-toto link attestations.

- ``keys``: key files (rebuilderd-compatible PKCS#8 v2), PEM/base64 forms, key ids.
- ``envelope``: ``{"signed", "signatures"}`` documents and HMAC tags for shared secrets.
- ``intoto``: rebuild attestations (in-toto v0.9 links) as rebuilderd writes them.
"""

from jobs.core.signing.canonical import canonical_bytes
from jobs.core.signing.envelope import hmac_tag, hmac_verify, sign_document, verify_document
from jobs.core.signing.errors import KeyFileError, KeyFormatError, SignatureError
from jobs.core.signing.intoto import (
    add_signature,
    hash_artifact,
    link_from_json,
    link_to_json,
    make_link,
    product_digests,
    rebuild_link_name,
    sign_link,
    verify_link,
)
from jobs.core.signing.keys import (
    ensure_key,
    generate_key,
    key_id,
    link_key_id,
    load_configured_key,
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
)

__all__ = [
    "KeyFileError", "KeyFormatError", "SignatureError",
    "canonical_bytes",
    "ensure_key", "generate_key", "key_id", "link_key_id", "load_configured_key", "load_or_create_key", "load_private_key",
    "load_public_key_pem", "load_public_keys_feed", "parse_private_key", "private_key_der",
    "private_key_pem", "public_key_b64", "public_key_from_b64", "public_key_pem", "public_keys_feed",
    "sign_document", "verify_document", "hmac_tag", "hmac_verify",
    "rebuild_link_name", "hash_artifact", "make_link", "sign_link", "add_signature", "verify_link",
    "product_digests", "link_to_json", "link_from_json",
]
