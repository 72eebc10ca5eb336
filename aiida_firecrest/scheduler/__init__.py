"""The AiiDA scheduler plugin ``firecrest``: Slurm jobs on an HPC cluster through the FirecREST v2 REST API.

:class:`FirecrestScheduler` (in :mod:`~aiida_firecrest.scheduler.firecrest_scheduler`) talks to the server through the
transport's client; :mod:`~aiida_firecrest.scheduler.job_parsing` turns the API's answers into AiiDA's job records,
without I/O. See ``ARCHITECTURE.md``.
"""

from .firecrest_scheduler import FirecrestScheduler

__all__ = ('FirecrestScheduler',)
