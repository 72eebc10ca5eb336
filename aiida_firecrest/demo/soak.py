"""The soak: many CalcJobs through the AiiDA daemon while the local server injects every fault it knows.

:func:`run_soak` submits ``core.arithmetic.add`` CalcJobs to a running daemon, with every fault kind of
:class:`~aiida_firecrest.server.FaultSettings` at one rate (:func:`every_fault`: 429, 500 and 503, a connection
dropped before and after the server acted, a delay, a new job missing from the scheduler's answers for a while), short
tokens (:func:`soak_server_settings`: a new one every minute) and one restart of the server once half of the CalcJobs
have ended (every token revoked, the API unavailable for a while). It then plays the paused CalcJobs, as ``verdi process
play`` does, switches the faults off and counts, from the server's own records: the jobs submitted for each CalcJob
(more than one is a duplicate), the requests and the answers of each kind of fault.

The caller owns the stack: a loaded profile with a broker, a daemon running, the server (:func:`soak_server_settings`)
and a code on it. ``benchmarks/soak.py`` builds it on PostgreSQL and RabbitMQ; ``tests/e2e/test_soak.py`` on the test
profile.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from aiida import orm
from aiida.engine import submit
from aiida.engine.processes.control import play_processes
from firecrest import ClientCredentialsAuth
from firecrest.v2 import Firecrest

from ..server import FaultSettings, LocalFirecrest, ServerSettings
from ..server.middleware import DROPPED, DroppedConnectionError, RequestRecord
from .steps import arithmetic_add

__all__ = (
    'SOAK_TOKEN_LIFETIME',
    'Outcomes',
    'SoakResult',
    'every_fault',
    'run_soak',
    'set_request_budget',
    'soak_server_settings',
)

SOAK_TOKEN_LIFETIME = 60
"""The lifetime of the server's tokens in a soak, in seconds: every client needs a new token every minute."""
POLL = 0.5
"""Seconds between two looks at the CalcJobs' states."""
FAULT_STATUSES = {429: 'answered 429', 500: 'answered 500', 503: 'answered 503', 401: 'answered 401'}
"""The statuses of fault answers counted apart (503 includes the restart's downtime, 401 the revoked and expired
tokens), with :data:`~aiida_firecrest.server.middleware.DROPPED` for dropped connections."""


def soak_server_settings(
    root: Path,
    scheduler: Literal['local', 'slurm'] = 'local',
    account: str | None = None,
    token_lifetime: int = SOAK_TOKEN_LIFETIME,
) -> ServerSettings:
    """Return the settings of a soak's server exposing ``root``: tokens of ``token_lifetime`` seconds, no faults yet
    (:func:`run_soak` switches them on once the computer is set up)."""
    return ServerSettings(roots=[root], scheduler=scheduler, account=account, token_lifetime=token_lifetime)


def set_request_budget(computer: orm.Computer, per_second: float, per_minute: float) -> None:
    """Give the transport of ``computer`` (for the current user) a request budget (0: none), as ``verdi computer
    configure`` would: the soak's server enforces no rate limit, its 429s are injected."""
    user = orm.User.collection.get_default()
    assert user is not None, 'the profile has no default user'
    authinfo = computer.get_authinfo(user)
    params = {**authinfo.get_auth_params(), 'requests_per_second': per_second, 'requests_per_minute': per_minute}
    authinfo.set_auth_params(params)


def every_fault(
    rate: float,
    *,
    delay: float = 2.0,
    job_invisible: float = 5.0,
    restart_downtime: float = 2.0,
    seed: int | None = None,
) -> FaultSettings:
    """Return fault settings with every kind at ``rate``: 429, a server error (500 or 503), a connection dropped before
    the server acts, one dropped after it acted, a delay of ``delay`` seconds; every new job is missing from the
    scheduler's answers for ``job_invisible`` seconds, and a restart makes the API unavailable for ``restart_downtime``
    seconds."""
    return FaultSettings(
        rate_limit_fraction=rate,
        server_error_fraction=rate,
        server_error_status=(500, 503),
        drop_fraction=rate,
        drop_after_acting_fraction=rate,
        delay_fraction=rate,
        delay=delay,
        job_invisible_seconds=job_invisible,
        restart_downtime=restart_downtime,
        seed=seed,
    )


