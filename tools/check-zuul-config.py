#!/usr/bin/env python3
"""Checks zuul.d/ with Zuul's own configuration schemas (zuul.configloader)
and checks that every parent job, nodeset and playbook it names exists.

Usage: check-zuul-config.py [REPO_ROOT]   (exit 1 and one line per problem)
"""
import os
import sys

import voluptuous as vs
import yaml
from zuul import configloader

# Jobs a tenant always has; parents outside this repository must be one of these.
KNOWN_EXTERNAL_JOBS = {"base", "noop"}


def main(root):
    problems = []
    jobs, nodesets, items = {}, set(), []
    zuul_d = os.path.join(root, "zuul.d")
    for name in sorted(os.listdir(zuul_d)):
        if not name.endswith((".yaml", ".yml")):
            continue
        path = os.path.join(zuul_d, name)
        with open(path) as f:
            data = yaml.safe_load(f) or []
        if not isinstance(data, list):
            problems.append(f"{path}: a Zuul config file is a list of items")
            continue
        for item in data:
            if not isinstance(item, dict) or len(item) != 1:
                problems.append(f"{path}: each item has exactly one key (job, nodeset, project, ...)")
                continue
            kind, body = next(iter(item.items()))
            items.append((path, kind, body))
            if kind == "job":
                jobs[body.get("name")] = body
            elif kind == "nodeset":
                nodesets.add(body.get("name"))

    nodeset_parser = configloader.NodeSetParser(None)
    for path, kind, body in items:
        try:
            if kind == "job":
                configloader.JobParser.schema(body)
            elif kind == "nodeset":
                nodeset_parser.schema(body)
            elif kind in ("project", "project-template"):
                parser = configloader.ProjectParser(None) if kind == "project" else configloader.ProjectTemplateParser(None)
                parser.getSchema()(body)
            else:
                problems.append(f"{path}: unexpected item kind '{kind}'")
        except vs.Invalid as e:
            problems.append(f"{path}: {kind} {body.get('name')}: {e}")

    for name, job in jobs.items():
        where = f"job {name}"
        if not job.get("description"):
            problems.append(f"{where}: no description")
        parent = job.get("parent")
        if parent and parent not in jobs and parent not in KNOWN_EXTERNAL_JOBS:
            problems.append(f"{where}: parent job '{parent}' does not exist")
        nodeset = job.get("nodeset")
        if isinstance(nodeset, str) and nodeset not in nodesets:
            problems.append(f"{where}: nodeset '{nodeset}' does not exist")
        for key in ("pre-run", "run", "post-run", "cleanup-run"):
            value = job.get(key) or []
            for playbook in value if isinstance(value, list) else [value]:
                playbook = playbook["name"] if isinstance(playbook, dict) else playbook
                if not os.path.isfile(os.path.join(root, playbook)):
                    problems.append(f"{where}: {key} playbook {playbook} does not exist")
        if job.get("secrets"):
            problems.append(f"{where}: public jobs take no site secrets")

    for p in problems:
        print(p)
    print(f"{len(jobs)} jobs, {len(nodesets)} nodesets checked; {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")))
