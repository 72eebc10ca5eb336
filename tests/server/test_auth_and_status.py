"""Tokens, the version header and the ``/status`` routes, driven through pyfirecrest's v2 clients."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import firecrest
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from firecrest.FirecrestException import ClientsCredentialsException, UnexpectedStatusException
from firecrest.v2 import AsyncFirecrest, Firecrest

from aiida_firecrest.server import LocalFirecrest, ServerSettings
from aiida_firecrest.server.settings import APP_VERSION, DEFAULT_MAX_OPS_FILE_SIZE
from tests.conftest import make_sync_client
from tests.openapi_contract import ResponseValidator


class NoToken:
    """An authorization that sends no credentials at all."""

    def auth_headers(self) -> dict[str, str]:
        return {}


class FixedToken:
    """An authorization that always sends the same bearer token."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_access_token(self) -> str:
        return self.token


def forged_token() -> str:
    """Return a well-formed token with every expected claim, signed with a key that the server does not know."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    claims = {'iss': 'aiida-firecrest-local', 'iat': now, 'exp': now + 300, 'preferred_username': 'someone'}
    return jwt.encode(claims, key, algorithm='RS256')


def client_with(authorization: object, config: dict[str, Any], validator: ResponseValidator) -> Firecrest:
    """Return a validated pyfirecrest sync client of the server ``config`` describes, with ``authorization``."""
    client = Firecrest(config['url'], authorization=authorization)
    client.timeout = 60
    validator.install(client._session)
    return client


def refusal(client: Firecrest, status: int = 401) -> dict[str, Any]:
    """Return the error body of ``/status/systems`` for ``client``, which must be refused with ``status``."""
    with pytest.raises(UnexpectedStatusException) as info:
        client.systems()
    response = info.value.responses[-1]
    assert response.status_code == status
    assert response.headers['F7T-AppVersion'] == APP_VERSION
    return response.json()


def envelope(message: str, user: str | None = None) -> dict[str, Any]:
    return {'errorType': 'error', 'message': message, 'causedBy': None, 'data': None, 'user': user}


def test_no_token(firecrest_config: dict[str, Any], response_validator: ResponseValidator) -> None:
    body = refusal(client_with(NoToken(), firecrest_config, response_validator))
    assert body == envelope('Not authenticated')


@pytest.mark.parametrize('token', ['not-a-token', 'forged'])
def test_invalid_token(firecrest_config: dict[str, Any], response_validator: ResponseValidator, token: str) -> None:
    token = forged_token() if token == 'forged' else token
    body = refusal(client_with(FixedToken(token), firecrest_config, response_validator))
    assert body == envelope('Access token is invalid.')


@pytest.mark.local_server
def test_token_expiring_soon_is_refused(tmp_path: Path) -> None:
    """The server refuses tokens with less than 30 s left, as the real one does (and pyfirecrest renews at 10 s)."""
    settings = ServerSettings(roots=[tmp_path], token_lifetime=20)
    with LocalFirecrest(settings, staging=False) as server:
        config = server.client_config()
        validator = ResponseValidator(server.url)
        assert refusal(make_sync_client(config, validator)) == envelope('Access token expires too soon.')
        settings.token_lifetime = 40
        assert make_sync_client(config, validator).systems()[0]['name'] == settings.system_name


@pytest.mark.parametrize('wrong', ['client_secret', 'client_id'])
def test_wrong_client_credentials(firecrest_config: dict[str, Any], wrong: str) -> None:
    credentials = {key: firecrest_config[key] for key in ('client_id', 'client_secret', 'token_uri')}
    credentials[wrong] = 'wrong'
    client = Firecrest(firecrest_config['url'], authorization=firecrest.ClientCredentialsAuth(**credentials))
    with pytest.raises(ClientsCredentialsException) as info:
        client.systems()
    assert info.value.responses[-1].status_code == 401


@pytest.mark.local_server
def test_token_endpoint(local_server: LocalFirecrest) -> None:
    """Client credentials are accepted in the body or with HTTP Basic; tokens carry the server's user."""
    config = local_server.client_config()
    for method in ('client_secret_post', 'client_secret_basic'):
        auth = firecrest.ClientCredentialsAuth(
            config['client_id'], config['client_secret'], config['token_uri'], client_auth_method=method
        )
        claims = jwt.decode(auth.get_access_token(), options={'verify_signature': False})
        assert claims['preferred_username'] == local_server.settings.username
        assert claims['exp'] - claims['iat'] == local_server.settings.token_lifetime


