"""Pure functions turning the job answers of the FirecREST v2 compute API into AiiDA's job data.

No I/O here: :mod:`aiida_firecrest.scheduler.firecrest_scheduler` fetches the answers through the transport and passes
them in.

* :data:`MAP_STATUS` maps every Slurm job state, long name (``RUNNING``) and short code (``R``), to a
  :class:`~aiida.schedulers.datastructures.JobState`; it extends aiida-core's ``_MAP_STATUS_SLURM``.
* :func:`parse_state` reads the ``status`` of a job (state plus reason: a pending job held by the user is
  ``QUEUED_HELD``, as in aiida-core's Slurm plugin).
* :func:`parse_job` turns one ``JobModel`` dict (``GET /compute/{system}/jobs``) into a
  :class:`~aiida.schedulers.datastructures.JobInfo`.
* :func:`build_detailed_job_info` turns it into the detailed job info that AiiDA stores on the node: the fields of
  ``sacct --parsable``, which is what ``SlurmScheduler.parse_output`` reads, plus the answer itself.
"""

from __future__ import annotations

import datetime
import typing as t
from collections.abc import Mapping

from aiida.schedulers.datastructures import JobInfo, JobState
from aiida.schedulers.plugins.slurm import _MAP_STATUS_SLURM

__all__ = (
    'HELD_REASONS',
    'MAP_STATUS',
    'SHORT_STATE_NAMES',
    'build_detailed_job_info',
    'canonical_state',
    'parse_job',
    'parse_state',
)

SHORT_STATE_NAMES: dict[str, str] = {
    'BF': 'BOOT_FAIL',
    'CA': 'CANCELLED',
    'CD': 'COMPLETED',
    'CF': 'CONFIGURING',
    'CG': 'COMPLETING',
    'DL': 'DEADLINE',
    'F': 'FAILED',
    'NF': 'NODE_FAIL',
    'OOM': 'OUT_OF_MEMORY',
    'PD': 'PENDING',
    'PR': 'PREEMPTED',
    'R': 'RUNNING',
    'RD': 'RESV_DEL_HOLD',
    'RF': 'REQUEUE_FED',
    'RH': 'REQUEUE_HOLD',
    'RQ': 'REQUEUED',
    'RS': 'RESIZING',
    'RV': 'REVOKED',
    'S': 'SUSPENDED',
    'SE': 'SPECIAL_EXIT',
    'SI': 'SIGNALING',
    'SO': 'STAGE_OUT',
    'ST': 'STOPPED',
    'TO': 'TIMEOUT',
}
"""The short codes of the job states (``squeue --format=%t``) and their long names, from the ``squeue`` man page."""

_MAP_STATUS_EXTRA: dict[str, JobState] = {
    'BOOT_FAIL': JobState.DONE,  # terminated: a node failed to boot
    'DEADLINE': JobState.DONE,  # terminated on its deadline
    'OUT_OF_MEMORY': JobState.DONE,  # terminated: out of memory
    'REVOKED': JobState.DONE,  # this sibling was removed: another cluster of the federation runs the job
    'REQUEUED': JobState.QUEUED,  # a completing job going back to the queue
    'REQUEUE_FED': JobState.QUEUED,  # requeued by the federation
    'POWER_UP_NODE': JobState.QUEUED,  # allocated, waiting for its nodes to power up (like CONFIGURING)
    'REQUEUE_HOLD': JobState.QUEUED_HELD,  # requeued and held
    'RESV_DEL_HOLD': JobState.QUEUED_HELD,  # held: its reservation was deleted
    'SPECIAL_EXIT': JobState.QUEUED_HELD,  # requeued in a held special state on a chosen exit value
    'RESIZING': JobState.RUNNING,  # about to change size
    'SIGNALING': JobState.RUNNING,  # being signalled
    'STAGE_OUT': JobState.RUNNING,  # still staging its files out
    'STOPPED': JobState.SUSPENDED,  # stopped with SIGSTOP, keeping its allocation
}
"""The states that aiida-core's ``_MAP_STATUS_SLURM`` does not know, by long name."""

MAP_STATUS: dict[str, JobState] = {
    **_MAP_STATUS_SLURM,
    **{long: _MAP_STATUS_SLURM[short] for short, long in SHORT_STATE_NAMES.items() if short in _MAP_STATUS_SLURM},
    **_MAP_STATUS_EXTRA,
    **{short: _MAP_STATUS_EXTRA[long] for short, long in SHORT_STATE_NAMES.items() if long in _MAP_STATUS_EXTRA},
}
"""Every Slurm job state, long name and short code, to AiiDA's :class:`JobState`."""

HELD_REASONS = frozenset(('Dependency', 'JobHeldUser', 'JobHeldAdmin', 'BeginTime'))
"""The reasons that make a pending job ``QUEUED_HELD``: the list of aiida-core's Slurm plugin."""

