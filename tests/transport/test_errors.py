"""The one mapping from FirecREST answers to exceptions, and the exception tree of the package."""

from __future__ import annotations

import errno
import inspect
import os
import stat
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from firecrest.FirecrestException import (
    MultipartUploadException,
    TransferJobFailedException,
    TransferJobTimeoutException,
    UnexpectedStatusException,
)

from aiida_firecrest.client import exceptions as errors
from aiida_firecrest.client.exceptions import (
    AccessDeniedError,
    DirectTransferTooLargeError,
    FirecrestApiError,
    FirecrestAuthenticationError,
    FirecrestConnectionError,
    FirecrestError,
    FirecrestTimeoutError,
    PathExistsError,
    PathIsADirectoryError,
    PathNotADirectoryError,
    PathNotFoundError,
    RateLimitedError,
    TransferFailedError,
    error_from_answer,
    error_from_response,
    translate_errors,
)
from aiida_firecrest.transport.listed_paths import realpath

REMOTE_FAILURE = 'Remote process failed with exit status:1 and error message:{}'


def test_every_exception_of_the_package_derives_from_the_root() -> None:
    classes = [value for value in vars(errors).values() if inspect.isclass(value) and issubclass(value, BaseException)]
    ours = [cls for cls in classes if cls.__module__ == errors.__name__]
    assert len(ours) >= 15
    assert all(issubclass(cls, FirecrestError) for cls in ours)
    assert issubclass(FirecrestError, OSError)


def test_all_lists_every_public_name() -> None:
    public = {
        name
        for name, value in vars(errors).items()
        if not name.startswith('_') and getattr(value, '__module__', None) == errors.__name__
    }
    assert public <= set(errors.__all__)


@pytest.mark.parametrize(
    ('code', 'cls', 'builtin'),
    [
        (errno.ENOENT, PathNotFoundError, FileNotFoundError),
        (errno.EEXIST, PathExistsError, FileExistsError),
        (errno.EISDIR, PathIsADirectoryError, IsADirectoryError),
        (errno.ENOTDIR, PathNotADirectoryError, NotADirectoryError),
        (errno.EACCES, AccessDeniedError, PermissionError),
        (errno.EPERM, AccessDeniedError, PermissionError),
    ],
)
def test_strerror_in_the_message_decides(code: int, cls: type, builtin: type) -> None:
    """The coreutils message of the remote command gives the errno, whatever the status (mkdir: 400 'File exists')."""
    message = REMOTE_FAILURE.format(f"mkdir: cannot create directory '/x': {os.strerror(code)}")
    for status in (400, 403, 404, 500):
        exc = error_from_answer(status, message, '/x')
        assert type(exc) is cls
        assert isinstance(exc, builtin)
        assert exc.errno == code
        assert exc.filename == '/x'
        assert exc.status == status
        assert os.strerror(code) in str(exc)


def test_directory_not_empty_keeps_its_errno() -> None:
    exc = error_from_answer(400, REMOTE_FAILURE.format("rmdir: failed to remove '/d': Directory not empty"), '/d')
    assert type(exc) is FirecrestApiError
    assert exc.errno == errno.ENOTEMPTY


@pytest.mark.parametrize(
    ('status', 'cls', 'builtin'),
    [
        (401, FirecrestAuthenticationError, PermissionError),
        (403, AccessDeniedError, PermissionError),
        (408, FirecrestTimeoutError, TimeoutError),
        (413, DirectTransferTooLargeError, OSError),
        (429, RateLimitedError, OSError),
        (504, FirecrestTimeoutError, TimeoutError),
    ],
)
def test_status_decides_without_errno(status: int, cls: type, builtin: type) -> None:
    exc = error_from_answer(status, 'Something happened.')
    assert type(exc) is cls
    assert isinstance(exc, builtin)
    assert exc.status == status


@pytest.mark.parametrize('status', [401, 413, 429])
def test_some_statuses_ignore_the_message(status: int) -> None:
    """A 413 stays the internal 'too large' signal even if the message happens to name a file error."""
    exc = error_from_answer(status, 'No such file or directory')
    assert type(exc) is error_from_answer(status, '').__class__


@pytest.mark.parametrize('status', range(400, 600))
def test_no_status_is_unmapped(status: int) -> None:
    """Every error status becomes an exception of the tree, an OSError (what AiiDA's engine handles)."""
    exc = error_from_answer(status, 'message')
    assert isinstance(exc, FirecrestError)
    assert isinstance(exc, OSError)


def _response(status: int, body: object = None, text: str | None = None) -> httpx.Response:
    request = httpx.Request('GET', 'http://firecrest.test/filesystem/cluster/ops/ls')
    if text is not None:
        return httpx.Response(status, text=text, request=request)
    return httpx.Response(status, json=body, request=request)


def test_error_from_response_reads_the_envelope() -> None:
    body = {'errorType': 'error', 'message': REMOTE_FAILURE.format('ls: No such file or directory'), 'user': 'me'}
    exc = error_from_response(_response(404, body), '/p')
    assert isinstance(exc, PathNotFoundError)
    assert 'ls: No such file or directory' in str(exc)