@dataclasses.dataclass(frozen=True)
class Submitted:
    """A CalcJob of the soak: ``x + y`` on the cluster."""

    node: orm.CalcJobNode
    x: int
    y: int

    @property
    def settled(self) -> bool:
        """Whether it ended, or is paused (waiting for a human)."""
        return bool(self.node.is_terminated or self.node.paused)

    @property
    def wrong(self) -> bool:
        """Whether it finished OK with a sum other than ``x + y`` (or none)."""
        total = self.node.outputs.sum.value if 'sum' in self.node.outputs else None
        return bool(self.node.is_finished_ok) and total != self.x + self.y

    @property
    def state(self) -> str:
        """``finished OK``, ``paused``, ``excepted``, ``failed`` (finished with another exit status), ``killed`` or
        ``unsettled`` (still running)."""
        if self.node.paused:
            return 'paused'
        if not self.node.is_terminated:
            return 'unsettled'
        if self.node.is_finished:
            return 'finished OK' if self.node.is_finished_ok else 'failed'
        return 'excepted' if self.node.is_excepted else 'killed'


@dataclasses.dataclass(frozen=True)
class Outcomes:
    """How many CalcJobs are in each state (see :attr:`Submitted.state`), and how many finished OK with a wrong sum."""

    states: dict[str, int]
    wrong: int

    @classmethod
    def of(cls, calcjobs: Sequence[Submitted]) -> Outcomes:
        """Count the states of ``calcjobs`` now."""
        states = collections.Counter(calcjob.state for calcjob in calcjobs)
        return cls({state: states[state] for state in sorted(states)}, sum(calcjob.wrong for calcjob in calcjobs))

    def count(self, state: str) -> int:
        """How many CalcJobs are in ``state``."""
        return self.states.get(state, 0)


@dataclasses.dataclass(frozen=True)
class SoakResult:
    """What a soak did: the CalcJobs' outcomes, the jobs on the server, the requests and their faults."""

    calcjobs: int
    fault_rate: float
    seconds: float
    """From the first submission to the end of the last CalcJob (the paused ones played included)."""
    first_pass: Outcomes
    """The outcomes once every CalcJob ended or paused."""
    played: int
    """The CalcJobs found paused and played."""
    final: Outcomes
    """The outcomes after the paused CalcJobs were played."""
    duplicates: int
    """Jobs on the server beyond the first in a CalcJob's working directory: each a submission doubled."""
    jobs_on_server: int
    """The jobs the server lists in the CalcJobs' working directories."""
    restarts: int
    """The restarts of the server during the soak."""
    requests: int
    """Requests to the FirecREST API (the token endpoint's apart)."""
    token_requests: int
    fault_answers: dict[str, int]
    """API requests answered with a fault, per kind (``answered 429``, ``answered 500``, ``dropped``...)."""
    reports: list[str]
    """The process report of every CalcJob not finished OK in the end (or wrong)."""

    @property
    def lost(self) -> int:
        """CalcJobs not finished OK even after the paused ones were played."""
        return self.calcjobs - self.final.count('finished OK')

    @property
    def retried(self) -> int:
        """Requests answered with a fault: each was repeated, by the client or by the engine."""
        return sum(self.fault_answers.values())

    def violations(self, *, expect_all_ok: bool = False) -> list[str]:
        """The invariants broken: a CalcJob lost, wrong or submitted twice; with ``expect_all_ok``, also one not
        finished OK the first time (paused, excepted...)."""
        found = []
        if self.lost:
            found.append(f'{self.lost} CalcJobs not finished OK after the paused ones were played: {self.final.states}')
        if self.final.wrong:
            found.append(f'{self.final.wrong} CalcJobs finished OK with a wrong sum')
        if self.duplicates:
            found.append(f'{self.duplicates} duplicate jobs on the server')
        not_ok = self.calcjobs - self.first_pass.count('finished OK')
        if expect_all_ok and not_ok:
            found.append(f'{not_ok} CalcJobs not finished OK the first time: {self.first_pass.states}')
        return found

    def rows(self) -> list[list[str]]:
        """The figures as a table: a header, then one row per figure."""
        first, final = self.first_pass, self.final
        rows = [
            ['figure', 'value'],
            ['CalcJobs', str(self.calcjobs)],
            ['fault rate (each kind)', f'{self.fault_rate:.0%}'],
            ['finished OK', str(first.count('finished OK'))],
            ['paused', str(first.count('paused'))],
            ['excepted', str(first.count('excepted'))],
            ['failed or killed', str(first.count('failed') + first.count('killed'))],
            ['not ended in time', str(first.count('unsettled'))],
            [
                'paused, played: then finished OK',
                f'{self.played}: {final.count("finished OK") - first.count("finished OK")}',
            ],
            ['lost (not finished OK in the end)', str(self.lost)],
            ['wrong results', str(final.wrong)],
            ['duplicate jobs on the server', str(self.duplicates)],
            ['jobs on the server', str(self.jobs_on_server)],
            ['server restarts', str(self.restarts)],
            ['API requests (token requests)', f'{self.requests} ({self.token_requests})'],
            ['retried: answered with a fault', str(self.retried)],
        ]
        rows += [[f'  {kind}', str(count)] for kind, count in self.fault_answers.items()]
        rows.append(['wall time', f'{self.seconds:.0f} s'])
        return rows

    def as_json(self) -> dict[str, Any]:
        """Every figure, for a JSON file."""
        return {
            **dataclasses.asdict(self),
            'lost': self.lost,
            'retried': self.retried,
            'violations': self.violations(),
        }


