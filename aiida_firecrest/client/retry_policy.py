"""Which FirecREST requests may be sent again after a failure, and how long to wait before: the one place that says so.

A failed request either certainly did not reach the server's backend (:attr:`Failure.NOT_ACTED`: the connection was
never made) or may have acted (:attr:`Failure.UNCERTAIN`: the connection dropped before the answer, or a 502/503/504,
or a 500 that is not the answer of a command, such as ``('Channel not open for sending',)``, which the real server gives
now and then under load). Each operation says what a repeat does (:class:`Repeat`):

* :attr:`Repeat.AS_IS`: repeating it leaves the same state: every GET, ``mkdir -p``, ``chmod``, ``chown``, a direct
  upload (the same bytes to the same name), ``compress`` and ``extract`` as commands (the same archive, the same files),
  the cancellation of a job;
* :attr:`Repeat.MISSING_IS_DONE`: ``rm``; a repeat answering "No such file or directory" means the first one removed it;
* :attr:`Repeat.EXISTS_IS_DONE`: ``mkdir`` without parents; a repeat answering "File exists" means the first made it;
* :attr:`Repeat.LINK_IS_DONE`: ``symlink``; a repeat answering "File exists" is success once the client has checked
  that the link points where it should;
* :attr:`Repeat.NEVER`: a job submission, and every request that starts a transfer job (``cp``, ``mv``, staged
  transfers, the job forms of ``rm``/``compress``/``extract``): a repeat may start a second job. These are repeated
  only when the server certainly did not act; an uncertain submission is settled by the scheduler, which looks for the
  job before submitting again.

A direct download (``ops/download``) is repeated after a dropped connection or a 502/503/504, not after a 500: the real
server answers 500 after its command timeout to a file above its buffer limit, and the transport's staged path is the
repeat that works. A timeout waiting for the answer is never repeated here: the server is slow, and a second request
would double its load (the engine retries the step with its own back-off). 429 (``Retry-After``, through pyfirecrest and
the request budget) and one 401 (a fresh token, e.g. after the server restarted) are repeated for every operation: the
server refused them before acting.

Every repeat waits a bounded, jittered exponential delay (:class:`Backoff`), at least the answer's ``Retry-After``, and
then the request budget, like any request.
"""

from __future__ import annotations

import dataclasses
import enum
import errno
import random
import re
from collections.abc import Mapping
from typing import Any

import httpx

from .exceptions import errno_in_message, message_of_response

__all__ = (
    'DEFAULT_BACKOFF',
    'Backoff',
    'Failure',
    'Operation',
    'Repeat',
    'failure_of_answer',
    'failure_of_error',
    'operation_of',
    'outcome_unknown',
    'settles',
)


class Failure(enum.Enum):
    """What a failed request tells of the server's state."""

    NOT_ACTED = 'the server did not act'
    UNCERTAIN = 'the server may have acted'


class Repeat(enum.Enum):
    """What repeating an operation does (see the module docstring)."""

    AS_IS = 'safe to repeat as it is'
    MISSING_IS_DONE = 'safe to repeat; "missing" on a repeat means done'
    EXISTS_IS_DONE = 'safe to repeat; "exists" on a repeat means done'
    LINK_IS_DONE = 'safe to repeat; "exists" on a repeat means done if the link points at its target'
    NEVER = 'repeated only if the server did not act'


@dataclasses.dataclass(frozen=True)
class Operation:
    """A kind of request and how it may be repeated.

    :ivar name: the operation, for logs (``GET ops/ls``, ``submit``...).
    :ivar repeat: what a repeat does.
    :ivar server_errors_transient: whether a 500 that is not a command's answer may be repeated.
    """

    name: str
    repeat: Repeat
    server_errors_transient: bool = True

    def may_repeat(self, failure: Failure) -> bool:
        """Whether the request may be sent again after ``failure``."""
        return failure is Failure.NOT_ACTED or self.repeat is not Repeat.NEVER


