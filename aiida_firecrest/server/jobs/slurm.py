"""The ``slurm`` job backend: the machine's real Slurm, driven by its commands as the real server drives it over SSH.

Jobs are submitted with ``sbatch`` (the script on standard input) and cancelled with ``scancel``. They are reported from
two sources merged per job: ``squeue --json`` for the jobs the controller still holds (pending ones, whose reason only
it knows, and those that just changed state) and ``sacct --parsable2`` for the accounting record (finished jobs, exit
codes, ``CANCELLED by <uid>`` and the job steps); see :func:`merge_jobs`. ``sacct --json`` is not used: Slurm 22.05
reports exit code 0 in it for every job. Without accounting (no slurmdbd), ``sacct`` fails and jobs are reported from
``squeue`` alone, until the controller forgets them (``MinJobAge``).
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from collections.abc import Sequence
from typing import Any

from .. import commands
from ..errors import ApiError
from ..settings import ServerSettings
from .base import JobBackend, JobSpec, job_status, job_time

SACCT_FIELDS = (
    'JobID',
    'JobName',
    'State',
    'ExitCode',
    'Reason',
    'Start',
    'End',
    'ElapsedRaw',
    'Suspended',
    'TimelimitRaw',
    'Account',
    'AllocNodes',
    'Cluster',
    'Group',
    'NodeList',
    'Partition',
    'Priority',
    'User',
    'WorkDir',
)
SACCT_DELIMITER = '\x1f'
"""A separator that no job name or path contains in practice."""
SACCT_WINDOW = 'now-7days'
"""How far back the job list reaches (pyfirecrest's longest ``time_window``); pending and running jobs are always in."""
LIVE_STATES = frozenset(
    {'PENDING', 'RUNNING', 'SUSPENDED', 'COMPLETING', 'CONFIGURING', 'REQUEUED', 'RESIZING', 'SIGNALING', 'STAGE_OUT'}
)
"""States in which the controller, not the accounting, knows best how a job stands."""
DESCRIPTION_FIELDS = ('name', 'account', 'group', 'partition', 'priority', 'user', 'workingDirectory')
"""The fields of a job that the controller reports best, while it holds the job."""
ALL_STATES = 'BF,CA,CD,DL,F,NF,OOM,PD,PR,R,RQ,RS,RV,S,TO'
"""Every job state, for ``sacct --state``: without it, ``sacct`` leaves out jobs cancelled before they started."""
NODE_STATES = frozenset(
    {'IDLE', 'ALLOCATED', 'MIXED', 'DOWN', 'DRAIN', 'OFFLINE', 'RESERVED', 'COMPLETING', 'BUSY', 'POWERING_DOWN'}
    | {'POWERING_UP', 'UNKNOWN'}
)
"""The node states of the API's ``NodeState``."""
SCANCEL_UNKNOWN_JOB = 'Invalid job id specified'
SCANCEL_JOB_ENDED = 'Job/step already completing or completed'
_SCANCEL_ERROR = re.compile(r'.+error:.*', re.IGNORECASE)
"""An error line of ``scancel --verbose``, as the real server looks for it."""
_SCONTROL_FIELD = re.compile(r'(?:^|\s)([^\s=]+)=(\S*)')


def check_scancel(exit_status: int, stderr: str) -> None:
    """Raise the real server's 500 if ``scancel --verbose`` failed or reported an error (an unknown or ended job)."""
    if exit_status != 0 or _SCANCEL_ERROR.search(stderr):
        raise ApiError.scheduler_command(exit_status, stderr)


def slurm_version() -> str:
    """Return the version of the installed Slurm (``sinfo --version``), or ``unknown``."""
    try:
        result = subprocess.run(['sinfo', '--version'], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return 'unknown'
    return result.stdout.split()[-1] if result.stdout.split() else 'unknown'


def _int_or_none(value: str) -> int | None:
    return int(value) if value.isdigit() else None


def _duration(value: str) -> int:
    """Return the seconds of a Slurm duration such as ``00:00:00`` or ``1-02:03:04``."""
    days, _, clock = value.rpartition('-')
    seconds = 0
    for part in clock.split(':'):
        seconds = seconds * 60 + int(part or 0)
    return int(days or 0) * 86400 + seconds


def _exit_status(value: str) -> tuple[int, int]:
    """Return the exit code and signal of a ``sacct`` ``ExitCode`` such as ``3:0``."""
    code, _, signal = value.partition(':')
    return int(code or 0), int(signal or 0)


def parse_sacct(output: str) -> dict[str, dict[str, Any]]:
    """Return the ``JobModel`` dicts of ``sacct --parsable2`` output (fields :data:`SACCT_FIELDS`), by job id.

    Job steps (``12.batch``, ``12.0``...) become the ``tasks`` of their job.
    """
    jobs: dict[str, dict[str, Any]] = {}
    steps: dict[str, list[dict[str, Any]]] = {}
    for line in output.splitlines():
        values = line.split(SACCT_DELIMITER)
        if len(values) != len(SACCT_FIELDS):
            continue
        row = dict(zip(SACCT_FIELDS, values, strict=True))
        job_id, _, step = row['JobID'].partition('.')
        exit_code, signal = _exit_status(row['ExitCode'])
        start, end = _int_or_none(row['Start']), _int_or_none(row['End'])
        elapsed = int(row['ElapsedRaw'] or 0)
        if step:
            steps.setdefault(job_id, []).append(
                {
                    'id': row['JobID'],
                    'name': row['JobName'],
                    'status': job_status(row['State'], None, exit_code, signal),
                    'time': job_time(start, end, elapsed, None, _duration(row['Suspended'] or '0')),
                }
            )
            continue
        limit = _int_or_none(row['TimelimitRaw'])
        jobs[job_id] = {
            'jobId': job_id,
            'name': row['JobName'],
            'status': job_status(row['State'], row['Reason'] or None, exit_code, signal),
            'tasks': [],
            'time': job_time(start, end, elapsed, None if limit is None else limit * 60, _duration(row['Suspended'])),
            'account': row['Account'] or None,
            'allocationNodes': int(row['AllocNodes'] or 0),
            'cluster': row['Cluster'],
            'group': row['Group'] or None,
            'nodes': row['NodeList'],
            'partition': row['Partition'],
            'killRequestUser': None,
            'user': row['User'] or None,
            'workingDirectory': row['WorkDir'],
            'priority': _int_or_none(row['Priority']),
        }
    for job_id, job in jobs.items():
        job['tasks'] = steps.get(job_id, [])
    return jobs


def parse_squeue(output: str, user: str) -> dict[str, dict[str, Any]]:
    """Return the ``JobModel`` dicts of the jobs of ``user`` in ``squeue --json`` output, by job id.

    ``squeue --json`` ignores its filter options in Slurm 22.05, hence the filtering here. The controller knows no
    steps, so the jobs have no tasks.
    """
    jobs: dict[str, dict[str, Any]] = {}
    now = int(time.time())
    for job in json.loads(output)['jobs']:
        if job['user_name'] != user:
            continue
        state = job['job_state']
        live = state in LIVE_STATES
        start = (job['start_time'] or None) if state != 'PENDING' else None
        end = None if live else job['end_time'] or None
        elapsed = 0 if start is None else max((end or now) - start, 0)
        raw_status = 0 if live else job['exit_code'] or 0
        limit = job['time_limit']
        job_id = str(job['job_id'])
        jobs[job_id] = {
            'jobId': job_id,
            'name': job['name'],
            'status': job_status(state, job['state_reason'], raw_status >> 8, raw_status & 0x7F),
            'tasks': [],
            'time': job_time(start, end, elapsed, None if limit is None else limit * 60),
            'account': job['account'] or None,
            'allocationNodes': 0 if start is None else job['node_count'],
            'cluster': job['cluster'],
            'group': job['group_name'] or None,
            'nodes': job['nodes'] or 'None assigned',
            'partition': job['partition'],
            'killRequestUser': None,
            'user': job['user_name'],
            'workingDirectory': job['current_working_directory'],
            'priority': job['priority'],
        }
    return jobs


def merge_jobs(
    controller: dict[str, dict[str, Any]], accounting: dict[str, dict[str, Any]] | None
) -> list[dict[str, Any]]:
    """Return the jobs of both sources, each field from the source that knows it best, ordered by id.

    A final state (and the times) come from the accounting record, earlier states from the controller, so that pending
    reasons are right and a job just submitted is seen at once, although slurmdbd learns of it seconds later. A job
    that ended in the controller but not yet in the accounting reads ``COMPLETING``, so that clients wait for its
    final record (``CANCELLED by <uid>``, exit code, steps) rather than see a second, different final state. The tasks
    always come from the accounting, the job's description from the controller while it holds the job (slurmdbd
    briefly records a job as ``allocation``, without partition or working directory).

    :param accounting: the accounting records, None without accounting: the controller's states are then final.
    """
    records = accounting or {}
    merged: dict[str, dict[str, Any]] = {}
    for job_id in {*controller, *records}:
        record, live = records.get(job_id), controller.get(job_id)
        if live is None:
            assert record is not None
            merged[job_id] = record
        elif record is not None and record['status']['state'] not in LIVE_STATES:
            merged[job_id] = {**record, **{key: live[key] for key in DESCRIPTION_FIELDS}}
        else:
            if accounting is not None and live['status']['state'] not in LIVE_STATES:
                live = {**live, 'status': job_status('COMPLETING', 'None', 0, 0), 'time': {**live['time'], 'end': None}}
            merged[job_id] = {**live, 'tasks': record['tasks'] if record else []}
    return [merged[job_id] for job_id in sorted(merged, key=lambda key: (len(key), key))]


def parse_scontrol(line: str) -> dict[str, str]:
    """Return the ``Key=Value`` pairs of one line of ``scontrol --oneliner show ...`` output (values without spaces)."""
    return dict(_SCONTROL_FIELD.findall(line))


def _node(node: dict[str, Any]) -> dict[str, Any]:
    """Return the ``NodeModel`` dict of a node of ``sinfo --json``."""
    states = [state.upper() for state in [node['state'], *node.get('state_flags', [])]]
    return {
        'name': node['name'],
        'hostname': node['hostname'],
        'address': node['address'],
        'cpus': node['cpus'],
        'cores': node['cores'],
        'sockets': node['sockets'],
        'threads': node['threads'],
        'weight': node['weight'],
        'features': node['features'] or None,
        'freeMemory': node['free_memory'],
        'allocCpus': node['alloc_cpus'],
        'allocMemory': node['alloc_memory'],
        'idleCpus': node['idle_cpus'],
        'cpuLoad': node['cpu_load'] / 100,
        'partitions': node['partitions'],
        'state': [state if state in NODE_STATES else 'UNKNOWN' for state in states],
    }


class SlurmBackend(JobBackend):
    """Run jobs through the machine's Slurm, as the server's user.

    :param settings: the server's settings (user, command timeout).
    """

    def __init__(self, settings: ServerSettings) -> None:
        super().__init__()
        self._settings = settings
        self.version = slurm_version()

    async def _check(self, argv: Sequence[str], stdin: bytes | None = None) -> str:
        return await commands.check(argv, self._settings.command_timeout, stdin=stdin)

    async def _submit(self, job: JobSpec) -> str:
        options = {
            'chdir': job.working_directory,
            'job-name': job.name,
            'account': job.account,
            'partition': job.partition,
            'reservation': job.reservation,
            'input': job.standard_input,
            'output': job.standard_output,
            'error': job.standard_error,
        }
        argv = [
            'env',
            *(f'{name}={value}' for name, value in job.env.items()),
            'sbatch',
            '--parsable',
            '--export=ALL',
            *(f'--{name}={value}' for name, value in options.items() if value),
            *([job.script_path] if job.script_path else []),
        ]
        result = await commands.run(
            argv, self._settings.command_timeout, stdin=None if job.script is None else job.script.encode()
        )
        if result.exit_status != 0:
            raise ApiError.scheduler_command(result.exit_status, result.stderr)
        return result.stdout.strip().split(';')[0]

    async def jobs(self, job_id: str | None = None) -> list[dict[str, Any]]:
        selection = (
            ['--jobs', job_id] if job_id else ['--starttime', SACCT_WINDOW, '--endtime=now', f'--state={ALL_STATES}']
        )
        sacct = [
            'env',
            'SLURM_TIME_FORMAT=%s',
            'sacct',
            '--parsable2',
            '--noheader',
            f'--delimiter={SACCT_DELIMITER}',
            f'--format={",".join(SACCT_FIELDS)}',
            f'--user={self._settings.username}',
            *selection,
        ]
        squeue, accounting = await asyncio.gather(
            self._check(['squeue', '--json']), commands.run(sacct, self._settings.command_timeout)
        )
        records = parse_sacct(accounting.stdout) if accounting.exit_status == 0 else None
        controller = parse_squeue(squeue, self._settings.username)
        if job_id is not None:
            controller = {key: value for key, value in controller.items() if key == job_id}
        jobs = merge_jobs(controller, records)
        if job_id is not None and not jobs:
            raise ApiError.job_not_found()
        return jobs

    async def metadata(self, job_id: str) -> list[dict[str, Any]]:
        """Return the script and standard streams of a job the controller still holds.

        Once the controller has forgotten the job, only its id is known (the accounting stores no scripts by default).
        """
        shown = await commands.run(['scontrol', '--oneliner', 'show', 'job', job_id], self._settings.command_timeout)
        fields = parse_scontrol(shown.stdout) if shown.exit_status == 0 else {}
        if fields.get('UserId', '').split('(')[0] != self._settings.username:
            await self.jobs(job_id)  # 404 for a job unknown to the accounting as well
            unknown: dict[str, Any] = {
                'script': None,
                'standardInput': None,
                'standardOutput': None,
                'standardError': None,
            }
            return [{'jobId': job_id, **unknown}]
        script = await self._check(['scontrol', 'write', 'batch_script', job_id, '-'])
        return [
            {
                'jobId': job_id,
                'script': script,
                'standardInput': fields.get('StdIn') or None,
                'standardOutput': fields.get('StdOut') or None,
                'standardError': fields.get('StdErr') or None,
            }
        ]

    async def cancel(self, job_id: str) -> None:
        """Cancel the job with ``scancel``; a job that already ended stays as it is.

        ``scancel`` exits with status 0 even for an unknown job (Slurm 22.05): only ``--verbose`` reports the error.
        With ``realism.cancel_errors``, any error it reports is a 500, as on the real server.
        """
        result = await commands.run(['scancel', '--verbose', job_id], self._settings.command_timeout)
        if self._settings.realism.cancel_errors:
            check_scancel(result.exit_status, result.stderr)
            return
        errors = [line for line in result.stderr.splitlines() if 'error:' in line]
        if result.exit_status != 0:
            raise ApiError.from_command(result.exit_status, result.stderr)
        if any(SCANCEL_UNKNOWN_JOB in line for line in errors):
            raise ApiError.job_not_found()
        failures = [line for line in errors if SCANCEL_JOB_ENDED not in line]
        if failures:
            raise ApiError.from_command(1, '\n'.join(failures))

    async def partitions(self) -> list[dict[str, Any]]:
        output = await self._check(['scontrol', '--oneliner', 'show', 'partition'])
        partitions = []
        for line in output.splitlines():
            fields = parse_scontrol(line)
            if 'PartitionName' in fields:
                partitions.append(
                    {
                        'name': fields['PartitionName'],
                        'cpus': _int_or_none(fields.get('TotalCPUs', '')),
                        'totalNodes': _int_or_none(fields.get('TotalNodes', '')),
                        'partition': fields.get('State', 'UNKNOWN'),
                    }
                )
        return partitions

    async def nodes(self) -> list[dict[str, Any]]:
        output = await self._check(['sinfo', '--json'])
        return [_node(node) for node in json.loads(output)['nodes']]

    async def reservations(self) -> list[dict[str, Any]]:
        output = await self._check(['env', 'SLURM_TIME_FORMAT=%s', 'scontrol', '--oneliner', 'show', 'reservation'])
        reservations = []
        for line in output.splitlines():
            fields = parse_scontrol(line)
            if 'ReservationName' in fields:
                reservations.append(
                    {
                        'name': fields['ReservationName'],
                        'nodeList': fields.get('Nodes', ''),
                        'startTime': _int_or_none(fields.get('StartTime', '')) or 0,
                        'endTime': _int_or_none(fields.get('EndTime', '')) or 0,
                        'features': None if fields.get('Features') in {None, '', '(null)'} else fields['Features'],
                        'state': fields.get('State'),
                    }
                )
        return reservations


__all__ = (
    'SlurmBackend',
    'check_scancel',
    'merge_jobs',
    'parse_sacct',
    'parse_scontrol',
    'parse_squeue',
    'slurm_version',
)
