"""Job backends."""

from .base import JobBackend, JobSpec


def create_backend(settings):  # placeholder
    raise NotImplementedError


__all__ = ("JobBackend", "JobSpec", "create_backend")
