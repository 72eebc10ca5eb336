"""Settings of the local FirecREST v2 server."""

from __future__ import annotations

import dataclasses
import getpass
import secrets
from pathlib import Path
from typing import Literal

APP_VERSION = '2.5.6'
"""The FirecREST release whose API the server speaks, sent in the ``F7T-AppVersion`` header."""

DEFAULT_MAX_OPS_FILE_SIZE = 5 * 1024 * 1024
"""The real server's default limit of a direct (non-staged) upload or download, in bytes."""


@dataclasses.dataclass
class FaultSettings:
    """Faults the server injects into API requests, all off by default.

    The fractions are probabilities in ``[0, 1]`` drawn per request; the token endpoint is never affected. The object is
    read on every request, so a test may change it while the server runs.
    """

    rate_limit_fraction: float = 0.0
    """Answer this fraction of requests with 429 and a ``Retry-After`` header."""
    retry_after: int = 1
    """The ``Retry-After`` of an injected 429, in seconds."""
    server_error_fraction: float = 0.0
    """Answer this fraction of requests with ``server_error_status``."""
    server_error_status: int = 503
    """The status of an injected server error (500 or 503)."""
    drop_fraction: float = 0.0
    """Drop the connection of this fraction of requests before a complete answer is sent."""
    delay_fraction: float = 0.0
    """Delay this fraction of requests by ``delay`` seconds."""
    delay: float = 0.0
    """The delay of a delayed request, in seconds."""
    job_invisible_seconds: float = 0.0
    """Answer 404 "Job not found." for a new job during this many seconds after its submission (pyfirecrest#199)."""
    seed: int | None = None
    """Seed of the random draws, for reproducible faults."""


@dataclasses.dataclass
class S3Settings:
    """Where the S3 server for staged transfers listens and how to sign requests for it."""

    endpoint_url: str
    access_key: str
    secret_key: str
    bucket: str = 'firecrest-staging'
    region: str = 'us-east-1'
    max_part_size: int = 8 * 1024 * 1024
    """The size of one part of a multipart upload, in bytes (S3's minimum is 5 MiB for all but the last part)."""
    url_lifetime: int = 3600
    """The validity of presigned URLs, in seconds."""


@dataclasses.dataclass
class ServerSettings:
    """Everything the local server needs to know; see :func:`aiida_firecrest.server.app.create_app`."""

    roots: list[Path]
    """The directories the server exposes: every path of a request must lie inside one of them."""
    system_name: str = 'cluster'
    scheduler: Literal['local', 'slurm'] = 'local'
    """The job backend: ``slurm`` runs the real Slurm commands, ``local`` runs batch scripts as local processes."""
    username: str = dataclasses.field(default_factory=getpass.getuser)
    """The cluster user of every token the server issues: the operating-system user running the server."""
    account: str | None = None
    """The user's default billing account, reported by ``userinfo`` and used when a request names none."""
    client_id: str = 'firecrest-local-client'
    client_secret: str = dataclasses.field(default_factory=lambda: secrets.token_urlsafe(32))
    token_lifetime: int = 300
    """The lifetime of issued access tokens, in seconds."""
    min_token_ttl: int = 30
    """Tokens with less validity left are refused, as the real server does."""
    max_ops_file_size: int = DEFAULT_MAX_OPS_FILE_SIZE
    """The direct-transfer limit reported in ``/status/systems`` and enforced on ``ops/upload`` and ``ops/download``."""
    command_timeout: float = 20.0
    """Direct operations taking longer answer 408, as the real server's command timeout does."""
    s3: S3Settings | None = None
    """The S3 server of staged transfers; without one, staged transfers answer 503."""
    faults: FaultSettings = dataclasses.field(default_factory=FaultSettings)

    def __post_init__(self) -> None:
        self.roots = [Path(root).resolve() for root in self.roots]
        if not self.roots:
            raise ValueError('the server needs at least one root directory to expose')
