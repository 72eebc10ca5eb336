"""Settings of the local FirecREST v2 server."""

from __future__ import annotations

import dataclasses
import getpass
import re
import secrets
from pathlib import Path
from typing import Any, Literal

APP_VERSION = '2.5.6'
"""The FirecREST release whose API the server speaks, sent in the ``F7T-AppVersion`` header."""

DEFAULT_MAX_OPS_FILE_SIZE = 5 * 1024 * 1024
"""The real server's default limit of a direct (non-staged) upload or download, in bytes."""

DEFAULT_COMMAND_TIMEOUT = 20.0
"""The SSH command timeout of the real server at CSCS, in seconds."""

DEFAULT_UPLOAD_CHECK_INTERVAL = 60.0
"""The real server's upload job sleeps this many seconds between two checks of whether its object exists."""


RATE_WINDOW_UNITS = {'s': 1, 'min': 60, 'h': 3600, 'day': 86400}
"""The units of a rate-limit window, in seconds: ``10/s``, ``120/min``, ``1000/h``, ``5000/day``."""


@dataclasses.dataclass(frozen=True)
class RateWindow:
    """At most ``requests`` requests in any ``seconds`` seconds."""

    requests: int
    seconds: int

    def __str__(self) -> str:
        unit = next(name for name, seconds in RATE_WINDOW_UNITS.items() if seconds == self.seconds)
        return f'{self.requests}/{unit}'


@dataclasses.dataclass(frozen=True)
class RateLimit:
    """The request budget of each client, as an API gateway enforces it (CSCS: ``10/s,120/min``).

    Every window holds at all times: whatever instant a window of ``seconds`` starts at, it contains at most
    ``requests`` accepted requests (sliding windows, no burst at a window's edge as with fixed windows).
    """

    windows: tuple[RateWindow, ...]

    def __post_init__(self) -> None:
        if not self.windows:
            raise ValueError('a rate limit needs at least one window')
        if any(window.requests < 1 for window in self.windows):
            raise ValueError('every window of a rate limit must allow at least one request')

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """Return the limit written as ``N/unit[,N/unit...]``, e.g. ``10/s,120/min`` (units: s, min, h, day).

        :raises ValueError: for any other text.
        """
        windows = []
        for item in text.split(','):
            match = re.fullmatch(r'\s*(\d+)\s*/\s*([a-z]+)\s*', item)
            if match is None or match[2] not in RATE_WINDOW_UNITS:
                units = ', '.join(RATE_WINDOW_UNITS)
                raise ValueError(f'invalid rate limit {text!r}: expected N/unit[,N/unit...] with a unit in {units}')
            windows.append(RateWindow(int(match[1]), RATE_WINDOW_UNITS[match[2]]))
        return cls(tuple(sorted(windows, key=lambda window: window.seconds)))

    def __str__(self) -> str:
        return ','.join(str(window) for window in self.windows)


CSCS_RATE_LIMIT = RateLimit.parse('10/s,120/min')
"""The budget CSCS's API gateway gives each FirecREST client."""


