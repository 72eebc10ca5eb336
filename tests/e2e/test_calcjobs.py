"""CalcJobs through ``aiida.engine.run``, on each job backend of the local server as it is by default (like the real
server), or once on the deployment of ``--firecrest-config``: the demo's three, and those of the files that the real
server's commands cannot carry as they are (a large output, empty files, awkward names)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_firecrest.demo.steps import arithmetic_add, awkward_names, empty_files, large_output, restart, staged_io
from aiida_firecrest.server import LocalFirecrest

POLLS = ('GET /compute/{system_name}/jobs', 'GET /compute/{system_name}/jobs/{job_id}')
"""A poll of the jobs: the list (several CalcJobs running), or one job (a single CalcJob)."""
STAGED_SIZE = 6 * 2**20
"""Above the server's 5 MiB direct-transfer limit."""
LARGE_OUTPUT_SIZE = 20 * 2**20
"""A large output: a direct download of it would cost the server's command timeout, then fail."""


@pytest.fixture
def code(server_config: dict[str, Any], firecrest_code: Callable[[dict[str, Any]], orm.InstalledCode]):
    """A code on a computer of the server under test, with each job backend in turn."""
    return firecrest_code(server_config)


def test_arithmetic_add(code: orm.InstalledCode):
    """``core.arithmetic.add`` runs and returns the sum."""
    step = arithmetic_add(code, 3, 4)
    _, node = run_get_node(step.builder())
    assert step.check(node) == '3 + 4 = 7'


def count_requests(server: LocalFirecrest, code: orm.InstalledCode) -> tuple[int, Counter[str]]:
    """Run an ``ArithmeticAddCalculation``; return its FirecREST requests, less the polls past the first, and all.

    The number of polls depends on how long the job takes, not on the plugin, hence the subtraction.
    """
    mark = server.request_log.mark()
    step = arithmetic_add(code)
    _, node = run_get_node(step.builder())
    step.check(node)
    counts = server.request_log.counts(mark)
    polls = sum(counts[poll] for poll in POLLS)
    return sum(counts.values()) - max(polls - 1, 0), counts


@pytest.mark.local_server(reason="counts the CalcJob's requests in the local server's request log")
def test_arithmetic_add_requests(code: orm.InstalledCode, any_backend_server: LocalFirecrest):
    """An ``ArithmeticAddCalculation`` takes at most 11 FirecREST requests with one poll (aiida-firecrest 1.0.0: 39).

    The first CalcJob of a computer takes one more, to create the computer's work directory.
    """
    first, counts = count_requests(any_backend_server, code)
    assert first <= 12, counts
    assert counts['POST /filesystem/{system_name}/ops/mkdir'] == 3, 'the work directory and the CalcJob folder'

    steady, counts = count_requests(any_backend_server, code)
    assert steady <= 11, counts
    assert counts['GET /filesystem/{system_name}/ops/stat'] == 1, 'path_exists of the work directory, nothing else'
    assert counts['GET /status/systems'] == 0, 'the per-system facts are cached'
    assert counts['POST /compute/{system_name}/jobs'] == 1


def test_staged_input_and_output(code: orm.InstalledCode):
    """A CalcJob whose input and output exceed the direct-transfer limit gets them through S3, byte for byte."""
    step = staged_io(code, STAGED_SIZE)
    _, node = run_get_node(step.builder())
    assert 'intact' in step.check(node)


def test_restart_copies_links_and_stashes(code: orm.InstalledCode):
    """A restart copies and links files of its parent's remote folder and stashes its outputs."""
    parent_step = staged_io(code, 1024)
    _, parent = run_get_node(parent_step.builder())
    parent_step.check(parent)
    step = restart(code, lambda: parent)
    _, node = run_get_node(step.builder())
    assert 'stashed' in step.check(node)


def test_large_output(code: orm.InstalledCode):
    """A 20 MiB output is retrieved byte for byte."""
    step = large_output(code, LARGE_OUTPUT_SIZE)
    _, node = run_get_node(step.builder())
    assert 'intact' in step.check(node)


def test_empty_files(code: orm.InstalledCode):
    """An empty input file is uploaded (the real server's direct upload of one hangs), an empty output retrieved."""
    step = empty_files(code)
    _, node = run_get_node(step.builder())
    assert 'empty' in step.check(node)


def test_awkward_names(code: orm.InstalledCode):
    """Files named with spaces, quotes and non-ASCII letters are uploaded and retrieved under their names."""
    step = awkward_names(code)
    _, node = run_get_node(step.builder())
    assert 'awkward' in step.check(node)
