"""The local S3 server starts even when one of the ports chosen for it is taken before it binds it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiida_firecrest.server import s3

MASTER_PORT, S3_PORT = 0, 3
"""Positions in the ports ``weed`` is given: taking the master's makes it exit, the S3 API's makes it hang."""


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another process holds."""
    with socket.socket() as holder:
        holder.bind(('127.0.0.1', 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.mark.parametrize('position', [MASTER_PORT, S3_PORT], ids=['weed-exits', 'weed-hangs'])
def test_starts_again_on_other_ports(
    position: int, taken_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A taken port costs another start, on other ports, not a failure."""
    free_ports = s3._free_ports
    chosen: list[list[int]] = []

    def first_choice_taken(count: int) -> list[int]:
        ports = free_ports(count)
        if not chosen:
            ports[position] = taken_port
        chosen.append(ports)
        return ports

    monkeypatch.setattr(s3, '_free_ports', first_choice_taken)
    monkeypatch.setattr(s3, 'ATTEMPT_TIMEOUT', 10.0)  # shorter than the default: the hanging case waits it out
    with s3.SeaweedFS(tmp_path) as settings:
        assert settings.client().list_buckets()['Buckets'] == []
    # one more start at least (a busy machine may need another one within the shorter timeout), on other ports
    assert len(chosen) >= 2
    assert taken_port not in chosen[-1]


def test_gives_up_naming_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that never starts fails after its attempts, with the reason and its log."""
    monkeypatch.setattr(s3, 'weed_executable', lambda: '/bin/false')
    with pytest.raises(RuntimeError, match=r'SeaweedFS exited with status 1; see .*weed\.log'):
        s3.SeaweedFS(tmp_path).start()
