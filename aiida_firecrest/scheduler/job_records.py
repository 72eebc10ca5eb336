"""What this process knows of the jobs it polls, shared by every scheduler instance.

The engine creates a new :class:`~aiida_firecrest.scheduler.FirecrestScheduler` for every operation (submit, poll,
retrieve), so what one poll learnt must outlive the instance: :data:`RECORDS` keeps, per (FirecREST URL, system, job
id), the finished jobs FirecREST reported (their answer is the detailed job info, with no further request) and the
jobs known to be unfinished (reported as last listed while FirecREST's jobs list leaves them out for a moment).

A server may give a job id again (a Slurm state reset, the local server's process backend restarting at 1): a
finished record is dropped when the id is submitted or listed unfinished again, and is trusted for
:data:`FINISHED_MAX_AGE_SECONDS` at most, after which FirecREST is asked again.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import threading
import time
import typing as t

from aiida.schedulers.datastructures import JobInfo, JobState

__all__ = ('FINISHED_MAX_AGE_SECONDS', 'MISSING_GRACE_SECONDS', 'RECORDS', 'RECORDS_SIZE', 'JobKey', 'JobRecords')

MISSING_GRACE_SECONDS = 60.0
"""How long a job that this process knows to be unfinished may be missing from FirecREST's jobs list before it is taken
as done. FirecREST may not list a job it has just submitted (pyfirecrest#199), nor, for about 4 s, one that has just
ended (its jobs list merges ``squeue`` and ``sacct``, and the accounting lags the controller)."""

FINISHED_MAX_AGE_SECONDS = 3600.0
"""How long the answer of a finished job stands for its id. The engine asks for the detailed job info right after the
poll that saw the job finished; an older record may belong to another job that the server gave the same id."""

RECORDS_SIZE = 10_000
"""How many finished jobs, and how many unfinished ones, the process remembers (the oldest are forgotten first)."""

JobKey = tuple[str, str, str]
"""(FirecREST URL, system name, job id)"""


@dataclasses.dataclass
class _Unfinished:
    """A job that this process knows to be unfinished: submitted by it, or reported pending or running by a poll."""

    info: JobInfo | None
    """What the last poll reported; None if no poll has reported the job yet."""
    missing_since: float | None
    """When the job went missing from the jobs list (``time.monotonic()``): its submission if no poll has reported it
    yet; None while the polls report it."""


@dataclasses.dataclass
class _Finished:
    """FirecREST's answer of a finished job, and when it was recorded (``time.monotonic()``)."""

    job: dict[str, t.Any]
    recorded: float


def _bounded_put(records: collections.OrderedDict[JobKey, t.Any], key: JobKey, value: t.Any) -> None:
    """Put ``value`` at ``key`` as the newest entry, forgetting the oldest beyond :data:`RECORDS_SIZE`."""
    records[key] = value
    records.move_to_end(key)
    while len(records) > RECORDS_SIZE:
        records.popitem(last=False)


class JobRecords:
    """The finished jobs that FirecREST reported, and the jobs known to be unfinished; safe across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._finished: collections.OrderedDict[JobKey, _Finished] = collections.OrderedDict()
        self._unfinished: collections.OrderedDict[JobKey, _Unfinished] = collections.OrderedDict()

    def submitted(self, key: JobKey) -> None:
        """Record a job that this process has just submitted (a finished job of the same id is another job)."""
        with self._lock:
            self._finished.pop(key, None)
            _bounded_put(self._unfinished, key, _Unfinished(info=None, missing_since=time.monotonic()))

    def reported(self, key: JobKey, info: JobInfo, job: dict[str, t.Any]) -> None:
        """Record what FirecREST reported of a job: ``info``, parsed from its answer ``job``."""
        with self._lock:
            if info.job_state is JobState.DONE:
                self._unfinished.pop(key, None)
                _bounded_put(self._finished, key, _Finished(job=job, recorded=time.monotonic()))
            else:
                self._finished.pop(key, None)
                _bounded_put(self._unfinished, key, _Unfinished(info=info, missing_since=None))

    def finished(self, key: JobKey) -> dict[str, t.Any] | None:
        """Return FirecREST's answer of a finished job, if it reported the job finished less than
        :data:`FINISHED_MAX_AGE_SECONDS` ago (and the id was not submitted or listed unfinished since)."""
        with self._lock:
            record = self._finished.get(key)
            if record is None:
                return None
            if time.monotonic() - record.recorded > FINISHED_MAX_AGE_SECONDS:
                del self._finished[key]
                return None
            return record.job

    def missing(self, key: JobKey) -> JobInfo | None:
        """Return what to report of a job missing from the jobs list: None (it is done) unless it is known unfinished
        and has been missing for less than :data:`MISSING_GRACE_SECONDS`; then its last reported info, or ``QUEUED``
        if no poll has reported it yet."""
        now = time.monotonic()
        with self._lock:
            record = self._unfinished.get(key)
            if record is None:
                return None
            if record.missing_since is None:
                record.missing_since = now
            if now - record.missing_since > MISSING_GRACE_SECONDS:
                del self._unfinished[key]
                return None
        return _stand_in(key[2], record.info)

    def clear(self) -> None:
        """Forget everything (as a new process)."""
        with self._lock:
            self._finished.clear()
            self._unfinished.clear()


def _stand_in(job_id: str, last: JobInfo | None) -> JobInfo:
    """Return the info reported for a known unfinished job that the jobs list leaves out: as last reported, or
    ``QUEUED`` if never reported (FirecREST does not list it yet)."""
    if last is None:
        info = JobInfo()
        info.job_id = job_id
        info.job_state = JobState.QUEUED
        info.annotation = 'submitted moments ago; FirecREST does not list it yet'
        return info
    info = copy.copy(last)
    info.annotation = 'missing from the FirecREST jobs list for now; as last listed'
    return info


RECORDS = JobRecords()
"""The records of this process."""
