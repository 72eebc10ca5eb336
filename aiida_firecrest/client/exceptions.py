"""The exceptions of aiida-firecrest and the one place where FirecREST answers become them.

Every exception the package raises derives from :class:`FirecrestError`, itself an :class:`OSError` because AiiDA's
engine treats ``OSError`` as a transport failure (retried with back-off, then the process is paused). The classes that
stand for a file-system condition also derive from the matching built-in, so callers catch them as AiiDA's
``core.local`` transport would raise them::

    OSError
    └── FirecrestError                                  root of the package
        ├── PathNotFoundError  (FileNotFoundError)     ENOENT (a 404 is one only if its message says so)
        ├── PathExistsError    (FileExistsError)       EEXIST
        ├── PathIsADirectoryError  (IsADirectoryError)     EISDIR
        ├── PathNotADirectoryError (NotADirectoryError)    ENOTDIR
        ├── AccessDeniedError    (PermissionError)       EACCES, EPERM, HTTP 403
        ├── FirecrestTimeoutError       (TimeoutError)          HTTP 408, 504, HTTP client timeouts
        ├── FirecrestConnectionError (ConnectionError)       the server cannot be reached
        ├── FirecrestAuthenticationError (PermissionError)   HTTP 401, refused client credentials
        ├── FirecrestConfigurationError (ValueError)         invalid or unsafe transport options
        ├── FirecrestNotSupportedError (NotImplementedError) what the FirecREST API cannot do
        ├── RateLimitedError                                 HTTP 429 after the bounded retries
        ├── DirectTransferTooLargeError                      HTTP 413: internal, take the staged path
        ├── TransferFailedError                              a staged transfer or transfer job failed
        │   └── ChecksumMismatchError                        the SHA-256 sums differ after a transfer
        ├── UnsafeArchiveError                               an archive member is refused (outside, bad link)
        ├── BrokenArchiveError                               an archive cannot be read (truncated, corrupt)
        └── FirecrestApiError                                any other answer (``errno`` from the message if any)

The server's error messages carry the remote command's ``strerror`` text (``No such file or directory``, ``File
exists``...): :data:`ERRNO_OF_STRERROR` is the single table from that text to its errno, :func:`error_from_answer` the
single function from a status and a message to an exception, and :func:`translate_errors` the single context manager
that turns what pyfirecrest and httpx raise into this tree (always chained with ``from``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Iterator
from typing import Any

import httpx

__all__ = (
    'DIRECT_TRANSFER_REFUSALS',
    'AccessDeniedError',
    'BrokenArchiveError',
    'ChecksumMismatchError',
    'DirectTransferTooLargeError',
    'FirecrestApiError',
    'FirecrestAuthenticationError',
    'FirecrestConfigurationError',
    'FirecrestConnectionError',
    'FirecrestError',
    'FirecrestNotSupportedError',
    'FirecrestTimeoutError',
    'InvalidArgumentError',
    'PathExistsError',
    'PathIsADirectoryError',
    'PathNotADirectoryError',
    'PathNotFoundError',
    'RateLimitedError',
    'TransferFailedError',
    'UnsafeArchiveError',
    'UnsupportedPathError',
    'errno_in_message',
    'error_from_answer',
    'error_from_response',
    'message_of_response',
    'translate_errors',
)


class FirecrestError(OSError):
    """The root of every exception of aiida-firecrest.

    :ivar status: the HTTP status of the answer that caused it, if any.
    """

    status: int | None = None


class PathNotFoundError(FirecrestError, FileNotFoundError):
    """A path does not exist."""


class PathExistsError(FirecrestError, FileExistsError):
    """A path exists already."""


class PathIsADirectoryError(FirecrestError, IsADirectoryError):
    """A path is a directory where a file was expected."""


class PathNotADirectoryError(FirecrestError, NotADirectoryError):
    """A path is not a directory where one was expected."""


class AccessDeniedError(FirecrestError, PermissionError):
    """The user may not do this."""


class FirecrestTimeoutError(FirecrestError, TimeoutError):
    """The server or the remote command took too long."""


class FirecrestConnectionError(FirecrestError, ConnectionError):
    """The FirecREST server (or the token endpoint) cannot be reached."""


class FirecrestAuthenticationError(FirecrestError, PermissionError):
    """The identity provider refused the client credentials, or FirecREST refused the access token."""


class FirecrestConfigurationError(FirecrestError, ValueError):
    """An option of the transport is invalid or unsafe (e.g. a client-secret file readable by others)."""


class InvalidArgumentError(FirecrestError, ValueError):
    """An argument is invalid: a relative path, a pattern where none is allowed, an unknown archive format."""


class FirecrestNotSupportedError(FirecrestError, NotImplementedError):
    """The FirecREST API has no counterpart for the requested operation."""


class RateLimitedError(FirecrestError):
    """The server still answered 429 (too many requests) after the bounded retries."""


class DirectTransferTooLargeError(FirecrestError):
    """The server refused a direct upload or download as too large (413): the caller takes the staged path."""


class TransferFailedError(FirecrestError):
    """A staged transfer (through S3) or a transfer job did not complete."""


class ChecksumMismatchError(TransferFailedError):
    """The SHA-256 checksum of a transferred file differs between the two ends."""


class UnsafeArchiveError(FirecrestError):
    """An archive member is refused, its message naming it: an absolute path, a ``..`` component, a link leading
    outside the target, a hard link to no file extracted before it, or a special file.

    An :class:`OSError` alone, as ``core.local`` fails on such an archive (its ``tar`` exits with an error).
    """


class BrokenArchiveError(FirecrestError):
    """An archive that cannot be read to its end (truncated, corrupt, or no archive at all): an :class:`OSError`, as
    ``core.local``'s ``tar`` fails on it, not tarfile's own errors (which the engine would take for a bug)."""


class UnsupportedPathError(FirecrestError):
    """A path that FirecREST's commands cannot carry (e.g. a directory whose name holds a ``'``, which ends the quotes
    the server puts around paths): the transfer is refused before anything is sent."""


class FirecrestApiError(FirecrestError):
    """Any other error answer of the FirecREST API."""


DIRECT_TRANSFER_REFUSALS: tuple[type[FirecrestError], ...] = (
    DirectTransferTooLargeError,
    FirecrestTimeoutError,
    FirecrestApiError,
)
"""How the server refuses a direct download that the staged path may still carry: 413 when the base64 text of the
file exceeds its limit, and, for a file above the limit, a 500 (``Channel not open for sending``) or a 408 after the
command timeout."""

ERRNO_OF_STRERROR: dict[str, int] = {
    os.strerror(code): code
    for code in (
        errno.ENOENT,
        errno.EEXIST,
        errno.EISDIR,
        errno.ENOTDIR,
        errno.EACCES,
        errno.EPERM,
        errno.ENOTEMPTY,
        errno.ELOOP,
        errno.ENAMETOOLONG,
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EROFS,
        errno.EXDEV,
        errno.EINVAL,
    )
}
"""The coreutils ``strerror`` texts that FirecREST messages carry, and their errno: the only message matching."""

_CLASS_OF_ERRNO: dict[int, type[FirecrestError]] = {
    errno.ENOENT: PathNotFoundError,
    errno.EEXIST: PathExistsError,
    errno.EISDIR: PathIsADirectoryError,
    errno.ENOTDIR: PathNotADirectoryError,
    errno.EACCES: AccessDeniedError,
    errno.EPERM: AccessDeniedError,
}
"""The exception of an errno found in a message; errnos not listed give :class:`FirecrestApiError`."""

_CLASS_OF_STATUS: dict[int, type[FirecrestError]] = {
    401: FirecrestAuthenticationError,
    403: AccessDeniedError,
    408: FirecrestTimeoutError,
    413: DirectTransferTooLargeError,
    429: RateLimitedError,
    504: FirecrestTimeoutError,
}
"""The exception of a status, for answers whose message names no errno (and always for 401, 413 and 429). A 404 is
not here: it is "no such file" only when the server's message says so (``No such file or directory``); a bare 404 (an
unknown system or job, a wrong route, a proxy's page) is a :class:`FirecrestApiError` with its status."""

