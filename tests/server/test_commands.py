"""The command runner of the local server: a timed-out command answers as the real server's SSH timeout does."""

from __future__ import annotations

import pytest

from aiida_firecrest.server import commands


@pytest.mark.parametrize('line', ['timeout 0.2 sleep 5', 'sleep 5'], ids=['stopped-by-timeout-prefix', 'no-prefix'])
async def test_a_command_that_outlasts_the_timeout_is_the_ssh_timeout(line: str) -> None:
    """Whichever fires first, the line's own ``timeout`` or the runner's, the answer is the SSH timeout's 408."""
    with pytest.raises(commands.CommandTimeoutError, match='Command execution timeout limit exceeded'):
        await commands.run_line(line, 0.2)


async def test_exit_status_124_before_the_timeout_is_the_command_s_own() -> None:
    result = await commands.run_line('exit 124', 5.0)
    assert result.exit_status == 124
