"""The AiiDA scheduler plugin of a Slurm cluster reached through the FirecREST v2 compute API.

It works with the ``firecrest`` transport only, and makes every request through the client of that transport:

* ``submit_job``: ``POST /compute/{system}/jobs`` with the script that the transport uploaded (``scriptPath``), from
  the calculation's working directory, and no ``account``: FirecREST would hand one to ``sbatch --account``, which
  overrides the script's own. The script says which account pays: the CalcJob's ``account`` option, else the
  computer's ``billing_account`` (see :meth:`FirecrestScheduler._get_submit_script_header`).
* ``get_jobs``: ONE ``GET /compute/{system}/jobs`` for all the jobs that AiiDA asks about. A job missing from the
  answer is done (AiiDA then retrieves it), unless this process knows it unfinished (it submitted it, or a poll reported
  it pending or running) and it has been missing for less than
  :data:`~aiida_firecrest.scheduler.job_records.MISSING_GRACE_SECONDS`: FirecREST leaves out a job it has just submitted
  (pyfirecrest#199) and, for a few seconds, one that has just ended. Such a job is reported as last listed (queued if
  never listed) until the list reports it again, finished with its record.
* ``kill_job``: ``DELETE /compute/{system}/jobs/{jobid}``; a job that has ended or that FirecREST does not know
  cannot be cancelled (the real server answers 500): that is reported as a failed cancellation, not raised.
* ``get_detailed_job_info``: what the last poll learnt of the finished job, if it saw it finished (no request), else
  ``GET /compute/{system}/jobs/{jobid}``. The engine creates a new scheduler for every operation, so finished jobs are
  remembered process-wide (:mod:`~aiida_firecrest.scheduler.job_records`), keyed by (FirecREST URL, system, job id),
  for :data:`~aiida_firecrest.scheduler.job_records.FINISHED_MAX_AGE_SECONDS` and until the id is submitted or listed
  unfinished again (a server may reuse job ids).

The batch script, its job resources and the parsing of the scheduler output are those of aiida-core's Slurm plugin,
which this plugin composes: :class:`~aiida.schedulers.plugins.slurm.SlurmScheduler` writes the ``#SBATCH`` header and
parses the detailed job info, that :func:`~aiida_firecrest.scheduler.job_parsing.build_detailed_job_info` writes in the
shape of ``sacct --parsable``. The pure parsing of the API's answers is in :mod:`aiida_firecrest.scheduler.job_parsing`.
"""

from __future__ import annotations

import posixpath
import typing as t

from aiida.common.exceptions import FeatureNotAvailable, NotExistent
from aiida.schedulers import Scheduler, SchedulerError
from aiida.schedulers.datastructures import JobInfo, JobState, JobTemplate
from aiida.schedulers.plugins.slurm import SlurmJobResource, SlurmScheduler
from firecrest.FirecrestException import NotImplementedOnAPIversion

from ..client.exceptions import FirecrestError, translate_errors
from .job_parsing import build_detailed_job_info, parse_job
from .job_records import RECORDS, JobKey
from .job_submission import submit_once

if t.TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from aiida.engine.processes.exit_code import ExitCode
    from aiida.transports import Transport

    from ..transport.firecrest_transport import FirecrestTransport

__all__ = ('FirecrestScheduler',)