@dataclasses.dataclass
class FaultSettings:
    """Faults the server injects into API requests, all off by default.

    The fractions are probabilities in ``[0, 1]`` drawn per request; the token endpoint is never affected (but for
    the new key of a restart). The object is
    read on every request, so a test may change it while the server runs.
    """

    rate_limit_fraction: float = 0.0
    """Answer this fraction of requests with 429 and a ``Retry-After`` header."""
    retry_after: int = 1
    """The ``Retry-After`` of an injected 429, in seconds."""
    server_error_fraction: float = 0.0
    """Answer this fraction of requests with ``server_error_status``."""
    server_error_status: int | tuple[int, ...] = 503
    """The status of an injected server error (500 or 503), or several, one drawn per error (``(500, 503)``)."""
    drop_fraction: float = 0.0
    """Drop the connection of this fraction of requests before the server acts on them (nothing happens)."""
    drop_after_acting_fraction: float = 0.0
    """Let the server act on this fraction of requests (a job is submitted, a file written...), then drop the
    connection instead of answering, as when an answer is lost on its way: the client cannot tell whether the request
    took effect. The request log records both kinds of drop with the status ``DROPPED`` (0)."""
    delay_fraction: float = 0.0
    """Delay this fraction of requests by ``delay`` seconds."""
    delay: float = 0.0
    """The delay of a delayed request, in seconds."""
    restart_interval: float = 0.0
    """Restart the server every this many seconds (0: never), counted from the first request (token requests
    included) that sees the value: every token
    issued before a restart is refused with 401 (new signing key, as after a restart of the identity provider and
    the gateway), and API requests are answered 503 for ``restart_downtime`` seconds. Rate-limit windows, jobs and
    files survive. ``LocalFirecrest.restart()`` restarts once, at once."""
    restart_downtime: float = 0.0
    """Seconds after a restart during which API requests are answered 503 (the token endpoint keeps answering)."""
    staged_upload_fails_at_part: int | None = None
    """The transfer job of a staged upload finds this part of the object answered 500 and fails, as the real one
    fails (``Download failed: part N``), leaving the parts before it written under the final name."""
    job_invisible_seconds: float = 0.0
    """Answer 404 "Job not found." for a new job during this many seconds after its submission (pyfirecrest#199)."""
    seed: int | None = None
    """Seed of the random draws, for reproducible faults."""


