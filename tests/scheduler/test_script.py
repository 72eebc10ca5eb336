"""The batch script: the same job template gives the same script as aiida-core's Slurm plugin, field by field."""

from __future__ import annotations

from typing import Any

import pytest
from aiida.common.datastructures import CodeRunMode
from aiida.schedulers.datastructures import JobTemplate, JobTemplateCodeInfo
from aiida.schedulers.plugins.slurm import SlurmJobResource, SlurmScheduler

from aiida_firecrest.scheduler import FirecrestScheduler

BASE: dict[str, Any] = {'job_resource': {'num_machines': 1, 'num_mpiprocs_per_machine': 1}}

TEMPLATES: dict[str, dict[str, Any]] = {
    'minimal': {},
    'partition': {'queue_name': 'debug'},
    'account': {'account': 'proj42'},
    'qos': {'qos': 'high'},
    'priority': {'priority': '100'},
    'walltime_seconds': {'max_wallclock_seconds': 5},
    'walltime_hours': {'max_wallclock_seconds': 3 * 3600 + 61},
    'walltime_days': {'max_wallclock_seconds': 2 * 86400 + 7},
    'memory': {'max_memory_kb': 4 * 1024 * 1024},
    'memory_unlimited': {'max_memory_kb': 0},
    'nodes': {'job_resource': {'num_machines': 4, 'num_mpiprocs_per_machine': 1}},
    'tasks_per_node': {'job_resource': {'num_machines': 2, 'num_mpiprocs_per_machine': 36}},
    'tot_mpiprocs': {'job_resource': {'num_machines': 2, 'tot_num_mpiprocs': 8}},
    'cpus_per_task': {'job_resource': {'num_machines': 1, 'num_mpiprocs_per_machine': 4, 'num_cores_per_mpiproc': 8}},
    'cores_per_machine': {
        'job_resource': {'num_machines': 1, 'num_mpiprocs_per_machine': 4, 'num_cores_per_machine': 16}
    },
    'custom_commands': {'custom_scheduler_commands': '#SBATCH --constraint=gpu\n#SBATCH --exclusive'},
    'custom_hold': {'custom_scheduler_commands': '#SBATCH --hold'},
    'submit_as_hold': {'submit_as_hold': True},
    'job_name': {'job_name': 'aiida-42'},
    'job_name_sanitised': {'job_name': ' +weird name/with$chars ' + 'x' * 200},
    'job_name_bad_start': {'job_name': '_underscore'},
    'output_file': {'sched_output_path': '_scheduler-stdout.txt'},
    'error_file': {'sched_output_path': 'out.txt', 'sched_error_path': '_scheduler-stderr.txt'},
    'joined_files': {'sched_output_path': 'out.txt', 'sched_error_path': 'err.txt', 'sched_join_files': True},
    'environment': {'job_environment': {'OMP_NUM_THREADS': '4', 'PATH': '$PATH:/opt/bin'}},
    'environment_double_quotes': {
        'job_environment': {'GREETING': 'hello $USER'},
        'environment_variables_double_quotes': True,
    },
    'import_sys_environment': {'import_sys_environment': True},
    'no_sys_environment': {'import_sys_environment': False},
    'rerunnable': {'rerunnable': True},
    'email': {'email': 'me@example.org', 'email_on_started': True, 'email_on_terminated': True},
    'shebang': {'shebang': '#!/bin/bash -l'},
    'prepend_append': {'prepend_text': 'module load x', 'append_text': 'echo done'},
    'everything': {
        'queue_name': 'normal',
        'account': 'acct',
        'qos': 'normal',
        'priority': '10',
        'max_wallclock_seconds': 3600,
        'max_memory_kb': 1024 * 1024,
        'job_name': 'all-options',
        'sched_output_path': '_scheduler-stdout.txt',
        'sched_error_path': '_scheduler-stderr.txt',
        'custom_scheduler_commands': '#SBATCH --hold',
        'job_environment': {'A': '1'},
        'rerunnable': False,
        'import_sys_environment': True,
        'job_resource': {'num_machines': 2, 'num_mpiprocs_per_machine': 2, 'num_cores_per_mpiproc': 3},
    },
}


def make_template(**fields: Any) -> JobTemplate:
    values = {**BASE, **fields}
    template = JobTemplate()
    template.job_resource = SlurmJobResource(**values.pop('job_resource'))
    for key, value in values.items():
        setattr(template, key, value)
    template.codes_info = [
        JobTemplateCodeInfo(cmdline_params=['/bin/echo', 'hello world'], stdout_name='aiida.out', stderr_name='err')
    ]
    template.codes_run_mode = CodeRunMode.SERIAL
    return template


