"""Errors raised by the signing package.

All are terminal: a bad signature, a malformed key or an unsafe key file does not get
better by retrying. Callers branch on the class (and on ``SignatureError.reason`` when
they want to tell "unknown worker" from "forged"), never on the message.
"""

from __future__ import annotations

from jobs.core.errors import TerminalError


class SignatureError(TerminalError):
    """A signed document or in-toto link did not verify; ``reason`` says why."""

    MALFORMED = "malformed"          # not the expected shape, bad hex, non-canonical JSON
    UNSIGNED = "unsigned"            # the signature list is empty
    UNKNOWN_KEY = "unknown-key"      # signed, but by no trusted key
    BAD_SIGNATURE = "bad-signature"  # a trusted key's signature does not match the content
    THRESHOLD = "threshold"          # some trusted signatures verified, but too few

    def __init__(self, message: str, *, reason: str, key_id: str | None = None) -> None:
        super().__init__(message, reason=reason, key_id=key_id)
        self.reason, self.key_id = reason, key_id


class KeyFormatError(TerminalError):
    """Key material (PEM, DER, base64) is not an Ed25519 key we can read."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        super().__init__(message, source=source)
        self.source = source


class KeyFileError(TerminalError):
    """A private key file is missing, unsafe (world-accessible, not a regular file) or unreadable."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message, path=path)
        self.path = path
