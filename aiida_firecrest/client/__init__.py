"""The FirecREST client shared by the transport and the scheduler: every request to a FirecREST server goes through
here.

- :mod:`~aiida_firecrest.client.firecrest_client`: the pyfirecrest client with the request budget, retries and the
  mapping of error answers;
- :mod:`~aiida_firecrest.client.client_credentials`: OIDC client-credentials tokens and the client secret;
- :mod:`~aiida_firecrest.client.server_facts`: the process-wide cache of what does not change on a server;
- :mod:`~aiida_firecrest.client.request_budget`: the pacing of requests, shared by every process of the machine (the
  server's rate limits);
- :mod:`~aiida_firecrest.client.exceptions`: the error tree, and the one place where answers become errors.

See ``ARCHITECTURE.md``.
"""
