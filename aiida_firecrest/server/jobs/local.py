"""The ``local`` job backend: batch scripts run as local processes, reported as Slurm 22.05 reports its jobs.

Each job runs its script (honouring the interpreter line) in its working directory, in a process group of its own,
with its output in ``slurm-%j.out`` unless the request or the script's ``#SBATCH`` lines say otherwise. Jobs start at
once (there is no queue); ``#SBATCH --hold`` keeps one pending until it is cancelled, and ``#SBATCH --time`` kills it
with its whole process group when the limit passes, as Slurm would (SIGTERM, then SIGKILL after :data:`KILL_WAIT`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import grp
import os
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from ..errors import ApiError
from ..settings import ServerSettings
from .base import JobBackend, JobSpec, job_status, job_time
from .directives import SHEBANG_ERROR, expand_file_pattern, parse_directives, parse_time_limit
from .slurm import SCANCEL_JOB_ENDED, SCANCEL_UNKNOWN_JOB, check_scancel

SLURM_VERSION = '22.05.8'
"""The Slurm release whose answers the backend imitates."""
KILL_WAIT = 2.0
"""Seconds between SIGTERM and SIGKILL when a job is cancelled or times out (Slurm's ``KillWait``)."""
LAUNCH_FAILURE_SIGNAL = 53
"""The signal Slurm 22.05 reports (``ExitCode 0:53``) for a job it could not launch, e.g. without working directory."""
DEFAULT_PARTITION = 'normal'
TERMINATED = int(signal.SIGTERM)
"""The signal reported for the batch step of a cancelled or timed-out job."""
PRIORITY_BASE = 4294901760
"""Slurm's basic priorities count down from here, one per job."""


@dataclasses.dataclass(eq=False)
class _LocalJob:
    """A job of the local backend and what it has done so far."""

    job_id: int
    spec: JobSpec
    script: str
    name: str
    account: str | None
    partition: str
    standard_input: str
    standard_output: str
    standard_error: str
    limit: int | None
    hold: bool
    script_path: Path
    state: str = 'PENDING'
    exit_code: int = 0
    signal: int = 0
    task: tuple[str, int, int] | None = None
    """State, exit code and signal of the batch step, once the script was launched."""
    start: float | None = None
    end: float | None = None
    stop: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    """Set to stop the job: cancelled while pending or running."""
    runner: asyncio.Task[None] | None = None

    @property
    def finished(self) -> bool:
        return self.end is not None

    def finish(self, state: str, exit_code: int = 0, signal_number: int = 0) -> None:
        """Record the end of the job, unless it already ended."""
        if not self.finished:
            self.state, self.exit_code, self.signal = state, exit_code, signal_number
            self.end = time.time()


class LocalBackend(JobBackend):
    """Run batch scripts as processes of the server's user on this machine.

    :param settings: the server's settings (user, default account, system name).
    """

    version = SLURM_VERSION

    def __init__(self, settings: ServerSettings) -> None:
        super().__init__()
        self._settings = settings
        self._jobs: dict[int, _LocalJob] = {}
        self._next_id = 1
        self._spool = Path(tempfile.mkdtemp(prefix='firecrest-local-jobs-'))
        self._uid = os.getuid()
        self._group = grp.getgrgid(os.getgid()).gr_name
        self._hostname = socket.gethostname()

    async def _submit(self, job: JobSpec) -> str:
        script = job.script if job.script is not None else await _read_script(job.script_path or '')
        if not script.startswith('#!'):
            raise ApiError.scheduler_command(1, SHEBANG_ERROR)
        try:
            directives = parse_directives(script)
            limit = parse_time_limit(directives.time) if directives.time else None
        except ValueError as exc:
            raise ApiError.scheduler_command(1, str(exc)) from exc
        job_id = self._next_id
        self._next_id += 1
        name = job.name or directives.job_name or (os.path.basename(job.script_path) if job.script_path else 'sbatch')

        def path_of(pattern: str) -> str:
            expanded = expand_file_pattern(pattern, job_id, name, self._settings.username, self._hostname)
            return os.path.join(job.working_directory, expanded)

        output = path_of(job.standard_output or directives.output or 'slurm-%j.out')
        error = job.standard_error or directives.error
        script_path = self._spool / f'job-{job_id}.sh'
        await asyncio.to_thread(_write_script, script_path, script)
        local_job = _LocalJob(
            job_id=job_id,
            spec=job,
            script=script,
            name=name,
            account=job.account or directives.account or self._settings.account,
            partition=job.partition or directives.partition or DEFAULT_PARTITION,
            standard_input=path_of(job.standard_input or directives.input or '/dev/null'),
            standard_output=output,
            standard_error=path_of(error) if error else output,
            limit=limit,
            hold=directives.hold,
            script_path=script_path,
        )
        self._jobs[job_id] = local_job
        local_job.runner = asyncio.create_task(self._run(local_job), name=f'local-job-{job_id}')
        return str(job_id)

    async def _run(self, job: _LocalJob) -> None:
        """Launch the job (unless it is held or cancelled first), wait for it and record how it ended."""
        if job.hold or job.stop.is_set():
            await job.stop.wait()
            return
        try:
            process = await self._launch(job)
        except OSError:
            job.start = time.time()
            job.task = ('CANCELLED', 0, LAUNCH_FAILURE_SIGNAL)
            job.finish('FAILED', 0, LAUNCH_FAILURE_SIGNAL)
            return
        job.start = time.time()
        if not job.finished:  # else it was cancelled while launching, and _supervise stops it at once
            job.state = 'RUNNING'
            job.task = ('RUNNING', 0, 0)
        try:
            await self._supervise(job, process)
        finally:
            _kill_group(process.pid, signal.SIGKILL)  # whatever the script left running, as Slurm does

    async def _launch(self, job: _LocalJob) -> asyncio.subprocess.Process:
        """Start the job's script in its working directory and a new session, with its files and environment."""
        files = await asyncio.to_thread(_open_files, job)
        env = {
            **os.environ,
            **job.spec.env,
            'SLURM_JOB_ID': str(job.job_id),
            'SLURM_JOBID': str(job.job_id),
            'SLURM_JOB_NAME': job.name,
            'SLURM_JOB_PARTITION': job.partition,
            'SLURM_JOB_ACCOUNT': job.account or '',
            'SLURM_CLUSTER_NAME': self._settings.system_name,
            'SLURM_SUBMIT_DIR': job.spec.working_directory,
            'SLURM_JOB_NODELIST': self._hostname,
            'SLURM_NNODES': '1',
        }
        try:
            return await asyncio.create_subprocess_exec(
                str(job.script_path),
                stdin=files[0],
                stdout=files[1],
                stderr=files[2],
                cwd=job.spec.working_directory,
                env=env,
                start_new_session=True,
            )
        finally:
            for handle in set(files):
                handle.close()

    async def _supervise(self, job: _LocalJob, process: asyncio.subprocess.Process) -> None:
        """Wait for the script to exit, to be cancelled or to reach its time limit, and record the outcome."""
        exited = asyncio.ensure_future(process.wait())
        stopped = asyncio.ensure_future(job.stop.wait())
        try:
            done, _ = await asyncio.wait({exited, stopped}, timeout=job.limit, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if exited not in done:
            if not job.stop.is_set():
                job.task = ('CANCELLED', 0, TERMINATED)
                job.finish('TIMEOUT')
            await _terminate(process, exited)
            return
        status = process.returncode
        assert status is not None
        if status == 0:
            job.task = ('COMPLETED', 0, 0)
            job.finish('COMPLETED')
        elif status > 0:
            job.task = ('FAILED', status, 0)
            job.finish('FAILED', status)
        else:
            job.task = ('CANCELLED', 0, -status)
            job.finish('FAILED', 0, -status)

    def _job(self, job_id: str) -> _LocalJob:
        job = self._jobs.get(int(job_id)) if job_id.isdigit() else None
        if job is None:
            raise ApiError.job_not_found()
        return job

    def _describe(self, job: _LocalJob) -> dict[str, Any]:
        """Return the ``JobModel`` dict of ``job``."""
        now = time.time()
        start = None if job.start is None else int(job.start)
        end = None if job.end is None else int(job.end)
        elapsed = 0 if job.start is None else int((job.end or now) - job.start)
        state_reason = 'JobHeldUser' if job.hold and not job.finished else 'None'
        tasks = []
        if job.task is not None:
            task_state, task_exit, task_signal = job.task
            tasks.append(
                {
                    'id': f'{job.job_id}.batch',
                    'name': 'batch',
                    'status': job_status(task_state, None, task_exit, task_signal),
                    'time': job_time(start, end, elapsed, None),
                }
            )
        return {
            'jobId': str(job.job_id),
            'name': job.name,
            'status': job_status(job.state, state_reason, job.exit_code, job.signal),
            'tasks': tasks,
            'time': job_time(start, end, elapsed, job.limit),
            'account': job.account,
            'allocationNodes': 0 if job.start is None else 1,
            'cluster': self._settings.system_name,
            'group': self._group,
            'nodes': 'None assigned' if job.start is None else self._hostname,
            'partition': job.partition,
            'killRequestUser': None,
            'user': self._settings.username,
            'workingDirectory': job.spec.working_directory,
            'priority': 0 if job.hold else PRIORITY_BASE - job.job_id,
        }

    async def jobs(self, job_id: str | None = None) -> list[dict[str, Any]]:
        if job_id is not None:
            return [self._describe(self._job(job_id))]
        return [self._describe(self._jobs[number]) for number in sorted(self._jobs)]

    async def metadata(self, job_id: str) -> list[dict[str, Any]]:
        job = self._job(job_id)
        return [
            {
                'jobId': str(job.job_id),
                'script': job.script,
                'standardInput': job.standard_input,
                'standardOutput': job.standard_output,
                'standardError': job.standard_error,
            }
        ]

    async def cancel(self, job_id: str) -> None:
        """Cancel the job: it reads ``CANCELLED by <uid>`` at once, while its processes get SIGTERM, then SIGKILL.

        With ``realism.cancel_errors``, an unknown job or one that already ended is the real server's 500 with the
        error ``scancel --verbose`` reports; otherwise an unknown job is a 404 and an ended one stays as it is.
        """
        job = self._jobs.get(int(job_id)) if job_id.isdigit() else None
        if self._settings.realism.cancel_errors and (job is None or job.finished):
            reason = SCANCEL_UNKNOWN_JOB if job is None else SCANCEL_JOB_ENDED
            check_scancel(
                0, f'scancel: Terminating job {job_id}\nscancel: error: Kill job error on job id {job_id}: {reason}\n'
            )
        job = self._job(job_id)
        if not job.finished:
            self._stop(job)

    def _stop(self, job: _LocalJob) -> None:
        """Record the job as cancelled by the user and have its supervisor stop it."""
        if job.task is not None:
            job.task = ('CANCELLED', 0, TERMINATED)
        job.finish(f'CANCELLED by {self._uid}')
        job.stop.set()

    async def partitions(self) -> list[dict[str, Any]]:
        return [{'name': DEFAULT_PARTITION, 'cpus': os.cpu_count(), 'totalNodes': 1, 'partition': 'UP'}]

    async def nodes(self) -> list[dict[str, Any]]:
        running = sum(1 for job in self._jobs.values() if job.state == 'RUNNING')
        cpus = os.cpu_count() or 1
        return [
            {
                'name': self._hostname,
                'hostname': self._hostname,
                'address': '127.0.0.1',
                'cpus': cpus,
                'allocCpus': min(running, cpus),
                'idleCpus': max(cpus - running, 0),
                'cpuLoad': os.getloadavg()[0],
                'partitions': [DEFAULT_PARTITION],
                'state': ['MIXED' if running else 'IDLE'],
            }
        ]

    async def reservations(self) -> list[dict[str, Any]]:
        return []

    async def close(self) -> None:
        """Kill every job still running, wait for their supervisors and remove the spooled scripts."""
        runners = [job.runner for job in self._jobs.values() if job.runner is not None and not job.runner.done()]
        for job in self._jobs.values():
            if not job.finished:
                self._stop(job)
        await asyncio.gather(*runners, return_exceptions=True)
        await asyncio.to_thread(shutil.rmtree, self._spool, True)


async def _read_script(path: str) -> str:
    """Return the script file ``path``, or raise the :class:`ApiError` of ``sbatch`` failing to read it."""
    try:
        return await asyncio.to_thread(Path(path).read_text)
    except (OSError, UnicodeDecodeError) as exc:
        raise ApiError.scheduler_command(1, f'sbatch: error: Unable to open file {path}\n') from exc


def _write_script(path: Path, script: str) -> None:
    path.write_text(script)
    path.chmod(0o700)


def _open_files(job: _LocalJob) -> tuple[IO[bytes], IO[bytes], IO[bytes]]:
    """Open the job's standard input, output and error (one handle when output and error are the same file)."""
    with contextlib.ExitStack() as stack:
        stdin = stack.enter_context(open(job.standard_input, 'rb'))
        stdout = stack.enter_context(open(job.standard_output, 'wb'))
        stderr = stdout
        if job.standard_error != job.standard_output:
            stderr = stack.enter_context(open(job.standard_error, 'wb'))
        stack.pop_all()
    return stdin, stdout, stderr


def _kill_group(pid: int, signal_number: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal_number)


async def _terminate(process: asyncio.subprocess.Process, exited: asyncio.Future[int]) -> None:
    """Send SIGTERM to the process group, then SIGKILL if it has not exited after :data:`KILL_WAIT` seconds."""
    _kill_group(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.shield(exited), KILL_WAIT)
    except asyncio.TimeoutError:
        _kill_group(process.pid, signal.SIGKILL)
        await exited