@pytest.mark.parametrize('fields', TEMPLATES.values(), ids=TEMPLATES.keys())
def test_same_header_as_slurm(fields: dict[str, Any]) -> None:
    template = make_template(**fields)
    expected = SlurmScheduler()._get_submit_script_header(template)
    assert FirecrestScheduler()._get_submit_script_header(template) == expected


@pytest.mark.parametrize('fields', TEMPLATES.values(), ids=TEMPLATES.keys())
def test_same_script_as_slurm(fields: dict[str, Any]) -> None:
    template = make_template(**fields)
    assert FirecrestScheduler().get_submit_script(template) == SlurmScheduler().get_submit_script(template)


@pytest.mark.parametrize(
    ('fields', 'line'),
    [
        ({'queue_name': 'debug'}, '#SBATCH --partition=debug'),
        ({'account': 'proj42'}, '#SBATCH --account=proj42'),
        ({'qos': 'high'}, '#SBATCH --qos=high'),
        ({'max_wallclock_seconds': 5}, '#SBATCH --time=00:00:05'),
        ({'max_memory_kb': 2048}, '#SBATCH --mem=2'),
        ({'job_resource': {'num_machines': 3, 'num_mpiprocs_per_machine': 2}}, '#SBATCH --nodes=3'),
        ({'job_resource': {'num_machines': 3, 'num_mpiprocs_per_machine': 2}}, '#SBATCH --ntasks-per-node=2'),
        (
            {'job_resource': {'num_machines': 1, 'num_mpiprocs_per_machine': 1, 'num_cores_per_mpiproc': 4}},
            '#SBATCH --cpus-per-task=4',
        ),
        ({'custom_scheduler_commands': '#SBATCH --hold'}, '#SBATCH --hold'),
        ({'submit_as_hold': True}, '#SBATCH -H'),
        ({'job_name': 'aiida-42'}, '#SBATCH --job-name="aiida-42"'),
        ({'sched_output_path': 'o.txt'}, '#SBATCH --output=o.txt'),
        ({'sched_error_path': 'e.txt'}, '#SBATCH --error=e.txt'),
        ({'job_environment': {'OMP_NUM_THREADS': '4'}}, "export OMP_NUM_THREADS='4'"),
    ],
)
def test_field_reaches_script(fields: dict[str, Any], line: str) -> None:
    """Each field that the Slurm plugin honours shows in the script (so the comparison above is not vacuous)."""
    assert line in FirecrestScheduler().get_submit_script(make_template(**fields)).splitlines()


def test_custom_commands_come_last_in_header() -> None:
    header = FirecrestScheduler()._get_submit_script_header(
        make_template(max_wallclock_seconds=60, custom_scheduler_commands='#SBATCH --hold')
    )
    assert header.splitlines()[-1] == '#SBATCH --hold'


@pytest.mark.parametrize(
    'fields',
    [
        {'max_wallclock_seconds': -1},
        {'max_wallclock_seconds': 'soon'},
        {'max_memory_kb': -5},
    ],
)
def test_same_errors_as_slurm(fields: dict[str, Any]) -> None:
    template = make_template(**fields)
    with pytest.raises(ValueError) as slurm_error:
        SlurmScheduler()._get_submit_script_header(template)
    with pytest.raises(ValueError) as firecrest_error:
        FirecrestScheduler()._get_submit_script_header(template)
    assert str(firecrest_error.value) == str(slurm_error.value)


def test_requires_resources() -> None:
    template = make_template()
    template.job_resource = None  # type: ignore[assignment]
    with pytest.raises(ValueError, match='Job resources'):
        FirecrestScheduler()._get_submit_script_header(template)


def test_job_resource_class_is_slurm() -> None:
    assert FirecrestScheduler.job_resource_class is SlurmJobResource
    resources = {'num_machines': 2, 'num_mpiprocs_per_machine': 4, 'num_cores_per_machine': 6}
    with pytest.raises(ValueError) as slurm_error:
        SlurmScheduler.validate_resources(**resources)
    with pytest.raises(ValueError) as firecrest_error:
        FirecrestScheduler.validate_resources(**resources)
    assert str(firecrest_error.value) == str(slurm_error.value)


def test_features() -> None:
    scheduler = FirecrestScheduler()
    assert scheduler.get_feature('can_query_by_user') is False
    assert scheduler.can_get_detailed_job_info() is True


def test_entry_point() -> None:
    from aiida.plugins import SchedulerFactory

    assert SchedulerFactory('firecrest') is FirecrestScheduler
