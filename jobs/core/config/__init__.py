"""Typed configuration: rebuilderd's three TOML files, validated once and passed down.

- ``rebuilderd.conf``        -> ``RebuilderConfig`` (``load_rebuilder_config``; rebuildctl:
  ``load_ctl_config`` and ``find_auth_cookie``)
- ``rebuilderd-worker.conf`` -> ``WorkerConfig``    (``load_worker_config``)
- ``rebuilderd-sync.conf``   -> ``SyncConfig``      (``load_sync_config``)

Every invalid value raises ``jobs.core.errors.ConfigError`` naming the file, the dotted key and
what was expected. ``config_reference_markdown()`` documents every key from the same metadata.
"""

from __future__ import annotations

from typing import Any

from jobs.core.config.load import (
    ConfigFileSpec,
    ctl_config_paths,
    find_auth_cookie,
    load_ctl_config,
    load_rebuilder_config,
    load_sync_config,
    load_worker_config,
    locate_config,
    merge_tables,
    read_toml,
    user_config_path,
)
from jobs.core.config.rebuilderd_conf import (
    AuthConfig,
    EndpointConfig,
    HttpConfig,
    LeaseConfig,
    PublishConfig,
    RebuilderConfig,
    ScheduleConfig,
    StoreConfig,
    WorkerTrustConfig,
    parse_rebuilder_config,
)
from jobs.core.config.sync_conf import IncludeRule, Release, SyncConfig, SyncProfile, parse_sync_config
from jobs.core.config.worker_conf import BackendConfig, BuildConfig, DiffoscopeConfig, WorkerConfig, parse_worker_config

__all__ = [
    "AuthConfig", "BackendConfig", "BuildConfig", "ConfigFileSpec", "DiffoscopeConfig",
    "EndpointConfig", "HttpConfig", "IncludeRule", "LeaseConfig", "PublishConfig", "RebuilderConfig",
    "Release", "ScheduleConfig", "StoreConfig", "SyncConfig", "SyncProfile", "WorkerConfig",
    "WorkerTrustConfig", "config_reference_markdown", "ctl_config_paths", "find_auth_cookie",
    "load_ctl_config", "load_rebuilder_config", "load_sync_config", "load_worker_config",
    "locate_config", "merge_tables", "parse_rebuilder_config", "parse_sync_config",
    "parse_worker_config", "read_toml", "user_config_path",
]


def __getattr__(name: str) -> Any:
    # Imported lazily: importing .reference here would make `python -m jobs.core.config.reference`
    # warn that the module was already in sys.modules before it ran as __main__.
    if name == "config_reference_markdown":
        from jobs.core.config.reference import config_reference_markdown
        return config_reference_markdown
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
