"""Errors of the local server and the one place where they become HTTP answers, worded as the real server words them.

Services raise :class:`ApiError`, mostly through the constructors here, which follow the real server's mapping of a
failed command (``base_command_error_handling.py``, ``base_command_with_timeout.py``), of its SSH client's limits
(``ssh_client.py``) and of everything else (``api_response_model.py``). :func:`register_exception_handlers` turns them,
and FastAPI's own errors, into the real server's error envelope::

    {"errorType": "error", "message": "...", "causedBy": null, "data": null, "user": "fireuser"}
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

TIMEOUT_EXIT_STATUS = 124
"""The exit status of a command stopped by ``timeout``: the real server answers it 408."""

_STATUS_OF_MESSAGE = (
    ('No such file or directory', 404),
    ('Permission denied', 403),
    ('Operation not permitted', 403),
    ('File exists', 400),
    ('invalid user', 400),
)
"""The statuses the real server gives a failed command by its error message, the first match winning; any other
failure (``Not a directory``, ``Is a directory``, ``Directory not empty``, ``invalid mode``...) is a 500."""

KIND_UNRECOGNISED_STATUS = 400
"""The status of an unrecognised command failure when ``RealismSettings.real_error_statuses`` is off."""

OUTPUT_LIMIT_EXCEEDED = 'Command output exceeded buffer limit.'
COMMAND_TIMEOUT = 'Command execution timeout limit exceeded.'
CHANNEL_CLOSED = "('Channel not open for sending',)"
"""The message of the real server's 500 when its SSH channel closed under a hung command (the ``args`` of the
exception, as it words unexpected errors)."""
SYSTEM_NOT_FOUND = 'System not found'
JOB_NOT_FOUND = 'Job not found.'


class ApiError(Exception):
    """An answer other than success, with its status and the message of the envelope."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers

    @classmethod
    def from_command(cls, exit_status: int, stderr: str, *, real_statuses: bool = True) -> ApiError:
        """Return the error of a command that failed, with the real server's status and message.

        :param real_statuses: answer an unrecognised failure 500, as the real server; else 400.
        """
        message = f'Remote process failed with exit status:{exit_status}'
        if stderr:
            message += f' and error message:{stderr.strip()}'
        if exit_status == TIMEOUT_EXIT_STATUS:
            return cls(408, message)
        for text, status in _STATUS_OF_MESSAGE:
            if text in stderr:
                return cls(status, message)
        return cls(500 if real_statuses else KIND_UNRECOGNISED_STATUS, message)

    @classmethod
    def output_limit_exceeded(cls) -> ApiError:
        """Return the error of a command whose output filled the real server's buffer (``max_ops_file_size``)."""
        return cls(413, OUTPUT_LIMIT_EXCEEDED)

    @classmethod
    def command_timeout(cls) -> ApiError:
        """Return the error of a command that outlasted the command timeout."""
        return cls(408, COMMAND_TIMEOUT)

    @classmethod
    def channel_closed(cls) -> ApiError:
        """Return the real server's 500 for a hung download whose SSH channel closed at the command timeout."""
        return cls(500, CHANNEL_CLOSED)

    @classmethod
    def invalid_output(cls, stdout: str, stderr: str) -> ApiError:
        """Return the real server's 500 for output it cannot parse (e.g. ``sha256sum`` of a name with a space)."""
        return cls(500, f'Invalid output: {stdout} {stderr}')

    @classmethod
    def scheduler_command(cls, exit_status: int, stderr: str) -> ApiError:
        """Return the real server's 500 for a Slurm command that failed or wrote an error (e.g. ``scancel``)."""
        return cls(500, f'Unexpected Slurm command response. exit_status:{exit_status} std_err:{stderr}')

    @classmethod
    def system_not_found(cls) -> ApiError:
        """Return the real server's 404 for a system it does not have."""
        return cls(404, SYSTEM_NOT_FOUND)

    @classmethod
    def job_not_found(cls) -> ApiError:
        """Return the real server's 404 for a job it does not know."""
        return cls(404, JOB_NOT_FOUND)


def envelope(message: str, user: str | None, error_type: str = 'error', data: Any = None) -> dict[str, object]:
    """Return the body of an error answer."""
    return {'errorType': error_type, 'message': message, 'causedBy': None, 'data': data, 'user': user}


def validation_envelope(exc: RequestValidationError, user: str | None) -> dict[str, object]:
    """Return the real server's body of a 400 for an invalid request: the error text capitalised, and its fields."""
    fields = []
    for error in exc.errors():
        location: tuple[Any, ...] = tuple(error.get('loc') or ())
        fields.append(
            {
                'location': location[0] if location else None,
                'name': location[1] if len(location) > 1 else None,
                'message': error.get('msg'),
            }
        )
    return envelope(str(exc).capitalize(), user, error_type='validation', data={'fields': fields})


def _user_of(request: Request) -> str | None:
    return getattr(request.state, 'user', None)


def register_exception_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` with the real server's envelope; invalid requests with its 400."""

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
        return JSONResponse(validation_envelope(exc, _user_of(request)), status_code=400)
