"""Validation of the answers of a FirecREST server against the v2 OpenAPI specification.

The specification stays outside the repository: it is read from ``$FIRECREST_OPENAPI_SPEC`` or from
``../shared/firecrest-v2-openapi.yaml`` beside the checkout.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from urllib.parse import parse_qs

import httpx
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

SPEC_ENV = 'FIRECREST_OPENAPI_SPEC'
DEFAULT_SPEC = Path(__file__).resolve().parents[2] / 'shared' / 'firecrest-v2-openapi.yaml'


def spec_path() -> Path:
    """Return where the specification is; raise ``FileNotFoundError`` if it is nowhere."""
    path = Path(os.environ.get(SPEC_ENV, DEFAULT_SPEC))
    if not path.is_file():
        raise FileNotFoundError(f'the FirecREST v2 OpenAPI specification is not at {path}: set ${SPEC_ENV}')
    return path


@functools.lru_cache(maxsize=1)
def openapi() -> OpenAPI:
    """Return the loaded specification (loading takes about a second, so it is done once)."""
    return OpenAPI.from_file_path(str(spec_path()))


class _Request:
    """An ``httpx.Request`` seen through openapi-core's request protocol."""

    def __init__(self, request: httpx.Request, base_path: str) -> None:
        self._request = request
        self.host_url = f'{request.url.scheme}://{request.url.netloc.decode()}'
        self.path = request.url.path.removeprefix(base_path)
        self.method = request.method.lower()
        self.body = None
        self.content_type = request.headers.get('content-type', 'application/json')
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qs(request.url.query.decode())),
            header=Headers(dict(request.headers)),
            cookie=ImmutableMultiDict(),
        )


class _Response:
    """An ``httpx.Response`` seen through openapi-core's response protocol."""

    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        self.content_type = response.headers.get('content-type', '')
        self.headers = Headers(dict(response.headers))
        self.data = response.content


class ResponseValidator:
    """Validate every JSON answer of the FirecREST API at ``base_url`` that an ``httpx`` client receives.

    Install it with :meth:`install`; it counts what it validated, per operation, in :attr:`validated`.
    """

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip('/')
        self._base_path = httpx.URL(self.base_url).path.rstrip('/')
        self.validated: dict[str, int] = {}

    def _concerns(self, response: httpx.Response) -> bool:
        return str(response.request.url).startswith(self.base_url) and 'json' in response.headers.get(
            'content-type', ''
        )

    def validate(self, response: httpx.Response) -> None:
        """Raise an openapi-core validation error if ``response`` breaks the specification."""
        request = _Request(response.request, self._base_path)
        if request.path.startswith('/auth/'):
            return  # the token endpoint is the identity provider's, not part of the FirecREST API
        openapi().validate_response(request, _Response(response))
        key = f'{request.method.upper()} {request.path}'
        self.validated[key] = self.validated.get(key, 0) + 1

    def install(self, client: httpx.Client | httpx.AsyncClient) -> None:
        """Validate the answers ``client`` receives from now on."""
        if isinstance(client, httpx.AsyncClient):

            async def async_hook(response: httpx.Response) -> None:
                if self._concerns(response):
                    await response.aread()
                    self.validate(response)

            client.event_hooks['response'].append(async_hook)
        else:

            def hook(response: httpx.Response) -> None:
                if self._concerns(response):
                    response.read()
                    self.validate(response)

            client.event_hooks['response'].append(hook)
