"""The ``conftest.py`` at the root of a plugin's tests: AiiDA's fixtures (aiida-firecrest's plugin loads itself)."""

pytest_plugins = ['aiida.tools.pytest_fixtures']
