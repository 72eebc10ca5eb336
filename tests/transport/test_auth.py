"""The asynchronous client-credentials authentication and the client-secret option."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import click
import httpx
import pytest
from aiida.common.log import AIIDA_LOGGER

from aiida_firecrest.client.client_credentials import (
    ClientCredentialsAuth,
    check_client_secret_source,
    jwt_claims,
    read_client_secret,
    shared_auth,
    validate_client_secret_option,
)
from aiida_firecrest.client.exceptions import FirecrestAuthenticationError, FirecrestConfigurationError

TOKEN_URI = 'https://idp.test/token'
SECRET = 's3cr3t-value-never-to-be-seen'


def make_jwt(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip('=')

    return f'{part({"alg": "none"})}.{part(claims)}.signature'


class TokenServer:
    """A token endpoint for :class:`httpx.MockTransport`: counts requests, answers tokens or refusals."""

    def __init__(self, lifetime: int = 300, refuse: bool = False, delay: float = 0.0) -> None:
        self.lifetime = lifetime
        self.refuse = refuse
        self.delay = delay
        self.requests: list[dict[str, list[str]]] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        form = parse_qs(request.content.decode())
        self.requests.append(form)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.refuse or form.get('client_secret') != [SECRET]:
            return httpx.Response(401, json={'error': 'invalid_client', 'error_description': f'bad {SECRET}'})
        token = make_jwt(
            {'preferred_username': 'alice', 'exp': int(time.time()) + self.lifetime, 'n': len(self.requests)}
        )
        return httpx.Response(200, json={'access_token': token, 'expires_in': self.lifetime, 'token_type': 'Bearer'})


def make_auth(server: TokenServer, **kwargs: Any) -> ClientCredentialsAuth:
    authority = ClientCredentialsAuth(TOKEN_URI, 'client', http_transport=httpx.MockTransport(server), **kwargs)
    authority.set_secret(SECRET)
    return authority


# --- the client-secret option ------------------------------------------------------------------------------------


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / 'secret'
    path.write_text(f'{SECRET}\n')
    path.chmod(0o600)
    return path


def test_private_file_is_accepted_and_read(secret_file: Path) -> None:
    check_client_secret_source(str(secret_file))
    assert read_client_secret(str(secret_file)) == SECRET


@pytest.mark.parametrize('mode', [0o640, 0o604, 0o660, 0o644, 0o700 | 0o004])
def test_file_readable_by_others_is_refused(secret_file: Path, mode: int) -> None:
    """As ssh refuses a private key that others can read."""
    secret_file.chmod(mode)
    with pytest.raises(FirecrestConfigurationError, match='chmod 600'):
        read_client_secret(str(secret_file))


def test_the_secret_itself_is_refused_and_not_repeated() -> None:
    with pytest.raises(FirecrestConfigurationError) as info:
        check_client_secret_source(SECRET)
    assert SECRET not in str(info.value)
    assert 'never the secret itself' in str(info.value)


@pytest.mark.parametrize('kind', ['missing', 'directory', 'empty'])
def test_unusable_files_are_refused(tmp_path: Path, kind: str) -> None:
    path = tmp_path / 'secret'
    if kind == 'directory':
        path.mkdir(mode=0o700)
    elif kind == 'empty':
        path.touch(mode=0o600)
    with pytest.raises(FirecrestConfigurationError):
        read_client_secret(str(path))


def test_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('AIIDA_FIRECREST_TEST_SECRET', SECRET)
    assert read_client_secret('env:AIIDA_FIRECREST_TEST_SECRET') == SECRET
    monkeypatch.delenv('AIIDA_FIRECREST_TEST_SECRET')
    check_client_secret_source('env:AIIDA_FIRECREST_TEST_SECRET')  # the daemon may have it; configure accepts it
    with pytest.raises(FirecrestConfigurationError, match='no client secret'):
        read_client_secret('env:AIIDA_FIRECREST_TEST_SECRET')
    with pytest.raises(FirecrestConfigurationError):
        check_client_secret_source('env:not-a-name')


def test_click_callback_checks_the_file(secret_file: Path) -> None:
    assert validate_client_secret_option(None, None, str(secret_file)) == str(secret_file)
    secret_file.chmod(0o644)
    with pytest.raises(click.BadParameter, match='accessible by others'):
        validate_client_secret_option(None, None, str(secret_file))


def test_click_callback_moves_a_secret_to_a_private_file() -> None:
    """The secret itself never becomes the option's value: a private file of the AiiDA folder holds it instead."""
    stored = Path(validate_client_secret_option(None, None, SECRET))
    assert SECRET not in str(stored)
    assert stored.read_text() == SECRET
    assert stored.stat().st_mode & 0o777 == 0o600