class FirecrestScheduler(Scheduler):
    """Slurm through the FirecREST v2 compute API (needs the ``firecrest`` transport)."""

    _logger = Scheduler._logger.getChild('firecrest')

    _features = {'can_query_by_user': False}

    _job_resource_class = SlurmJobResource

    def __init__(self) -> None:
        super().__init__()
        self._slurm = SlurmScheduler()

    # The transport

    def set_transport(self, transport: Transport) -> None:
        """Set the transport through which the scheduler talks to FirecREST.

        :raises SchedulerError: if ``transport`` is not a FirecREST transport.
        """
        from ..transport.firecrest_transport import FirecrestTransport

        if not isinstance(transport, FirecrestTransport):
            raise SchedulerError(
                f'the `firecrest` scheduler works only with the `firecrest` transport, not with '
                f'{type(transport).__name__}: configure the computer with `--transport firecrest`'
            )
        super().set_transport(transport)

    @property
    def _firecrest(self) -> FirecrestTransport:
        return t.cast('FirecrestTransport', self.transport)

    def _run(self, what: str, func: Callable[..., Awaitable[t.Any]], *args: t.Any, **kwargs: t.Any) -> t.Any:
        """Run the client coroutine ``func(*args, **kwargs)`` to completion through the transport.

        :param what: what the call does, for the error message.
        :raises SchedulerError: if it fails (with the original error as its cause).
        """
        try:
            with translate_errors():
                return self._firecrest.run_command_blocking(func, *args, **kwargs)
        except SchedulerError:
            raise
        except (FirecrestError, NotImplementedOnAPIversion, OSError, ValueError) as exc:
            raise SchedulerError(f'FirecREST could not {what}: {exc}') from exc

    def _key(self, job_id: str) -> JobKey:
        """Return the process-wide key of a job of the transport's FirecREST system."""
        transport = self._firecrest
        return (str(transport.url), transport.compute_resource, str(job_id))

    # The batch script and the scheduler output: aiida-core's Slurm plugin

    def _get_submit_script_header(self, job_tmpl: JobTemplate) -> str:
        """Return the ``#SBATCH`` header of the batch script: the same as aiida-core's Slurm plugin writes.

        The account billed is the CalcJob's own (its ``account`` option), else the ``billing_account`` of the computer
        the CalcJob is prepared for (see :func:`_calcjob_billing_account`), written as ``#SBATCH --account``. An account
        set in the custom scheduler commands comes after that line, and ``sbatch`` takes the last one: it wins over
        both. The job is submitted without an account (:meth:`submit_job`), so nothing overrides the script's.

        :param job_tmpl: the job template.
        :return: the header lines.
        """
        if not job_tmpl.account:
            billing_account = _calcjob_billing_account()
            if billing_account:
                job_tmpl = JobTemplate({**job_tmpl, 'account': billing_account})
        return self._slurm._get_submit_script_header(job_tmpl)

    def parse_output(
        self,
        detailed_job_info: dict[str, str | int] | None = None,
        stdout: str | None = None,
        stderr: str | None = None,
    ) -> ExitCode | None:
        """Return the exit code of a job that ran out of memory or walltime, or whose node failed, else None.

        The detailed job info is written by :meth:`get_detailed_job_info` in the shape of ``sacct --parsable``, which
        aiida-core's Slurm plugin parses: the job's end state decides (``OUT_OF_MEMORY``, ``TIMEOUT``, ``NODE_FAIL``),
        then Slurm's messages in the scheduler's ``stderr``. No request is made.

        :param detailed_job_info: the detailed job info stored on the node.
        :param stdout: the scheduler's standard output of the job.
        :param stderr: the scheduler's standard error of the job.
        :return: ``ERROR_SCHEDULER_OUT_OF_MEMORY``, ``ERROR_SCHEDULER_OUT_OF_WALLTIME``,
            ``ERROR_SCHEDULER_NODE_FAILURE`` of :class:`~aiida.engine.CalcJob`, or None.
        :raises ValueError: if ``detailed_job_info`` is not in that shape.
        """
        return self._slurm.parse_output(detailed_job_info, stdout, stderr)

    # Requests

    def submit_job(self, working_directory: str, filename: str) -> str | ExitCode:
        """Submit the batch script that the transport uploaded to ``working_directory``.

        A submission that may have created a job (its answer lost) is not repeated before the job is looked for in
        the jobs list by its working directory (:func:`~aiida_firecrest.scheduler.job_submission.submit_once`): the job
        is submitted once.

        No ``account`` goes with the request: FirecREST would pass it to ``sbatch --account``, which takes precedence
        over the script's ``#SBATCH --account`` line, and the script already names the account to bill (see
        :meth:`_get_submit_script_header`); a script that names none is billed to the user's default account.

        :calls: ``POST /compute/{system}/jobs`` (``scriptPath``, ``workingDirectory``); after an uncertain answer,
            ``GET /compute/{system}/jobs`` until the job is listed (at most 5 times) before submitting again
        :param working_directory: the absolute path of the calculation's working directory.
        :param filename: the name of the batch script in it.
        :return: the job id; or ``ERROR_SCHEDULER_INVALID_ACCOUNT`` if Slurm refuses the script's account.
        :raises SchedulerError: if FirecREST refuses the job or cannot be reached.
        """
        from aiida.engine import CalcJob

        transport = self._firecrest
        script = posixpath.join(working_directory, filename)
        key = (str(transport.url), transport.compute_resource, posixpath.normpath(working_directory))
        try:
            job_id: str = self._run(
                f'submit {script}',
                submit_once,
                transport.client,
                transport.compute_resource,
                working_directory,
                script,
                key=key,
            )
        except SchedulerError as exc:
            if 'invalid account' in str(exc).lower():
                self.logger.error(f'Slurm refused the account of {script}: {exc}')
                return t.cast('ExitCode', CalcJob.exit_codes.ERROR_SCHEDULER_INVALID_ACCOUNT)
            raise
        RECORDS.submitted(self._key(job_id))
        self.logger.info(f'submitted {script} as job {job_id}')
        return job_id

    @t.overload
    def get_jobs(
        self, jobs: list[str] | None = None, user: str | None = None, as_dict: t.Literal[False] = False
    ) -> list[JobInfo]: ...

    @t.overload
    def get_jobs(
        self, jobs: list[str] | None = None, user: str | None = None, as_dict: t.Literal[True] = ...
    ) -> dict[str, JobInfo]: ...

    def get_jobs(
        self, jobs: list[str] | None = None, user: str | None = None, as_dict: bool = False
    ) -> list[JobInfo] | dict[str, JobInfo]:
        """Return the user's jobs, or those of ``jobs`` that FirecREST still reports, with ONE request.

        Asked about one job (the engine's poll while one CalcJob of the computer runs), FirecREST is asked about that
        job alone: the same one request, answered by Slurm for that job only, and reporting the job as soon as it ends,
        where the jobs list leaves it out for a few seconds. Asked about several, or all, the jobs list answers.

        A job of ``jobs`` missing from the answer is left out (AiiDA takes it as done), unless this process knows it
        unfinished and it has been missing for less than
        :data:`~aiida_firecrest.scheduler.job_records.MISSING_GRACE_SECONDS` (FirecREST leaves out a job just submitted,
        and for a few seconds one just ended): that one is reported as last listed, ``QUEUED`` if never listed, so that
        AiiDA polls again and learns the end from the list, with the job's final record. A finished job is remembered
        for :meth:`get_detailed_job_info`.

        :calls: ``GET /compute/{system}/jobs/{jobid}`` for one job, else ``GET /compute/{system}/jobs``
        :param jobs: the ids of the jobs to report; all of the user's jobs if None.
        :param user: only the jobs of this user (FirecREST only reports the jobs of the token's user; ``'$USER'``
            means that one).
        :param as_dict: return a dict of job id to job info instead of a list.
        :raises SchedulerError: if FirecREST cannot be reached or refuses.
        """
        transport = self._firecrest
        wanted: list[str] | None = None
        if jobs is not None:
            wanted = [str(jobs)] if isinstance(jobs, (str, int)) else [str(job_id) for job_id in jobs]

        if wanted is not None and len(wanted) == 1:
            answer = self._job_by_id(wanted[0])
        else:
            answer = self._run('list the jobs', transport.client.job_info, transport.compute_resource)
        found: dict[str, JobInfo] = {}
        for job in answer or []:
            try:
                info = parse_job(job)
            except (ValueError, TypeError, AttributeError) as exc:
                self.logger.warning(f'skipping a job that FirecREST reported in an unexpected shape: {exc}')
                continue
            if wanted is not None and info.job_id not in wanted:
                continue
            if user is not None and user != '$USER' and info.job_owner not in (None, user):
                continue
            if info.job_state is JobState.UNDETERMINED:
                self.logger.warning(f'unknown state {info.job_substate!r} of job {info.job_id}')
            found[info.job_id] = info
            RECORDS.reported(self._key(info.job_id), info, dict(job))

        for job_id in wanted or []:
            if job_id not in found and (stand_in := RECORDS.missing(self._key(job_id))) is not None:
                self.logger.info(f'job {job_id} is missing from the FirecREST jobs list: {stand_in.annotation}')
                found[job_id] = stand_in

        if as_dict:
            return found
        return list(found.values())

    def _job_by_id(self, job_id: str) -> list[dict[str, t.Any]]:
        """Return FirecREST's answer about one job: a list of it, or an empty one if FirecREST does not know it.

        :raises SchedulerError: if FirecREST cannot be reached or fails otherwise.
        """
        transport = self._firecrest
        try:
            answer = self._run(f'get job {job_id}', transport.client.job_info, transport.compute_resource, jobid=job_id)
        except SchedulerError as exc:
            if _status_code(exc) != 404:
                raise
            return []
        return list(answer or [])

    def kill_job(self, jobid: str) -> bool:
        """Cancel a job.

        FirecREST fails to cancel a job that has ended or that it does not know (the real server answers 500 with
        ``scancel``'s error): the cancellation is reported failed, and AiiDA then looks at the job's state to tell a
        job that has ended from one that is still running.

        :calls: ``DELETE /compute/{system}/jobs/{jobid}``
        :param jobid: the job id.
        :return: True if FirecREST cancelled the job; False (and the reason logged) otherwise.
        """
        transport = self._firecrest
        try:
            self._run(f'cancel job {jobid}', transport.client.cancel_job, transport.compute_resource, str(jobid))
        except SchedulerError as exc:
            self.logger.warning(f'{exc} (the job may have ended already)')
            return False
        self.logger.info(f'cancelled job {jobid}')
        return True

    def can_get_detailed_job_info(self) -> bool:
        """Return True: the detailed job info comes from the FirecREST job."""
        return True

    def _get_detailed_job_info_command(self, job_id: str) -> str:
        raise FeatureNotAvailable('the detailed job info comes from the FirecREST API, not from a command')

    def get_detailed_job_info(self, job_id: str) -> dict[str, t.Any]:
        """Return the detailed job info of a job, in the shape of ``sacct --parsable`` (see :meth:`parse_output`).

        No request if a poll saw the job finished (in this process); else one.

        :calls: ``GET /compute/{system}/jobs/{jobid}`` (unless a poll saw the job finished)
        :param job_id: the job id.
        :return: ``retval`` 0, ``stdout`` (the ``sacct`` fields), ``stderr``, and ``job`` (the FirecREST answer); if
            FirecREST does not know the job, ``retval`` 1 and the reason in ``stderr``.
        :raises SchedulerError: if FirecREST cannot be reached or fails otherwise.
        """
        job_id = str(job_id)
        job = RECORDS.finished(self._key(job_id))
        if job is None:
            transport = self._firecrest
            try:
                answer = self._run(
                    f'get job {job_id}', transport.client.job_info, transport.compute_resource, jobid=job_id
                )
            except SchedulerError as exc:
                if _status_code(exc) != 404:
                    raise
                self.logger.warning(f'FirecREST does not know job {job_id}: {exc}')
                return {'retval': 1, 'stdout': '', 'stderr': str(exc)}
            matching = [job for job in answer or [] if str(job.get('jobId')) == job_id]
            if not matching:
                return {'retval': 1, 'stdout': '', 'stderr': f'FirecREST did not report job {job_id}: {answer!r}'}
            job = dict(matching[0])
            RECORDS.reported(self._key(job_id), parse_job(job), job)
        return build_detailed_job_info(job)


