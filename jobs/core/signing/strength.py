"""Shared secrets (`[auth] cookie`, `signup_secret`): how strong they must be, and the key they give.

Both secrets authenticate objects that every role of the store can read (admin requests,
worker enrolment records), and they carry an HMAC keyed by the secret over a payload that is
stored right next to it. Whoever can read the bucket can therefore test guesses of the
secret offline, at their own pace; nothing a verifier that only reads the bucket can check
avoids that. What makes the guessing hopeless is the secret itself: at least 128 bits of
randomness (`pwgen -1s 32`: 190 bits, `openssl rand -hex 32`: 256), refused otherwise.
On top of that the HMAC key is derived from the secret with scrypt (N=2^15, r=8, p=1,
about 0.1 s and 32 MiB per guess instead of a microsecond), so even a secret that slipped
past the estimate below costs an attacker five orders of magnitude more per guess.

The estimate is conservative and meant to catch mistakes (short, one repeated pattern, a
word), not a determined operator: length × log2 of the alphabet of the character classes
present (hex counts as 16 symbols), and at least 8 distinct characters with no repeating
period.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

__all__ = ["MIN_SECRET_BITS", "GENERATE", "secret_bits", "secret_problem", "check_secret", "secret_key"]

MIN_SECRET_BITS = 128
GENERATE = "`pwgen -1s 32` or `openssl rand -hex 32`"
_HEX = re.compile(r"[0-9a-f]+|[0-9A-F]+")
_SALT = b"rebuilder.secret/1"  # fixed: the key must be the same on every machine holding the secret
_SCRYPT = {"n": 2**15, "r": 8, "p": 1}


def secret_bits(secret: str) -> float:
    """A conservative estimate of the randomness in ``secret``, in bits."""
    if not secret:
        return 0.0
    if _HEX.fullmatch(secret):
        pool = 16
    else:
        pool = ((26 if any(c.islower() and c.isascii() for c in secret) else 0)
                + (26 if any(c.isupper() and c.isascii() for c in secret) else 0)
                + (10 if any(c.isdigit() and c.isascii() for c in secret) else 0)
                + (33 if any(not c.isascii() or not c.isalnum() for c in secret) else 0))
    # A repeated pattern ("abcabc...") is as random as one copy of it; few distinct
    # characters ("aaaa...b") say the string was typed, not generated.
    length = min(len(secret), _period(secret))
    if len(set(secret)) < 8:
        length = min(length, len(set(secret)))
    return length * math.log2(pool)


def _period(secret: str) -> int:
    """The length of the shortest string whose repetition is ``secret`` (periods up to 256)."""
    n = len(secret)
    for p in range(1, min(n // 2, 256) + 1):
        if secret == (secret[:p] * (n // p + 1))[:n]:
            return p
    return n


def secret_problem(secret: str) -> str | None:
    """Why ``secret`` is too weak to use (never quoting it), or None if it is strong enough."""
    bits = secret_bits(secret)
    if bits >= MIN_SECRET_BITS:
        return None
    return (f"too weak: about {int(bits)} bits of randomness, at least {MIN_SECRET_BITS} needed "
            f"(anyone who can read the bucket can test guesses offline); generate one with {GENERATE}")


def check_secret(secret: object) -> str:
    """``secret`` if it is a string strong enough to key an HMAC; ValueError otherwise."""
    if not isinstance(secret, str) or not secret:
        # An empty signup/admin secret would let anyone enrol or act as admin.
        raise ValueError("HMAC secret must be a non-empty string")
    problem = secret_problem(secret)
    if problem is not None:
        raise ValueError(f"HMAC secret is {problem}")
    return secret


@lru_cache(maxsize=16)
def secret_key(secret: str) -> bytes:
    """The 32-byte HMAC key derived from a (checked) secret with scrypt; computed once per process."""
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=_SALT, length=32, **_SCRYPT).derive(check_secret(secret).encode("utf-8"))
