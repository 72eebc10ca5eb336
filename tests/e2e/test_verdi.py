"""``verdi computer setup``, ``configure firecrest`` and ``test`` in subprocesses, as a user runs them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiida import orm


def test_verdi_computer_test_passes(
    firecrest_code: Callable[[dict[str, Any]], orm.InstalledCode], firecrest_config: dict[str, Any], verdi: Any
):
    """``verdi computer test`` passes every check; the command FirecREST has no counterpart for is skipped."""
    computer = firecrest_code(firecrest_config).computer
    result = verdi('computer', 'test', computer.label)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'Success: all 6 tests succeeded' in result.stdout
    assert 'Skipped, remote command execution is not implemented' in result.stdout
