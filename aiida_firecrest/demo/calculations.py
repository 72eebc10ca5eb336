"""A CalcJob that runs a bash script on the cluster: the demo's and the end-to-end tests' tool for moving files.

It is a tool of this repository, not a plugin of the installed package: no entry point registers it (it would be listed
among every installation's calculations); the demo and the tests use the class, and AiiDA records and reloads it by its
import path.
"""

from __future__ import annotations

import io
from typing import Any

from aiida import orm
from aiida.common.datastructures import CalcInfo, CodeInfo
from aiida.common.folders import Folder
from aiida.engine import CalcJob, CalcJobProcessSpec

SCRIPT_NAME = 'script.sh'
STDOUT_NAME = 'stdout'


class ScriptCalculation(CalcJob):
    """Run ``script`` with ``bash`` in the calculation's working directory.

    The files of the ``files`` namespace are uploaded under their file names; the names in ``remote_copy`` and
    ``remote_symlink`` are copied or linked from ``parent_folder`` (a previous calculation's remote folder), as a
    restart does; the standard output and the names in ``retrieve`` (glob patterns allowed) are retrieved.
    """

    @classmethod
    def define(cls, spec: CalcJobProcessSpec) -> None:  # type: ignore[override]
        """Define the inputs and the defaults of the options."""
        super().define(spec)
        spec.input('script', valid_type=orm.Str, help='The bash script to run.')
        spec.input_namespace('files', valid_type=orm.SinglefileData, dynamic=True, help='Files to upload.')
        spec.input('parent_folder', valid_type=orm.RemoteData, required=False, help='A previous remote folder.')
        spec.input('remote_copy', valid_type=orm.List, required=False, help='Names to copy from the parent folder.')
        spec.input('remote_symlink', valid_type=orm.List, required=False, help='Names to link from the parent folder.')
        spec.input('retrieve', valid_type=orm.List, required=False, help='Names or patterns to retrieve.')
        options: Any = spec.inputs['metadata']['options']  # type: ignore[index]
        options['resources'].default = {'num_machines': 1, 'num_mpiprocs_per_machine': 1}
        options['withmpi'].default = False

    def prepare_for_submission(self, folder: Folder) -> CalcInfo:
        """Write the script and describe what to upload, copy, link and retrieve."""
        folder.create_file_from_filelike(io.StringIO(self.inputs.script.value), SCRIPT_NAME, 'w', encoding='utf8')

        codeinfo = CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.cmdline_params = [SCRIPT_NAME]
        codeinfo.stdout_name = STDOUT_NAME

        calcinfo = CalcInfo()
        calcinfo.codes_info = [codeinfo]
        calcinfo.local_copy_list = [
            (node.uuid, node.filename, node.filename) for node in self.inputs.get('files', {}).values()
        ]
        calcinfo.remote_copy_list = self._from_parent('remote_copy')
        calcinfo.remote_symlink_list = self._from_parent('remote_symlink')
        calcinfo.retrieve_list = [STDOUT_NAME, *self.inputs.get('retrieve', orm.List()).get_list()]
        return calcinfo

    def _from_parent(self, name: str) -> list[tuple[str, str, str]]:
        names: list[str] = self.inputs[name].get_list() if name in self.inputs else []
        if not names:
            return []
        parent: Any = self.inputs.parent_folder
        return [(parent.computer.uuid, f'{parent.get_remote_path()}/{entry}', entry) for entry in names]
