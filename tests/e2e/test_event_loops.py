"""A CalcJob whose engine loop is not the loop of AiiDA's global runner."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida.manage import get_manager

from aiida_firecrest.demo.steps import arithmetic_add


@pytest.fixture
def global_runner_on_another_loop() -> Iterator[None]:
    """Give AiiDA's global runner an event loop of its own, not the thread's current loop."""
    manager = get_manager()
    current = asyncio.get_event_loop()
    other = asyncio.new_event_loop()
    asyncio.set_event_loop(other)
    manager.set_runner(manager.create_runner())
    asyncio.set_event_loop(current)
    try:
        yield
    finally:
        manager.set_runner(manager.create_runner())
        other.close()


def test_calcjob_while_the_global_runner_has_another_loop(
    global_runner_on_another_loop: None,
    server_config: dict[str, Any],
    firecrest_code: Callable[[dict[str, Any]], orm.InstalledCode],
) -> None:
    """The scheduler's blocking calls run on the loop stepping the CalcJob, not on the global runner's loop."""
    step = arithmetic_add(firecrest_code(server_config), 3, 4)
    _, node = run_get_node(step.builder())
    assert step.check(node) == '3 + 4 = 7'
