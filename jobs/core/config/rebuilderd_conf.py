"""``/etc/rebuilderd.conf``: settings shared by sync, work, publish and rebuildctl.

Key names are rebuilderd's (``common/src/config.rs``) so an operator's existing file parses
unchanged; keys that only made sense for a daemon are accepted and documented as having no
effect. ``[store]``, ``[sync]``, ``[publish]`` and ``[lease]`` are ours.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobs.core.bounded import LIMITS
from jobs.core.config.fields import Table, TableMap, parse_table, setting
from jobs.core.config.kinds import Bool, HostPort, Int, Invalid, Secret, Str, StrList, Url, Where

DEFAULT_SIGNING_KEY = "/var/lib/rebuilderd/rebuilderd.sign.key"


@dataclass(frozen=True)
class HttpConfig:
    """``[http]``: rebuilderd's HTTP daemon settings; we only serve static files."""

    bind_addr: str = setting(
        HostPort(), "Address `rebuilder serve` listens on.", default="127.0.0.1:8484")
    real_ip_header: str | None = setting(
        Str(), "Accepted for compatibility; no effect (there is no daemon that sees client IPs).",
        default=None)
    endpoint: str | None = setting(
        Url("http", "https", "file"),
        "Public base URL of the published site and feeds; rebuildctl's default `-H` "
        "(unset: `http://127.0.0.1:8484`, like rebuilderd).", default=None)
    post_body_size_limit: int = setting(
        Int(0), "Accepted for compatibility; no effect (workers write results to the store, "
        "nothing receives uploads).", default=2**30)
    transparently_sign_attestations: bool = setting(
        Bool(), "Publish countersigns every attestation with the rebuilder key (`[publish] "
        "signing_key`); `false` publishes attestations as the worker signed them.", default=True)


@dataclass(frozen=True)
class AuthConfig:
    """``[auth]``: the admin secret, and how long an admin request stays valid."""

    cookie: str | None = setting(
        Secret(), "Admin secret: rebuildctl authenticates admin requests (requeue, queue push/drop) "
        "with an HMAC keyed by it and publish applies only requests that verify. At least 128 bits "
        "of randomness, weaker is refused: generate with `pwgen -1s 32`.", default=None)
    request_max_age: int = setting(
        Int(1), "Seconds an admin request stays valid after rebuildctl wrote it (plus `[lease] "
        "clock_skew`); publish refuses older ones, and one from further in the future, and remembers "
        "the nonce of every request it applied for this long, so none acts twice. Must exceed the "
        "interval between publish runs with a margin (15 min with the systemd timer, an hour or more "
        "with the GitHub workflow's cron).", default=7200)


@dataclass(frozen=True)
class EndpointConfig:
    """``[endpoints."URL"]``: the admin cookie for a non-default rebuildctl endpoint."""

    cookie: str = setting(
        Secret(), "Admin cookie rebuildctl uses with `-H URL` (URL compared without trailing slash).")


@dataclass(frozen=True)
class WorkerTrustConfig:
    """``[worker]``: which workers' signed results publish accepts."""

    authorized_workers: tuple[str, ...] = setting(
        StrList(), "Public keys of workers whose results publish accepts (the worker key, "
        "base64 as in rebuilderd's `X-Worker-Key`).", default=())
    signup_secret: str | None = setting(
        Secret(), "Workers that enrol with this secret are accepted too. In production set this or "
        "`authorized_workers`; with neither, no result is accepted. At least 128 bits of randomness, "
        "weaker is refused: generate with `pwgen -1s 32`.", default=None)


@dataclass(frozen=True)
class ScheduleConfig:
    """``[schedule]``: automatic retries of non-GOOD results."""

    retry_delay_base: int = setting(
        Int(0), "Hours; a failed job is due again after a delay that grows by this much with "
        "each retry (formula: see Scheduling).", default=24)
    max_retries: int | None = setting(
        Int(0), "Stop retrying a job automatically after this many non-GOOD results (BAD and "
        "FAIL alike); unset: no limit. A manual requeue ignores it.", default=None)
    initial_delay: int = setting(
        Int(0), "Seconds a newly synced job waits before its first attempt (e.g. until its "
        "buildinfo is published).", default=0)


@dataclass(frozen=True)
class StoreConfig:
    """``[store]``: where all state lives (ours)."""

    url: str | None = setting(
        Url("file", "s3"), "Object store holding all state: `file:///var/lib/rebuilder` or "
        "`s3://bucket/prefix` (S3 endpoint and credentials from the usual boto3 environment). "
        "`--store` and `REBUILDER_STORE` override it; unset: the embedded local-directory store "
        "`$XDG_DATA_HOME/rebuilder` (`~/.local/share/rebuilder`).",
        default=None)
    site_url: str | None = setting(
        Url("file", "s3"), "Separate public store for the published site (e.g. an S3 website "
        "bucket); unset: the `site/` prefix of the store.", default=None)


