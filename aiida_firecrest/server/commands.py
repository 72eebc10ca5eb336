"""Run the commands behind direct operations, as the real server runs them over SSH."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Sequence

from .errors import ApiError


@dataclasses.dataclass(frozen=True)
class CommandResult:
    """What a finished command left behind."""

    exit_status: int
    stdout: str
    stderr: str


async def run(argv: Sequence[str], timeout: float, stdin: bytes | None = None, cwd: str | None = None) -> CommandResult:
    """Run ``argv`` without a shell and return its result.

    :raises ApiError: 408 if it takes longer than ``timeout`` seconds (the command is killed), as the real server
        answers a command timeout, so that clients fall back to a transfer job.
    """
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env={**os.environ, 'LC_ALL': 'C'},  # messages worded as on the real server, whatever the server's locale
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(stdin), timeout)
    except asyncio.TimeoutError as exc:
        process.kill()
        await process.wait()
        raise ApiError(408, f'Command execution timeout after {timeout} seconds.') from exc
    assert process.returncode is not None
    return CommandResult(process.returncode, stdout.decode(errors='surrogateescape'), stderr.decode(errors='replace'))


async def check(argv: Sequence[str], timeout: float, stdin: bytes | None = None, cwd: str | None = None) -> str:
    """Run ``argv`` and return its standard output; raise the real server's :class:`ApiError` if it fails."""
    result = await run(argv, timeout, stdin=stdin, cwd=cwd)
    if result.exit_status != 0:
        raise ApiError.from_command(result.exit_status, result.stderr)
    return result.stdout
