"""Every Slurm job state, by long name and short code, and the held reasons, to AiiDA's ``JobState``."""

from __future__ import annotations

import pytest
from aiida.schedulers.datastructures import JobState
from aiida.schedulers.plugins.slurm import _MAP_STATUS_SLURM

from aiida_firecrest.scheduler.job_parsing import (
    HELD_REASONS,
    MAP_STATUS,
    SHORT_STATE_NAMES,
    canonical_state,
    parse_state,
)

QUEUED, HELD, RUNNING, SUSPENDED, DONE = (
    JobState.QUEUED,
    JobState.QUEUED_HELD,
    JobState.RUNNING,
    JobState.SUSPENDED,
    JobState.DONE,
)

STATES = [
    # (long name, short code or None, expected state)
    ('PENDING', 'PD', QUEUED),
    ('CONFIGURING', 'CF', QUEUED),
    ('REQUEUED', 'RQ', QUEUED),
    ('REQUEUE_FED', 'RF', QUEUED),
    ('POWER_UP_NODE', None, QUEUED),
    ('REQUEUE_HOLD', 'RH', HELD),
    ('RESV_DEL_HOLD', 'RD', HELD),
    ('SPECIAL_EXIT', 'SE', HELD),
    ('RUNNING', 'R', RUNNING),
    ('COMPLETING', 'CG', RUNNING),
    ('RESIZING', 'RS', RUNNING),
    ('SIGNALING', 'SI', RUNNING),
    ('STAGE_OUT', 'SO', RUNNING),
    ('SUSPENDED', 'S', SUSPENDED),
    ('STOPPED', 'ST', SUSPENDED),
    ('COMPLETED', 'CD', DONE),
    ('CANCELLED', 'CA', DONE),
    ('FAILED', 'F', DONE),
    ('TIMEOUT', 'TO', DONE),
    ('NODE_FAIL', 'NF', DONE),
    ('PREEMPTED', 'PR', DONE),
    ('BOOT_FAIL', 'BF', DONE),
    ('DEADLINE', 'DL', DONE),
    ('OUT_OF_MEMORY', 'OOM', DONE),
    ('REVOKED', 'RV', DONE),
]


@pytest.mark.parametrize(('name', 'expected'), [(long, state) for long, _, state in STATES])
def test_long_name(name: str, expected: JobState) -> None:
    assert MAP_STATUS[name] is expected
    assert parse_state({'state': name, 'stateReason': 'None'}) is expected


@pytest.mark.parametrize(
    ('code', 'long', 'expected'), [(short, long, state) for long, short, state in STATES if short is not None]
)
def test_short_code(code: str, long: str, expected: JobState) -> None:
    assert SHORT_STATE_NAMES[code] == long
    assert MAP_STATUS[code] is expected
    assert parse_state({'state': code}) is expected
    assert canonical_state(code) == long


def test_every_documented_code_is_mapped() -> None:
    """The table above covers every short code of the ``squeue`` man page, and the map nothing more."""
    assert {short for _, short, _ in STATES if short} == set(SHORT_STATE_NAMES)
    assert set(MAP_STATUS) == {long for long, _, _ in STATES} | set(SHORT_STATE_NAMES)


@pytest.mark.parametrize(('code', 'state'), sorted(_MAP_STATUS_SLURM.items()))
def test_agrees_with_aiida_slurm(code: str, state: JobState) -> None:
    """aiida-core's map is reused: the states it knows map as in its Slurm plugin, by code and by long name."""
    assert MAP_STATUS[code] is state
    assert MAP_STATUS[SHORT_STATE_NAMES[code]] is state


@pytest.mark.parametrize(
    ('raw', 'expected'),
    [
        ('CANCELLED by 1002', 'CANCELLED'),  # as the real server reports a cancelled job
        ('CANCELLED+', 'CANCELLED'),  # sacct's truncation mark
        ('cancelled', 'CANCELLED'),
        (' RUNNING ', 'RUNNING'),
        (['RUNNING', 'COMPLETING'], 'COMPLETING'),  # Slurm's JSON: base state and flags, the flag wins
        (['PENDING', 'REQUEUED'], 'REQUEUED'),
        (['COMPLETED'], 'COMPLETED'),
        ('PENDING,REQUEUE_HOLD', 'REQUEUE_HOLD'),
        (['R', 'CG'], 'COMPLETING'),
        ('', ''),
        (None, ''),
        ([], ''),
        ('WEIRD_NEW_STATE', 'WEIRD_NEW_STATE'),
    ],
)
def test_canonical_state(raw: object, expected: str) -> None:
    assert canonical_state(raw) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ('state', 'expected'),
    [
        ('CANCELLED by 1002', DONE),
        (['RUNNING', 'COMPLETING'], RUNNING),
        (['COMPLETED', 'STAGE_OUT'], RUNNING),
        (['PENDING', 'REQUEUE_HOLD'], HELD),
        ('WEIRD_NEW_STATE', JobState.UNDETERMINED),
        ('', JobState.UNDETERMINED),
        (None, JobState.UNDETERMINED),
    ],
)
def test_parse_state_variants(state: object, expected: JobState) -> None:
    assert parse_state({'state': state, 'stateReason': None}) is expected


def test_held_reasons_are_aiida_slurm_ones() -> None:
    assert HELD_REASONS == {'Dependency', 'JobHeldUser', 'JobHeldAdmin', 'BeginTime'}


@pytest.mark.parametrize('reason', sorted(HELD_REASONS))
@pytest.mark.parametrize('state', ['PENDING', 'PD'])
def test_held_reasons(state: str, reason: str) -> None:
    """A pending job waiting for a dependency, a hold or its begin time is QUEUED_HELD, as in aiida's Slurm plugin."""
    assert parse_state({'state': state, 'stateReason': reason}) is HELD


@pytest.mark.parametrize('reason', ['None', None, '', 'Priority', 'Resources', 'ReqNodeNotAvail', 'QOSMaxJobsPerUser'])
def test_pending_reasons_that_do_not_hold(reason: str | None) -> None:
    assert parse_state({'state': 'PENDING', 'stateReason': reason}) is QUEUED


@pytest.mark.parametrize('reason', sorted(HELD_REASONS))
@pytest.mark.parametrize('state', ['RUNNING', 'COMPLETED', 'SUSPENDED', 'CANCELLED by 1002'])
def test_held_reason_only_holds_pending_jobs(state: str, reason: str) -> None:
    """The reason of a job that is not waiting in the queue does not change its state."""
    assert parse_state({'state': state, 'stateReason': reason}) is MAP_STATUS[canonical_state(state)]


def test_missing_status() -> None:
    assert parse_state(None) is JobState.UNDETERMINED
    assert parse_state({}) is JobState.UNDETERMINED
