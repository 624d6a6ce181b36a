#!/usr/bin/python
# A stand-in for Zuul's zuul_return, for running job playbooks outside Zuul:
# it records what is returned (to $ZUUL_RETURN_FILE, a JSON list) and
# changes nothing.
import json
import os

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(
        argument_spec=dict(
            data=dict(type='dict'),
            secret_data=dict(type='dict', no_log=True),
        ),
        supports_check_mode=True,
    )
    path = os.environ.get('ZUUL_RETURN_FILE')
    if path:
        records = []
        if os.path.exists(path):
            with open(path) as f:
                records = json.load(f)
        records.append({'data': module.params['data'], 'secret_data': module.params['secret_data']})
        with open(path, 'w') as f:
            json.dump(records, f)
    module.exit_json(changed=False)


if __name__ == '__main__':
    main()