def run_soak(
    server: LocalFirecrest,
    code: orm.InstalledCode,
    calcjobs: int,
    faults: FaultSettings,
    *,
    timeout: float,
    progress: Callable[[str], None] = lambda line: None,
) -> SoakResult:
    """Run ``calcjobs`` CalcJobs of ``code`` through the daemon while ``server`` injects ``faults``; restart the server
    once half of them have ended; play the paused ones; count what happened.

    :param server: the local server of ``code``'s computer (its faults are switched off at the end).
    :param code: a ``core.arithmetic.add`` code on the server (e.g. ``/bin/bash``).
    :param calcjobs: how many CalcJobs to submit.
    :param faults: the faults to inject, e.g. :func:`every_fault`.
    :param timeout: seconds to wait for the CalcJobs to end or pause, and again for the played ones.
    :param progress: called with a line of progress every few seconds.
    """
    with _quiet_dropped_connections():
        return _soak(server, code, calcjobs, faults, timeout, progress)


def _soak(
    server: LocalFirecrest,
    code: orm.InstalledCode,
    calcjobs: int,
    faults: FaultSettings,
    timeout: float,
    progress: Callable[[str], None],
) -> SoakResult:
    mark = server.request_log.mark()
    restarts = server.app.state.restarts.count
    server.settings.faults = faults
    start = time.monotonic()
    submitted = [Submitted(_submit_add(code, index, 1), index, 1) for index in range(calcjobs)]
    progress(f'{calcjobs} CalcJobs submitted')
    restart_halfway = _once(server.restart, lambda ended: ended >= (calcjobs + 1) // 2)
    _wait_settled(submitted, timeout, restart_halfway, progress)
    first_pass = Outcomes.of(submitted)
    paused: list[orm.ProcessNode] = [calcjob.node for calcjob in submitted if calcjob.node.paused]
    if paused:
        progress(f'playing {len(paused)} paused CalcJobs')
        play_processes(paused)
        _wait_settled(submitted, timeout, lambda ended: None, progress)
    seconds = time.monotonic() - start
    server.settings.faults = FaultSettings()
    final = Outcomes.of(submitted)
    jobs = _jobs_per_directory(server, [calcjob.node for calcjob in submitted])
    records = server.request_log.since(mark, api_only=False)
    return SoakResult(
        calcjobs=calcjobs,
        fault_rate=faults.rate_limit_fraction,
        seconds=seconds,
        first_pass=first_pass,
        played=len(paused),
        final=final,
        duplicates=sum(max(count - 1, 0) for count in jobs.values()),
        jobs_on_server=sum(jobs.values()),
        restarts=server.app.state.restarts.count - restarts,
        requests=sum(record.is_api for record in records),
        token_requests=sum(not record.is_api for record in records),
        fault_answers=_fault_answers(records),
        reports=[_report(calcjob.node) for calcjob in submitted if calcjob.state != 'finished OK' or calcjob.wrong],
    )


def _submit_add(code: orm.InstalledCode, x: int, y: int) -> orm.CalcJobNode:
    """Submit ``x + y`` with ``code`` to the daemon; return its node."""
    node = submit(arithmetic_add(code, x, y).builder())
    assert isinstance(node, orm.CalcJobNode)
    return node


class _NotDroppedConnection(logging.Filter):
    """Lets through every record but the server's traceback of a connection it dropped on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.exc_info is None or not isinstance(record.exc_info[1], DroppedConnectionError)


@contextlib.contextmanager
def _quiet_dropped_connections() -> Iterator[None]:
    """Keep the web server's log of the connections dropped by fault injection out of the output."""
    logger = logging.getLogger('uvicorn.error')
    log_filter = _NotDroppedConnection()
    logger.addFilter(log_filter)
    try:
        yield
    finally:
        logger.removeFilter(log_filter)


def _once(action: Callable[[], None], when: Callable[[int], bool]) -> Callable[[int], None]:
    """Return a function of the number of CalcJobs ended that runs ``action`` the first time ``when`` holds."""
    done = False

    def maybe(ended: int) -> None:
        nonlocal done
        if not done and when(ended):
            done = True
            action()

    return maybe


def _wait_settled(
    calcjobs: Sequence[Submitted], timeout: float, on_poll: Callable[[int], None], progress: Callable[[str], None]
) -> None:
    """Wait until every CalcJob ended or paused, or ``timeout`` seconds; call ``on_poll`` with the number ended."""
    deadline = time.monotonic() + timeout
    reported = time.monotonic()
    while True:
        ended = sum(calcjob.settled for calcjob in calcjobs)
        on_poll(ended)
        if ended == len(calcjobs) or time.monotonic() > deadline:
            return
        if time.monotonic() - reported >= 10:
            reported = time.monotonic()
            progress(f'{ended} of {len(calcjobs)} CalcJobs ended or paused: {Outcomes.of(calcjobs).states}')
        time.sleep(POLL)


def _jobs_per_directory(server: LocalFirecrest, nodes: Sequence[orm.CalcJobNode]) -> dict[str, int]:
    """Return how many jobs the server lists in each CalcJob's working directory (asked with the faults off, once the
    jobs list shows the jobs that just ended)."""
    time.sleep(server.settings.realism.jobs_list_gap)
    config = server.client_config()
    auth = ClientCredentialsAuth(config['client_id'], config['client_secret'], config['token_uri'])
    client = Firecrest(config['url'], authorization=auth)
    try:
        listed = client.job_info(config['compute_resource'])
    finally:
        client.close_session()
    directories = collections.Counter(str(job.get('workingDirectory', '')).rstrip('/') for job in listed)
    workdirs = [str(node.get_remote_workdir()).rstrip('/') for node in nodes if node.get_remote_workdir()]
    return {workdir: directories[workdir] for workdir in workdirs}


def _fault_answers(records: Sequence[RequestRecord]) -> dict[str, int]:
    """Count the API requests answered with each kind of fault."""
    statuses = collections.Counter(record.status for record in records if record.is_api)
    answers = {label: statuses[status] for status, label in FAULT_STATUSES.items()}
    answers['dropped'] = statuses[DROPPED]
    return answers


def _report(node: orm.CalcJobNode) -> str:
    """The process report of ``node``, as ``verdi process report`` prints it."""
    from aiida.cmdline.utils.common import get_calcjob_report

    return f'{node.process_state} [{node.exit_status}] {node.exit_message or ""}\n{get_calcjob_report(node)}'