_STATUS_BEFORE_ERRNO = frozenset({401, 413, 429})
"""Statuses whose meaning does not depend on the message."""

_ERRNO_OF_STATUS: dict[int, int] = {403: errno.EACCES, 408: errno.ETIMEDOUT, 504: errno.ETIMEDOUT}


def errno_in_message(message: str) -> int | None:
    """Return the errno whose ``strerror`` text ``message`` names (see :data:`ERRNO_OF_STRERROR`), or None."""
    for text, code in ERRNO_OF_STRERROR.items():
        if text in message:
            return code
    return None


def error_from_answer(
    status: int, message: str, path: str | None = None, *, otherwise: type[FirecrestError] = FirecrestApiError
) -> FirecrestError:
    """Return the exception for an error answer of FirecREST.

    An errno named in ``message`` decides the class (``File exists`` gives :class:`PathExistsError`, whatever the
    status: FirecREST answers 500 for the command errors it does not recognise, such as ``Not a directory``, ``Is a
    directory`` or ``Directory not empty``), except for 401, 413 and 429; otherwise the status decides, and anything
    else is ``otherwise`` (a :class:`FirecrestApiError`). A missing path reads ``<path> does not exist``, as in
    ``core.local``.

    :param status: the HTTP status of the answer.
    :param message: the ``message`` of the answer's envelope (or its text).
    :param path: the remote path the request was about, for the exception's ``filename``.
    :param otherwise: the class when neither the errno nor the status decides.
    """
    code = None if status in _STATUS_BEFORE_ERRNO else errno_in_message(message)
    if code is not None:
        cls = _CLASS_OF_ERRNO.get(code, otherwise)
    else:
        cls = _CLASS_OF_STATUS.get(status, otherwise)
        code = _ERRNO_OF_STATUS.get(status)
    text = f'{message} (HTTP {status})'
    if cls is PathNotFoundError and path is not None:
        text = f'{path} does not exist: {text}'
    if code is None:
        exc = cls(text)
    elif path is None:
        exc = cls(code, text)
    else:
        exc = cls(code, text, path)
    exc.status = status
    return exc