@dataclasses.dataclass(frozen=True)
class RealismSettings:
    """Where the local server behaves like the real FirecREST 2.5 server rather than a kinder one: all by default.

    Each field switches one behaviour of the real server (eth-cscs/firecrest-v2 2.5, ssh mode, Slurm 22.05), observed on
    it and explained by its source. They are the default because a local server kinder than the real one lets through
    the client bugs that users meet at CSCS; a test that needs the kind behaviour turns one off by name, e.g.
    ``ServerSettings(roots=..., realism=RealismSettings(shell_quoting=False))``, or all of them with :meth:`kind`.
    """

    shell_quoting: bool = True
    """Real: an ops command is one shell line with each path inside single quotes, unescaped, run by the login shell,
    so a name holding ``'`` breaks the line (500 ``bash: -c: line 1: unexpected EOF ...``; ``mkdir`` may even create
    folders named after the rest of the line). Kind: paths quoted with :func:`shlex.quote`, any name works."""
    real_error_statuses: bool = True
    """Real: a failed command answers 404 (``No such file or directory``), 403 (``Permission denied``, ``Operation not
    permitted``), 400 (``File exists``, ``invalid user``) and 500 for anything else (``Not a directory``, ``Is a
    directory``, ``Directory not empty``...). Kind: 400 for anything else."""
    c_quoted_names: bool = True
    """Real: ``ls --quoting-style=c`` output parsed with :func:`shlex.split`, so octal escapes of non-ASCII bytes and
    ``\\t``, ``\\n``... stay backslash sequences in names and link targets (only ``\\"`` and ``\\\\`` are undone).
    Kind: names decoded."""
    checksum_splits_output: bool = True
    """Real: ``sha256sum``'s line is split on whitespace and must give two parts, so a name with whitespace answers
    500 ``Invalid output: ...``, and a name with a backslash gives a checksum prefixed with ``\\``. Kind: the checksum
    of any name."""
    download_buffer_limit: bool = True
    """Real: a download is ``base64`` read through an output buffer of ``max_ops_file_size`` bytes: base64 text over it
    answers 413 at once for a file up to the limit (about 3/4 to 1 x the limit), and above it the answer waits the
    command timeout, then 500 ``('Channel not open for sending',)`` (up to 2 x the limit) or 408. Kind: any file up
    to ``max_ops_file_size`` is answered, a larger one gets a quick 413."""
    empty_upload_hangs: bool = True
    """Real: an upload's content is piped base64-encoded into ``base64 -d > file`` and, when empty, no end of input
    is sent: the file is created and the answer is 408 after the command timeout. Kind: an empty upload succeeds."""
    compress_pattern_in_parent: bool = True
    """Real: ``ops/compress`` with ``matchPattern`` runs ``find`` in the parent of the source (the pattern matches
    ``./<source name>/...``) and always makes a gzip archive. Kind: ``find`` runs in the source, compression honoured.
    """
    html_escaped_job_paths: bool = True
    """Real: transfer-job scripts are rendered with HTML autoescaping, so a path holding ``"&'<>`` arrives as
    ``&#34;``, ``&amp;``, ``&#39;``, ``&lt;``, ``&gt;`` and the job acts on another name. Kind: paths as given."""
    jobs_list_gap: float = 4.0
    """Real: ``GET /compute/{system}/jobs`` leaves out a job that finished less than about 4 s ago (Slurm accounting
    lags the controller), while ``GET .../jobs/{id}`` already reports it. Kind: 0."""
    unlisted_unstarted_jobs: bool = True
    """Real: a job that ended without starting (cancelled while pending or held) is never in the jobs list (``sacct
    --starttime`` leaves it out). Kind: listed."""
    cancel_errors: bool = True
    """Real: cancelling an unknown job, or one that already ended, answers 500 with ``scancel``'s error. Kind: an
    unknown job answers 404 and an ended one is left as it is (204)."""

    @classmethod
    def kind(cls) -> RealismSettings:
        """Return settings with every behaviour kind (as a server more correct than the real one)."""
        switches = {field.name: False for field in dataclasses.fields(cls) if field.name != 'jobs_list_gap'}
        return cls(**switches, jobs_list_gap=0.0)


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
    object_lifetime: float | None = None
    """The bucket's lifecycle: seconds after which a staged object, or a multipart upload never completed, is removed
    (the real server sets a lifecycle of 10 days). None: twice ``url_lifetime``, when no URL can start a transfer of
    the object any more and one started has had as long again to end. An uploaded object is removed earlier, by the
    transfer job that consumed it; a downloaded one cannot be, as the server does not see the client's download."""
    sweep_interval: float = 60.0
    """Seconds between two sweeps of the bucket for objects past ``object_lifetime``."""

    def client(self, **config: Any) -> Any:
        """Return a boto3 S3 client of this server (path-style addressing), with ``config`` for its botocore config."""
        import boto3
        import botocore.config

        return boto3.client(
            's3',
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=botocore.config.Config(s3={'addressing_style': 'path'}, **config),
        )

    @property
    def expiry(self) -> float:
        """The lifetime of staged objects in force, in seconds (see :attr:`object_lifetime`)."""
        return 2.0 * self.url_lifetime if self.object_lifetime is None else self.object_lifetime


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
    command_timeout: float = DEFAULT_COMMAND_TIMEOUT
    """The real server's SSH command timeout (``ssh.timeout.command_execution``, 20 s at CSCS), in seconds: an ops
    command running longer answers 408, and the hangs of :class:`RealismSettings` last this long; tests use 2 s."""
    upload_check_interval: float = DEFAULT_UPLOAD_CHECK_INTERVAL
    """Seconds between two checks of a staged upload's transfer job for its object (60 s on the real server, whose
    job checks at once, then sleeps a minute: an upload whose parts are sent after the first check is moved into place
    up to a minute after its last part); tests use 0.2 s."""
    s3: S3Settings | None = None
    """The S3 server of staged transfers; without one, staged transfers answer 503."""
    rate_limit: RateLimit | None = None
    """The request budget of each client (the ``azp`` of its tokens), enforced as CSCS's API gateway does: a request
    over it is answered 429 with ``Retry-After``, not passed on (see :mod:`~aiida_firecrest.server.ratelimit`). None
    (the default) enforces none, so that tests are paced by nothing but the server; set :data:`CSCS_RATE_LIMIT` for
    the real budget. Read on every request: it may be changed while the server runs (which starts counting anew)."""
    faults: FaultSettings = dataclasses.field(default_factory=FaultSettings)
    realism: RealismSettings = dataclasses.field(default_factory=RealismSettings)
    """Where the server behaves like the real one (all by default) or kinder."""

    def __post_init__(self) -> None:
        self.roots = [Path(root).resolve() for root in self.roots]
        if not self.roots:
            raise ValueError('the server needs at least one root directory to expose')
