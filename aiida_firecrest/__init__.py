"""AiiDA transport and scheduler plugins for HPC clusters reached through the FirecREST v2 API."""

__version__ = '2.0.0'
