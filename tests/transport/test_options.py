"""What ``verdi computer configure firecrest`` asks and says: the options' prompts and help texts."""

from __future__ import annotations

import re
from typing import Any

import click
import pytest

from aiida_firecrest.transport import FirecrestTransport

OPTIONS: dict[str, dict[str, Any]] = dict(FirecrestTransport.auth_options)


def asked(spec: dict[str, Any]) -> bool:
    """Whether ``verdi computer configure`` prompts for the option (its ``prompt_fn`` says so, if it has one)."""
    prompt_fn = spec.get('prompt_fn')
    return prompt_fn is None or bool(prompt_fn(click.Context(click.Command('configure'))))


def test_options_not_asked() -> None:
    """``use_login_shell`` (FirecREST runs no shell) and ``workdir`` (only for the file of ``serve``) are not asked."""
    assert {name for name, spec in OPTIONS.items() if not asked(spec)} == {'use_login_shell', 'workdir'}


def test_use_login_shell_says_it_means_nothing() -> None:
    assert 'Means nothing for FirecREST' in OPTIONS['use_login_shell']['help']


def test_temp_directory_example_is_accepted() -> None:
    """The path the help suggests passes the option's own check."""
    spec = OPTIONS['temp_directory']
    (example,) = re.findall(r'e\.g\. (\S+?)\.?\s', spec['help'])
    assert spec['callback'](None, None, example) == example


@pytest.mark.parametrize('value', ['$SCRATCH/.aiida-firecrest', '~/.aiida-firecrest', 'scratch/tmp'])
def test_temp_directory_refuses_what_the_server_would_not_expand(value: str) -> None:
    with pytest.raises(click.BadParameter, match='not an absolute path'):
        OPTIONS['temp_directory']['callback'](None, None, value)


@pytest.mark.parametrize('billed', ['CalcJobs that set no `account` option', 'transfer jobs'])
def test_billing_account_says_what_it_bills(billed: str) -> None:
    assert billed in ' '.join(OPTIONS['billing_account']['help'].split())
