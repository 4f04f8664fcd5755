"""Check an OpenPGP clearsigned file (a Debian `InRelease`) with gpgv and return only the signed text.

The decision follows apt's (`apt-pkg/contrib/gpgv.cc`), read from gpgv's machine-readable
status lines (`--status-fd`), not from its exit code: Debian signs each `InRelease` with
several keys, and gpgv exits 2 as soon as one of them is not in the keyring, even when
another signature is good. So:

- any `BADSIG` fails (someone altered the text);
- otherwise at least one signature must be good: `GOODSIG` *and* `VALIDSIG` for it (an
  expired or revoked key gives `EXPKEYSIG`/`REVKEYSIG` instead of `GOODSIG` and does not count);
- signatures by keys not in the keyring (`ERRSIG` + `NO_PUBKEY`) are ignored when one is good.

The text returned is what gpgv wrote with `--output`, i.e. the signed part only: anything an
attacker adds around the signed block never reaches the parser. gpgv runs through
`jobs.core.proc` in a private temporary home, so no user keyring or agent is consulted.
A keyring may be binary (`.gpg`, `.pgp`, as `debian-archive-keyring` ships) or ASCII-armored
(`.asc`); gpgv reads only binary keyrings, so armored keys are converted first.
"""

from __future__ import annotations

import base64
import binascii
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from jobs.core import proc
from jobs.core.errors import ConfigError, TerminalError

GPGV_TIMEOUT = 60.0
_ARMOR = re.compile(
    rb"-----BEGIN PGP PUBLIC KEY BLOCK-----\r?\n(?P<body>.*?)-----END PGP PUBLIC KEY BLOCK-----", re.S)


class BadSignature(TerminalError):
    """A signed index whose signature is missing, bad, or by no key of the configured keyring."""

    def __init__(self, message: str, *, url: str, keyring: str) -> None:
        super().__init__(message, url=url, keyring=keyring)
        self.url, self.keyring = url, keyring


@dataclass(frozen=True)
class Verified:
    """The signed text of a clearsigned file and the fingerprints of the keys whose signatures are good."""

    content: bytes
    fingerprints: tuple[str, ...]


def verify_clearsigned(data: bytes, keyring: str, *, url: str) -> Verified:
    """The signed content of `data` if a key in `keyring` made a good signature over it; else BadSignature."""
    ring = Path(keyring).expanduser().absolute()
    try:
        key_bytes = ring.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the keyring: {exc.strerror}", key="keyring", path=str(ring)) from None
    with tempfile.TemporaryDirectory(prefix="rebuilder-gpgv-") as tmp:
        home = Path(tmp)
        if _ARMOR.search(key_bytes):
            ring = home / "keyring.gpg"
            ring.write_bytes(dearmor(key_bytes, path=str(keyring)))
        signed, output, status = home / "InRelease", home / "content", home / "status"
        signed.write_bytes(data)
        result = proc.run(
            ["gpgv", "--homedir", str(home), "--keyring", str(ring), "--status-fd", "1",
             "--log-file", str(home / "gpgv.log"), "--output", str(output), str(signed)],
            log=status, timeout=GPGV_TIMEOUT, kill_grace=2.0, tool_package="gpgv")
        if result.timed_out:
            raise BadSignature(f"gpgv did not finish in {GPGV_TIMEOUT:.0f} s", url=url, keyring=keyring)
        good = _good_signers(status.read_text(errors="replace"), url=url, keyring=keyring)
        content = output.read_bytes() if output.exists() else b""
    if not content:
        raise BadSignature("gpgv reported no signed content", url=url, keyring=keyring)
    return Verified(content, good)


def _good_signers(status: str, *, url: str, keyring: str) -> tuple[str, ...]:
    blocks: list[dict[str, list[str]]] = []
    for line in status.splitlines():
        if not line.startswith("[GNUPG:] "):
            continue
        word, _, rest = line[9:].partition(" ")
        if word == "NEWSIG" or not blocks:
            blocks.append({})
        blocks[-1].setdefault(word, []).append(rest)
    for block in blocks:
        if "BADSIG" in block:
            raise BadSignature(f"bad signature ({block['BADSIG'][0]})", url=url, keyring=keyring)
    good = tuple(b["VALIDSIG"][0].split(" ")[0] for b in blocks if "GOODSIG" in b and "VALIDSIG" in b)
    if good:
        return good
    seen = sorted({f"{w} {v[0]}".strip() for b in blocks for w, v in b.items()
                   if w in ("ERRSIG", "NO_PUBKEY", "EXPKEYSIG", "REVKEYSIG", "EXPSIG", "NODATA")})
    detail = "; ".join(seen) if seen else "no signature found"
    raise BadSignature(f"no good signature by a key in the keyring ({detail})", url=url, keyring=keyring)


def dearmor(data: bytes, *, path: str) -> bytes:
    """The binary OpenPGP packets of every ASCII-armored public key block in `data`."""
    out = bytearray()
    for m in _ARMOR.finditer(data):
        head, sep, body = m.group("body").replace(b"\r\n", b"\n").partition(b"\n\n")
        if not sep:  # no armor headers: the blank line is missing only in broken files
            body = head
        lines = [ln.strip() for ln in body.split(b"\n")]
        lines = [ln for ln in lines if ln and not (ln.startswith(b"=") and len(ln) == 5)]  # CRC24 line
        try:
            out += base64.b64decode(b"".join(lines), validate=True)
        except binascii.Error:
            raise ConfigError("the keyring's ASCII armor is not valid base64", key="keyring", path=path) from None
    return bytes(out)
