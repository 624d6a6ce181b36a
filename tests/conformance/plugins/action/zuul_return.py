# A stand-in for Zuul's zuul_return, as the executor has it: an action that
# runs on the controller (never on the node) and merges what a task returns
# into the job's result data file, zuul.executor.result_data_file, as JSON
# {"data": ..., "secret_data": ...}. Roles read that file back (for example
# buildset_registry from secret_data), so it must hold what Zuul's holds.
# Written for the conformance suite; it changes nothing else.
import json
import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase


def _merge(old, new):
    """Dictionaries merge key by key; any other value replaces the old one."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = dict(old)
        for key, value in new.items():
            out[key] = _merge(old.get(key), value)
        return out
    return new


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        unknown = set(args) - {'data', 'secret_data'}
        if unknown:
            raise AnsibleActionFail('zuul_return: unsupported options %s' % sorted(unknown))
        path = (task_vars or {}).get('zuul', {}).get('executor', {}).get('result_data_file')
        if not path:
            raise AnsibleActionFail('zuul_return: zuul.executor.result_data_file is not set')
        current = {}
        if os.path.exists(path) and os.path.getsize(path) > 0:
            with open(path) as f:
                current = json.load(f)
        for key in ('data', 'secret_data'):
            if args.get(key) is not None:
                if not isinstance(args[key], dict):
                    raise AnsibleActionFail('zuul_return: %s must be a dictionary' % key)
                current[key] = _merge(current.get(key, {}), args[key])
        with open(path + '.tmp', 'w') as f:
            json.dump(current, f)
        os.replace(path + '.tmp', path)
        result['changed'] = False
        return result
