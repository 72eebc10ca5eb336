"""Run commands as the real server runs them over SSH: lines for the ops routes, argument lists for the backends.

The real server sends an ops command as one line to the user's login shell through SSH, reads its standard output and
error through buffers of ``max_ops_file_size`` bytes, and gives up after its command timeout. :func:`run_line` does the
same on this machine with ``bash -c``: in the C locale, with the same buffers (see :func:`run_line` for how their limit
shows), and with the standard input closed only after non-empty content, as the real server's SSH client closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
from collections.abc import Sequence

from .errors import TIMEOUT_EXIT_STATUS, ApiError

C_LOCALE = {'LC_ALL': 'C'}
"""The locale of every command: messages worded as on the real server, whatever the server's own locale."""

CHANNEL_WINDOW_FRACTION = 3
"""Output beyond the buffer that a command can still write before it blocks, as a fraction of the buffer (1/3).

The real server's SSH channel accepts up to its window (2 MiB) past the 5 MiB it reads; a command writing less than
that ends, and the answer is a quick 413; one writing more blocks until the command timeout. A third of the buffer
puts the boundary where the real server has it for a download, at a file of exactly the limit (base64 is 4/3 of it),
whatever the limit.
"""


class CommandTimeoutError(ApiError):
    """A command outlasted the command timeout: the real server's 408."""

    def __init__(self) -> None:
        timeout = ApiError.command_timeout()
        super().__init__(timeout.status, timeout.message)


@dataclasses.dataclass(frozen=True)
class CommandResult:
    """What a finished command left behind."""

    exit_status: int
    stdout: str
    stderr: str


async def _read(stream: asyncio.StreamReader, limit: int | None) -> bytes:
    """Read ``stream`` to its end, or only its first ``limit`` bytes."""
    if limit is None:
        return await stream.read()
    try:
        return await stream.readexactly(limit)
    except asyncio.IncompleteReadError as exc:
        return exc.partial


async def _read_output(stream: asyncio.StreamReader, limit: int | None) -> tuple[bytes, bool]:
    """Read standard output through a buffer of ``limit`` bytes; return it and whether it filled the buffer.

    Output beyond the buffer and its channel window (:data:`CHANNEL_WINDOW_FRACTION`) is never read, as the command
    would block writing it: this waits for ever (until the command timeout).
    """
    data = await _read(stream, limit)
    if limit is None or len(data) < limit:
        return data, False
    window = limit // CHANNEL_WINDOW_FRACTION + 4
    if len(await _read(stream, window)) >= window:
        await asyncio.Event().wait()  # the command blocks on a full channel: only the timeout ends this
    return data, True


def _kill(process: asyncio.subprocess.Process) -> None:
    """Kill the process group of ``process`` if it still runs (the command and what it started)."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


async def _exchange(
    process: asyncio.subprocess.Process, buffer_limit: int | None, stdin: bytes, close_empty_input: bool
) -> tuple[int, bytes, bytes]:
    """Feed ``process`` its input, read its outputs through their buffers and return them with its exit status."""
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    if stdin or close_empty_input:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            process.stdin.write(stdin)
            await process.stdin.drain()
            process.stdin.close()
    (stdout, stdout_full), stderr = await asyncio.gather(
        _read_output(process.stdout, buffer_limit), _read(process.stderr, buffer_limit)
    )
    if stdout_full or (buffer_limit is not None and len(stderr) >= buffer_limit):
        raise ApiError.output_limit_exceeded()
    return await process.wait(), stdout, stderr


async def run_line(
    line: str,
    timeout: float,
    *,
    buffer_limit: int | None = None,
    stdin: bytes = b'',
    close_empty_input: bool = False,
) -> CommandResult:
    """Run the command line ``line`` with ``bash -c``, as the real server runs it over SSH.

    :param buffer_limit: the bytes read of standard output and of standard error (the real server's
        ``max_ops_file_size``), None for no limit.
    :param stdin: the standard input; it is closed after it, unless it is empty and ``close_empty_input`` is false (the
        real server sends no end of input then, and a command reading it waits for ever).
    :raises ApiError: 413 if an output filled its buffer.
    :raises CommandTimeoutError: if the command outlasts ``timeout`` seconds; it is killed with its process group.
        A command line that starts with ``timeout`` for the same time and is stopped by it counts as outlasting it too:
        the real server's SSH timer starts before the remote command does, so it always fires first.
    """
    started = asyncio.get_running_loop().time()
    process = await asyncio.create_subprocess_exec(
        'bash',
        '-c',
        line,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **C_LOCALE},
        start_new_session=True,
    )
    try:
        exit_status, stdout, stderr = await asyncio.wait_for(
            _exchange(process, buffer_limit, stdin, close_empty_input), timeout
        )
    except asyncio.TimeoutError as exc:
        raise CommandTimeoutError() from exc
    finally:
        _kill(process)
        await process.wait()
    if exit_status == TIMEOUT_EXIT_STATUS and asyncio.get_running_loop().time() - started >= timeout:
        raise CommandTimeoutError()
    return CommandResult(exit_status, stdout.decode(errors='replace'), stderr.decode(errors='replace'))


async def run(argv: Sequence[str], timeout: float, stdin: bytes | None = None, cwd: str | None = None) -> CommandResult:
    """Run ``argv`` without a shell, in the C locale, and return its result (the job backends' commands).

    :raises CommandTimeoutError: if it takes longer than ``timeout`` seconds (the command is killed).
    """
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env={**os.environ, **C_LOCALE},
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(stdin), timeout)
    except asyncio.TimeoutError as exc:
        process.kill()
        await process.wait()
        raise CommandTimeoutError() from exc
    assert process.returncode is not None
    return CommandResult(process.returncode, stdout.decode(errors='surrogateescape'), stderr.decode(errors='replace'))


async def check(argv: Sequence[str], timeout: float, stdin: bytes | None = None, cwd: str | None = None) -> str:
    """Run ``argv`` and return its standard output; raise the real server's :class:`ApiError` if it fails."""
    result = await run(argv, timeout, stdin=stdin, cwd=cwd)
    if result.exit_status != 0:
        raise ApiError.from_command(result.exit_status, result.stderr)
    return result.stdout
