"""Stand-ins for what a :class:`~aiida_firecrest.client.firecrest_client.FirecrestClient` is built with, for tests of
the client on :class:`httpx.MockTransport` (no server, no token endpoint)."""

from __future__ import annotations

from pathlib import Path

from aiida_firecrest.client.request_budget import RequestBudget


class Budget(RequestBudget):
    """A request budget that never waits, nor pauses after a 429; it counts the requests that acquired it."""

    def __init__(self) -> None:
        super().__init__(Path('/nonexistent/budget'), per_second=0)
        self.acquired = 0

    async def acquire(self) -> str:
        self.acquired += 1
        return f'slot-{self.acquired}'

    def settle(self, slot: str, *, answered: bool) -> None:
        pass

    def pause(self, seconds: float) -> None:
        pass


class Auth:
    """An authorization that always hands out the same token."""

    async def auth_headers(self) -> dict[str, str]:
        return {'Authorization': 'Bearer token'}
