"""OAuth2 client-credentials authentication that never blocks the event loop, and the client-secret option.

pyfirecrest's ``ClientCredentialsAuth`` fetches tokens with the blocking ``requests`` library, which would stall the
engine's event loop for the length of a round trip to the identity provider. :class:`ClientCredentialsAuth` here does it
with ``httpx`` on the running loop and offers the ``auth_headers()`` coroutine that pyfirecrest's async client awaits.
One instance per ``(token_uri, client_id)`` serves the whole process (:func:`shared_auth`), so the many transports the
engine opens share one token instead of each fetching its own.

The client secret is never a transport option itself (options end up in the AiiDA database): the option names where to
read it, either a file that only its owner may read (refused otherwise, as ssh refuses a private key) or
``env:VARNAME``. :func:`check_client_secret_source` validates that in ``verdi computer configure`` and again when the
transport opens. Neither the secret nor a token is ever logged or put in an exception message.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from aiida.common.log import AIIDA_LOGGER

from .exceptions import FirecrestApiError, FirecrestAuthenticationError, FirecrestConfigurationError, translate_errors
from .request_budget import LoopLocalLock

__all__ = (
    'DEFAULT_MIN_TOKEN_VALIDITY',
    'ENV_PREFIX',
    'ClientCredentialsAuth',
    'check_client_secret_source',
    'jwt_claims',
    'read_client_secret',
    'shared_auth',
    'store_client_secret',
    'validate_client_secret_option',
)

LOGGER = AIIDA_LOGGER.getChild('transport.FirecrestTransport.client')

ENV_PREFIX = 'env:'
"""The prefix of a client-secret option naming an environment variable instead of a file."""

DEFAULT_MIN_TOKEN_VALIDITY = 60.0
"""Refresh a token this many seconds before it expires: FirecREST refuses tokens with less than 30 s left."""

DEFAULT_TOKEN_TIMEOUT = 30.0
"""The HTTP timeout of a token request, in seconds."""


def check_client_secret_source(source: str) -> None:
    """Check that ``source`` names a client secret safely, without reading the secret.

    :param source: an absolute path to a file readable by its owner alone, or ``env:VARNAME``.
    :raises FirecrestConfigurationError: if ``source`` is neither, if the file is missing, not a regular file, not owned
        by the current user or accessible by group or others, or if the variable name is not a valid name. The message
        never repeats ``source`` unless it is a path (a user might have pasted the secret itself).
    """
    if not source:
        raise FirecrestConfigurationError('client_secret is empty: give a path to a file or env:VARNAME')
    if source.startswith(ENV_PREFIX):
        name = source[len(ENV_PREFIX) :]
        if not name.isidentifier():
            raise FirecrestConfigurationError(f'client_secret {source!r} does not name a valid environment variable')
        return
    path = Path(source).expanduser()
    if not path.is_absolute():
        raise FirecrestConfigurationError(
            'client_secret must be an absolute path to a file holding the secret, or env:VARNAME; '
            'never the secret itself'
        )
    try:
        info = path.stat()
    except OSError as exc:
        # the path is not repeated: a secret starting with ``/`` would be echoed
        raise FirecrestConfigurationError(f'cannot read the client-secret file given: {exc.strerror}') from exc
    if not stat.S_ISREG(info.st_mode):
        raise FirecrestConfigurationError(f'the client-secret file {path} is not a regular file')
    if hasattr(os, 'getuid') and info.st_uid != os.getuid():
        raise FirecrestConfigurationError(f'the client-secret file {path} is not owned by the current user')
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise FirecrestConfigurationError(
            f'the client-secret file {path} is accessible by others (mode {stat.S_IMODE(info.st_mode):04o}); '
            f'make it readable by its owner alone: chmod 600 {path}'
        )


def read_client_secret(source: str) -> str:
    """Return the client secret that ``source`` names (blocking: run it in a thread from async code).

    :param source: see :func:`check_client_secret_source`.
    :raises FirecrestConfigurationError: if the source is unsafe or invalid, the variable unset or the secret empty.
    """
    check_client_secret_source(source)
    if source.startswith(ENV_PREFIX):
        name = source[len(ENV_PREFIX) :]
        secret = os.environ.get(name, '')
        where = f'the environment variable {name}'
    else:
        path = Path(source).expanduser()
        try:
            secret = path.read_text(encoding='utf-8')
        except OSError as exc:
            raise FirecrestConfigurationError(f'cannot read the client-secret file given: {exc.strerror}') from exc
        where = f'the file {path}'
    secret = secret.strip()
    if not secret:
        raise FirecrestConfigurationError(f'no client secret in {where}')
    return secret


def store_client_secret(secret: str) -> Path:
    """Write ``secret`` to a file of the AiiDA configuration folder that only the user may read; return its path.

    The file's name is random: nothing in it derives from the secret.
    """
    import secrets

    from aiida.manage.configuration.settings import AiiDAConfigDir

    directory = Path(AiiDAConfigDir.get()) / 'firecrest'
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / f'client-secret-{secrets.token_hex(8)}'
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, 'w', encoding='utf-8') as handle:
        handle.write(secret)
    return path


def validate_client_secret_option(ctx: Any, param: Any, value: Any) -> Any:
    """The click callback of the ``client_secret`` option of ``verdi computer configure firecrest``.

    A value that is neither an absolute path nor ``env:VARNAME`` is the secret itself when it is typed at the (hidden)
    prompt or read from a ``--config`` file (as the one ``firecrest_demo.py serve --config-out`` writes): it is moved
    to a file that only the user may read (:func:`store_client_secret`) and the option keeps that file's path, so the
    secret never reaches the database. On the command line it is refused: ``ps`` shows it to every user, and aiida-core
    keeps the command line in the profile's ``access/<pid>.pid`` file. No message repeats the value.

    :raises click.BadParameter: if the secret itself is on the command line, if the value is a relative path (of a
        file or not: a mistyped path must not become the secret), or if :func:`check_client_secret_source` refuses it.
    """
    import click

    if value is None:
        return value
    value = str(value).strip()
    if value and not value.startswith((ENV_PREFIX, '/', '~')):
        _check_secret_itself(value, _given_on_command_line(ctx, param))
        value = str(store_client_secret(value))
    try:
        check_client_secret_source(value)
    except FirecrestConfigurationError as exc:
        raise click.BadParameter(str(exc)) from exc
    return value


COMMAND_LINE_REFUSAL = (
    'the client secret itself must not be given on the command line (ps shows it, and aiida-core keeps the command '
    'line in .aiida/access/<profile>/<pid>.pid): give the absolute path of a file holding it (chmod 600), or '
    'env:VARNAME, or leave the option out to type the secret at a hidden prompt'
)


def _given_on_command_line(ctx: Any, param: Any) -> bool:
    import click

    if ctx is None or getattr(param, 'name', None) is None:
        return False
    return bool(ctx.get_parameter_source(param.name) is click.core.ParameterSource.COMMANDLINE)


def _check_secret_itself(value: str, on_command_line: bool) -> None:
    """Refuse a value that is not to become the stored secret: one on the command line, or a relative path (one
    that exists, or one with a directory part that exists or starting with ``./``: a mistyped path)."""
    import click

    if on_command_line:
        raise click.BadParameter(COMMAND_LINE_REFUSAL)
    path = Path(value)
    if path.exists():
        raise click.BadParameter('the client-secret file must be given by its absolute path')
    if value.startswith(('./', '../')) or (len(path.parts) > 1 and path.parent.is_dir()):
        raise click.BadParameter(
            'the client secret looks like a relative path of a file that does not exist: give the absolute path of '
            'an existing file (chmod 600), or env:VARNAME'
        )


def jwt_claims(token: str) -> dict[str, Any]:
    """Return the claims of a JWT without verifying it (the server does), or ``{}`` if ``token`` is not a JWT."""
    parts = token.split('.')
    if len(parts) != 3:
        return {}
    payload = parts[1] + '=' * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


class ClientCredentialsAuth:
    """Access tokens of one OAuth2 client (client-credentials grant), fetched asynchronously and cached.

    Concurrent callers on one event loop share a single refresh. A token is refreshed when less than
    ``min_validity`` seconds of it are left (at most half its lifetime, so that short-lived tokens are not fetched on
    every request).

    :param token_uri: the token endpoint of the identity provider.
    :param client_id: the OAuth2 client.
    :param min_validity: the seconds of validity below which a token is refreshed.
    :param timeout: the HTTP timeout of a token request, in seconds.
    :param http_transport: the httpx transport of token requests (tests pass an :class:`httpx.MockTransport`).
    """

    def __init__(
        self,
        token_uri: str,
        client_id: str,
        *,
        min_validity: float = DEFAULT_MIN_TOKEN_VALIDITY,
        timeout: float = DEFAULT_TOKEN_TIMEOUT,
        http_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.token_uri = token_uri
        self.client_id = client_id
        self.min_validity = min_validity
        self.timeout = timeout
        self._http_transport = http_transport
        self._secret: str | None = None
        self._token: str | None = None
        self._expires_at = 0.0
        self._refresh_margin = 0.0
        self._claims: dict[str, Any] = {}
        self._lock = LoopLocalLock()
        self._state_lock = threading.Lock()
        self.fetches = 0
        """The number of tokens fetched so far (for tests and diagnostics)."""

    def __repr__(self) -> str:
        return f'<{type(self).__name__} client_id={self.client_id!r} token_uri={self.token_uri!r}>'

    def set_secret(self, secret: str) -> None:
        """Set the client secret used for the next token requests."""
        with self._state_lock:
            self._secret = secret

    @property
    def claims(self) -> dict[str, Any]:
        """The claims of the current token if it is a JWT, else ``{}`` (unverified: for information only)."""
        return self._claims

    def _valid_token(self) -> str | None:
        with self._state_lock:
            if self._token is not None and self._expires_at - time.time() > self._refresh_margin:
                return self._token
        return None

    async def access_token(self) -> str:
        """Return a token with at least ``min_validity`` seconds left, fetching one if needed.

        :raises FirecrestAuthenticationError: if the identity provider refuses the client credentials.
        :raises FirecrestConnectionError: if the identity provider cannot be reached.
        :raises FirecrestConfigurationError: if no secret was set.
        """
        token = self._valid_token()
        if token is not None:
            return token
        async with self._lock:
            token = self._valid_token()
            if token is None:
                token = await self._fetch()
            return token

    async def auth_headers(self) -> dict[str, str]:
        """Return the headers that authenticate a FirecREST request (the interface pyfirecrest's client awaits)."""
        return {'Authorization': f'Bearer {await self.access_token()}'}

    def invalidate(self, token: str | None = None) -> None:
        """Forget the cached token (only if it is still ``token``, when given), e.g. after FirecREST refused it."""
        with self._state_lock:
            if token is None or token == self._token:
                self._token = None

    async def _fetch(self) -> str:
        from .firecrest_client import ssl_context

        with self._state_lock:
            secret = self._secret
        if secret is None:
            raise FirecrestConfigurationError(f'no client secret was given for the client {self.client_id!r}')
        data = {'grant_type': 'client_credentials', 'client_id': self.client_id, 'client_secret': secret}
        requested_at = time.time()
        with translate_errors():
            session = httpx.AsyncClient(
                verify=await ssl_context(), timeout=self.timeout, transport=self._http_transport
            )
            async with session:
                response = await session.post(self.token_uri, data=data, headers={'Accept': 'application/json'})
        self.fetches += 1
        if response.status_code in (400, 401, 403):
            raise FirecrestAuthenticationError(
                f'the identity provider {self.token_uri} refused the client credentials of the client '
                f'{self.client_id!r} (HTTP {response.status_code}{_oauth_error(response)}); '
                'check client_id and the client secret'
            )
        try:
            answer = response.json()
            token = str(answer['access_token'])
        except (ValueError, KeyError, TypeError) as exc:
            raise FirecrestApiError(
                f'the identity provider {self.token_uri} gave no access token (HTTP {response.status_code})'
            ) from exc
        claims = jwt_claims(token)
        lifetime = float(answer.get('expires_in') or 0) or float(claims.get('exp', 0)) - requested_at
        if lifetime <= 0:
            lifetime = 300.0
        if 'exp' in claims:
            lifetime = min(lifetime, float(claims['exp']) - requested_at)
        with self._state_lock:
            self._token = token
            self._claims = claims
            self._expires_at = requested_at + lifetime
            self._refresh_margin = min(self.min_validity, lifetime / 2)
        LOGGER.debug('fetched an access token for the client %r, valid for %.0f s', self.client_id, lifetime)
        return token


def _oauth_error(response: httpx.Response) -> str:
    """Return ``': <error>'`` with the OAuth2 ``error`` code of a refusal, if there is one (it holds no secret)."""
    try:
        error = response.json().get('error')
    except (ValueError, AttributeError):
        return ''
    return f': {error}' if isinstance(error, str) and error.isprintable() and len(error) < 100 else ''


_auths: dict[tuple[str, str], ClientCredentialsAuth] = {}
_auths_lock = threading.Lock()


def shared_auth(
    token_uri: str, client_id: str, *, min_validity: float = DEFAULT_MIN_TOKEN_VALIDITY
) -> ClientCredentialsAuth:
    """Return the process-wide :class:`ClientCredentialsAuth` of ``client_id`` at ``token_uri``.

    :param token_uri: the token endpoint of the identity provider.
    :param client_id: the OAuth2 client.
    :param min_validity: see :class:`ClientCredentialsAuth` (the last caller sets it).
    """
    key = (token_uri, client_id)
    with _auths_lock:
        auth = _auths.get(key)
        if auth is None:
            auth = _auths[key] = ClientCredentialsAuth(token_uri, client_id, min_validity=min_validity)
    auth.min_validity = min_validity
    return auth
