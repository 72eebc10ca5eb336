"""Job backends: what runs the batch jobs of the compute and transfer routes."""

from __future__ import annotations

from ..settings import ServerSettings
from .base import JobBackend, JobSpec
from .local import LocalBackend
from .slurm import SlurmBackend


def create_backend(settings: ServerSettings) -> JobBackend:
    """Return the job backend that ``settings.scheduler`` names."""
    if settings.scheduler == 'slurm':
        return SlurmBackend(settings)
    return LocalBackend(settings)


__all__ = ('JobBackend', 'JobSpec', 'LocalBackend', 'SlurmBackend', 'create_backend')
