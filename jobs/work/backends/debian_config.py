"""The configuration of backend ``debian-local``: its environment and the apt sources it names."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timezone
from pathlib import Path

from jobs.work.backends.debian_buildinfo import DebianBuildinfo
from jobs.work.backends.script import SetupError

DEFAULT_TIMEOUT = 86400.0
KEYRING_PATH = re.compile(r"/[A-Za-z0-9._+/-]{1,255}")
SOURCE_LINE = re.compile(r"(?P<type>deb|deb-src)\s+(?:\[(?P<options>[^\]\n]*)\]\s+)?(?P<uri>\S+)\s+(?P<suite>\S+)"
                         r"(?P<components>(?:\s+\S+)*)\s*")


@dataclass(frozen=True)
class SourceLine:
    """One apt one-line source."""

    type: str
    options: str
    uri: str
    suite: str
    components: tuple[str, ...]

    def text(self, type_: str | None = None) -> str:
        options = f" [{self.options}]" if self.options else ""
        return " ".join([f"{type_ or self.type}{options}", self.uri, self.suite, *self.components])

    def keyrings(self) -> list[str]:
        found = []
        for option in self.options.split():
            key, _, value = option.partition("=")
            if key == "signed-by":
                found += [v for v in value.split(",") if v]
        return found


def parse_sources(text: str, *, what: str = "REBUILDER_DEBIAN_SOURCES") -> list[SourceLine]:
    """apt one-line sources, one a line; blank lines and ``#`` comments are skipped."""
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = SOURCE_LINE.fullmatch(line)
        if match is None:
            raise SetupError(f"{what} line {number}: not an apt source line "
                             f"('deb [options] URI suite component...'): {line[:200]!r}")
        source = SourceLine(match["type"], (match["options"] or "").strip(), match["uri"], match["suite"],
                            tuple(match["components"].split()))
        if not re.fullmatch(r"(?:https?|file)://[^\s'\"\\]+", source.uri):
            raise SetupError(f"{what} line {number}: unsupported URI {source.uri[:200]!r} "
                             "(http://, https:// or file://)")
        for keyring in source.keyrings():
            if not KEYRING_PATH.fullmatch(keyring) or ".." in keyring.split("/"):
                raise SetupError(f"{what} line {number}: signed-by must be an absolute keyring path: {keyring!r}")
            if not Path(keyring).is_file():
                raise SetupError(f"{what} line {number}: keyring {keyring} does not exist")
        lines.append(source)
    return lines


@dataclass(frozen=True)
class LocalConfig:
    """The backend's configuration, read from the environment."""

    outdir: Path
    sources: tuple[SourceLine, ...]
    snapshot: str | None = None
    root_cache: Path | None = None
    user: str = "builder"
    timeout: float = DEFAULT_TIMEOUT
    buildinfo_keyring: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LocalConfig:
        outdir = env.get("REBUILDERD_OUTDIR", "")
        if not outdir:
            raise SetupError("REBUILDERD_OUTDIR is not set: it must name the directory for the rebuilt packages")
        text = env.get("REBUILDER_DEBIAN_SOURCES", "")
        if not text.strip():
            raise SetupError("REBUILDER_DEBIAN_SOURCES is not set: it must hold apt source lines "
                             "('deb [signed-by=…] URI suite component', and deb-src for the sources)")
        if text.startswith("/") and "\n" not in text.strip():
            try:
                text = Path(text.strip()).read_text()
            except OSError as e:
                raise SetupError(f"REBUILDER_DEBIAN_SOURCES: cannot read {text.strip()}: {e.strerror}") from None
        sources = tuple(parse_sources(text))
        if not any(s.type == "deb" for s in sources):
            raise SetupError("REBUILDER_DEBIAN_SOURCES has no 'deb' line for the build root")
        snapshot = env.get("REBUILDER_DEBIAN_SNAPSHOT") or None
        if snapshot is not None:
            if "{timestamp}" not in snapshot:
                raise SetupError("REBUILDER_DEBIAN_SNAPSHOT must contain {timestamp} "
                                 "(e.g. 'https://snapshot.debian.org/archive/debian/{timestamp}/ sid main')")
            parse_sources("deb " + snapshot.replace("{timestamp}", "20250101T000000Z"),
                          what="REBUILDER_DEBIAN_SNAPSHOT")
        cache = env.get("REBUILDER_DEBIAN_ROOT_CACHE") or None
        keyring = env.get("REBUILDER_DEBIAN_BUILDINFO_KEYRING") or None
        if keyring is not None and (not KEYRING_PATH.fullmatch(keyring) or not Path(keyring).is_file()):
            raise SetupError(f"REBUILDER_DEBIAN_BUILDINFO_KEYRING: not an existing keyring file (absolute path): "
                             f"{keyring[:200]!r}")
        user = env.get("REBUILDER_BUILD_USER") or "builder"
        if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", user) or user == "root":
            raise SetupError(f"REBUILDER_BUILD_USER: not a valid unprivileged user name: {user!r}")
        try:
            timeout = float(env.get("REBUILDER_BUILD_TIMEOUT") or DEFAULT_TIMEOUT)
        except ValueError:
            raise SetupError("REBUILDER_BUILD_TIMEOUT must be a number of seconds") from None
        return cls(outdir=Path(outdir), sources=sources, snapshot=snapshot,
                   root_cache=Path(cache) if cache else None, user=user, timeout=timeout,
                   buildinfo_keyring=Path(keyring) if keyring else None)

    def sources_for(self, info: DebianBuildinfo) -> list[SourceLine]:
        """The configured sources plus, with a snapshot template, the snapshot of the build's date."""
        lines = list(self.sources)
        if self.snapshot:
            stamp = info.build_date.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            (line,) = parse_sources("deb " + self.snapshot.replace("{timestamp}", stamp),
                                    what="REBUILDER_DEBIAN_SNAPSHOT")
            lines += [line, SourceLine("deb-src", line.options, line.uri, line.suite, line.components)]
        return lines
