"""Every HTTP session a transport makes is closed when it closes (pyfirecrest's constructor makes one of its own)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from aiida_firecrest.transport import FirecrestTransport


class RecordedClient(httpx.AsyncClient):
    """An httpx client that remembers every instance made."""

    made: list[httpx.AsyncClient] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        RecordedClient.made.append(self)


@pytest.fixture
def recorded_sessions(monkeypatch: pytest.MonkeyPatch) -> list[httpx.AsyncClient]:
    RecordedClient.made = []
    monkeypatch.setattr(httpx, 'AsyncClient', RecordedClient)
    return RecordedClient.made


@pytest.mark.parametrize('cycles', [1, 3])
async def test_open_and_close_leave_no_session_open(
    recorded_sessions: list[httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch, cycles: int
) -> None:
    monkeypatch.setenv('FIRECREST_TEST_SECRET', 'secret')
    transport = FirecrestTransport(
        url='https://firecrest.test',
        token_uri='https://auth.test/token',
        client_id='client',
        client_secret='env:FIRECREST_TEST_SECRET',
        compute_resource='cluster',
    )
    for _ in range(cycles):
        await transport.open_async()
        await transport.close_async()
    assert recorded_sessions
    assert all(session.is_closed for session in recorded_sessions)