def test_stored_secret_file_name_is_random() -> None:
    """Nothing in the name derives from the secret: the same secret stored twice gets two names."""
    first, second = (Path(validate_client_secret_option(None, None, SECRET)) for _ in range(2))
    assert first != second
    assert first.read_text() == second.read_text() == SECRET


def test_click_callback_refuses_a_relative_path(secret_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(secret_file.parent)
    with pytest.raises(click.BadParameter, match='absolute path'):
        validate_client_secret_option(None, None, secret_file.name)


@pytest.mark.parametrize('mistyped', ['./secret-typo', '../secret-typo', 'secrets/typo.txt'])
def test_click_callback_refuses_a_missing_relative_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mistyped: str
) -> None:
    """A mistyped path is an error, not a secret to store."""
    (tmp_path / 'work' / 'secrets').mkdir(parents=True)
    monkeypatch.chdir(tmp_path / 'work')
    with pytest.raises(click.BadParameter, match='relative path') as info:
        validate_client_secret_option(None, None, mistyped)
    assert mistyped not in str(info.value)


def test_click_option_hides_what_is_typed() -> None:
    from aiida_firecrest.transport.options import AUTH_OPTIONS

    assert dict(AUTH_OPTIONS)['client_secret']['hide_input'] is True


# --- tokens ------------------------------------------------------------------------------------------------------


def test_jwt_claims() -> None:
    assert jwt_claims(make_jwt({'preferred_username': 'bob'})) == {'preferred_username': 'bob'}
    assert jwt_claims('opaque-token') == {}
    assert jwt_claims('a.!!!.c') == {}


async def test_concurrent_callers_share_one_token_request() -> None:
    server = TokenServer(delay=0.05)
    authority = make_auth(server)
    headers = await asyncio.gather(*(authority.auth_headers() for _ in range(50)))
    assert len(server.requests) == 1
    assert len({header['Authorization'] for header in headers}) == 1
    assert headers[0]['Authorization'].startswith('Bearer ')
    assert server.requests[0]['grant_type'] == ['client_credentials']
    assert server.requests[0]['client_id'] == ['client']
    assert authority.claims['preferred_username'] == 'alice'
    await authority.access_token()
    assert len(server.requests) == 1


async def test_refresh_at_least_a_minute_before_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    server = TokenServer(lifetime=300)
    authority = make_auth(server)
    first = await authority.access_token()
    now = time.time()
    monkeypatch.setattr(time, 'time', lambda: now + 300 - 61)
    assert await authority.access_token() == first
    monkeypatch.setattr(time, 'time', lambda: now + 300 - 59)
    assert await authority.access_token() != first
    assert len(server.requests) == 2