def test_version_header(sync_client: Firecrest) -> None:
    assert sync_client.server_version() == APP_VERSION == '2.5.6'


async def test_version_header_async(async_client: AsyncFirecrest) -> None:
    assert await async_client.server_version() == APP_VERSION


def test_systems(sync_client: Firecrest, firecrest_config: dict[str, Any]) -> None:
    [system] = sync_client.systems()
    assert system['name'] == firecrest_config['compute_resource']
    assert set(system['dataOperation']) == {'datatransfer_jobs_directives', 'max_ops_file_size', 'data_transfer'}
    assert any(firecrest_config['workdir'].startswith(fs['path']) for fs in system['fileSystems'])


@pytest.mark.local_server
def test_systems_of_the_local_server(sync_client: Firecrest, local_server: LocalFirecrest) -> None:
    [system] = sync_client.systems()
    assert system['dataOperation']['max_ops_file_size'] == DEFAULT_MAX_OPS_FILE_SIZE == 5 * 1024 * 1024
    assert system['dataOperation']['data_transfer']['serviceType'] == 's3'
    assert [fs['path'] for fs in system['fileSystems']] == [str(local_server.root)]


@pytest.fixture(scope='module')
def configured_server(tmp_path_factory: pytest.TempPathFactory, external_config: Any) -> Iterator[LocalFirecrest]:
    """A local server with settings other than the defaults, without S3 staging."""
    if external_config is not None:
        pytest.skip('needs the local server')
    roots = [tmp_path_factory.mktemp('first'), tmp_path_factory.mktemp('second')]
    settings = ServerSettings(roots=roots, system_name='daint', account='acct', max_ops_file_size=12345)
    with LocalFirecrest(settings, staging=False) as server:
        yield server


@pytest.fixture
def configured_client(configured_server: LocalFirecrest) -> Iterator[Firecrest]:
    client = make_sync_client(configured_server.client_config(), ResponseValidator(configured_server.url))
    yield client
    client.close_session()


@pytest.mark.local_server
def test_systems_follow_the_settings(configured_client: Firecrest, configured_server: LocalFirecrest) -> None:
    [system] = configured_client.systems()
    assert system['name'] == 'daint'
    assert system['dataOperation']['max_ops_file_size'] == 12345
    assert system['dataOperation']['data_transfer'] is None
    assert [(fs['path'], fs['defaultWorkDir']) for fs in system['fileSystems']] == [
        (str(root), index == 0) for index, root in enumerate(configured_server.settings.roots)
    ]


@pytest.mark.local_server
def test_userinfo(configured_client: Firecrest, configured_server: LocalFirecrest) -> None:
    info = configured_client.userinfo('daint')
    assert info['user']['name'] == configured_server.settings.username
    assert info['user']['id'].isdigit() and info['group']['id'].isdigit()
    assert info['group'] in info['groups']
    assert info['accounts'] == [{'name': 'acct', 'default': True}]
    assert configured_client.userinfo('DAINT') == info, 'system names are case-insensitive'


def test_userinfo_shape(sync_client: Firecrest, firecrest_config: dict[str, Any]) -> None:
    info = sync_client.userinfo(firecrest_config['compute_resource'])
    assert set(info) == {'user', 'group', 'groups', 'accounts'}


def test_unknown_system(sync_client: Firecrest) -> None:
    with pytest.raises(UnexpectedStatusException) as info:
        sync_client.userinfo('no-such-system')
    response = info.value.responses[-1]
    assert response.status_code == 404
    assert response.json()['message'] == 'System not found'


def test_liveness_needs_no_token(sync_client: Firecrest, firecrest_config: dict[str, Any]) -> None:
    """pyfirecrest has no call for it: ask with the client's own HTTP session, which sends no token by itself."""
    response = sync_client._session.get(f'{firecrest_config["url"]}/status/liveness/')
    assert response.status_code == 200
    assert response.headers['F7T-AppVersion'] == APP_VERSION
    assert isinstance(response.json()['lastUpdate'], int)
