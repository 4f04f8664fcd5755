"""Canonical JSON: the exact bytes every signature in this project is made over.

We use securesystemslib's ``encode_canonical`` (OLPC canonical JSON: sorted keys, no
whitespace, only ``"`` and ``\\`` escaped) because in-toto signs links with it, so one
encoder serves our own documents and the attestations consumers verify with in-toto.
It has sharp edges (a float raises, a non-string key crashes with AttributeError, a
lone surrogate only fails at UTF-8 encoding), so the value is checked first and every
problem comes out as one ``ValueError`` that names where it is.
"""

from __future__ import annotations

from typing import Any

from securesystemslib.formats import encode_canonical


def _check(value: Any, where: str) -> None:
    if value is None or isinstance(value, (bool, int)):
        return
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"{where}: string is not valid Unicode ({exc.reason})") from None
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where}: object key {key!r} is not a string")
            _check(key, f"{where}.{key}")
            _check(item, f"{where}.{key}")
        return
    # Floats are refused on purpose: canonical JSON has no single spelling for them.
    raise ValueError(f"{where}: {type(value).__name__} cannot be signed (canonical JSON "
                     "allows objects, arrays, strings, integers, booleans and null)")


def canonical_bytes(value: Any) -> bytes:
    """UTF-8 canonical JSON of ``value``; ValueError if it holds floats or other non-JSON values."""
    try:
        _check(value, "$")
        return encode_canonical(value).encode("utf-8")
    except RecursionError:
        # json.loads accepts nesting up to about the recursion limit, so a document read from
        # the bucket can be just too deep to walk here: a malformed document, not a crash.
        raise ValueError("$: nested too deeply") from None