async def test_short_lived_tokens_are_not_fetched_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a 60 s token, 'a minute before expiry' would be now: refresh at half the lifetime instead."""
    server = TokenServer(lifetime=60)
    authority = make_auth(server)
    await authority.access_token()
    await authority.access_token()
    assert len(server.requests) == 1


async def test_invalidate_only_the_token_that_was_refused() -> None:
    server = TokenServer()
    authority = make_auth(server)
    first = await authority.access_token()
    authority.invalidate('some older token')
    assert await authority.access_token() == first
    authority.invalidate(first)
    assert await authority.access_token() != first


async def test_refused_credentials_say_so_without_the_secret(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=AIIDA_LOGGER.name)
    authority = make_auth(TokenServer(refuse=True))
    with pytest.raises(FirecrestAuthenticationError) as info:
        await authority.access_token()
    message = str(info.value)
    assert 'refused the client credentials' in message
    assert 'invalid_client' in message
    assert SECRET not in message
    assert SECRET not in caplog.text


async def test_neither_token_nor_secret_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=AIIDA_LOGGER.name)
    authority = make_auth(TokenServer())
    token = await authority.access_token()
    assert 'fetched an access token' in caplog.text
    assert token not in caplog.text
    assert SECRET not in caplog.text
    assert SECRET not in repr(authority)


async def test_no_secret_is_a_configuration_error() -> None:
    authority = ClientCredentialsAuth(TOKEN_URI, 'client', http_transport=httpx.MockTransport(TokenServer()))
    with pytest.raises(FirecrestConfigurationError):
        await authority.access_token()


def test_shared_per_token_uri_and_client() -> None:
    one = shared_auth('https://a.test/token', 'client-a')
    assert shared_auth('https://a.test/token', 'client-a') is one
    assert shared_auth('https://a.test/token', 'client-b') is not one
    assert shared_auth('https://b.test/token', 'client-a') is not one


# --- with the local server -----------------------------------------------------------------------------------------


@pytest.mark.local_server(reason="counts requests in the local server's request log")
async def test_open_reads_the_secret_and_makes_no_request(firecrest_transport: Any, count_requests: Any) -> None:
    async with count_requests() as counted:
        transport = firecrest_transport()
        async with transport:
            pass
    assert counted.all_requests == []


async def test_open_refuses_a_secret_file_others_can_read(
    firecrest_transport: Any, firecrest_config: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / 'secret'
    path.write_text(firecrest_config['client_secret'])
    path.chmod(0o644)
    transport = firecrest_transport(client_secret=str(path))
    with pytest.raises(FirecrestConfigurationError, match='accessible by others'):
        await transport.open_async()
    assert not transport.is_open


async def test_refused_client_fails_the_first_request(
    firecrest_transport: Any, firecrest_config: dict[str, Any]
) -> None:
    transport = firecrest_transport(client_id='not-a-registered-client')
    async with transport:
        with pytest.raises(FirecrestAuthenticationError, match='refused the client credentials'):
            await transport.path_exists_async(firecrest_config['workdir'])


@pytest.mark.local_server(reason="counts requests in the local server's request log, and knows its user")
async def test_whoami_from_the_token_costs_no_request(
    firecrest_transport: Any, local_server: Any, count_requests: Any
) -> None:
    async with firecrest_transport() as transport:
        await transport.whoami_async()  # the token itself is fetched at most here
        async with count_requests() as counted:
            assert await transport.whoami_async() == local_server.settings.username
    assert counted.all_requests == []


# --- verdi computer configure firecrest ----------------------------------------------------------------------------


def _configure(label: str, config: dict[str, Any], secret: str) -> Any:
    from aiida.cmdline.commands.cmd_computer import computer_configure
    from click.testing import CliRunner

    options = {
        'url': config['url'],
        'token-uri': config['token_uri'],
        'client-id': config['client_id'],
        'client-secret': secret,
        'compute-resource': config['compute_resource'],
        'temp-directory': config['temp_directory'],
    }
    arguments = ['firecrest', label, '--non-interactive', *(f'--{key}={value}' for key, value in options.items())]
    return CliRunner().invoke(computer_configure, arguments, catch_exceptions=False)


def test_verdi_computer_configure(
    aiida_computer: Any, firecrest_config: dict[str, Any], firecrest_secret_file: Path, tmp_path: Path
) -> None:
    """The options, their defaults and the client-secret check, as ``verdi computer configure firecrest`` runs them."""
    computer = aiida_computer(label='firecrest-configure', transport_type='firecrest', scheduler_type='core.direct')
    insecure = tmp_path / 'insecure'
    insecure.write_text('x')
    insecure.chmod(0o644)
    refused = _configure(computer.label, firecrest_config, str(insecure))
    assert refused.exit_code != 0
    assert 'accessible by others' in refused.output
    on_command_line = _configure(computer.label, firecrest_config, SECRET)
    assert on_command_line.exit_code != 0
    assert 'env:VARNAME' in on_command_line.output and 'absolute path' in on_command_line.output
    assert SECRET not in on_command_line.output

    accepted = _configure(computer.label, firecrest_config, str(firecrest_secret_file))
    assert accepted.exit_code == 0, accepted.output
    params = computer.get_authinfo(computer.backend.default_user).get_auth_params()
    assert params['client_secret'] == str(firecrest_secret_file)
    assert params['safe_interval'] == 0.1
    assert params['requests_per_second'] == 10.0
    assert params['requests_per_minute'] == 120.0
    assert params['max_direct_size'] == 0
    transport = computer.get_transport()
    assert transport.get_safe_open_interval() == 0.1
    with transport:
        assert transport.whoami()
