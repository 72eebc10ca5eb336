"""The options of the ``firecrest`` transport: what ``verdi computer configure firecrest`` asks, with the defaults
and the click callbacks that check each answer.

:data:`AUTH_OPTIONS` is the transport's ``_valid_auth_options``, :data:`COMMON_AUTH_OPTIONS` its
``_common_auth_options`` (AiiDA's options of every transport, with ``use_login_shell`` never asked: FirecREST runs no
shell for AiiDA).
"""

from __future__ import annotations

from typing import Any

from aiida.transports.transport import Transport, validate_positive_number

from ..client.client_credentials import validate_client_secret_option as _validate_client_secret
from ..client.request_budget import DEFAULT_REQUESTS_PER_MINUTE, DEFAULT_REQUESTS_PER_SECOND

__all__ = (
    'AUTH_OPTIONS',
    'COMMON_AUTH_OPTIONS',
    'DEFAULT_ARCHIVE_THRESHOLD',
    'DEFAULT_BUDGET_SHARE',
    'DEFAULT_HTTP_TIMEOUT',
    'DEFAULT_MAX_CONCURRENCY',
    'request_limits',
)

DEFAULT_ARCHIVE_THRESHOLD = 8
"""Trees with more entries travel as one archive: an archive costs about 4 requests, a tree one per file and folder."""

DEFAULT_MAX_CONCURRENCY = 8
"""Transfers in flight at once per transport (the request budget paces them anyway)."""

DEFAULT_BUDGET_SHARE = 1.0
"""The share of the client's request budget that this machine uses: all of it (AiiDA on one machine)."""

DEFAULT_HTTP_TIMEOUT = 60.0
"""Seconds to wait for the server to connect, send or answer (per read, not for a whole transfer)."""


def _validate_url(ctx: Any, param: Any, value: Any) -> Any:
    """Click callback: an ``http(s)://`` URL."""
    import click

    if value is not None and not str(value).startswith(('https://', 'http://')):
        raise click.BadParameter(f'{value!r} is not an http(s) URL')
    return value


def _validate_absolute_path(ctx: Any, param: Any, value: Any) -> Any:
    """Click callback: an absolute POSIX path."""
    import click

    if value and not str(value).startswith('/'):
        raise click.BadParameter(f'{value!r} is not an absolute path')
    return value


def _validate_non_empty(ctx: Any, param: Any, value: Any) -> Any:
    """Click callback: a non-empty string."""
    import click

    if value is not None and not str(value).strip():
        raise click.BadParameter('must not be empty')
    return value


def _validate_at_least_one(ctx: Any, param: Any, value: Any) -> Any:
    """Click callback: an integer of 1 or more."""
    import click

    if not isinstance(value, int) or value < 1:
        raise click.BadParameter(f'{value} is not an integer of 1 or more')
    return value


def _validate_share(ctx: Any, param: Any, value: Any) -> Any:
    """Click callback: a fraction above 0 and at most 1."""
    import click

    if value is not None and not 0 < value <= 1:
        raise click.BadParameter(f'{value} is not above 0 and at most 1')
    return value


def _never_asked(ctx: Any) -> bool:
    """Click ``prompt_fn``: the option is not asked (its default is taken)."""
    return False


def request_limits(options: dict[str, Any]) -> tuple[float, float]:
    """The ``(per_second, per_minute)`` request budget of this machine from the transport's options: the client's
    limits times ``budget_share``.

    :raises ValueError: if an option is not a number, or ``budget_share`` not above 0 and at most 1.
    """
    share = float(options.get('budget_share', DEFAULT_BUDGET_SHARE))
    if not 0 < share <= 1:
        raise ValueError(f'budget_share {share} is not above 0 and at most 1')
    per_second = float(options.get('requests_per_second', DEFAULT_REQUESTS_PER_SECOND))
    per_minute = float(options.get('requests_per_minute', DEFAULT_REQUESTS_PER_MINUTE))
    return per_second * share, per_minute * share


