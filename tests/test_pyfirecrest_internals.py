"""The canary of pyfirecrest's private parts: each test fails, naming the part, when a pyfirecrest release changes one.

The plugin uses pyfirecrest's private methods and attributes in :mod:`aiida_firecrest.client.pyfirecrest_internals`
alone; what it relies on is listed there (``PRIVATE_METHODS``, ``PRIVATE_ATTRIBUTES``) and checked here against the
installed pyfirecrest: that each still exists, with the same parameters, and that pyfirecrest's public methods still
send their requests through the four private request methods the plugin overrides.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterator, Callable
from importlib.metadata import version
from typing import Any

import httpx
import pytest
from firecrest.FirecrestException import UnexpectedStatusException
from firecrest.v2 import AsyncFirecrest

from aiida_firecrest.client.pyfirecrest_internals import (
    PRIVATE_ATTRIBUTES,
    PRIVATE_METHODS,
    ApiRequest,
    PyfirecrestInternals,
    Send,
)

PYFIRECREST = f'pyfirecrest {version("pyfirecrest")}'
URL = 'https://firecrest.test'
SYSTEM = 'cluster'


def undecorated(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """The method ``name`` under pyfirecrest's decorators (``_retry_requests`` wraps without ``functools.wraps``): the
    function of that name its wrapper's closure holds."""
    function = inspect.unwrap(function)
    for cell in function.__closure__ or ():
        inner = cell.cell_contents
        if inspect.isfunction(inner) and inner.__name__ == name and inner is not function:
            return undecorated(name, inner)
    return function


def parameters(name: str, function: Callable[..., Any]) -> tuple[str, ...]:
    return tuple(inspect.signature(undecorated(name, function)).parameters)


@pytest.mark.parametrize('name', sorted(PRIVATE_METHODS))
def test_private_method_exists(name: str) -> None:
    assert hasattr(AsyncFirecrest, name), (
        f'{PYFIRECREST} has no AsyncFirecrest.{name} any more: aiida_firecrest/client/pyfirecrest_internals.py uses it'
    )


@pytest.mark.parametrize('name', sorted(PRIVATE_METHODS))
def test_private_method_parameters(name: str) -> None:
    expected = PRIVATE_METHODS[name].parameters
    found = parameters(name, getattr(AsyncFirecrest, name))
    assert found == expected, (
        f'{PYFIRECREST} changed the parameters of AsyncFirecrest.{name}: {found}, where '
        f'aiida_firecrest/client/pyfirecrest_internals.py expects {expected}'
    )


@pytest.mark.parametrize('name', sorted(PRIVATE_METHODS))
def test_private_method_kind(name: str) -> None:
    expected = PRIVATE_METHODS[name].is_coroutine
    found = inspect.iscoroutinefunction(undecorated(name, getattr(AsyncFirecrest, name)))
    assert found == expected, (
        f'{PYFIRECREST}: AsyncFirecrest.{name} is {"now" if found else "no longer"} a coroutine function, which '
        'aiida_firecrest/client/pyfirecrest_internals.py does not expect'
    )


@pytest.mark.parametrize('name', sorted(name for name in PRIVATE_METHODS if name in vars(PyfirecrestInternals)))
def test_overrides_keep_the_parameters(name: str) -> None:
    """An override takes what pyfirecrest passes it (its public methods call these by keyword)."""
    assert parameters(name, vars(PyfirecrestInternals)[name]) == PRIVATE_METHODS[name].parameters


@pytest.fixture
async def pyfirecrest_client() -> AsyncIterator[AsyncFirecrest]:
    client = AsyncFirecrest(URL, authorization=BearerToken(), verify=False)
    yield client
    await client.close_session()


@pytest.mark.parametrize('name', sorted(PRIVATE_ATTRIBUTES))
def test_private_attribute(pyfirecrest_client: AsyncFirecrest, name: str) -> None:
    assert hasattr(pyfirecrest_client, name), (
        f'{PYFIRECREST}: an AsyncFirecrest has no attribute {name} any more: '
        'aiida_firecrest/client/pyfirecrest_internals.py uses it'
    )
    value = getattr(pyfirecrest_client, name)
    assert isinstance(value, PRIVATE_ATTRIBUTES[name]), (
        f'{PYFIRECREST}: AsyncFirecrest.{name} is a {type(value).__name__}, where '
        f'aiida_firecrest/client/pyfirecrest_internals.py expects {PRIVATE_ATTRIBUTES[name]}'
    )


