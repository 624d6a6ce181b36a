"""The harness tenant, from the migration guide's own tenant snippet.

Usage (with the Zuul venv's python, which has PyYAML):

  python tenant.py tenant GUIDE NAME CONNECTION CONFIG_PROJECT REQUIRED... -- EXTRA...
      Prints the tenant configuration (main.yaml): the untrusted projects
      are those of the guide's `- tenant:` code block (its one source
      connection is replaced by CONNECTION, attributes such as `shadow`
      kept as written), followed by the EXTRA projects. Fails, saying
      why, if the guide has no such block or it names no REQUIRED project.

  python tenant.py jobs ZUUL_D
      Prints the name of every job defined in ZUUL_D/*.yaml, one a line.

  python tenant.py standin ZUUL_D KEPT_JOB
      Prints the Zuul configuration of a zuul-jobs stand-in: a job of every
      name ZUUL_D defines, each running playbooks/stand-in.yaml (which
      fails loudly), plus KEPT_JOB, a job no other project defines.
"""
import glob
import json
import os
import sys

import yaml


def code_blocks(path):
    """The bodies of the `.. code-block:: yaml` directives of an rst file."""
    lines = open(path, encoding="utf-8").read().splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip() != ".. code-block:: yaml":
            i += 1
            continue
        indent = len(line) - len(line.lstrip())
        i += 1
        body = []
        while i < len(lines):
            text = lines[i]
            if text.strip() and len(text) - len(text.lstrip()) <= indent:
                break
            body.append(text)
            i += 1
        blocks.append("\n".join(body))
    return blocks


def guide_tenant(path):
    """The tenant of the guide's one code block that defines a tenant."""
    tenants = []
    for block in code_blocks(path):
        try:
            doc = yaml.safe_load(block)
        except yaml.YAMLError:
            continue
        if isinstance(doc, list):
            tenants += [item["tenant"] for item in doc if isinstance(item, dict) and "tenant" in item]
    if len(tenants) != 1:
        sys.exit(f"{path}: expected one code block with a `- tenant:`, found {len(tenants)}")
    return tenants[0]


def project_name(entry):
    return entry if isinstance(entry, str) else next(iter(entry))


def tenant_config(args):
    guide, name, connection, config_project = args[:4]
    rest = args[4:]
    split = rest.index("--") if "--" in rest else len(rest)
    required, extra = rest[:split], rest[split + 1:]
    tenant = guide_tenant(guide)
    sources = tenant.get("source") or {}
    if len(sources) != 1:
        sys.exit(f"{guide}: the tenant snippet should have one source connection, has {len(sources)}")
    untrusted = next(iter(sources.values())).get("untrusted-projects") or []
    names = [project_name(p) for p in untrusted]
    missing = [p for p in required if p not in names]
    if missing:
        sys.exit(f"{guide}: the tenant snippet's untrusted-projects {names} do not name {missing}")
    config = [{"tenant": {"name": name, "source": {connection: {
        "config-projects": [config_project],
        "untrusted-projects": untrusted + extra,
    }}}}]
    # JSON is YAML; the guide's entries go through unchanged.
    print(json.dumps(config, indent=2))


def job_names(zuul_d):
    names = []
    for path in sorted(glob.glob(os.path.join(zuul_d, "*.yaml"))):
        for item in yaml.safe_load(open(path, encoding="utf-8")) or []:
            if isinstance(item, dict) and "job" in item:
                names.append(item["job"]["name"])
    if not names:
        sys.exit(f"{zuul_d}: no jobs found")
    return sorted(set(names))


def standin(zuul_d, kept):
    jobs = [{"job": {
        "name": name,
        "description": "Stands in for the zuul-jobs job of this name: imagegate's must replace it.",
        "run": "playbooks/stand-in.yaml",
    }} for name in job_names(zuul_d)]
    jobs.append({"job": {
        "name": kept,
        "description": "A zuul-jobs job imagegate does not define: it stays in the tenant.",
        "run": "playbooks/stand-in.yaml",
    }})
    print(json.dumps(jobs, indent=2))


def main():
    command, args = sys.argv[1], sys.argv[2:]
    if command == "tenant":
        tenant_config(args)
    elif command == "jobs":
        print("\n".join(job_names(args[0])))
    elif command == "standin":
        standin(*args)
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
