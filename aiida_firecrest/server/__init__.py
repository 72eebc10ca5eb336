"""A local FirecREST v2 server: the real v2 HTTP API on loopback, backed by the local machine.

It serves the paths that pyfirecrest's ``firecrest.v2`` clients call, backed by the local filesystem, a job backend
(real Slurm, or batch scripts run as local processes) and a real S3 server for staged transfers. It is the backend of
the plugin's tests and the embedded default of the demo; other plugins can use it in their tests as well::

    from aiida_firecrest.server import LocalFirecrest, ServerSettings

    with LocalFirecrest(ServerSettings(roots=[tmp_path])) as server:
        client_config = server.client_config  # url, token_uri, client_id, client_secret, ...

By default it behaves like the real FirecREST 2.5 server (eth-cscs/firecrest-v2, ssh mode, Slurm 22.05) where that is
harsh: the order of its checks, its statuses and messages, its command timeout, quoting, C-quoted listings, compress,
the gap in the jobs list, the hang of an empty upload... Each such behaviour is a named field of
:class:`RealismSettings`, documented there, and a test turns one off by name to get a kind server.

In front of it, as CSCS's API gateway, the server can enforce a request budget per client
(``ServerSettings.rate_limit``, e.g. :data:`CSCS_RATE_LIMIT`, ``serve --rate-limit 10/s,120/min``; off by default, see
:mod:`~aiida_firecrest.server.ratelimit`), and :class:`FaultSettings` injects faults: errors, delays, dropped
connections before or after the server acted, restarts that revoke every token.

Where the local server must differ from the real one:

- It runs no SSH: an ops command line runs with ``bash -c`` on this machine, as the user running the server (the real
  server runs it in the user's login shell through sshd); the SSH output buffers and channel window are emulated (see
  :mod:`~aiida_firecrest.server.commands`), and so is the answer of a download hung on a full channel, chosen by the
  file's size, which the server reads for that purpose alone.
- Every path of a request (targets and link paths too) must lie in an exposed root, as on a real deployment with
  ``probing.services`` set; the check runs in the route, after the body is validated. The real server checks only the
  main path, before.
- As on the real server, a path holding ``'`` can end the quotes of a command line and add commands to it: the server
  is meant for loopback and tests, with one user.
- Transfer jobs run in the first exposed root (the real server uses ``<default work dir>/<user>``), and their scripts
  are this server's own, with the real commands and their quoting and escaping.
- The staged upload's job polls for its object every 0.2 s (the real job sleeps 60 s between checks).
- Job backends: real Slurm, or local processes that report themselves as Slurm 22.05 does.
"""

from .runner import LocalFirecrest
from .settings import CSCS_RATE_LIMIT, FaultSettings, RateLimit, RealismSettings, ServerSettings

__all__ = ('CSCS_RATE_LIMIT', 'FaultSettings', 'LocalFirecrest', 'RateLimit', 'RealismSettings', 'ServerSettings')