@dataclasses.dataclass(frozen=True)
class Backoff:
    """Bounded exponential back-off with full jitter.

    :ivar attempts: the number of repeats after the first try.
    :ivar base: the upper bound of the first delay, in seconds; it doubles with each repeat.
    :ivar cap: the upper bound of any delay drawn, in seconds.
    :ivar max_retry_after: the longest ``Retry-After`` honoured, in seconds (longer ones end the repeats).
    """

    attempts: int = 4
    base: float = 0.5
    cap: float = 8.0
    max_retry_after: float = 60.0

    def delay(self, repeat: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Return the wait before repeat number ``repeat`` (1 for the first), at least ``retry_after``."""
        drawn = rng.uniform(0, min(self.cap, self.base * 2 ** (repeat - 1)))
        return max(drawn, retry_after or 0.0)


DEFAULT_BACKOFF = Backoff()
"""The back-off of every client: at most 4 repeats, waiting about 0.25 + 0.5 + 1 + 2 s on average."""

_COMMAND_ANSWER = re.compile(r'exit[ _]status|^Invalid output:', re.IGNORECASE)
"""A 500 whose message reports a command that ran and failed (``Remote process failed with exit status:2``,
``Unexpected Slurm command response. exit_status:1``, a checksum's ``Invalid output``): a definite answer."""

TRANSIENT_STATUSES = frozenset({502, 503, 504})


def failure_of_error(exc: httpx.TransportError) -> Failure | None:
    """Return what an httpx error tells of the server's state, or None if the request must not be repeated here.

    A connection never made (refused, or timed out while connecting or waiting for a pooled connection) did not act;
    a connection dropped before the answer may have; a timeout waiting for the answer is not repeated.
    """
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        return Failure.NOT_ACTED
    if isinstance(exc, httpx.TimeoutException):
        return None
    return Failure.UNCERTAIN


def failure_of_answer(operation: Operation, status: int, message: str) -> Failure | None:
    """Return what an error answer tells of the server's state, or None if it is a definite answer.

    :param operation: the operation answered.
    :param status: the answer's HTTP status.
    :param message: the answer's message.
    """
    if status in TRANSIENT_STATUSES:
        return Failure.UNCERTAIN
    if status == 500 and operation.server_errors_transient and not _is_command_answer(message):
        return Failure.UNCERTAIN
    return None


def _is_command_answer(message: str) -> bool:
    return errno_in_message(message) is not None or _COMMAND_ANSWER.search(message) is not None


_OPS = re.compile(r'^/filesystem/[^/]+/ops/(?P<op>[a-z]+)$')
_TRANSFER = re.compile(r'^/filesystem/[^/]+/transfer/')
_JOBS = re.compile(r'^/compute/[^/]+/jobs$')
_JOB = re.compile(r'^/compute/[^/]+/jobs/[^/]+$')

_OPS_REPEAT: Mapping[str, Repeat] = {
    'chmod': Repeat.AS_IS,
    'chown': Repeat.AS_IS,
    'upload': Repeat.AS_IS,
    'compress': Repeat.AS_IS,
    'extract': Repeat.AS_IS,
    'rm': Repeat.MISSING_IS_DONE,
    'symlink': Repeat.LINK_IS_DONE,
}


def operation_of(method: str, endpoint: str, body: Mapping[str, Any] | None = None) -> Operation:
    """Return the operation of a request to the FirecREST API.

    :param method: the HTTP method.
    :param endpoint: the API path (``/filesystem/{system}/ops/mkdir``), without the server's URL.
    :param body: the JSON body, if any (``mkdir`` is repeatable as it is with ``parent``).
    """
    name = f'{method} {endpoint}'
    if method == 'GET':
        ops = _OPS.match(endpoint)
        return Operation(name, Repeat.AS_IS, server_errors_transient=not (ops and ops['op'] == 'download'))
    if _TRANSFER.match(endpoint) or (method == 'POST' and _JOBS.match(endpoint)):
        return Operation(name, Repeat.NEVER)
    if method == 'DELETE' and _JOB.match(endpoint):
        return Operation(name, Repeat.AS_IS)
    ops = _OPS.match(endpoint)
    if ops is None:
        return Operation(name, Repeat.NEVER)
    if ops['op'] == 'mkdir':
        return Operation(name, Repeat.AS_IS if (body or {}).get('parent') else Repeat.EXISTS_IS_DONE)
    return Operation(name, _OPS_REPEAT.get(ops['op'], Repeat.NEVER))


def settles(operation: Operation, message: str) -> bool:
    """Whether the error answer of a repeat shows that an earlier try did the work (before any check of the client).

    :param operation: the operation repeated.
    :param message: the message of the repeat's error answer.
    """
    code = errno_in_message(message)
    if operation.repeat is Repeat.MISSING_IS_DONE:
        return code == errno.ENOENT
    if operation.repeat in (Repeat.EXISTS_IS_DONE, Repeat.LINK_IS_DONE):
        return code == errno.EEXIST
    return False


def outcome_unknown(exc: BaseException, operation: Operation) -> bool:
    """Whether the failure ``exc`` of ``operation`` (after the client's repeats) leaves unknown if the server acted.

    :param exc: what the client raised: an httpx error, or pyfirecrest's exception holding the answers.
    :param operation: the operation that failed.
    """
    if isinstance(exc, httpx.TransportError):
        return failure_of_error(exc) is not Failure.NOT_ACTED
    responses = getattr(exc, 'responses', None)
    if not responses:
        return False
    last: httpx.Response = responses[-1]
    return failure_of_answer(operation, last.status_code, message_of_response(last)) is not None