class BearerToken:
    """An authorization as the plugin's (an ``auth_headers()`` coroutine, awaited by pyfirecrest >= 3.10)."""

    async def auth_headers(self) -> dict[str, str]:
        return {'Authorization': 'Bearer canary'}


class RecordingClient(PyfirecrestInternals):
    """Records the requests that reach :meth:`send_request`."""

    def __init__(self, answer: Callable[[httpx.Request], httpx.Response]) -> None:
        super().__init__(URL, authorization=BearerToken(), verify=False)
        self.http_session = httpx.AsyncClient(transport=httpx.MockTransport(answer))
        self.requests: list[ApiRequest] = []

    async def send_request(self, request: ApiRequest, send: Send) -> httpx.Response:
        self.requests.append(request)
        return await send()


def answer(request: httpx.Request) -> httpx.Response:
    """The server's answer to each operation used below."""
    assert request.headers['Authorization'] == 'Bearer canary', 'pyfirecrest no longer awaits auth_headers()'
    operation = request.url.path.rsplit('/', 1)[-1]
    if operation == 'rm':
        return httpx.Response(204)
    status = 201 if request.method == 'POST' else 200
    return httpx.Response(status, json={'output': [] if operation == 'ls' else {}})


OPERATIONS: list[tuple[str, Callable[[AsyncFirecrest], Any], str, str, bool]] = [
    ('list_files', lambda c: c.list_files(SYSTEM, '/d'), 'GET', f'/filesystem/{SYSTEM}/ops/ls', False),
    ('mkdir', lambda c: c.mkdir(SYSTEM, '/d', create_parents=True), 'POST', f'/filesystem/{SYSTEM}/ops/mkdir', True),
    ('chmod', lambda c: c.chmod(SYSTEM, '/d', '700'), 'PUT', f'/filesystem/{SYSTEM}/ops/chmod', True),
    ('rm', lambda c: c.rm(SYSTEM, '/d'), 'DELETE', f'/filesystem/{SYSTEM}/ops/rm', False),
]


@pytest.mark.parametrize(
    ('operation', 'call', 'method', 'endpoint', 'has_body'), OPERATIONS, ids=[o[0] for o in OPERATIONS]
)
async def test_public_methods_send_through_the_request_methods(
    operation: str, call: Callable[[AsyncFirecrest], Any], method: str, endpoint: str, has_body: bool
) -> None:
    """Every public method's request reaches ``send_request``, with its JSON body (the retry policy reads it)."""
    client = RecordingClient(answer)
    try:
        await call(client)
    finally:
        await client.close_session()
    sent = [(request.method, request.endpoint, request.json_data is not None) for request in client.requests]
    assert sent == [(method, endpoint, has_body)], (
        f'{PYFIRECREST}: AsyncFirecrest.{operation} no longer sends its request through the private request methods '
        'that aiida_firecrest/client/pyfirecrest_internals.py overrides'
    )


async def test_check_answer_raises_pyfirecrest_exception() -> None:
    client = RecordingClient(answer)
    try:
        response = await client.api_get(f'/filesystem/{SYSTEM}/ops/ls', params={'path': '/d'})
        assert client.check_answer(response, 200) == {'output': []}
        with pytest.raises(UnexpectedStatusException):
            client.check_answer(response, 201)
    finally:
        await client.close_session()


async def test_session_replaced_is_used() -> None:
    """Requests go through the session set as ``http_session`` (pyfirecrest's ``_session``)."""
    seen: list[str] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content or b'{}').get('path', request.url.params.get('path')))
        return answer(request)

    client = RecordingClient(record)
    try:
        await client.api_post(f'/filesystem/{SYSTEM}/ops/mkdir', json_data={'path': '/new'})
        await client.api_delete(f'/filesystem/{SYSTEM}/ops/rm', params={'path': '/old'})
    finally:
        await client.close_session()
    assert seen == ['/new', '/old']