def _calcjob_billing_account() -> str | None:
    """Return the ``billing_account`` of the computer of the CalcJob being prepared, if it has one.

    aiida-core writes the batch script in ``CalcJob.presubmit``, with a scheduler that has no transport and no
    computer; the CalcJob being prepared is the engine's current process, whose computer's AuthInfo holds the option.

    :return: the billing account; None outside a CalcJob, for a computer not configured for the CalcJob's user, or
        for an empty option.
    """
    from aiida.engine import CalcJob, Process

    process = Process.current()
    if not isinstance(process, CalcJob):
        return None
    try:
        auth_params = process.node.get_authinfo().get_auth_params()
    except NotExistent:
        return None
    return str(auth_params.get('billing_account') or '') or None


def _status_code(exc: BaseException) -> int | None:
    """Return the HTTP status of the FirecREST answer behind ``exc`` (following its causes), or None.

    :param exc: a :class:`SchedulerError` raised from a :class:`~aiida_firecrest.client.exceptions.FirecrestError`
        (whose ``status`` is the answer's), or from a pyfirecrest exception (whose ``responses`` hold the answers).
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        status = getattr(current, 'status', None)
        if isinstance(status, int):
            return status
        responses = getattr(current, 'responses', None)
        if responses:
            return int(responses[-1].status_code)
        current = current.__cause__ or current.__context__
    return None