AUTH_OPTIONS: list[tuple[str, dict[str, Any]]] = [
    (
        'url',
        {
            'type': str,
            'prompt': 'FirecREST URL',
            'help': 'The URL of the FirecREST v2 API, e.g. https://api.cscs.ch/hpc/firecrest/v2.',
            'non_interactive_default': False,
            'callback': _validate_url,
        },
    ),
    (
        'token_uri',
        {
            'type': str,
            'prompt': 'Token URI',
            'help': 'The OAuth2 token endpoint of the identity provider, e.g. '
            'https://auth.cscs.ch/auth/realms/firecrest-clients/protocol/openid-connect/token.',
            'non_interactive_default': False,
            'callback': _validate_url,
        },
    ),
    (
        'client_id',
        {
            'type': str,
            'prompt': 'Client ID',
            'help': 'The ID of your OIDC client (e.g. from the CSCS developer portal).',
            'non_interactive_default': False,
            'callback': _validate_non_empty,
        },
    ),
    (
        'client_secret',
        {
            'type': str,
            'prompt': 'Client secret: a file (absolute path), env:VARNAME, or the secret itself (not shown)',
            'hide_input': True,
            'help': 'Where to read the client secret: the absolute path of a file that only you can read '
            '(chmod 600; refused otherwise), or env:VARNAME for an environment variable of the AiiDA daemon. '
            'The secret itself is written to a file readable by you alone in the AiiDA configuration folder, '
            'and only that path is stored: options end up in the AiiDA database.',
            'non_interactive_default': False,
            'callback': _validate_client_secret,
        },
    ),
    (
        'compute_resource',
        {
            'type': str,
            'prompt': 'Compute resource (system name)',
            'help': 'The name of the system in FirecREST (as listed by GET /status/systems), e.g. daint.',
            'non_interactive_default': False,
            'callback': _validate_non_empty,
        },
    ),
    (
        'temp_directory',
        {
            'type': str,
            'default': '',
            'prompt': 'Temporary directory on the system (absolute path)',
            'help': 'The absolute path of a directory on the cluster for the archives of tree transfers (removed '
            'after use), e.g. /capstor/scratch/cscs/USER/.aiida-firecrest. Write the path itself: nothing expands '
            '$SCRATCH or ~ here, and a path not starting with / is refused. Empty: next to the destination.',
            'non_interactive_default': True,
            'callback': _validate_absolute_path,
        },
    ),
    (
        'billing_account',
        {
            'type': str,
            'default': '',
            'prompt': 'Billing account (CalcJobs without an account option, and transfer jobs)',
            'help': "The account billed for the Slurm jobs of the CalcJobs that set no `account` option (a CalcJob's "
            'own `account` wins), and for the transfer jobs FirecREST runs for copies, moves and staged transfers '
            'of large files. Empty: your default account.',
            'non_interactive_default': True,
        },
    ),
    (
        'workdir',
        {
            'type': str,
            'default': '',
            'help': 'Not used by the transport: the work directory is set by `verdi computer setup --work-dir`. '
            'Accepted so that the file of `firecrest_demo.py serve --config-out` can be given to --config as is.',
            'non_interactive_default': True,
            'prompt_fn': _never_asked,
        },
    ),
    (
        'max_direct_size',
        {
            'type': int,
            'default': 0,
            'prompt': 'Direct-transfer limit in bytes (0: ask the server)',
            'help': 'Files below this size are transferred directly, larger ones through the S3 staging area. '
            '0 (recommended) uses the limit the server reports in GET /status/systems.',
            'non_interactive_default': True,
            'callback': validate_positive_number,
        },
    ),
    (
        'archive_threshold',
        {
            'type': int,
            'default': DEFAULT_ARCHIVE_THRESHOLD,
            'prompt': 'Entries above which a tree is transferred as one archive',
            'help': 'A tree with more files and folders than this goes up or down as one tar archive (about 4 '
            'requests), a smaller one file by file (one request each).',
            'non_interactive_default': True,
            'callback': validate_positive_number,
        },
    ),
    (
        'checksum_uploads',
        {
            'type': bool,
            'default': False,
            'prompt': 'Compare staged uploads by SHA-256 (else by size)',
            'help': 'Compare the copy of every file uploaded through the staging area with its source by SHA-256: '
            'the server hashes the copy once its transfer job has written it, about a second per 250 MB. Off, the '
            "copy's size is compared (which catches what the transfer job can do wrong: it ignores its errors "
            'writing, leaving a short copy). Downloads are compared by SHA-256 either way, at no cost.',
            'non_interactive_default': True,
        },
    ),
    (
        'max_concurrency',
        {
            'type': int,
            'default': DEFAULT_MAX_CONCURRENCY,
            'prompt': 'Maximum concurrent transfers',
            'help': 'File transfers in flight at once per transport.',
            'non_interactive_default': True,
            'callback': _validate_at_least_one,
        },
    ),
    (
        'requests_per_second',
        {
            'type': float,
            'default': DEFAULT_REQUESTS_PER_SECOND,
            'prompt': 'Requests per second',
            'help': 'The budget of FirecREST requests per second of this client (CSCS allows 10), shared by every '
            'process of this machine (daemon workers, verdi, scripts). 0: no limit.',
            'non_interactive_default': True,
            'callback': validate_positive_number,
        },
    ),
    (
        'requests_per_minute',
        {
            'type': float,
            'default': DEFAULT_REQUESTS_PER_MINUTE,
            'prompt': 'Requests per minute',
            'help': 'The budget of FirecREST requests per minute of this client (CSCS allows 120), shared by every '
            'process of this machine. 0: no limit.',
            'non_interactive_default': True,
            'callback': validate_positive_number,
        },
    ),
    (
        'budget_share',
        {
            'type': float,
            'default': DEFAULT_BUDGET_SHARE,
            'prompt': "This machine's share of the request budget",
            'help': 'The fraction (above 0, at most 1) of requests_per_second and requests_per_minute that the '
            'processes of this machine may use: 1 if AiiDA uses this client from one machine only; with daemon '
            'workers on N machines, 1/N on each (or shares that add up to 1).',
            'non_interactive_default': True,
            'callback': _validate_share,
        },
    ),
    (
        'http_timeout',
        {
            'type': float,
            'default': DEFAULT_HTTP_TIMEOUT,
            'prompt': 'HTTP timeout (s)',
            'help': 'Seconds to wait for FirecREST to connect or to send the next part of an answer.',
            'non_interactive_default': True,
            'callback': validate_positive_number,
        },
    ),
]
"""The options of ``verdi computer configure firecrest``: ``(name, click specification)`` pairs."""


def _common_option(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """The specification of one of AiiDA's options of every transport, as this transport offers it."""
    if name == 'use_login_shell':
        return {
            **spec,
            'prompt_fn': _never_asked,
            'help': 'Means nothing for FirecREST, which runs no shell for AiiDA: not asked, accepted because AiiDA '
            'gives it to every transport.',
        }
    # aiida-core 2.7 gives safe_interval no default without a prompt; from 2.8 on, its suggestion is that default
    return {'non_interactive_default': True, **spec}


COMMON_AUTH_OPTIONS: list[tuple[str, dict[str, Any]]] = [
    (name, _common_option(name, spec)) for name, spec in Transport._common_auth_options
]
"""AiiDA's options of every transport (``use_login_shell``, ``safe_interval``), with ``use_login_shell`` not asked and
each taking its default without a prompt."""
