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
def another_current_loop() -> Iterator[None]:
    """Make a new event loop the thread's current one, after AiiDA's global runner was made on the previous one.

    The global runner is left as it is (replacing it would close its loop, which may be pytest-asyncio's).
    """
    get_manager().get_runner()
    previous = asyncio.get_event_loop()
    other = asyncio.new_event_loop()
    asyncio.set_event_loop(other)
    try:
        yield
    finally:
        asyncio.set_event_loop(previous)
        other.close()


def test_calcjob_while_the_global_runner_has_another_loop(
    another_current_loop: None,
    server_config: dict[str, Any],
    firecrest_code: Callable[[dict[str, Any]], orm.InstalledCode],
) -> None:
    """The scheduler's blocking calls run on the loop stepping the CalcJob, not on the global runner's loop."""
    step = arithmetic_add(firecrest_code(server_config), 3, 4)
    _, node = run_get_node(step.builder())
    assert step.check(node) == '3 + 4 = 7'