_FLAG_PRECEDENCE = (
    'COMPLETING',
    'STAGE_OUT',
    'CONFIGURING',
    'RESIZING',
    'REQUEUED',
    'REQUEUE_FED',
    'REQUEUE_HOLD',
    'SPECIAL_EXIT',
    'STOPPED',
    'REVOKED',
    'RESV_DEL_HOLD',
    'SIGNALING',
    'POWER_UP_NODE',
)
"""The state flags, in the order in which Slurm's ``job_state_string`` prefers them to the base state."""

_NO_VALUE = frozenset(('', 'None', 'none', 'None assigned', '(null)'))
"""Strings that Slurm writes for "nothing"."""

_SACCT_FIELDS = (
    'JobID',
    'JobName',
    'User',
    'Group',
    'Account',
    'Partition',
    'State',
    'Reason',
    'ExitCode',
    'Elapsed',
    'ElapsedRaw',
    'Timelimit',
    'Start',
    'End',
    'Suspended',
    'NNodes',
    'NodeList',
    'WorkDir',
)
"""The ``sacct`` fields written in the detailed job info, in this order."""


def canonical_state(raw: str | t.Sequence[str] | None) -> str:
    """Return the long Slurm name of a job state as FirecREST reports it.

    The state may be a long name or a short code, followed by details (``'CANCELLED by 1002'``) or by sacct's
    truncation mark ``+``; or a list of a base state and flags (as in Slurm's JSON output), or the same joined by
    commas: then the flag that Slurm itself would print wins over the base state.

    :param raw: the ``status.state`` of a FirecREST job.
    :return: the long name, upper case; ``''`` for no state; an unknown name is returned as it is (upper case).
    """
    if raw is None:
        return ''
    if isinstance(raw, str):
        names = raw.split(',') if ',' in raw else raw.split()[:1]
    else:
        names = list(raw)
    names = [name.strip().rstrip('+').upper() for name in names if name and name.strip()]
    names = [SHORT_STATE_NAMES.get(name, name) for name in names]
    if not names:
        return ''
    for flag in _FLAG_PRECEDENCE:
        if flag in names[1:]:
            return flag
    return names[0]


def _text(value: t.Any) -> str | None:
    """Return ``value`` as a string, or None for Slurm's ways of writing "nothing"."""
    if value is None:
        return None
    text = str(value).strip()
    return None if text in _NO_VALUE else text


