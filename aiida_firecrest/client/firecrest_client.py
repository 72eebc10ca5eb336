"""pyfirecrest's async client as the plugin needs it: every request to the FirecREST API is made through it.

:class:`FirecrestClient` subclasses :class:`firecrest.v2.AsyncFirecrest` and changes only what the plugin needs:

* its httpx session always has timeouts, and its request hooks pace the requests to the FirecREST API (not those to
  the S3 presigned URLs of staged transfers) with the process-wide
  :class:`~aiida_firecrest.client.request_budget.RequestBudget`, and hold every request back after a 429 for its
  ``Retry-After``;
* a 429 is retried a bounded number of times (pyfirecrest retries forever by default);
* a 401 is retried once with a fresh token (the token may have been revoked or the clock skewed);
* a failed request is repeated as :mod:`~aiida_firecrest.client.retry_policy` says for its operation (a bounded,
  jittered back-off; never a job submission whose server may have acted);
* :meth:`FirecrestClient.download_direct` downloads a small file in ONE request. pyfirecrest's ``download`` always
  ``stat`` s the file first to choose between the direct and the staged path; the transport usually knows the size
  already (from a listing) or can simply try, since the server answers 413 above its limit. Its request is sent as
  pyfirecrest sends its own, so retries, tracing headers and authentication stay pyfirecrest's.

The private parts of pyfirecrest it builds on are reached through
:class:`~aiida_firecrest.client.pyfirecrest_internals.PyfirecrestInternals`, its base, and nowhere else.

"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import posixpath
import random
import ssl
import threading
from typing import Any

import httpx
from aiida.common.log import AIIDA_LOGGER
from firecrest.utilities import parse_retry_after
from firecrest.v2 import AsyncExternalDownload, AsyncFirecrest

from . import transfer_wait
from .exceptions import TransferFailedError, error_from_answer, message_of_response
from .pyfirecrest_internals import ApiRequest, PyfirecrestInternals, Send
from .request_budget import RequestBudget
from .retry_policy import (
    DEFAULT_BACKOFF,
    Backoff,
    Operation,
    Repeat,
    failure_of_answer,
    failure_of_error,
    operation_of,
    settles,
)

__all__ = ('FirecrestClient', 'ssl_context')

LOGGER = AIIDA_LOGGER.getChild('transport.FirecrestTransport.client')

TRANSFER_JOBS_LOGGER = LOGGER.getChild('transfer_jobs')
"""Says at DEBUG where each transfer job started writes its logs, which FirecREST leaves on the cluster: the record's
``transfer_logs`` attribute holds their two paths (the demo removes them with what else it created)."""


DEFAULT_RATE_LIMIT_RETRIES = 3
"""How often a 429 is retried (honouring ``Retry-After``) before the error reaches the caller."""

PYFIRECREST_DIRECT_LIMIT = AsyncFirecrest.MAX_DIRECT_UPLOAD_SIZE
"""pyfirecrest's hard-coded direct-transfer limit (1 MiB): files below it are sent directly without asking the server
for its limit (no FirecREST deployment has a lower one; a 413 would reveal it anyway)."""

_budget_slot: contextvars.ContextVar[str | None] = contextvars.ContextVar('firecrest_budget_slot', default=None)
"""The request budget's slot of the API request the task is sending: set by the request hook, settled (and unset) by
the response hook, or when the request ends without an answer."""


def _take_budget_slot() -> str | None:
    slot = _budget_slot.get()
    _budget_slot.set(None)
    return slot


_ssl_context: ssl.SSLContext | None = None
_ssl_lock = threading.Lock()


async def ssl_context() -> ssl.SSLContext:
    """Return the process-wide TLS context of the plugin's HTTP clients, created once in a worker thread.

    Creating one loads the CA bundle from disk, which would block the event loop (httpx does it in every client's
    constructor unless given a context).
    """
    global _ssl_context  # noqa: PLW0603
    if _ssl_context is None:
        context = await asyncio.to_thread(httpx.create_ssl_context)
        with _ssl_lock:
            if _ssl_context is None:
                _ssl_context = context
    return _ssl_context


class FirecrestClient(PyfirecrestInternals):
    """pyfirecrest's :class:`~firecrest.v2.AsyncFirecrest` with timeouts, pacing, bounded retries and a one-request
    download (see the module docstring).

    Creating one makes no request and does no blocking I/O when ``verify`` is an :class:`ssl.SSLContext`.

    :param url: the FirecREST URL.
    :param authorization: an object with an ``auth_headers()`` coroutine and, optionally, ``invalidate(token)``.
    :param budget: the request budget shared by all clients of this identity.
    :param timeout: the HTTP timeout of every request, in seconds.
    :param verify: the TLS context (or False to skip verification).
    :param rate_limit_retries: how often a 429 is retried.
    :param http_transport: the httpx transport (tests pass an :class:`httpx.MockTransport`).
    :param backoff: how often and after what delays a failed request is repeated (default :data:`DEFAULT_BACKOFF`).
    :param rng: the random draws of the delays (tests pass a seeded one).
    :ivar retries: the number of repeats after a failure (not counting 429s and 401s) so far.
    """

    def __init__(
        self,
        url: str,
        authorization: Any,
        *,
        budget: RequestBudget,
        timeout: float,
        verify: ssl.SSLContext | bool,
        rate_limit_retries: int = DEFAULT_RATE_LIMIT_RETRIES,
        http_transport: httpx.AsyncBaseTransport | None = None,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._budget = budget
        self.backoff = backoff or DEFAULT_BACKOFF
        self._rng = rng or random.Random()
        self.retries = 0
        self._http_transport = http_transport
        self._http_timeout = httpx.Timeout(timeout)
        super().__init__(url, authorization=authorization, verify=verify)
        self.timeout = timeout
        self.num_retries_rate_limit = rate_limit_retries
        # pyfirecrest's constructor made a session without timeouts or hooks: it is never used, and closed with ours
        self._unused_session, self.http_session = self.http_session, self._new_session()

    def _new_session(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            verify=self.tls_verify,
            timeout=self._http_timeout,
            transport=self._http_transport,
            event_hooks={'request': [self._before_request], 'response': [self._after_response]},
        )

    async def close_session(self) -> None:
        """Close the HTTP session, and the unused one that pyfirecrest's constructor made."""
        await self._unused_session.aclose()
        await super().close_session()

    async def create_new_session(self) -> None:
        """Replace the httpx session by a new one with the same timeouts and hooks."""
        if not self.http_session.is_closed:
            await self.http_session.aclose()
        self.http_session = self._new_session()

    def is_api_url(self, url: httpx.URL | str) -> bool:
        """Whether ``url`` is an API URL of this server (not, e.g., an S3 presigned URL of a staged transfer)."""
        return str(url).startswith(f'{self.api_url}/')

    async def _before_request(self, request: httpx.Request) -> None:
        """The request hook: give unset timeouts a value; for API requests, wait for the budget, then set the token.

        pyfirecrest puts the token in the headers when it builds the request, before the budget's wait: with many
        CalcJobs sharing the budget the wait can outlast a short-lived token (CSCS's last 5 minutes), which then
        reaches the server expired or about to ("Access token expires too soon"), at every repeat too. So the token
        is taken again once the request may leave.
        """
        timeout = request.extensions.get('timeout')
        if not timeout or all(value is None for value in timeout.values()):
            # pyfirecrest passes ``timeout=None`` for S3 part uploads: never wait forever
            request.extensions['timeout'] = self._http_timeout.as_dict()
        if self.is_api_url(request.url):
            _budget_slot.set(await self._budget.acquire())
            request.headers.update(await self.authorization.auth_headers())

    async def _after_response(self, response: httpx.Response) -> None:
        """The response hook: an API request was answered (the budget learns that it reached the server); after a
        429, hold back all requests of this identity for ``Retry-After``."""
        if not self.is_api_url(response.request.url):
            return
        slot = _take_budget_slot()
        if slot is not None:
            await asyncio.to_thread(self._budget.settle, slot, answered=True)
        if response.status_code == self.TOO_MANY_REQUESTS_CODE:
            retry_after = response.headers.get('Retry-After', response.headers.get('RateLimit-Reset', '1'))
            self._budget.pause(parse_retry_after(retry_after, self.log))

    async def send_request(self, request: ApiRequest, send: Send) -> httpx.Response:
        """Send with pyfirecrest's ``send`` (which retries 429), repeating as :mod:`.retry_policy` allows.

        One 401 is repeated with a fresh token; a failure is repeated if the request's operation may be after it, at
        most ``self.backoff.attempts`` times; the error answer of a repeat that shows an earlier try did the work
        becomes the success answer (see :func:`~aiida_firecrest.client.retry_policy.settles`).
        """
        operation = operation_of(request.method, request.endpoint, request.json_data)
        repeats = 0
        refreshed = False
        while True:
            try:
                response = await send()
            except BaseException as exc:
                if (slot := _take_budget_slot()) is not None:  # ended without an answer
                    self._budget.settle(slot, answered=False)
                if not isinstance(exc, httpx.TransportError):
                    raise
                failure = failure_of_error(exc)
                if failure is None or not operation.may_repeat(failure) or repeats >= self.backoff.attempts:
                    raise
                repeats += 1
                await self._wait_before_repeat(operation, repeats, type(exc).__name__, None)
                continue
            if response.status_code == 401 and not refreshed and hasattr(self.authorization, 'invalidate'):
                refreshed = True
                used = response.request.headers.get('Authorization', '').removeprefix('Bearer ')
                self.authorization.invalidate(used)
                continue
            if response.is_success:
                _note_transfer_job(request, response)
                return response
            message = message_of_response(response)
            if repeats and settles(operation, message) and await self._settled(operation, request):
                LOGGER.debug('%s: an earlier try did it (%s)', operation.name, message)
                return _success_answer(operation, response.request)
            failure = failure_of_answer(operation, response.status_code, message)
            if failure is None or not operation.may_repeat(failure) or repeats >= self.backoff.attempts:
                return response
            repeats += 1
            await self._wait_before_repeat(operation, repeats, f'HTTP {response.status_code}', response)

    async def _wait_before_repeat(
        self, operation: Operation, repeat: int, reason: str, response: httpx.Response | None
    ) -> None:
        retry_after = None
        if response is not None and 'Retry-After' in response.headers:
            retry_after = parse_retry_after(response.headers['Retry-After'], self.log)
        delay = self.backoff.delay(repeat, self._rng, retry_after)
        self.retries += 1
        LOGGER.debug('repeating %s after %s in %.2f s (repeat %d)', operation.name, reason, delay, repeat)
        await asyncio.sleep(delay)

    async def _settled(self, operation: Operation, request: ApiRequest) -> bool:
        """Whether an operation whose repeat says "done" is done: for a link, that it points at its target."""
        if operation.repeat is not Repeat.LINK_IS_DONE:
            return True
        body = request.json_data or {}
        system = request.endpoint.split('/')[2]
        link = str(body.get('linkPath', ''))
        entries = await self.list_files(system, posixpath.dirname(link), show_hidden=True)
        name = posixpath.basename(link)
        return any(e.get('name') == name and e.get('linkTarget') == body.get('sourcePath') for e in entries)

    async def download_direct(self, system_name: str, path: str) -> bytes:
        """Return the contents of a file below the direct-transfer limit, in one request (no ``stat`` first).

        :param system_name: the system.
        :param path: the absolute path of the file.
        :raises firecrest.FirecrestException: on any answer but 200 (413 above the direct limit, 400 for a
            directory, 404 for a missing path); the caller translates it.
        :calls: GET ``/filesystem/{system_name}/ops/download``
        """
        response = await self.api_get(f'/filesystem/{system_name}/ops/download', params={'path': path})
        self.check_answer(response, 200, return_json=False)
        return response.content

    async def ops_only(self, operation: str, system_name: str, **fields: Any) -> None:
        """Run ``rm``, ``compress`` or ``extract`` as a command only, never as a transfer job.

        pyfirecrest's methods submit a transfer job when the command outlasts the server's command timeout; the job's
        script HTML-escapes the paths (``&`` arrives as ``&amp;``), so for a path holding such a character the job would
        act on another file. Here a timeout stays an error.

        :param operation: ``rm`` (``fields``: ``path``), ``compress`` (``source_path``, ``target_path``,
            ``dereference``, ``compression``, ``match_pattern``) or ``extract`` (``source_path``, ``target_path``,
            ``compression``).
        :raises firecrest.FirecrestException: on any answer but 204 (408 after the command timeout); the caller
            translates it.
        :calls: DELETE ``/filesystem/{system_name}/ops/rm``, POST ``.../ops/compress`` or POST ``.../ops/extract``
        """
        endpoint = f'/filesystem/{system_name}/ops/{operation}'
        if operation == 'rm':
            response = await self.api_delete(endpoint, params=fields)
        else:
            response = await self.api_post(endpoint, json_data=fields)
        self.check_answer(response, 204, return_json=False)

    async def start_staged_download(
        self, system_name: str, path: str, target: str, *, account: str | None
    ) -> AsyncExternalDownload:
        """Start downloading a file through the staging area (a transfer job copies it to S3), whatever its size.

        The caller waits for the transfer job (:meth:`wait_for_transfer`), fetches the object
        (``download_file_from_stage``) and, if it gives up, cancels the job.

        pyfirecrest's ``download`` first ``stat`` s the file and tries the direct path below its
        ``MAX_DIRECT_UPLOAD_SIZE``, which the server refuses from about 3/4 of its limit on (it checks the size of the
        base64 text); the transport has already chosen the staged path.

        :param system_name: the system.
        :param path: the absolute path of the file.
        :param target: the local file to write.
        :param account: the account billed for the transfer job.
        :raises firecrest.FirecrestException: if the server refuses; the caller translates it.
        :calls: POST ``/filesystem/{system_name}/transfer/download``
        """
        data: dict[str, Any] = {'source_path': path, 'transfer_directives': {'transferMethod': 's3'}}
        if account is not None:
            data['account'] = account
        response = await self.api_post(f'/filesystem/{system_name}/transfer/download', json_data=data)
        return AsyncExternalDownload(client=self, transfer_info=self.check_answer(response, 201), file_path=target)

    async def wait_for_job(self, system_name: str, job_id: str, timeout: float | None = None, **kwargs: Any) -> Any:
        """Wait for a job (a transfer job, for pyfirecrest) to end, polling as :mod:`.transfer_wait` says."""
        return await transfer_wait.wait_for_job(self, system_name, job_id, timeout, **kwargs)

    async def wait_for_transfer(self, job_info: dict[str, Any], path: str | None = None) -> None:
        """Wait for a transfer job (of ``cp``, ``mv``...) to end; if it failed, raise what its error log says.

        pyfirecrest only reports that a transfer job failed; the error log of the job holds the command's message
        (``cp: cannot create regular file '...': No such file or directory``), which
        :func:`~aiida_firecrest.client.exceptions.error_from_answer` turns into the matching exception.

        :param job_info: the answer of the request that started the job.
        :param path: the path the job is about, for the exception.
        :raises FirecrestError: the translated failure of the job.
        """
        from firecrest.FirecrestException import TransferJobFailedException

        try:
            await self.wait_for_transfer_job(job_info)
        except TransferJobFailedException as exc:
            log = await self.job_error_log(job_info)
            message = f'the transfer job failed: {log or "no error log"}'
            raise error_from_answer(400, message, path, otherwise=TransferFailedError) from exc

    async def job_error_log(self, job_info: dict[str, Any]) -> str:
        """Return the end of the error log of the transfer job ``job_info`` started, '' if it cannot be read."""
        try:
            job = job_info['transferJob']
            return str(await self.view(job['system'], job['logs']['errorLog'])).strip()[-2000:]
        except Exception:  # the log is a courtesy: its absence must not hide the failure
            return ''


def _note_transfer_job(request: ApiRequest, response: httpx.Response) -> None:
    """Log the log files of the transfer job a successful answer started, if :data:`TRANSFER_JOBS_LOGGER` listens."""
    if '/transfer/' not in request.endpoint or not TRANSFER_JOBS_LOGGER.isEnabledFor(logging.DEBUG):
        return
    try:
        job = response.json()['transferJob']
        paths = (str(job['logs']['outputLog']), str(job['logs']['errorLog']))
    except (ValueError, KeyError, TypeError):  # not a transfer job's answer: nothing to note
        return
    TRANSFER_JOBS_LOGGER.debug(
        'transfer job %s writes its logs to %s and %s', job.get('jobId'), *paths, extra={'transfer_logs': paths}
    )


def _success_answer(operation: Operation, request: httpx.Request) -> httpx.Response:
    """The answer the server gives when ``operation`` succeeds (204 for ``rm``, 201 for ``mkdir`` and ``symlink``)."""
    if operation.repeat is Repeat.MISSING_IS_DONE:
        return httpx.Response(204, request=request)
    return httpx.Response(201, json={'output': ''}, request=request)