@pytest.mark.parametrize(
    'answer',
    [
        _response(404, {'errorType': 'error', 'message': 'System not found'}),
        _response(404, {'message': 'Job not found.'}),
        _response(404, {'detail': 'Not Found'}),
        _response(404, text='<html><body>404 Not Found</body></html>'),
    ],
    ids=['unknown system', 'unknown job', 'wrong route', 'proxy page'],
)
def test_bare_404_is_not_a_missing_file(answer: httpx.Response) -> None:
    """Only the server's own "No such file or directory" makes a 404 a missing file (that the engine may ignore)."""
    exc = error_from_response(answer, '/p')
    assert type(exc) is FirecrestApiError
    assert not isinstance(exc, FileNotFoundError)
    assert exc.status == 404


def test_error_from_response_without_json() -> None:
    exc = error_from_response(_response(502, text='<html>Bad gateway</html>'))
    assert isinstance(exc, FirecrestApiError)
    assert 'Bad gateway' in str(exc)


def test_translate_pyfirecrest_status_errors() -> None:
    body = {'message': 'File to upload is too large.'}
    with pytest.raises(DirectTransferTooLargeError) as info, translate_errors('/big'):
        raise UnexpectedStatusException([_response(413, body)], 204)
    assert isinstance(info.value.__cause__, UnexpectedStatusException)


def test_translate_transfer_job_errors_hides_the_transfer_info() -> None:
    info = {'transferJob': {'jobId': 7}, 'partsUploadUrls': ['https://s3.test/x?X-Amz-Signature=secret']}
    with pytest.raises(TransferFailedError) as failed, translate_errors('/f'):
        raise MultipartUploadException(info, 'part failed')
    assert 'X-Amz-Signature' not in str(failed.value)
    with pytest.raises(TransferFailedError), translate_errors('/f'):
        raise TransferJobFailedException(info)
    with pytest.raises(FirecrestTimeoutError), translate_errors('/f'):
        raise TransferJobTimeoutException(info)


@pytest.mark.parametrize(
    ('exc', 'cls'),
    [
        (httpx.ConnectError('refused'), FirecrestConnectionError),
        (httpx.RemoteProtocolError('dropped'), FirecrestConnectionError),
        (httpx.ReadTimeout('slow'), FirecrestTimeoutError),
    ],
)
def test_translate_httpx_errors(exc: Exception, cls: type) -> None:
    with pytest.raises(cls) as info, translate_errors():
        raise exc
    assert info.value.__cause__ is exc


def test_translate_passes_our_own_and_foreign_errors() -> None:
    with pytest.raises(PathExistsError), translate_errors():
        raise PathExistsError(errno.EEXIST, 'File exists', '/x')
    with pytest.raises(KeyError), translate_errors():
        raise KeyError('not ours to translate')


# --- canonical paths: an answer that tells nothing of the path is not turned into a guess --------------------------

OUTSIDE = error_from_answer(400, 'The provided path (/scratch) does not match any of the defined filesystem paths')


class StatAnswers:
    """The ``stat`` of a backend from a table: a path's mode, or the error its request ends with (directories
    elsewhere)."""

    def __init__(self, answers: dict[str, int | FirecrestError]) -> None:
        self.answers = answers

    async def stat(self, path: str, dereference: bool = False) -> dict[str, int]:
        answer = self.answers.get(path, stat.S_IFDIR)
        if isinstance(answer, FirecrestError):
            raise answer
        return {'mode': answer}


@pytest.mark.parametrize(
    'refusal',
    [OUTSIDE, error_from_answer(403, 'Permission denied')],
    ids=['outside the file systems', 'permission denied'],
)
async def test_realpath_keeps_a_component_it_may_not_look_at(refusal: FirecrestError) -> None:
    backend = StatAnswers({'/scratch': refusal, '/scratch/user/file': stat.S_IFREG})
    assert await realpath(cast(Any, backend), '/scratch/user/./file') == '/scratch/user/file'


@pytest.mark.parametrize(
    'failure',
    [
        error_from_answer(404, 'System not found'),
        error_from_answer(500, 'Internal Server Error'),
        error_from_answer(503, 'Service Unavailable'),
        FirecrestConnectionError('cannot reach FirecREST'),
    ],
    ids=['bare 404', '500', '503', 'unreachable'],
)
async def test_realpath_raises_what_tells_nothing_of_the_path(failure: FirecrestError) -> None:
    """A bare 404, a server error or a lost connection is no answer about the path: raised, not taken as a directory."""
    backend = StatAnswers({'/scratch/user': failure})
    with pytest.raises(type(failure)) as info:
        await realpath(cast(Any, backend), '/scratch/user/file')
    assert info.value is failure


# --- a bare 404 end to end ---------------------------------------------------------------------------------------


@pytest.mark.local_server(reason="the local server's answer to an unknown system")
async def test_retrieve_ignoring_missing_files_fails_for_an_unknown_system(
    firecrest_transport: Any, transport_scratch: Any, tmp_path: Path
) -> None:
    """The engine's retrieve skips missing files: a 404 that is not the server saying "no such file" (an unknown
    system, here) is raised, not taken for a missing file that leaves the CalcJob with nothing retrieved."""
    remote = transport_scratch('firecrest')
    transport = firecrest_transport(compute_resource='no-such-cluster')
    with pytest.raises(FirecrestApiError) as info:
        async with transport:
            await transport.get_async(f'{remote}/aiida.out', tmp_path / 'aiida.out', ignore_nonexisting=True)
    assert not isinstance(info.value, FileNotFoundError)
    assert info.value.status == 404
    assert not (tmp_path / 'aiida.out').exists()