def _int(value: t.Any) -> int | None:
    """Return ``value`` as an int, or None if it is missing or not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _datetime(epoch: t.Any) -> datetime.datetime | None:
    """Return the timezone-aware (UTC) datetime of a Unix time in seconds, or None if it is missing or zero."""
    seconds = _int(epoch)
    if seconds is None or seconds <= 0:
        return None
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)


def parse_state(status: Mapping[str, t.Any] | None) -> JobState:
    """Return AiiDA's state of a job from its FirecREST ``status``.

    :param status: the ``status`` of a FirecREST job: ``state`` (see :func:`canonical_state`) and ``stateReason``.
    :return: the state; ``UNDETERMINED`` for a state Slurm does not document; ``QUEUED_HELD`` for a queued job held
        for one of :data:`HELD_REASONS`.
    """
    status = status or {}
    state = MAP_STATUS.get(canonical_state(status.get('state')), JobState.UNDETERMINED)
    if state is JobState.QUEUED and _text(status.get('stateReason')) in HELD_REASONS:
        return JobState.QUEUED_HELD
    return state


def parse_job(job: Mapping[str, t.Any]) -> JobInfo:
    """Return the :class:`JobInfo` of a FirecREST job.

    :param job: a ``JobModel`` dict of ``GET /compute/{system}/jobs`` (``jobId``, ``name``, ``status``, ``time`` with
        epoch seconds and a ``limit`` in seconds, ``user``, ``account``, ``partition``, ``allocationNodes``,
        ``nodes``, ...).
    :return: the job info. The API reports neither the submission time nor the number of CPUs or tasks of a job:
        ``submission_time``, ``num_mpiprocs`` and ``num_cpus`` stay unset. The exit code and signal are set once the
        job is done, the node list once it has nodes.
    :raises ValueError: if the job has no ``jobId``.
    """
    if job.get('jobId') in (None, ''):
        raise ValueError(f'a FirecREST job without a `jobId`: {dict(job)}')
    status: Mapping[str, t.Any] = job.get('status') or {}
    times: Mapping[str, t.Any] = job.get('time') or {}

    info = JobInfo()
    info.job_id = str(job['jobId'])
    info.job_state = parse_state(status)
    substate = _text(status.get('state'))
    if substate is not None:
        info.job_substate = substate
    for field, key in (('title', 'name'), ('job_owner', 'user'), ('queue_name', 'partition'), ('account', 'account')):
        value = _text(job.get(key))
        if value is not None:
            info[field] = value
    annotation = _text(status.get('stateReason'))
    if annotation is not None:
        info.annotation = annotation

    num_machines = _int(job.get('allocationNodes'))
    if num_machines:
        info.num_machines = num_machines
    nodes = _text(job.get('nodes'))
    if nodes is not None and info.job_state is not JobState.QUEUED and info.job_state is not JobState.QUEUED_HELD:
        info.allocated_machines_raw = nodes

    limit = _int(times.get('limit'))
    if limit is not None and limit > 0:
        info.requested_wallclock_time_seconds = limit
    elapsed = _int(times.get('elapsed'))
    if elapsed is not None and elapsed >= 0:
        info.wallclock_time_seconds = elapsed
    started = info.job_state not in (JobState.QUEUED, JobState.QUEUED_HELD, JobState.UNDETERMINED)
    dispatch_time = _datetime(times.get('start')) if started else None
    if dispatch_time is not None:
        info.dispatch_time = dispatch_time

    if info.job_state is JobState.DONE:
        finish_time = _datetime(times.get('end'))
        if finish_time is not None:
            info.finish_time = finish_time
        exit_status = _int(status.get('exitCode'))
        if exit_status is not None:
            info.exit_status = exit_status
        signal = _int(status.get('interruptSignal'))
        if signal is not None:
            info.terminating_signal = signal

    info.raw_data = dict(job)
    return info


def _duration(seconds: int | None) -> str:
    """Return a duration as sacct writes it: ``[D-]HH:MM:SS``, ``''`` if unknown."""
    if seconds is None or seconds < 0:
        return ''
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f'{hours:02d}:{minutes:02d}:{secs:02d}'
    return f'{days}-{clock}' if days else clock


def _sacct_row(job: Mapping[str, t.Any], parent: Mapping[str, t.Any] | None = None) -> list[str]:
    """Return the :data:`_SACCT_FIELDS` of a job, or of one of its ``tasks`` (then ``parent`` is the job)."""
    status: Mapping[str, t.Any] = job.get('status') or {}
    times: Mapping[str, t.Any] = job.get('time') or {}
    owner = parent if parent is not None else job
    raw_state = status.get('state')
    state = canonical_state(raw_state)
    if isinstance(raw_state, str) and state and ',' not in raw_state:
        state = ' '.join([state, *raw_state.split()[1:]])  # keep sacct's 'CANCELLED by 1002'
    exit_code = _int(status.get('exitCode'))
    signal = _int(status.get('interruptSignal'))
    start = _datetime(times.get('start'))
    end = _datetime(times.get('end'))
    values = {
        'JobID': job.get('jobId', job.get('id')),
        'JobName': job.get('name'),
        'User': owner.get('user'),
        'Group': owner.get('group'),
        'Account': owner.get('account'),
        'Partition': owner.get('partition'),
        'State': state,
        'Reason': _text(status.get('stateReason')),
        'ExitCode': f'{exit_code or 0}:{signal or 0}',
        'Elapsed': _duration(_int(times.get('elapsed'))),
        'ElapsedRaw': _int(times.get('elapsed')),
        'Timelimit': _duration(_int(times.get('limit'))),
        'Start': start.isoformat() if start else 'Unknown',
        'End': end.isoformat() if end else 'Unknown',
        'Suspended': _duration(_int(times.get('suspended'))),
        'NNodes': owner.get('allocationNodes'),
        'NodeList': _text(owner.get('nodes')),
        'WorkDir': owner.get('workingDirectory'),
    }
    return ['' if values[field] is None else str(values[field]).replace('|', ' ') for field in _SACCT_FIELDS]


def build_detailed_job_info(job: Mapping[str, t.Any]) -> dict[str, t.Any]:
    """Return the detailed job info of a FirecREST job, in the shape that aiida-core's Slurm plugin parses.

    :param job: a ``JobModel`` dict of ``GET /compute/{system}/jobs``.
    :return: ``retval`` 0, ``stderr`` empty, ``stdout`` as ``sacct --parsable`` would write it (a header line, a line
        for the job, one for each of its tasks; the job's ``State`` by its long name, so that
        ``SlurmScheduler.parse_output`` recognises ``OUT_OF_MEMORY``, ``TIMEOUT`` and ``NODE_FAIL``), and ``job``,
        the FirecREST answer itself.
    """
    lines = [_SACCT_FIELDS, _sacct_row(job)]
    lines.extend(_sacct_row(task, parent=job) for task in job.get('tasks') or [] if isinstance(task, Mapping))
    stdout = ''.join('|'.join(line) + '|\n' for line in lines)
    return {'retval': 0, 'stdout': stdout, 'stderr': '', 'job': dict(job)}