@dataclass(frozen=True)
class SyncLimitsConfig:
    """``[sync]``: how much and how long sync reads from a mirror (ours; see Limits in docs/design.md)."""

    max_index_bytes: int = setting(
        Int(1), "Bytes of one index file as downloaded, and of a Debian index decompressed; a larger "
        "one fails its profile, naming the file and the limit, and nothing is written.",
        default=LIMITS["index_download"].value)
    max_unpacked_bytes: int = setting(
        Int(1), "Bytes of an Arch database unpacked; past it the profile fails, nothing is written.",
        default=LIMITS["index_unpacked"].value)
    deadline: int = setting(
        Int(1), "Seconds one mirror request may take in total, from connecting to the last byte "
        "(redirects and retries included), however slowly the mirror sends; past it the profile "
        "fails, nothing is written, and sync exits 75 (the next run tries again).",
        default=LIMITS["mirror_deadline"].value)


@dataclass(frozen=True)
class PublishConfig:
    """``[publish]``: the rebuilder's own identity, and how much of a worker's upload it reads (ours)."""

    signing_key: str | None = setting(
        Str(), "Ed25519 PKCS#8 PEM key publish countersigns attestations with and whose public "
        "key it publishes (rebuilderd's `REBUILDERD_SIGNING_KEY`). A configured key must exist "
        "(create it with `rebuilder keygen PATH`); only the unset default is created on first use.",
        default=None, default_text=f'`"{DEFAULT_SIGNING_KEY}"`')
    max_upload_bytes: int = setting(
        Int(1), "Bytes of one build file a worker uploads (log, diffoscope text or HTML) as stored: "
        "a larger one is never read and not published (publish logs a warning naming it and the limit).",
        default=LIMITS["upload"].value)
    max_report_bytes: int = setting(
        Int(1), "Bytes of a diffoscope HTML report once decompressed: a larger one is not published as "
        "HTML (its text form still is). The sanitizer needs about 25 times this in memory: the default "
        "keeps publish under 512 MiB.", default=LIMITS["report_decoded"].value)

    @property
    def signing_key_path(self) -> str:
        """The key file publish signs with: the configured one, else the default."""
        return self.signing_key or DEFAULT_SIGNING_KEY


@dataclass(frozen=True)
class LeaseConfig:
    """``[lease]``: how long a worker's claim on a job lives without renewal (ours)."""

    ttl: int = setting(
        Int(1), "Seconds a claim stays valid; the worker renews it well before expiry, another "
        "worker may take the job over once it has expired.", default=600)
    clock_skew: int = setting(
        Int(0), "Seconds of clock difference tolerated between machines: a claim counts as "
        "expired only this long after its expiry time. Must be less than half of `ttl`.", default=30)

    def __post_init__(self) -> None:
        # The holder stops trusting a claim `clock_skew` before it expires and contenders wait
        # `clock_skew` after: with ttl <= 2 x clock_skew no worker could hold a claim at all
        # (jobs/core/lease.py refuses to start, issue #8).
        if 2 * self.clock_skew >= self.ttl:
            raise Invalid("clock_skew", f"{self.clock_skew} is not smaller than half of ttl ({self.ttl})",
                          "an integer smaller than lease.ttl / 2")

    @property
    def settle_seconds(self) -> float:
        """How old a result must be before publish accepts it over another worker's start marker.

        A live holder looks at its claim every third of `ttl` (a read, or a renewal when it runs
        low); a takeover of its claim is noticed at that look and signed as a notice. One skew allowance for the holder's clock, one for
        publish's against the store's (docs/trust.md).
        """
        return self.ttl / 3 + 2 * self.clock_skew


@dataclass(frozen=True)
class RebuilderConfig:
    """The whole of ``/etc/rebuilderd.conf``."""

    http: HttpConfig = setting(Table(HttpConfig), "", default_factory=HttpConfig)
    auth: AuthConfig = setting(Table(AuthConfig), "", default_factory=AuthConfig)
    endpoints: dict[str, EndpointConfig] = setting(
        TableMap(EndpointConfig, "URL"), "", default_factory=dict)
    worker: WorkerTrustConfig = setting(Table(WorkerTrustConfig), "", default_factory=WorkerTrustConfig)
    schedule: ScheduleConfig = setting(Table(ScheduleConfig), "", default_factory=ScheduleConfig)
    store: StoreConfig = setting(Table(StoreConfig), "", default_factory=StoreConfig)
    sync: SyncLimitsConfig = setting(Table(SyncLimitsConfig), "", default_factory=SyncLimitsConfig)
    publish: PublishConfig = setting(Table(PublishConfig), "", default_factory=PublishConfig)
    lease: LeaseConfig = setting(Table(LeaseConfig), "", default_factory=LeaseConfig)

    def limits(self) -> dict[str, int | None]:
        """The operator's limits, for `jobs.core.bounded.configured` around a sync or publish run."""
        return {"index_download": self.sync.max_index_bytes, "index_unpacked": self.sync.max_unpacked_bytes,
                "mirror_deadline": self.sync.deadline, "upload": self.publish.max_upload_bytes,
                "report_decoded": self.publish.max_report_bytes}

    def endpoint_cookie(self, url: str) -> str | None:
        """The ``[endpoints."URL"] cookie`` for ``url``, ignoring a trailing slash on either side."""
        wanted = url.rstrip("/")
        for name, endpoint in self.endpoints.items():
            if name.rstrip("/") == wanted:
                return endpoint.cookie
        return None


def parse_rebuilder_config(raw: dict, path: str = "") -> RebuilderConfig:
    """Validate a parsed ``rebuilderd.conf`` table; ``path`` names the file in errors."""
    return parse_table(RebuilderConfig, raw, Where(path))