def message_of_response(response: httpx.Response) -> str:
    """Return the message of an error answer: its envelope's ``message``, else its text (at most 500 characters)."""
    try:
        body: Any = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        return response.text.strip()[:500] or response.reason_phrase
    if isinstance(body, dict) and body.get('message'):
        return str(body['message'])
    return str(body)[:500]


def error_from_response(response: httpx.Response, path: str | None = None) -> FirecrestError:
    """Return the exception for an HTTP error answer of FirecREST (see :func:`error_from_answer`)."""
    return error_from_answer(response.status_code, message_of_response(response), path)


def _error_from_http(exc: httpx.HTTPError) -> FirecrestError:
    if isinstance(exc, httpx.TimeoutException):
        return FirecrestTimeoutError(errno.ETIMEDOUT, f'FirecREST did not answer in time: {type(exc).__name__}')
    if isinstance(exc, httpx.HTTPStatusError):
        return error_from_response(exc.response)
    return FirecrestConnectionError(f'cannot reach FirecREST ({type(exc).__name__}: {exc})')


@contextlib.contextmanager
def translate_errors(path: str | None = None) -> Iterator[None]:
    """Turn what pyfirecrest and httpx raise inside the block into the exceptions of this module.

    Exceptions of this module pass unchanged. pyfirecrest's errors with a response go through
    :func:`error_from_response`; its transfer-job and multipart errors become :class:`TransferFailedError`.

    :param path: the remote path the block is about, for the exceptions' ``filename``.
    """
    from firecrest.FirecrestException import (
        FirecrestException,
        JobTimeoutException,
        MultipartUploadException,
        TransferJobFailedException,
        TransferJobTimeoutException,
    )

    try:
        yield
    except FirecrestError:
        raise
    except FirecrestException as exc:
        if exc.responses:
            raise error_from_response(exc.responses[-1], path) from exc
        raise FirecrestApiError(str(exc)) from exc
    except (TransferJobTimeoutException, JobTimeoutException) as exc:
        raise FirecrestTimeoutError(errno.ETIMEDOUT, f'the transfer job of {path} timed out') from exc
    except (TransferJobFailedException, MultipartUploadException) as exc:
        # The details (job, presigned URLs) stay in the chained exception, not in the message.
        raise TransferFailedError(f'the staged transfer or transfer job of {path} failed') from exc
    except httpx.HTTPError as exc:
        raise _error_from_http(exc) from exc
