"""rebuildctl parses small feeds with the standard json, big ones with orjson (`jobs.ctl.feeds.loads`): every
document means the same, or is refused the same, whichever parser reads it."""

from __future__ import annotations

import orjson
import pytest

from jobs.ctl.feeds import ORJSON_FROM, loads

DOCUMENTS = [b'[1, 2.5, -0, 1E5, "a", null, true, {"a": 1, "a": 2}]', b' {"x": "\\u0000\\ud83d\\ude00"} \n',
             b"[18446744073709551615, -9223372036854775808]", b"[18446744073709551616]", b" 18446744073709551616", b"-1e400", b'{"a": -9223372036854775809}',
             b"[1e400]", b"[1, 2.5E-400]", b'["\\ud800"]', b'"\\udfff x"', b"[NaN]", b"[Infinity]", b"[-Infinity]",
             b"\xef\xbb\xbf[1]", b'["\xff"]', b'["\xed\xa0\x80"]', b'["a\x01"]', b"[1,]", b"[01]", b"[" * 5000 + b"]" * 5000,
             b'{"build_id": "0000000000000000000000000", "hash": "3e12345"}']


def _outcome(parse, data: bytes):
    try:
        return parse(data)
    except (ValueError, RecursionError):
        return "refused"


@pytest.mark.parametrize("data", DOCUMENTS)
def test_small_documents_read_as_orjson_reads_them(data):
    assert len(data) < ORJSON_FROM
    assert repr(_outcome(loads, data)) == repr(_outcome(orjson.loads, data))


def test_the_feed_cache_is_named_by_the_sha256_of_the_url():
    import hashlib

    from jobs.ctl.feeds import sha256_hex

    for data in (b"", b"http://127.0.0.1:8484/api/v1/index.json", "é/ü".encode()):
        assert sha256_hex(data) == hashlib.sha256(data).hexdigest()


def _depth(value) -> int:
    """How deep `value` nests (without recursion: repr and == give up near 1000 levels)."""
    depth = 0
    while isinstance(value, (list, dict)) and value:
        value, depth = (value[0] if isinstance(value, list) else next(iter(value.values()))), depth + 1
    return depth + isinstance(value, (list, dict))


@pytest.mark.parametrize("levels", [999, 1000, 1024, 1025])
@pytest.mark.parametrize("opener", [b"[", b'{"a":'])
def test_nesting_is_read_as_orjson_reads_it(levels, opener):
    # json gives up near 1000 levels (fewer the deeper its caller's stack), orjson reads 1024: a small feed
    # nested 1000 deep was refused and a big one read.
    closer = b"]" if opener == b"[" else b"}"
    data = opener * levels + (b"" if opener == b"[" else b"1") + closer * levels
    assert len(data) < ORJSON_FROM
    ours, theirs = _outcome(loads, data), _outcome(orjson.loads, data)
    assert (ours == "refused") == (theirs == "refused")
    if theirs != "refused":
        assert _depth(ours) == _depth(theirs) == levels
