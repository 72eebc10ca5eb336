"""Errors of the local server and the one place where they become HTTP answers.

Services raise :class:`ApiError`; :func:`register_exception_handlers` turns it, and FastAPI's own errors, into
the real server's error envelope::

    {"errorType": "error", "message": "...", "causedBy": null, "data": null, "user": "fireuser"}
"""

from __future__ import annotations

import errno
import os

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

_STATUS_OF_ERRNO = {
    errno.ENOENT: 404,
    errno.EACCES: 403,
    errno.EPERM: 403,
}
"""The status of an operation that failed with an errno, as the real server answers a failed remote command: missing
paths are 404, permission problems 403 and everything else (``File exists``, ``Is a directory``...) 400."""


class ApiError(Exception):
    """An answer other than success, with its status and the message of the envelope."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers

    @classmethod
    def from_command(cls, exit_status: int, stderr: str) -> ApiError:
        """Return the error of a remote command that failed, worded as the real server words it."""
        message = f'Remote process failed with exit status:{exit_status} and error message:{stderr.strip()}'
        for code, status in _STATUS_OF_ERRNO.items():
            if os.strerror(code) in stderr:
                return cls(status, message)
        return cls(400, message)


def envelope(message: str, user: str | None) -> dict[str, object]:
    """Return the body of an error answer."""
    return {'errorType': 'error', 'message': message, 'causedBy': None, 'data': None, 'user': user}


def _user_of(request: Request) -> str | None:
    return getattr(request.state, 'user', None)


def register_exception_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` with the real server's envelope."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(envelope(exc.message, _user_of(request)), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            envelope(str(exc.detail), _user_of(request)), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            {
                'errorType': 'validation',
                'message': 'Request validation error.',
                'data': None,
                'user': _user_of(request),
                'causedBy': None,
            },
            status_code=422,
        )
