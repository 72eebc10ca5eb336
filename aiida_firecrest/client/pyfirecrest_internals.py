"""Every private part of pyfirecrest the plugin uses, in this module alone, under public names.

The plugin needs pyfirecrest's :class:`~firecrest.v2.AsyncFirecrest` a little below its public API:

* its four request methods (``_get_request``, ``_post_request``, ``_put_request``, ``_delete_request``), through which
  every public method sends its requests: overriding them is the one way to pace, repeat and observe *every* request
  (:meth:`PyfirecrestInternals.send_request`), and calling them the way to make a request pyfirecrest has no method for
  (:meth:`~PyfirecrestInternals.api_get`, :meth:`~PyfirecrestInternals.api_post`,
  :meth:`~PyfirecrestInternals.api_delete`) with pyfirecrest's authentication, tracing headers and 429 handling;
* ``_check_response``, which turns an unexpected status into pyfirecrest's exception
  (:meth:`~PyfirecrestInternals.check_answer`);
* ``_wait_for_transfer_job``, which waits for a transfer job and judges its success by its output log
  (:meth:`~PyfirecrestInternals.wait_for_transfer_job`);
* the attributes ``_session`` (the httpx session of every request, API and S3), ``_firecrest_url``, ``_verify`` and
  ``_authorization``.

:data:`PRIVATE_METHODS` and :data:`PRIVATE_ATTRIBUTES` say what this module relies on;
``tests/test_pyfirecrest_internals.py`` checks them against the installed pyfirecrest and fails naming the part that
changed, so that a pyfirecrest release renaming, removing or reshaping one of them is caught by the test suite, not by
a user's CalcJob.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import httpx
from firecrest.v2 import AsyncFirecrest

__all__ = ('PRIVATE_ATTRIBUTES', 'PRIVATE_METHODS', 'ApiRequest', 'PrivateMethod', 'PyfirecrestInternals')


class PrivateMethod(NamedTuple):
    """What the plugin relies on of a private method of :class:`~firecrest.v2.AsyncFirecrest`."""

    parameters: tuple[str, ...]
    """The names of its parameters, in order (``self`` first)."""

    is_coroutine: bool
    """Whether it is a coroutine function."""


PRIVATE_METHODS: dict[str, PrivateMethod] = {
    '_get_request': PrivateMethod(('self', 'endpoint', 'additional_headers', 'params'), True),
    '_post_request': PrivateMethod(
        ('self', 'endpoint', 'additional_headers', 'params', 'data', 'files', 'json_data'), True
    ),
    '_put_request': PrivateMethod(('self', 'endpoint', 'additional_headers', 'data', 'json_data'), True),
    '_delete_request': PrivateMethod(('self', 'endpoint', 'additional_headers', 'params', 'data'), True),
    '_check_response': PrivateMethod(('self', 'response', 'expected_status_code', 'return_json'), False),
    '_wait_for_transfer_job': PrivateMethod(('self', 'job_info', 'timeout'), True),
}
"""The private methods of :class:`~firecrest.v2.AsyncFirecrest` used here, with what is relied on of each."""

PRIVATE_ATTRIBUTES: dict[str, type | tuple[type, ...]] = {
    '_session': httpx.AsyncClient,
    '_firecrest_url': str,
    '_verify': (bool, str, ssl.SSLContext),
    '_authorization': object,
}
"""The private attributes of an :class:`~firecrest.v2.AsyncFirecrest` used here, with their types."""

Send = Callable[[], Awaitable[httpx.Response]]
"""Sends a request once through pyfirecrest (each call sends it again)."""


@dataclass(frozen=True)
class ApiRequest:
    """A request to the FirecREST API, as :meth:`PyfirecrestInternals.send_request` sees it."""

    method: str
    """``GET``, ``POST``, ``PUT`` or ``DELETE``."""

    endpoint: str
    """The path below the FirecREST URL, e.g. ``/filesystem/daint/ops/ls``."""

    json_data: Any = None
    """The JSON body (``POST`` and ``PUT``)."""


class PyfirecrestInternals(AsyncFirecrest):
    """pyfirecrest's :class:`~firecrest.v2.AsyncFirecrest` with the private parts the plugin uses under public names.

    Every API request of every method goes through :meth:`send_request`, which a subclass overrides.
    """

    async def send_request(self, request: ApiRequest, send: Send) -> httpx.Response:
        """Send one API request and return its answer: here, ``send()`` once.

        :param request: what is sent.
        :param send: sends it through pyfirecrest (authentication, tracing headers, 429 handling); may be called again.
        """
        return await send()

    @property
    def http_session(self) -> httpx.AsyncClient:
        """The httpx session of every request of the client (to the API and to the S3 presigned URLs)."""
        session: httpx.AsyncClient = self._session
        return session

    @http_session.setter
    def http_session(self, session: httpx.AsyncClient) -> None:
        self._session = session

    @property
    def api_url(self) -> str:
        """The FirecREST URL, without a trailing slash."""
        return str(self._firecrest_url)

    @property
    def tls_verify(self) -> bool | str | ssl.SSLContext:
        """What the client's sessions verify TLS certificates with (as given to the constructor)."""
        verify: bool | str | ssl.SSLContext = self._verify
        return verify

    @property
    def authorization(self) -> Any:
        """The authorization object given to the constructor."""
        return self._authorization

    async def api_get(self, endpoint: str, params: dict[str, Any] | None = None) -> httpx.Response:
        """Send a GET request to ``endpoint`` (through :meth:`send_request`); return the answer, whatever its status."""
        return await self._get_request(endpoint=endpoint, params=params)

    async def api_post(self, endpoint: str, json_data: dict[str, Any] | None = None) -> httpx.Response:
        """Send a POST request to ``endpoint`` (through :meth:`send_request`); return the answer, whatever its
        status."""
        return await self._post_request(endpoint=endpoint, json_data=json_data)

    async def api_delete(self, endpoint: str, params: dict[str, Any] | None = None) -> httpx.Response:
        """Send a DELETE request to ``endpoint`` (through :meth:`send_request`); return the answer, whatever its
        status."""
        return await self._delete_request(endpoint=endpoint, params=params)

    def check_answer(self, response: httpx.Response, expected_status: int, return_json: bool = True) -> Any:
        """Return the JSON body of ``response`` (``{}`` without one, or if ``return_json`` is false).

        :raises firecrest.FirecrestException.UnexpectedStatusException: if its status is not ``expected_status``.
        """
        return self._check_response(response, expected_status, return_json=return_json)

    async def wait_for_transfer_job(self, job_info: dict[str, Any], timeout: float | None = None) -> None:
        """Wait for the transfer job that ``job_info`` (the answer that started it) describes, as pyfirecrest does.

        :raises firecrest.FirecrestException.TransferJobFailedException: if its output log does not report success.
        :raises firecrest.FirecrestException.TransferJobTimeoutException: after ``timeout`` seconds.
        """
        await self._wait_for_transfer_job(job_info, timeout=timeout)

    # --- pyfirecrest's request methods, routed through send_request --------------------------------------------

    async def _get_request(self, endpoint: str, additional_headers: Any = None, params: Any = None) -> httpx.Response:
        send = functools.partial(super()._get_request, endpoint, additional_headers, params)
        return await self.send_request(ApiRequest('GET', endpoint), send)

    async def _post_request(
        self,
        endpoint: str,
        additional_headers: Any = None,
        params: Any = None,
        data: Any = None,
        files: Any = None,
        json_data: Any = None,
    ) -> httpx.Response:
        send = functools.partial(super()._post_request, endpoint, additional_headers, params, data, files, json_data)
        return await self.send_request(ApiRequest('POST', endpoint, json_data), send)

    async def _put_request(
        self, endpoint: str, additional_headers: Any = None, data: Any = None, json_data: Any = None
    ) -> httpx.Response:
        send = functools.partial(super()._put_request, endpoint, additional_headers, data, json_data)
        return await self.send_request(ApiRequest('PUT', endpoint, json_data), send)

    async def _delete_request(
        self, endpoint: str, additional_headers: Any = None, params: Any = None, data: Any = None
    ) -> httpx.Response:
        send = functools.partial(super()._delete_request, endpoint, additional_headers, params, data)
        return await self.send_request(ApiRequest('DELETE', endpoint), send)
